import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * A program's own uncaught errors and unhandled rejections surface as Node reports them, whether Flint
 * loaded the wasm backend (single-threaded or with worker threads) or not: each case is a child process
 * running a small program against the built packages, which fits, then throws or rejects.
 */

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const program = `
import * as tf from '@tensorflow/tfjs';
import { DataLoader } from '@flint/core';
import { BoringModule, randomClassificationDataset } from '@flint/core/testing';
import { Trainer } from '@flint/trainer';
const [backend, threads, mode] = process.argv.slice(1);
if (mode === 'listener') process.on('uncaughtException', (error) => { console.log('mine caught: ' + error.message); process.exit(5); });
const data = randomClassificationDataset({ n: 32, features: 4 });
const trainer = new Trainer({ backend, wasm: { threads: threads === '1' ? false : Number(threads) }, maxEpochs: 1, logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false });
await trainer.fit(new BoringModule(), new DataLoader(data, { batchSize: 16 }));
if (mode === 'listener') tf.removeBackend(backend);
if (mode === 'reject') Promise.reject(new Error('mine'));
else throw new Error('mine');
`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the program (from this package's folder, so that '@flint/trainer' is its built dist). */
function run(backend: 'cpu' | 'wasm', threads: 1 | 2, mode: 'throw' | 'reject' | 'listener'): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', program, backend, String(threads), mode], {
      cwd: packageDir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FLINT_VERBOSE: '1' }, // the backend line with its details: the thread count is checked below
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += String(d)));
    child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${backend}/${threads}/${mode} did not finish in 90 s; stderr: ${stderr}`));
    }, 90_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

type Mode = Parameters<typeof run>[2];
let runs: Map<string, Promise<Run>>;
/** The result of one of the programs, all started together in beforeAll. */
const result = (backend: 'cpu' | 'wasm', threads: 1 | 2, mode: Mode): Promise<Run> => runs.get(`${backend}/${threads}/${mode}`)!;

beforeAll(() => {
  const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
  if (!fs.existsSync(dist)) throw new Error(`${dist} is missing: these tests run the built packages (pnpm build first)`);
  const cases = [
    ['cpu', 1, 'throw'],
    ['cpu', 1, 'reject'],
    ['wasm', 1, 'throw'],
    ['wasm', 1, 'reject'],
    ['wasm', 2, 'throw'],
    ['wasm', 2, 'reject'],
    ['wasm', 1, 'listener'],
  ] as const;
  runs = new Map(cases.map(([backend, threads, mode]) => [`${backend}/${threads}/${mode}`, run(backend, threads, mode)]));
  // Settled here too, so that a failure of one test does not leave another's rejection unhandled.
  for (const promise of runs.values()) promise.catch(() => undefined);
});

describe('uncaught errors after fit on wasm', () => {
  it('a throw and an unhandled rejection are reported by Node exactly as without wasm (exit 1), with and without threads', { timeout: 180_000 }, async () => {
    const [cpuThrow, cpuReject, ...wasm] = await Promise.all([
      result('cpu', 1, 'throw'),
      result('cpu', 1, 'reject'),
      result('wasm', 1, 'throw'),
      result('wasm', 1, 'reject'),
      result('wasm', 2, 'throw'),
      result('wasm', 2, 'reject'),
    ]);
    // Without wasm: Node's own report, the user's line and message first.
    for (const control of [cpuThrow!, cpuReject!]) {
      expect(control.code, control.stderr).toBe(1);
      expect(control.stderr).toMatch(/\[eval1\]:\d+\n.*new Error\('mine'\).*\n\s*\^\n\nError: mine\n {4}at /);
    }
    const [throw1, reject1, throw2, reject2] = wasm as [Run, Run, Run, Run];
    for (const [outcome, threads, control] of [
      [throw1, '1 thread', cpuThrow!],
      [reject1, '1 thread', cpuReject!],
      [throw2, '2 threads', cpuThrow!],
      [reject2, '2 threads', cpuReject!],
    ] as const) {
      expect(outcome.stdout).toContain(`backend 'wasm' from @tensorflow/tfjs-backend-wasm (XNNPACK, ${threads},`);
      expect({ code: outcome.code, stderr: outcome.stderr }).toEqual({ code: control.code, stderr: control.stderr });
    }
  });

  it("the program's own 'uncaughtException' listener still runs after the wasm backend is disposed", { timeout: 180_000 }, async () => {
    // tfjs's dispose of a wasm module removes every listener that existed when the module started.
    const listener = await result('wasm', 1, 'listener');
    expect({ code: listener.code, lastLine: listener.stdout.split('\n').at(-2) }, listener.stderr).toEqual({ code: 5, lastLine: 'mine caught: mine' });
    expect(listener.stderr).not.toContain('tfjs-backend-wasm');
  });
});
