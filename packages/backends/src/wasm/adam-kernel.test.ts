import * as tf from '@tensorflow/tfjs';
import { APPLY_ADAM_KERNEL, adam } from '@flint/core';
import { expectNoLeak, worstRelativeDifference } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  it('is registered by installWasmImprovements and gives the tfjs-ops update to 1e-6 after 100 steps, moments included', async () => {
    expect(tf.getKernel(APPLY_ADAM_KERNEL, 'wasm')).toBeDefined();
    const fused = await expectNoLeak(() => runSteps(true, 100), 'fused Adam');
    const ops = await expectNoLeak(() => runSteps(false, 100), 'ops Adam');
    // One kernel per parameter and step (and zeros for the moments at the first step).
    expect(fused.kernels).toEqual(new Set([APPLY_ADAM_KERNEL, 'ZerosLike']));
    expect(ops.kernels.has(APPLY_ADAM_KERNEL)).toBe(false);
    expect(worstRelativeDifference(ops.params, fused.params)).toBeLessThan(1e-6);
    expect(worstRelativeDifference(ops.moments, fused.moments)).toBeLessThan(1e-6);
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

// Through a real Trainer fit: packages/trainer/src/wasm-adam.test.ts (backends may import core only).
