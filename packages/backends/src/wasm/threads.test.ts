import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import ts from 'typescript';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BackendError } from '@flint/core';
import { cpuProbe } from './idle-cpus.js';
import { installWasmImprovements, uninstallWasmImprovements } from './index.js';
import { ensureWorkerScript } from './worker-script.js';

// 'auto' counts the CPUs idle at install time; the tests decide how many those are.
const cpus = os.availableParallelism();
const measureIdleCpus = cpuProbe.idleCpus;
let idleNow = cpus;
beforeEach(() => {
  idleNow = cpus;
  cpuProbe.idleCpus = async () => idleNow;
});
afterAll(() => {
  cpuProbe.idleCpus = measureIdleCpus;
});

let cacheDir: string;

const suiteBackend = tf.getBackend();
beforeAll(async () => {
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-wasm-threads-test-'));
  // These tests are about wasm: make it active also when the suite runs on another backend.
  await tf.setBackend('wasm');
});

afterAll(async () => {
  await uninstallWasmImprovements();
  fs.rmSync(cacheDir, { recursive: true, force: true });
  await tf.setBackend(suiteBackend);
});

/** A deterministic training-like workload: MLP forward/backward, a conv gradient, an embedding gradient. */
function workload(): number[][] {
  let seed = 7;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  const rand = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, next), shape);
  return tf.tidy(() => {
    const x = rand([256, 784]);
    const w1 = rand([784, 512]);
    const w2 = rand([512, 10]);
    const mlp = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.relu(x.matMul(a)).matMul(b).square().mean())([w1, w2]);
    const img = rand([8, 28, 28, 3]);
    const filter = rand([3, 3, 3, 16]);
    const conv = tf.grads((f: tf.Tensor) => tf.conv2d(img as tf.Tensor4D, f as tf.Tensor4D, 1, 'same').square().sum())([filter]);
    const table = rand([500, 32]);
    const ids = tf.tensor1d(Int32Array.from({ length: 300 }, (_, i) => (i * 37) % 500), 'int32');
    const emb = tf.grads((t: tf.Tensor) => tf.gather(t, ids).square().sum())([table]);
    return [...mlp, ...conv, ...emb].map((t) => Array.from(t.dataSync()));
  });
}

describe('wasm threads in Node', () => {
  it("threads: 'auto' runs several XNNPACK threads where the machine has 2 or more idle CPUs", async () => {
    const report = await installWasmImprovements({ cacheDir });
    if (cpus >= 2) {
      expect(report.threads).toBe(Math.min(cpus, 4));
      expect(report.threads).toBeGreaterThan(1);
      expect(report.wasmBinary).toBe('tfjs-backend-wasm-threaded-simd.wasm');
      expect(report.workerScript).toBeDefined();
      expect(fs.existsSync(report.workerScript!)).toBe(true);
      expect(path.dirname(report.workerScript!)).toBe(path.join(cacheDir, 'flint-wasm-4.22.0'));
    } else {
      expect(report.threads).toBe(1);
      expect(report.threadsNote).toBe(`${cpus} CPU available`);
    }
    expect(tf.getBackend()).toBe('wasm'); // wasm was active before; it still is, now threaded
    expect(getThreadsCount()).toBe(report.threads);
  });

  it("threads: 'auto' stays on one thread when the CPUs are busy with other work, and says so", async () => {
    idleNow = 0.4;
    await uninstallWasmImprovements(); // the same options again would return the previous report
    const report = await installWasmImprovements({ cacheDir, threads: 'auto' });
    expect(report.threads).toBe(1);
    expect(report.wasmBinary).toBe('tfjs-backend-wasm-simd.wasm');
    if (cpus >= 2) {
      expect(report.threadsNote).toBe(`0.4 of ${cpus} CPUs idle`);
      expect(report.summary).toMatch(new RegExp(`^wasm: 1 thread \\(0\\.4 of ${cpus} CPUs idle\\), fast matmul`));
    }
  });

  it('idle CPUs are measured from the CPU time counters', async () => {
    const idle = await measureIdleCpus(50);
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThanOrEqual(os.cpus().length + 1e-9);
  });

  it('the pool threads do not keep the process alive (it exits by itself after training)', async () => {
    await installWasmImprovements({ threads: false, cacheDir });
    const keepingAlive = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort' || r === 'Worker').length;
    const before = keepingAlive();
    const report = await installWasmImprovements({ threads: 2, cacheDir });
    expect(report.threads).toBe(2);
    const y = tf.tidy(() => tf.ones([300, 300]).matMul(tf.ones([300, 300])).sum());
    expect(y.dataSync()[0]).toBe(300 * 300 * 300);
    y.dispose();
    expect(keepingAlive()).toBe(before);
  });

  it('an explicit thread count is used exactly', async () => {
    const report = await installWasmImprovements({ threads: 3, cacheDir });
    expect(report.threads).toBe(3);
    expect(report.threadsRequested).toBe(3);
    expect(getThreadsCount()).toBe(3);
    const single = await installWasmImprovements({ threads: false, cacheDir });
    expect(single.threads).toBe(1);
    expect(single.wasmBinary).toBe('tfjs-backend-wasm-simd.wasm');
    expect(single.workerScript).toBeUndefined();
  });

  it('results with threads are bit-identical to single-threaded results', async () => {
    await installWasmImprovements({ threads: 2, cacheDir });
    const tensorsBefore = tf.memory().numTensors;
    const threaded = workload();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    await installWasmImprovements({ threads: false, cacheDir });
    const single = workload();
    expect(threaded.length).toBe(single.length);
    for (const [i, values] of single.entries()) expect(threaded[i], `output ${i}`).toEqual(values);
  });

  it("when the threaded build cannot start, 'auto' stays single-threaded and says why; a number throws", async () => {
    const notAFolder = path.join(cacheDir, 'a-file');
    fs.writeFileSync(notAFolder, 'x');
    const report = await installWasmImprovements({ threads: 'auto', cacheDir: notAFolder });
    if (cpus >= 2) {
      expect(report.threads).toBe(1);
      expect(report.threadsNote).toMatch(/^threads could not start: ENOTDIR/);
      expect(report.summary).toContain('1 thread (threads could not start: ENOTDIR');
    }
    const failure = installWasmImprovements({ threads: 2, cacheDir: notAFolder });
    await expect(failure).rejects.toBeInstanceOf(BackendError);
    await expect(failure).rejects.toThrow(
      /^installWasmImprovements option 'threads': 2 threads were requested but the threaded wasm build could not start \(ENOTDIR.*\)\. Pass threads: false for the single-threaded build, or 'auto' to use threads only where they start\.$/,
    );
  });
});

