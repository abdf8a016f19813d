import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { APPLY_ADAM_KERNEL, adam, type AdamKernelSlot, type AdamStepScalars } from '@flint/core';
import { expectNoLeak, worstRelativeDifference } from '@flint/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { adamLoopChoice, lastAdamLoop } from './adam-kernel.js';
import { adamModuleBytes, adamSimdLoop } from './adam-simd.js';
import { installWasmImprovements, uninstallWasmImprovements } from './index.js';

// FlintAdam's fused update on wasm (APPLY_ADAM_KERNEL): the same numbers as core's tfjs-ops Adam.

beforeAll(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  await installWasmImprovements({ threads: false });
  await tf.setBackend('wasm');
});
afterAll(async () => {
  await uninstallWasmImprovements();
});
afterEach(() => {
  adamLoopChoice.simd = true;
});

/** Runs `steps` Adam steps on three parameters with seeded gradients (seeds > 0: tfjs ignores seed 0); the step size and beta1 change on the way. */
async function runSteps(native: boolean, steps: number) {
  const shapes = [[37, 19], [19], [5, 3, 2]];
  const vars = shapes.map((s, i) => {
    const init = tf.randomNormal(s, 0, 1, 'float32', 10 + i);
    const v = tf.variable(init, true, `adamk_${native}_${i}`);
    init.dispose();
    return v;
  });
  const opt = adam({ learningRate: 0.01, native });
  const kernels = new Set<string>();
  for (let t = 0; t < steps; t++) {
    if (t === 40) opt.learningRate = 0.003;
    if (t === 70) opt.beta1 = 0.8;
    const grads = tf.tidy(() => vars.map((v, i) => tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', 1000 * t + i + 1), t % 7 === 0 ? 1e-4 : 1)));
    const info = await tf.profile(() => opt.applyGradients(vars.map((v, i) => ({ name: v.name, tensor: grads[i]! }))));
    info.kernelNames.forEach((k) => kernels.add(k));
    tf.dispose(grads);
  }
  const weights = await opt.getWeights();
  const moments = weights.slice(1).map((w) => w.tensor.dataSync() as Float32Array);
  weights[0]!.tensor.dispose(); // 'iter' belongs to the caller
  const params = vars.map((v) => v.dataSync() as Float32Array);
  opt.dispose();
  tf.dispose(vars);
  return { params, moments, kernels };
}

describe('FlintAdam on wasm (APPLY_ADAM_KERNEL)', () => {
  it('is registered by installWasmImprovements and gives the tfjs-ops update after 100 steps, moments included: bit for bit with the SIMD loop, to 1e-6 with the JavaScript one', async () => {
    expect(tf.getKernel(APPLY_ADAM_KERNEL, 'wasm')).toBeDefined();
    const fused = await expectNoLeak(() => runSteps(true, 100), 'fused Adam');
    expect(lastAdamLoop()).toBe('simd'); // the wasm SIMD loop ran, not the JavaScript one
    const ops = await expectNoLeak(() => runSteps(false, 100), 'ops Adam');
    // One kernel per parameter and step (and zeros for the moments at the first step).
    expect(fused.kernels).toEqual(new Set([APPLY_ADAM_KERNEL, 'ZerosLike']));
    expect(ops.kernels.has(APPLY_ADAM_KERNEL)).toBe(false);
    // The same float32 operations in the same order as core's tfjs ops (WebAssembly has no fused
    // multiply-add; its sqrt and division round correctly): the same numbers, bit for bit.
    expect(worstRelativeDifference(ops.params, fused.params)).toBe(0);
    expect(worstRelativeDifference(ops.moments, fused.moments)).toBe(0);
    // The JavaScript loop (where SIMD cannot run) gives them too.
    adamLoopChoice.simd = false;
    const js = await expectNoLeak(() => runSteps(true, 100), 'fused Adam, JavaScript loop');
    adamLoopChoice.simd = true;
    expect(lastAdamLoop()).toBe('javascript');
    expect(worstRelativeDifference(ops.params, js.params)).toBeLessThan(1e-6);
    expect(worstRelativeDifference(ops.moments, js.moments)).toBeLessThan(1e-6);
    // The parameters moved: the comparison is not of two untouched copies.
    const start = tf.tidy(() => tf.randomNormal([37, 19], 0, 1, 'float32', 10).dataSync() as Float32Array);
    expect(worstRelativeDifference([start], [fused.params[0]!])).toBeGreaterThan(0.01);
  });

  it('checkpointed moments restore into a new optimizer and continue exactly; disposing frees everything', async () => {
    const v = tf.variable(tf.randomNormal([8, 4], 0, 1, 'float32', 3), true, 'adamk_resume');
    const grad = (t: number) => tf.randomNormal([8, 4], 0, 1, 'float32', 50 + t);
    const step = (opt: tf.Optimizer, t: number) => {
      const g = grad(t);
      opt.applyGradients([{ name: v.name, tensor: g }]);
      g.dispose();
    };
    const before = tf.memory().numTensors;
    const a = adam({ learningRate: 0.05 });
    for (let t = 0; t < 5; t++) step(a, t);
    const weights = await a.getWeights();
    const saved = weights.map((w) => ({ name: w.name, tensor: w.tensor.clone() }));
    weights[0]!.tensor.dispose(); // 'iter' belongs to the caller
    const atSave = v.clone();
    for (let t = 5; t < 10; t++) step(a, t);
    const straight = v.dataSync().slice();

    v.assign(atSave); // a parameter assigned from outside between steps is read, not cached
    const b = adam({ learningRate: 0.05 });
    await b.setWeights(saved);
    for (let t = 5; t < 10; t++) step(b, t);
    expect(Array.from(v.dataSync())).toEqual(Array.from(straight));
    a.dispose();
    b.dispose();
    tf.dispose([atSave, ...saved.map((w) => w.tensor)]);
    expect(tf.memory().numTensors).toBe(before);
    v.dispose();
  });

  it('a gradient of another shape throws, naming both shapes', () => {
    const v = tf.variable(tf.zeros([3, 2]), true, 'adamk_bad');
    const g = tf.zeros([4]);
    const opt = adam();
    expect(() => opt.applyGradients([{ name: v.name, tensor: g }])).toThrow(
      'FlintApplyAdam (wasm): the gradient has shape [4], the parameter [3, 2]',
    );
    opt.dispose();
    tf.dispose([v, g]);
  });
});

/** The runtime's WebAssembly API (our lib settings carry no WebAssembly types). */
const WebAssemblyApi = (
  globalThis as unknown as {
    WebAssembly: { validate(bytes: Uint8Array): boolean; Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => object };
  }
).WebAssembly;

/** Scalars of one step, as FlintAdam computes them (any values will do for the kernel). */
const STEP: AdamStepScalars = { beta1: 0.9, beta2: 0.999, oneMinusBeta1: 0.1, oneMinusBeta2: 0.001, alpha: 0.013, epsilon: 3e-7 };

/** The update in float32, every operation rounded as WebAssembly's float32 operations round: what the SIMD loop must give bit for bit. */
function float32Step(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, s: AdamStepScalars): Float32Array {
  const f = Math.fround;
  const [b1, b2, alpha, eps] = [f(s.oneMinusBeta1), f(s.oneMinusBeta2), f(s.alpha), f(s.epsilon)];
  const out = new Float32Array(p.length);
  for (let i = 0; i < p.length; i++) {
    m[i] = f(m[i]! + f(f(g[i]! - m[i]!) * b1));
    v[i] = f(v[i]! + f(f(f(g[i]! * g[i]!) - v[i]!) * b2));
    out[i] = f(p[i]! - f(f(alpha * m[i]!) / f(f(Math.sqrt(v[i]!)) + eps)));
  }
  return out;
}

/** Seeded floats in [-1, 1). */
function floats(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648) * 2 - 1;
  });
}

