import { readFileSync } from 'node:fs';
import type * as tf from '@tensorflow/tfjs';
import { permutation, TensorDataset } from '@flint/core';

/**
 * The Iris data (examples/iris/data/iris.csv: a count line, then 4 features and the class per row),
 * split at random into train and validation rows, standardized with the training rows' statistics.
 */
export function irisSplit(nTrain: number, seed: number): { train: TensorDataset<[tf.Tensor2D, tf.Tensor1D]>; val: TensorDataset<[tf.Tensor2D, tf.Tensor1D]> } {
  const text = readFileSync(new URL('../../../../../examples/iris/data/iris.csv', import.meta.url), 'utf8');
  const rows = text.trim().split('\n').slice(1).map((l) => l.split(',').map(Number));
  const order = Array.from(permutation(rows.length, seed));
  const train = order.slice(0, nTrain).map((i) => rows[i]!);
  const val = order.slice(nTrain).map((i) => rows[i]!);
  const mean = [0, 1, 2, 3].map((f) => train.reduce((a, r) => a + r[f]!, 0) / train.length);
  const sd = [0, 1, 2, 3].map((f) => Math.sqrt(train.reduce((a, r) => a + (r[f]! - mean[f]!) ** 2, 0) / train.length));
  const make = (rs: number[][]) =>
    TensorDataset.from([
      { data: Float32Array.from(rs.flatMap((r) => r.slice(0, 4).map((v, f) => (v - mean[f]!) / sd[f]!))), shape: [rs.length, 4] },
      { data: Int32Array.from(rs.map((r) => r[4]!)), shape: [rs.length], dtype: 'int32' },
    ]) as unknown as TensorDataset<[tf.Tensor2D, tf.Tensor1D]>;
  return { train: make(train), val: make(val) };
}
