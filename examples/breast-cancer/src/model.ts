import * as tf from '@tensorflow/tfjs';
import { LightningModule, Linear, Sequential, type OptimizersReturn } from '@flint/core';
import { Accuracy } from '@flint/metrics';

/** A batch: standardized features [n, 30] and the class as a float [n, 1] (0 malignant, 1 benign). */
export type TumourBatch = [tf.Tensor2D, tf.Tensor2D];

export interface BinaryClassifierOptions {
  numFeatures: number;
  /** Hidden layer sizes: [] is logistic regression (30 -> 1 sigmoid), [16] one hidden ReLU layer. */
  hidden: number[];
  learningRate: number;
}

/**
 * A binary classifier: features -> hidden ReLU layers -> one sigmoid unit, the probability of class
 * 1. Trained with binary cross-entropy; binary accuracy thresholds the probability at 0.5. Logs
 * train_loss/train_acc, val_loss/val_acc and test_loss/test_acc once per epoch.
 */
export class BinaryClassifier extends LightningModule<TumourBatch> {
  readonly net: Sequential;
  /** One binary accuracy (probability > 0.5) per stage: each accumulates its epoch and is reset after it. */
  readonly trainAcc = new Accuracy({ task: 'binary' });
  readonly valAcc = new Accuracy({ task: 'binary' });
  readonly testAcc = new Accuracy({ task: 'binary' });

  constructor(options: BinaryClassifierOptions) {
    super();
    this.saveHyperparameters({ model: options.hidden.length === 0 ? 'single' : 'multi', ...options });
    const layers = [];
    let width = options.numFeatures;
    for (const units of options.hidden) {
      layers.push(new Linear(width, units, { activation: 'relu' }));
      width = units;
    }
    layers.push(new Linear(width, 1, { activation: 'sigmoid' }));
    this.net = new Sequential(...layers);
  }

  /** P(class 1) for each row, shape [n, 1]. */
  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(x);
  }

  /** The batch's loss; the batch also goes into `acc`. */
  private evaluate([x, y]: TumourBatch, acc: Accuracy): tf.Scalar {
    const p = this.forward(x);
    acc.update(p, y);
    // tf.metrics.binaryCrossentropy clips p to [eps, 1 - eps], so a confident mistake stays finite.
    return tf.mean(tf.metrics.binaryCrossentropy(y, p)) as tf.Scalar;
  }

  trainingStep(batch: TumourBatch): tf.Scalar {
    const loss = this.evaluate(batch, this.trainAcc);
    this.log('train_loss', loss, { onStep: false, onEpoch: true });
    this.log('train_acc', this.trainAcc);
    return loss;
  }

  override validationStep(batch: TumourBatch): void {
    this.log('val_loss', this.evaluate(batch, this.valAcc), { progBar: true });
    this.log('val_acc', this.valAcc, { progBar: true });
  }

  override testStep(batch: TumourBatch): void {
    this.log('test_loss', this.evaluate(batch, this.testAcc));
    this.log('test_acc', this.testAcc);
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(this.hparams.learningRate as number);
  }
}
