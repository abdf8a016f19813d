// Test-only: the Lightning venv (scripts/lightning-venv.sh) as an oracle for side-by-side tests.
import { fileURLToPath } from 'node:url';
import { findOraclePython, runOracleScript, type OraclePython } from '@flint/core/testing';

const repo = fileURLToPath(new URL('../../../../', import.meta.url));

/** The Python of the Lightning 2.6 venv, or why `what` must skip (printed). */
export function lightningPython(what: string): Promise<OraclePython> {
  return findOraclePython({ venvScript: `${repo}scripts/lightning-venv.sh`, cwd: repo, what });
}

/** Runs a Lightning oracle script with `spec` as JSON on stdin, one torch thread; parses its JSON line. */
export function runPython<T>(python: string, script: string, spec: unknown): Promise<T> {
  return runOracleScript<T>(python, script, spec, { env: { ...process.env, OMP_NUM_THREADS: '1' } });
}
