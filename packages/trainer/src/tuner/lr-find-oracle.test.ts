// Lightning's learning-rate finder (lr-find-oracle.py, in the venv of scripts/lightning-venv.sh) and
// Flint's lrFind on the same data, from the same initial weights: the same learning rates step by
// step, losses that agree to float32 round-off until the curves diverge, and suggestions within a factor of 2.
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, LightningModule, Linear, seedEverything, TensorDataset, type OptimizersReturn } from '@flint/core';
import { expectNoLeak, type OraclePython } from '@flint/core/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { lrFind, Trainer } from '../index.js';
import { lightningPython, runPython } from '../testing/lightning-oracle.js';

const oracle = fileURLToPath(new URL('./lr-find-oracle.py', import.meta.url));
const FEATURES = 8;
const HIDDEN = 16;
const CLASSES = 3;
const N = 1024;

type Batch = [tf.Tensor2D, tf.Tensor1D];
class Net extends LightningModule<Batch> {
  lr = 0.1;
  readonly fc1 = new Linear(FEATURES, HIDDEN);
  readonly fc2 = new Linear(HIDDEN, CLASSES);
  trainingStep([x, y]: Batch): tf.Scalar {
    const logits = this.fc2.forward(tf.relu(this.fc1.forward(x)));
    return tf.losses.softmaxCrossEntropy(tf.oneHot(y, CLASSES), logits) as tf.Scalar;
  }
  configureOptimizers(): OptimizersReturn {
    return tf.train.sgd(this.lr);
  }
}

/** Three Gaussian blobs, from a fixed linear congruential generator (the same numbers go to Python). */
function problem(): { x: number[]; y: number[] } {
  let s = 12345;
  const u = () => ((s = (s * 1103515245 + 12345) % 2147483648) + 0.5) / 2147483648;
  const g = () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  const centres = Array.from({ length: CLASSES * FEATURES }, () => 1.5 * g());
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < N; i++) {
    const c = i % CLASSES;
    y.push(c);
    for (let f = 0; f < FEATURES; f++) x.push(Math.fround(centres[c * FEATURES + f]! + g()));
  }
  return { x, y };
}

let venv: OraclePython = { skipReason: 'not looked for yet' };
beforeAll(async () => {
  venv = await lightningPython('lrFind oracle test');
}, 20 * 60_000);

describe("lrFind against Lightning's Tuner.lr_find", () => {
  for (const mode of ['exponential', 'linear'] as const) {
    it(`${mode}: same learning rates, same smoothed losses, suggestions within a factor of 2`, async (ctx) => {
      if (venv.python === undefined) {
        ctx.skip(venv.skipReason);
        return;
      }
      const { x, y } = problem();
      seedEverything(11);
      const module = new Net();
      const weights = Object.fromEntries(module.namedParameters().map((p) => [p.name, Array.from(p.variable.dataSync())]));
      const options = mode === 'exponential' ? { minLr: 1e-6, maxLr: 10, numTraining: 100 } : { minLr: 1e-4, maxLr: 3, numTraining: 100 };
      const spec = { features: FEATURES, hidden: HIDDEN, classes: CLASSES, x, y, weights, batchSize: 8, mode, ...options };
      const lightning = await runPython<{ lr: number[]; loss: number[]; suggestion: number | null; modelLr: number }>(venv.python, oracle, spec);
      const ds = TensorDataset.from([
        { data: Float32Array.from(x), shape: [N, FEATURES] },
        { data: Int32Array.from(y), shape: [N], dtype: 'int32' },
      ]) as unknown as TensorDataset<Batch>;
      const trainer = new Trainer({ logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' });
      const flint = (await expectNoLeak(() => lrFind(trainer, module, new DataLoader(ds, { batchSize: 8 }), { mode, ...options }), 'lrFind'))!;
      ds.dispose();
      const n = Math.min(flint.results.lr.length, lightning.lr.length);
      expect(n).toBeGreaterThan(20);
      for (let k = 0; k < n; k++) expect(flint.results.lr[k]! / lightning.lr[k]!).toBeCloseTo(1, 6);
      // Until the loss blows up, the smoothed losses agree to float32 round-off.
      for (let k = 0; k < n && lightning.loss[k]! < 2 * lightning.loss[0]!; k++) expect(flint.results.loss[k]!).toBeCloseTo(lightning.loss[k]!, 3);
      const ours = flint.suggestion()!;
      console.log(`lrFind ${mode}: Lightning suggests ${lightning.suggestion}, Flint ${ours} (${flint.results.lr.length} vs ${lightning.lr.length} steps)`);
      expect(lightning.suggestion).not.toBeNull();
      expect(Math.abs(Math.log2(ours / lightning.suggestion!))).toBeLessThanOrEqual(1);
      expect(module.lr).toBe(ours);
      expect(lightning.modelLr).toBe(lightning.suggestion);
    }, 300_000);
  }
});