describe('the cached worker script', () => {
  it('is reused when present and rewritten when damaged', () => {
    const dir = fs.mkdtempSync(path.join(cacheDir, 'reuse-'));
    const file = ensureWorkerScript(dir, '1.2.3', 'console.log("a\nb")');
    expect(path.basename(path.dirname(file))).toBe('flint-wasm-1.2.3');
    expect(file.endsWith('.cjs')).toBe(true);
    expect(fs.readFileSync(file, 'utf8')).toBe('console.log("a\\nb")'); // raw newlines escaped, as tfjs does
    const mtime = fs.statSync(file).mtimeMs;
    expect(ensureWorkerScript(dir, '1.2.3', 'console.log("a\nb")')).toBe(file);
    expect(fs.statSync(file).mtimeMs).toBe(mtime);
    fs.writeFileSync(file, 'console.lo'); // a partial file from some other writer
    expect(ensureWorkerScript(dir, '1.2.3', 'console.log("a\nb")')).toBe(file);
    expect(fs.readFileSync(file, 'utf8')).toBe('console.log("a\\nb")');
    expect(fs.readdirSync(path.dirname(file))).toEqual([path.basename(file)]);
  });

  it('is written atomically when several processes start at once', async () => {
    // Run the real worker-script.ts (Node built-ins only) in 8 fresh processes released together.
    const here = path.dirname(fileURLToPath(import.meta.url));
    const source = fs.readFileSync(path.join(here, 'worker-script.ts'), 'utf8');
    const js = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const work = fs.mkdtempSync(path.join(cacheDir, 'race-'));
    const moduleFile = path.join(work, 'worker-script.mjs');
    fs.writeFileSync(moduleFile, js);
    const payload = 'x'.repeat(4_000_000) + '\n'; // big enough that writes overlap
    const startAt = Date.now() + 1500;
    const child = `
      import fs from 'node:fs';
      import { ensureWorkerScript } from ${JSON.stringify(pathToFileURL(moduleFile).href)};
      const payload = 'x'.repeat(4_000_000) + '\\n';
      while (Date.now() < ${startAt}) {}
      const file = ensureWorkerScript(${JSON.stringify(path.join(work, 'cache'))}, '9.9.9', payload);
      const ok = fs.readFileSync(file, 'utf8') === payload.replace(/\\n/g, '\\\\n');
      process.stdout.write(JSON.stringify({ file, ok }));
    `;
    const runs = await Promise.all(
      Array.from(
        { length: 8 },
        () =>
          new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
            const p = spawn(process.execPath, ['--input-type=module', '-e', child]);
            let out = '';
            let err = '';
            p.stdout.on('data', (d: Buffer) => (out += d.toString()));
            p.stderr.on('data', (d: Buffer) => (err += d.toString()));
            p.on('close', (code) => resolve({ code, out, err }));
          }),
      ),
    );
    const results = runs.map((r) => {
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out) as { file: string; ok: boolean };
    });
    expect(results.every((r) => r.ok)).toBe(true);
    expect(new Set(results.map((r) => r.file)).size).toBe(1);
    const file = results[0]!.file;
    expect(fs.readFileSync(file, 'utf8')).toBe(payload.replace(/\n/g, '\\n'));
    expect(fs.readdirSync(path.dirname(file))).toEqual([path.basename(file)]); // no temporary files left
  });
});
