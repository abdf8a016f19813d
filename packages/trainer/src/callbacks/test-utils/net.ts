import * as tf from '@tensorflow/tfjs';
import { Dropout, LightningModule, Linear, Sequential, type LRScheduler, type OptimizersReturn } from '@flint/core';
import type { BoringBatch } from '@flint/core/testing';

/** Dropout (RNG), Adam (moments, step counts) and an optional scheduler: an exact resume is not trivial. */
export class Net extends LightningModule<BoringBatch> {
  net = new Sequential(new Linear(4, 16, { activation: 'relu' }), new Dropout(0.3), new Linear(16, 2));
  /** Builds a scheduler for the optimizer, if given. */
  static scheduler: ((opt: tf.Optimizer) => LRScheduler) | undefined;

  constructor(hparams: { lr: number } = { lr: 0.01 }) {
    super();
    this.saveHyperparameters(hparams);
  }
  override forward(x: tf.Tensor) {
    return this.net.forward(x);
  }
  trainingStep([x, y]: BoringBatch) {
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)) as tf.Scalar;
    this.log('train_loss', loss, { onEpoch: true });
    return loss;
  }
  override validationStep([x, y]: BoringBatch) {
    this.log('val_loss', tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)));
  }
  override testStep([x, y]: BoringBatch) {
    this.log('test_loss', tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)));
  }
  configureOptimizers(): OptimizersReturn {
    const optimizer = tf.train.adam(this.hparams.lr as number);
    const make = (this.constructor as typeof Net).scheduler;
    return make === undefined ? optimizer : { optimizer, lrScheduler: make(optimizer) };
  }
}

/** The weights as plain arrays, by parameter name. */
export function weightsOf(m: LightningModule): Record<string, number[]> {
  return Object.fromEntries(m.namedParameters().map((p) => [p.name, Array.from(p.variable.dataSync())]));
}
