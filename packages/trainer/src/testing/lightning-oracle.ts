// Test-only: runs a Python script of the Lightning venv (scripts/lightning-venv.sh) with a JSON spec
// on stdin and parses the JSON line it prints; finds the venv once, or the reason it is missing.
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repo = fileURLToPath(new URL('../../../../', import.meta.url));

export async function lightningPython(what: string): Promise<{ python?: string; reason?: string }> {
  try {
    const { stdout } = await promisify(execFile)('bash', [`${repo}scripts/lightning-venv.sh`], { cwd: repo, timeout: 20 * 60_000, maxBuffer: 1 << 20 });
    return { python: stdout.trim().split('\n').at(-1) };
  } catch (error) {
    const e = error as { code?: number; stderr?: string; message: string };
    return { reason: `${what} skipped: scripts/lightning-venv.sh could not make a venv with lightning 2.6 (exit ${String(e.code)}): ${(e.stderr ?? e.message).trim()}` };
  }
}

export function runPython<T>(python: string, script: string, spec: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [script], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: '1' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as T) : reject(new Error(`${script} exited with ${String(code)}:\n${err.slice(-3000)}`))));
    child.stdin.end(JSON.stringify(spec));
  });
}