/**
 * Runs `steps` steps of the kernel itself on one parameter of `shape` (a fresh slot, moments from
 * seeded values), `between(t)` after each; returns the parameters and moments after each step
 * with the float32 reference's, and releases the slot.
 */
function kernelSteps(shape: number[], steps: number, between: (t: number) => void = () => {}) {
  const n = shape.reduce((a, b) => a * b, 1);
  const slot: AdamKernelSlot = {};
  const p = floats(n, 1);
  const m0 = floats(n, 2).map((x) => x * 0.1);
  const v0 = floats(n, 3).map((x) => x * x * 0.01);
  const ref: Record<'p' | 'm' | 'v', Float32Array> = { p: p.slice(), m: m0.slice(), v: v0.slice() };
  let param = tf.tensor(p, shape);
  const got: Float32Array[] = [];
  const want: Float32Array[] = [];
  for (let t = 0; t < steps; t++) {
    const g = floats(n, 100 + t);
    const grad = tf.tensor(g, shape);
    const first = t === 0 ? { m: tf.tensor(m0, shape), v: tf.tensor(v0, shape) } : undefined;
    const next = tf.engine().runKernel(APPLY_ADAM_KERNEL, { param, grad, ...first }, { slot, step: STEP } as unknown as tf.NamedAttrMap) as tf.Tensor;
    tf.dispose([param, grad, first?.m, first?.v].filter((x): x is tf.Tensor => x !== undefined));
    param = next;
    ref.p = float32Step(ref.p, g, ref.m, ref.v, STEP);
    const moments = slot.read!();
    got.push(param.dataSync() as Float32Array, moments.m.dataSync() as Float32Array, moments.v.dataSync() as Float32Array);
    want.push(ref.p.slice(), ref.m.slice(), ref.v.slice());
    tf.dispose([moments.m, moments.v]);
    between(t);
  }
  param.dispose();
  slot.release!();
  return { got, want };
}

