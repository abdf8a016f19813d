import * as tf from '@tensorflow/tfjs';
import { LightningModule, Linear, Sequential, type OptimizersReturn } from '@flint/core';
import { Accuracy } from '@flint/metrics';
import type { ClassificationBatch } from './synthetic-data-module.js';

/** A small two-class classifier: features -> 16 ReLU -> 2 logits, softmax cross-entropy, Adam. */
export class TwoClassClassifier extends LightningModule<ClassificationBatch> {
  readonly net: Sequential;
  /** One accuracy per evaluation stage: each accumulates its epoch and is reset after it. */
  readonly valAcc = new Accuracy({ task: 'multiclass', numClasses: 2 });
  readonly testAcc = new Accuracy({ task: 'multiclass', numClasses: 2 });

  constructor(numFeatures: number, learningRate: number) {
    super();
    this.saveHyperparameters({ numFeatures, learningRate });
    this.net = new Sequential(new Linear(numFeatures, 16, { activation: 'relu' }), new Linear(16, 2));
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(x);
  }

  /** The batch's loss; with `acc`, the batch also goes into that accuracy. */
  private evaluate([x, y]: ClassificationBatch, acc?: Accuracy): tf.Scalar {
    const logits = this.forward(x);
    acc?.update(logits, y);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), logits) as tf.Scalar;
  }

  trainingStep(batch: ClassificationBatch): tf.Scalar {
    const loss = this.evaluate(batch);
    this.log('train_loss', loss, { onStep: false, onEpoch: true });
    return loss;
  }

  override validationStep(batch: ClassificationBatch): void {
    this.log('val_loss', this.evaluate(batch, this.valAcc), { progBar: true });
    this.log('val_acc', this.valAcc, { progBar: true });
  }

  override testStep(batch: ClassificationBatch): void {
    this.log('test_loss', this.evaluate(batch, this.testAcc));
    this.log('test_acc', this.testAcc);
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(this.hparams.learningRate as number);
  }
}
