import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

/** What {@link askPythonOracle} got: the oracle's parsed answer, or why the test must skip. */
export type OracleAnswer<T> = { readonly answer: T; readonly skipReason?: undefined } | { readonly answer?: undefined; readonly skipReason: string };

/**
 * Runs a Python reference ("oracle") for a side-by-side test: `venvScript` (bash) makes or finds a
 * venv and prints its Python as its last line; `script` then runs in that Python, reads `input` as JSON
 * on stdin and prints its answer as JSON on stdout. Where the venv cannot be made (no pip, no mirror),
 * gives a `skipReason` naming the script and its error, and prints it, so the test skips saying why.
 * A script that fails once the venv exists is a test failure, not a skip: it throws with its stderr.
 */
export async function askPythonOracle<T>(options: {
  venvScript: string;
  script: string;
  input: unknown;
  /** Working folder of the venv script (the repository root). */
  cwd: string;
  /** Named in the skip reason, e.g. 'layers oracle test'. */
  what: string;
  args?: readonly string[];
  env?: NodeJS.ProcessEnv;
}): Promise<OracleAnswer<T>> {
  let python: string;
  try {
    const { stdout } = await promisify(execFile)('bash', [options.venvScript], { cwd: options.cwd, timeout: 20 * 60_000, maxBuffer: 1 << 20 });
    python = stdout.trim().split('\n').at(-1)!;
  } catch (error) {
    const e = error as { code?: number; stderr?: string; message: string };
    const skipReason = `${options.what} skipped: ${options.venvScript} could not make its venv (exit ${String(e.code)}): ${(e.stderr ?? e.message).trim()}`;
    console.warn(skipReason);
    return { skipReason };
  }
  const child = spawn(python, [options.script, ...(options.args ?? [])], { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  child.stdin.end(JSON.stringify(options.input));
  const code = await exit;
  if (code !== 0) throw new Error(`${options.script} exited with ${String(code)}:\n${stderr.slice(-4000)}`);
  return { answer: JSON.parse(stdout) as T };
}