/** The wasm heap's size in bytes now. */
function heapBytes(): number {
  const heap = (tf.backend() as BackendWasm).wasm as unknown as { wasmMemory?: { buffer: ArrayBufferLike }; HEAPU8: Uint8Array };
  return (heap.wasmMemory?.buffer ?? heap.HEAPU8.buffer).byteLength;
}

describe('FlintApplyAdam on wasm: the SIMD loop', () => {
  it('its module validates, and instantiates on an unshared memory and on a shared one of 65536 pages at most', () => {
    for (const shared of [false, true]) expect(WebAssemblyApi.validate(adamModuleBytes(shared))).toBe(true);
    expect(adamSimdLoop(new WebAssemblyApi.Memory({ initial: 1 }))).toBeTypeOf('function');
    expect(adamSimdLoop(new WebAssemblyApi.Memory({ initial: 1, maximum: 65536, shared: true }))).toBeTypeOf('function');
    // Anything but a WebAssembly.Memory: no SIMD loop, the kernel runs its JavaScript loop.
    expect(adamSimdLoop(undefined)).toBeUndefined();
    expect(adamSimdLoop({ buffer: new ArrayBuffer(65536) })).toBeUndefined();
  });

  it('gives the float32 update bit for bit for sizes 1 to 9 and one that is no multiple of 4 (the scalar tail); the JavaScript loop within 1e-6', async () => {
    for (const shape of [[1], [2], [3], [4], [5], [6], [7], [8], [9], [7, 13, 11]]) {
      const simd = await expectNoLeak(() => kernelSteps(shape, 5), `SIMD loop, shape [${shape.join(', ')}]`);
      expect(lastAdamLoop()).toBe('simd');
      simd.got.forEach((x, i) => expect(Array.from(x), `shape [${shape.join(', ')}], array ${i}`).toEqual(Array.from(simd.want[i]!)));
      adamLoopChoice.simd = false;
      const js = await expectNoLeak(() => kernelSteps(shape, 5), `JavaScript loop, shape [${shape.join(', ')}]`);
      adamLoopChoice.simd = true;
      expect(lastAdamLoop()).toBe('javascript');
      expect(worstRelativeDifference(js.want, js.got)).toBeLessThan(1e-6);
    }
  });

  it('keeps working when the heap grows between steps (views detach, offsets stay)', async () => {
    for (const simd of [true, false]) {
      adamLoopChoice.simd = simd;
      let grown = 0;
      const run = await expectNoLeak(
        () =>
          kernelSteps([257, 3], 4, (t) => {
            if (t !== 1) return;
            const before = heapBytes();
            const big = tf.zeros([before / 4 + (1 << 20)]); // more than the heap holds now: it must grow
            grown = heapBytes() - before;
            big.dispose();
          }),
        `heap growth, ${simd ? 'SIMD' : 'JavaScript'} loop`,
      );
      expect(lastAdamLoop()).toBe(simd ? 'simd' : 'javascript');
      expect(grown).toBeGreaterThan(0);
      if (simd) run.got.forEach((x, i) => expect(Array.from(x)).toEqual(Array.from(run.want[i]!)));
      else expect(worstRelativeDifference(run.want, run.got)).toBeLessThan(1e-6);
    }
  });

  it("release frees the moments' heap block once; reading them afterwards throws", () => {
    const heap = (tf.backend() as BackendWasm).wasm as unknown as { _free(offset: number): void };
    const free = heap._free;
    const freed: number[] = [];
    const slot: AdamKernelSlot = {};
    const param = tf.tensor([1, 2, 3]);
    const grad = tf.tensor([0.5, -1, 2]);
    const [m, v] = [tf.zeros([3]), tf.zeros([3])];
    const next = tf.engine().runKernel(APPLY_ADAM_KERNEL, { param, grad, m, v }, { slot, step: STEP } as unknown as tf.NamedAttrMap) as tf.Tensor;
    tf.dispose([param, grad, m, v, next]);
    heap._free = (offset) => {
      freed.push(offset);
      free.call(heap, offset);
    };
    try {
      slot.release!();
      slot.release!();
    } finally {
      heap._free = free;
    }
    expect(freed).toHaveLength(1);
    expect(() => slot.read!()).toThrow('FlintApplyAdam (wasm): the moments of this slot were released');
  });

  it("disposing adam() frees one heap block per parameter", async () => {
    const heap = (tf.backend() as BackendWasm).wasm as unknown as { _free(offset: number): void };
    const vars = [[5, 3], [3], [9]].map((s, i) => tf.variable(tf.ones(s), true, `adamk_free_${i}`));
    const opt = adam();
    const grads = vars.map((v) => tf.onesLike(v));
    opt.applyGradients(vars.map((v, i) => ({ name: v.name, tensor: grads[i]! })));
    tf.dispose(grads);
    const free = heap._free;
    let frees = 0;
    heap._free = (offset) => {
      frees++;
      free.call(heap, offset);
    };
    try {
      opt.dispose();
    } finally {
      heap._free = free;
    }
    expect(frees).toBe(3);
    tf.dispose(vars);
  });
});

