import * as tf from '@tensorflow/tfjs';
import { LightningModule, Linear, Sequential, type OptimizersReturn } from '@flint/core';
import type { ClassificationBatch } from './synthetic-data-module.js';

/** A small two-class classifier: features -> 16 ReLU -> 2 logits, softmax cross-entropy, Adam. */
export class TwoClassClassifier extends LightningModule<ClassificationBatch> {
  readonly net: Sequential;

  constructor(numFeatures: number, learningRate: number) {
    super();
    this.saveHyperparameters({ numFeatures, learningRate });
    this.net = new Sequential(new Linear(numFeatures, 16, { activation: 'relu' }), new Linear(16, 2));
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(x);
  }

  private evaluate([x, y]: ClassificationBatch): { loss: tf.Scalar; acc: tf.Scalar } {
    const logits = this.forward(x);
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), logits) as tf.Scalar;
    const acc = tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32')) as tf.Scalar;
    return { loss, acc };
  }

  trainingStep(batch: ClassificationBatch): tf.Scalar {
    const { loss } = this.evaluate(batch);
    this.log('train_loss', loss, { onStep: false, onEpoch: true });
    return loss;
  }

  override validationStep(batch: ClassificationBatch): void {
    const { loss, acc } = this.evaluate(batch);
    this.log('val_loss', loss, { progBar: true });
    this.log('val_acc', acc, { progBar: true });
  }

  override testStep(batch: ClassificationBatch): void {
    const { loss, acc } = this.evaluate(batch);
    this.log('test_loss', loss);
    this.log('test_acc', acc);
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(this.hparams.learningRate as number);
  }
}
