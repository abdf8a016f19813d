/** Child processes of the benchmark: running one, reading its tagged lines, the Python peers' venv. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const benchDir = path.resolve(here, '..');
export const rootDir = path.resolve(benchDir, '..');
const setupVenv = path.join(benchDir, 'python', 'setup-venv.sh');

export interface ProcOutcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export function runProcess(cmd: string, args: readonly string[], timeoutSec: number, env?: NodeJS.ProcessEnv): Promise<ProcOutcome> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: rootDir, stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutSec * 1000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: `${stderr}\n${e.message}`, timedOut });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

export function tagged(stdout: string, tag: string): string | undefined {
  const line = stdout.split('\n').reverse().find((l) => l.startsWith(`${tag} `));
  return line?.slice(tag.length + 1).trim();
}

export function lastLines(text: string, n = 3): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .slice(-n)
    .join(' | ');
}

export function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

/** The Python that has the peers' packages, or the reason there is none. */
export async function pythonFor(given: string | undefined): Promise<{ python: string } | { reason: string }> {
  if (given !== undefined) return { python: given };
  log('bench: preparing the Python peers (bench/python/setup-venv.sh; the first time installs torch, lightning, keras, tensorflow-cpu)...');
  const out = await runProcess('bash', [setupVenv], 3600);
  for (const line of out.stderr.split('\n')) if (line.startsWith('bench-venv:')) log(`  ${line}`);
  const python = out.stdout.trim().split('\n').pop();
  if (out.code !== 0 || python === undefined || python.length === 0) {
    return { reason: `no Python virtual environment (${lastLines(out.stderr) || `setup-venv.sh exited ${out.code}`})` };
  }
  return { python };
}

