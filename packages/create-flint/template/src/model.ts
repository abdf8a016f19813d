import * as tf from '@tensorflow/tfjs';
import { LightningModule, Linear, Sequential } from '@flint/core';
import { Accuracy } from '@flint/metrics';
import type { Batch } from './data.js';

export interface ClassifierOptions {
  /** Units of the hidden layer. */
  hidden: number;
  learningRate: number;
}

/** 4 features -> a hidden ReLU layer -> 3 logits; softmax cross-entropy and Adam. */
export class IrisClassifier extends LightningModule<Batch> {
  readonly net: Sequential;
  /** One accuracy per stage, as torchmetrics: each accumulates over its epoch's batches, logged and reset at the epoch's end. */
  readonly trainAcc = new Accuracy({ task: 'multiclass', numClasses: 3 });
  readonly valAcc = new Accuracy({ task: 'multiclass', numClasses: 3 });
  readonly testAcc = new Accuracy({ task: 'multiclass', numClasses: 3 });
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

  /** The batch's loss; the batch's predictions also go into `acc`. */
  private evaluate([x, y]: Batch, acc: Accuracy): tf.Scalar {
    const logits = this.forward(x);
    acc.update(logits, y);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), logits) as tf.Scalar;
  }

  trainingStep(batch: Batch): tf.Scalar {
    const loss = this.evaluate(batch, this.trainAcc);
    this.log('train_loss', loss, { onStep: false, onEpoch: true, progBar: true });
    this.log('train_acc', this.trainAcc);
    return loss;
  }

  override validationStep(batch: Batch): void {
    this.log('val_loss', this.evaluate(batch, this.valAcc), { progBar: true });
    this.log('val_acc', this.valAcc, { progBar: true });
  }

  override testStep(batch: Batch): void {
    this.log('test_loss', this.evaluate(batch, this.testAcc));
    this.log('test_acc', this.testAcc);
  }

  configureOptimizers(): tf.Optimizer {
    return tf.train.adam(this.learningRate);
  }
}
