// Tests of the random data sets in '../testing/data.ts' (kept here, beside the data layer they build on).
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { DataLoader, MisconfigurationError } from '@flint/core';
import { randomClassificationDataset, randomRegressionDataset } from '../testing/data.js';

describe('randomClassificationDataset', () => {
  it('gives float32 features, balanced int32 labels, the same data for the same seed', () => {
    const before = tf.memory().numTensors;
    const a = randomClassificationDataset({ n: 90, features: 5, classes: 3, seed: 1 });
    const b = randomClassificationDataset({ n: 90, features: 5, classes: 3, seed: 1 });
    const c = randomClassificationDataset({ n: 90, features: 5, classes: 3, seed: 2 });
    const [xa, ya] = a.getBatch({ start: 0, end: 90 });
    const [xb, yb] = b.getBatch({ start: 0, end: 90 });
    const [xc, yc] = c.getBatch({ start: 0, end: 90 });
    expect(xa.shape).toEqual([90, 5]);
    expect(xa.dtype).toBe('float32');
    expect(ya.dtype).toBe('int32');
    const labels = Array.from(ya.dataSync());
    expect([0, 1, 2].map((k) => labels.filter((l) => l === k).length)).toEqual([30, 30, 30]);
    expect(xb.dataSync()).toEqual(xa.dataSync());
    expect(xc.dataSync()).not.toEqual(xa.dataSync());
    tf.dispose([xa, ya, xb, yb, xc, yc]);
    [a, b, c].forEach((d) => d.dispose());
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is learnable: softmax regression reaches > 90% training accuracy', async () => {
    const before = tf.memory().numTensors;
    const ds = randomClassificationDataset({ n: 256, features: 8, classes: 4, seed: 3 });
    const w = tf.tidy(() => tf.variable(tf.zeros([8, 4])));
    const bias = tf.tidy(() => tf.variable(tf.zeros([4])));
    const optimizer = tf.train.adam(0.1);
    const loader = new DataLoader(ds, { batchSize: 64, shuffle: true, seed: 0 });
    for (let epoch = 0; epoch < 15; epoch++) {
      for await (const [x, y] of loader.batches(epoch)) {
        optimizer.minimize(() => tf.losses.softmaxCrossEntropy(tf.oneHot(y, 4), x.matMul(w).add(bias)) as tf.Scalar);
        tf.dispose([x, y]);
      }
    }
    const [x, y] = ds.getBatch({ start: 0, end: 256 });
    const accuracy = tf.tidy(() => x.matMul(w).add(bias).argMax(1).equal(y).mean().dataSync()[0]!);
    expect(accuracy).toBeGreaterThan(0.9);
    tf.dispose([x, y, w, bias]);
    optimizer.dispose();
    ds.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad options', () => {
    expect(() => randomClassificationDataset({ classes: 1 })).toThrow(
      new MisconfigurationError("randomClassificationDataset option 'classes': must be a whole number >= 2 (received 1)"),
    );
  });
});

describe('randomRegressionDataset', () => {
  it('gives x [n, features] and y [n, targets] that a linear model fits', () => {
    const before = tf.memory().numTensors;
    const ds = randomRegressionDataset({ n: 200, features: 4, targets: 2, noise: 0.05, seed: 7 });
    const [x, y] = ds.getBatch({ start: 0, end: 200 });
    expect(x.shape).toEqual([200, 4]);
    expect(y.shape).toEqual([200, 2]);
    // Least squares with a bias column recovers y up to the noise.
    const residual = tf.tidy(() => {
      const xb = tf.concat([x, tf.ones([200, 1])], 1);
      const xt = xb.transpose();
      const coef = solve(xt.matMul(xb) as tf.Tensor2D, xt.matMul(y) as tf.Tensor2D);
      return tf.sub(xb.matMul(coef), y).square().mean().dataSync()[0]!;
    });
    expect(residual).toBeLessThan(0.01);
    tf.dispose([x, y]);
    ds.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

/** Solves a x = b for a small symmetric positive definite a (Gauss-Jordan on the host). */
function solve(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const n = a.shape[0];
  const m = b.shape[1];
  const A = a.arraySync();
  const B = b.arraySync();
  for (let i = 0; i < n; i++) {
    const p = A[i]![i]!;
    for (let j = 0; j < n; j++) A[i]![j]! /= p;
    for (let j = 0; j < m; j++) B[i]![j]! /= p;
    for (let k = 0; k < n; k++) {
      if (k === i) continue;
      const f = A[k]![i]!;
      for (let j = 0; j < n; j++) A[k]![j]! -= f * A[i]![j]!;
      for (let j = 0; j < m; j++) B[k]![j]! -= f * B[i]![j]!;
    }
  }
  return tf.tensor2d(B);
}
