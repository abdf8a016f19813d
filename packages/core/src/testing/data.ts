import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { TensorDataset } from '../data/tensor-dataset.js';
import { parseOptions } from '../options.js';
import { createRng, type Rng } from '../seed.js';

const count = (min: number) => z.number().int({ error: `must be a whole number >= ${min}` }).min(min, { error: `must be a whole number >= ${min}` });
const seed = z
  .number()
  .int({ error: 'must be an integer in [0, 4294967295]' })
  .min(0, { error: 'must be an integer in [0, 4294967295]' })
  .max(0xffff_ffff, { error: 'must be an integer in [0, 4294967295]' });

export const randomClassificationOptionsSchema = z.strictObject({
  /** Rows. */
  n: count(1).default(64),
  /** Features per row. */
  features: count(1).default(32),
  /** Classes; labels are int32 in [0, classes). */
  classes: count(2).default(2),
  /** Same seed, same data. */
  seed: seed.default(0),
});

export type RandomClassificationOptions = z.input<typeof randomClassificationOptionsSchema>;

/**
 * A learnable synthetic classification set: each class has a random centre (standard normal times
 * 2 per feature) and its rows are that centre plus standard normal noise, so the classes are
 * (nearly) linearly separable. Batches are `[x: float32[b, features], y: int32[b]]`; the classes
 * are balanced and the rows in random order. Deterministic for a seed, independent of `Math.random`.
 */
export function randomClassificationDataset(
  options?: RandomClassificationOptions,
): TensorDataset<[tf.Tensor2D, tf.Tensor1D]> {
  const { n, features, classes, seed } = parseOptions('randomClassificationDataset', randomClassificationOptionsSchema, options);
  const rng = createRng(seed);
  const centres = new Float32Array(classes * features);
  for (let i = 0; i < centres.length; i++) centres[i] = 2 * gaussian(rng);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = i % classes;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = y[i]!;
    y[i] = y[j]!;
    y[j] = t;
  }
  const x = new Float32Array(n * features);
  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    for (let f = 0; f < features; f++) x[i * features + f] = centres[c * features + f]! + gaussian(rng);
  }
  return TensorDataset.from([
    { data: x, shape: [n, features] },
    { data: y, shape: [n], dtype: 'int32' },
  ]) as unknown as TensorDataset<[tf.Tensor2D, tf.Tensor1D]>;
}

export const randomRegressionOptionsSchema = z.strictObject({
  /** Rows. */
  n: count(1).default(64),
  /** Features per row. */
  features: count(1).default(32),
  /** Outputs per row: y is float32[n, targets]. */
  targets: count(1).default(1),
  /** Standard deviation of the noise added to y. */
  noise: z.number().min(0, { error: 'must be a number >= 0' }).default(0.1),
  /** Same seed, same data. */
  seed: seed.default(0),
});

export type RandomRegressionOptions = z.input<typeof randomRegressionOptionsSchema>;

/**
 * A learnable synthetic regression set: x is standard normal, y = x·W + b + noise with a random
 * W (scaled by 1/sqrt(features)) and b. Batches are `[x: float32[b, features], y: float32[b, targets]]`
 * (y keeps its second dimension, matching a dense layer's output). Deterministic for a seed.
 */
export function randomRegressionDataset(options?: RandomRegressionOptions): TensorDataset<[tf.Tensor2D, tf.Tensor2D]> {
  const { n, features, targets, noise, seed } = parseOptions('randomRegressionDataset', randomRegressionOptionsSchema, options);
  const rng = createRng(seed);
  const w = new Float32Array(features * targets);
  for (let i = 0; i < w.length; i++) w[i] = gaussian(rng) / Math.sqrt(features);
  const b = new Float32Array(targets);
  for (let t = 0; t < targets; t++) b[t] = 0.5 * gaussian(rng);
  const x = new Float32Array(n * features);
  for (let i = 0; i < x.length; i++) x[i] = gaussian(rng);
  const y = new Float32Array(n * targets);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < targets; t++) {
      let v = b[t]!;
      for (let f = 0; f < features; f++) v += x[i * features + f]! * w[f * targets + t]!;
      y[i * targets + t] = v + noise * gaussian(rng);
    }
  }
  return TensorDataset.from([
    { data: x, shape: [n, features] },
    { data: y, shape: [n, targets] },
  ]) as unknown as TensorDataset<[tf.Tensor2D, tf.Tensor2D]>;
}

/** A standard normal draw (Box–Muller). */
function gaussian(rng: Rng): number {
  const u = 1 - rng.next(); // (0, 1]: log(u) is finite
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
