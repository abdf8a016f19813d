// Test-only: the tiny regression problem the callback tests share with Lightning (lightning-callbacks-oracle.py).
import * as tf from '@tensorflow/tfjs';
import { LightningModule, Linear, TensorDataset, type OptimizersReturn } from '@flint/core';

export const FIN = 3;
export const FOUT = 2;
export const N = 22;

type Batch = [tf.Tensor2D, tf.Tensor2D];
export class Regressor extends LightningModule<Batch> {
  readonly fc = new Linear(FIN, FOUT);
  constructor(readonly lr = 0.05) {
    super();
  }
  trainingStep([x, y]: Batch): tf.Scalar {
    return tf.losses.meanSquaredError(y, this.fc.forward(x)) as tf.Scalar;
  }
  configureOptimizers(): OptimizersReturn {
    return tf.train.sgd(this.lr);
  }
}

export function regressionProblem(): { x: number[]; y: number[] } {
  const x = Array.from({ length: N * FIN }, (_, i) => Math.fround(Math.sin(i * 1.3) + 0.1 * (i % 5)));
  const y = Array.from({ length: N * FOUT }, (_, i) => Math.fround(Math.cos(i * 0.7) * 2));
  return { x, y };
}

export function regressionData(p: { x: number[]; y: number[] }): TensorDataset<Batch> {
  return TensorDataset.from([
    { data: Float32Array.from(p.x), shape: [N, FIN] },
    { data: Float32Array.from(p.y), shape: [N, FOUT] },
  ]) as unknown as TensorDataset<Batch>;
}

export const weightsOf = (m: LightningModule) => Object.fromEntries(m.namedParameters().map((p) => [p.name, Array.from(p.variable.dataSync())]));