describe('FlintApplyAdam on the threaded wasm build', () => {
  let cacheDir: string;
  beforeAll(async () => {
    cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-adam-kernel-test-'));
  });
  afterAll(async () => {
    await installWasmImprovements({ threads: false });
    fs.rmSync(cacheDir, { recursive: true, force: true });
  });

  it("runs the SIMD loop on the shared memory; moments taken over from the single-threaded backend carry on with the tfjs ops' numbers", async () => {
    // Three steps on the single-threaded backend, then the backend changes under the optimizer.
    const v = tf.variable(tf.zeros([33, 7]), true, 'adamk_threads');
    const grad = (t: number) => tf.randomNormal([33, 7], 0, 1, 'float32', 70 + t);
    const run = async (native: boolean) => {
      await installWasmImprovements({ threads: false });
      const init = tf.randomNormal([33, 7], 0, 1, 'float32', 4);
      v.assign(init);
      init.dispose();
      const opt = adam({ learningRate: 0.02, native });
      for (let t = 0; t < 6; t++) {
        if (t === 3) await installWasmImprovements({ threads: 2, cacheDir });
        const g = grad(t);
        opt.applyGradients([{ name: v.name, tensor: g }]);
        g.dispose();
      }
      const weights = await opt.getWeights();
      const moments = weights.slice(1).map((w) => w.tensor.dataSync() as Float32Array);
      weights[0]!.tensor.dispose();
      opt.dispose();
      return { param: v.dataSync().slice(), moments };
    };
    const fused = await expectNoLeak(() => run(true), 'fused Adam across backends');
    expect(lastAdamLoop()).toBe('simd');
    const memory = ((tf.backend() as BackendWasm).wasm as unknown as { wasmMemory?: { buffer: ArrayBufferLike } }).wasmMemory;
    expect(memory?.buffer).toBeInstanceOf(SharedArrayBuffer);
    const ops = await expectNoLeak(() => run(false), 'ops Adam across backends');
    expect(worstRelativeDifference([ops.param], [fused.param])).toBe(0);
    expect(worstRelativeDifference(ops.moments, fused.moments)).toBe(0);
    v.dispose();
  });
});

// Through a real Trainer fit: packages/trainer/src/wasm-adam.test.ts (backends may import core only).
