import * as tf from '@tensorflow/tfjs';
import { LightningModule, Linear, Sequential } from '@flint/core';
import type { Batch } from './data.js';

export interface ClassifierOptions {
  /** Units of the hidden layer. */
  hidden: number;
  learningRate: number;
}

/** 4 features -> a hidden ReLU layer -> 3 logits; softmax cross-entropy and Adam. */
export class IrisClassifier extends LightningModule<Batch> {
  readonly net: Sequential;
  private readonly learningRate: number;

  constructor(options: ClassifierOptions = { hidden: 16, learningRate: 0.02 }) {
    super();
    this.saveHyperparameters({ ...options });
    this.learningRate = options.learningRate;
    this.net = new Sequential(new Linear(4, options.hidden, { activation: 'relu' }), new Linear(options.hidden, 3));
  }

  /** The logits; `tf.softmax` of them gives the class probabilities. */
  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(x);
  }

  private lossAndAccuracy([x, y]: Batch): { loss: tf.Scalar; acc: tf.Scalar } {
    const logits = this.forward(x);
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), logits) as tf.Scalar;
    const acc = tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32')) as tf.Scalar;
    return { loss, acc };
  }

  trainingStep(batch: Batch): tf.Scalar {
    const { loss, acc } = this.lossAndAccuracy(batch);
    this.log('train_loss', loss, { onStep: false, onEpoch: true, progBar: true });
    this.log('train_acc', acc, { onStep: false, onEpoch: true });
    return loss;
  }

  override validationStep(batch: Batch): void {
    const { loss, acc } = this.lossAndAccuracy(batch);
    this.log('val_loss', loss, { progBar: true });
    this.log('val_acc', acc, { progBar: true });
  }

  override testStep(batch: Batch): void {
    const { loss, acc } = this.lossAndAccuracy(batch);
    this.log('test_loss', loss);
    this.log('test_acc', acc);
  }

  configureOptimizers(): tf.Optimizer {
    return tf.train.adam(this.learningRate);
  }
}
