import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

/** What {@link askPythonOracle} got: the oracle's parsed answer, or why the test must skip. */
export type OracleAnswer<T> = { readonly answer: T; readonly skipReason?: undefined } | { readonly answer?: undefined; readonly skipReason: string };

/** The Python of an oracle's venv, or why the test must skip. */
export type OraclePython = { readonly python: string; readonly skipReason?: undefined } | { readonly python?: undefined; readonly skipReason: string };

export interface OracleVenv {
  /** A bash script that makes or finds a venv and prints its Python as its last line. */
  readonly venvScript: string;
  /** Working folder of the venv script (the repository root). */
  readonly cwd: string;
  /** Named in the skip reason, e.g. 'layers oracle test'. */
  readonly what: string;
}

/**
 * Makes or finds an oracle's venv by running `venvScript`. Where it cannot be made (no pip, no
 * mirror), gives a `skipReason` naming the script and its error, and prints it, so the test skips
 * saying why. Call it once (in `beforeAll`) when several tests ask the same oracle.
 */
export async function findOraclePython(venv: OracleVenv): Promise<OraclePython> {
  try {
    const { stdout } = await promisify(execFile)('bash', [venv.venvScript], { cwd: venv.cwd, timeout: 20 * 60_000, maxBuffer: 1 << 20 });
    return { python: stdout.trim().split('\n').at(-1)! };
  } catch (error) {
    const e = error as { code?: number; stderr?: string; message: string };
    const skipReason = `${venv.what} skipped: ${venv.venvScript} could not make its venv (exit ${String(e.code)}): ${(e.stderr ?? e.message).trim()}`;
    console.warn(skipReason);
    return { skipReason };
  }
}

/**
 * Runs `script` in `python` with `input` as JSON on stdin and parses the last line it prints as JSON.
 * A script that fails is a test failure, not a skip: it rejects with the end of its stderr.
 */
export function runOracleScript<T>(python: string, script: string, input: unknown, options: { args?: readonly string[]; env?: NodeJS.ProcessEnv } = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [script, ...(options.args ?? [])], { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${script} exited with ${String(code)}:\n${stderr.slice(-4000)}`));
      else resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as T);
    });
    child.stdin.end(JSON.stringify(input));
  });
}

/**
 * Runs a Python reference ("oracle") for a side-by-side test: {@link findOraclePython}, then
 * {@link runOracleScript}. A missing venv gives a `skipReason`; a failing script throws.
 */
export async function askPythonOracle<T>(
  options: OracleVenv & { script: string; input: unknown; args?: readonly string[]; env?: NodeJS.ProcessEnv },
): Promise<OracleAnswer<T>> {
  const venv = await findOraclePython(options);
  if (venv.python === undefined) return { skipReason: venv.skipReason };
  return { answer: await runOracleScript<T>(venv.python, options.script, options.input, options) };
}
