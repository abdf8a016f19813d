import * as tf from '@tensorflow/tfjs';
import { LightningModule, Linear, Sequential, type OptimizersReturn } from '@flint/core';
import { Accuracy } from '@flint/metrics';

/** A batch of Iris: standardized features [n, 4] and the class [n] (0 setosa, 1 versicolor, 2 virginica). */
export type IrisBatch = [tf.Tensor2D, tf.Tensor1D];

export interface IrisClassifierOptions {
  /** Hidden layer sizes: [] is the single-layer net (4 -> 3 softmax), [16] one hidden ReLU layer. */
  hidden: number[];
  learningRate: number;
}

/**
 * A dense classifier for Iris: 4 features -> hidden ReLU layers -> 3 logits, softmax cross-entropy,
 * Adam. Logs train_loss/train_acc, val_loss/val_acc and test_loss/test_acc once per epoch.
 */
export class IrisClassifier extends LightningModule<IrisBatch> {
  readonly net: Sequential;
  /** One accuracy per stage, as with torchmetrics: each accumulates its epoch and is reset after it. */
  readonly trainAcc = new Accuracy({ task: 'multiclass', numClasses: 3 });
  readonly valAcc = new Accuracy({ task: 'multiclass', numClasses: 3 });
  readonly testAcc = new Accuracy({ task: 'multiclass', numClasses: 3 });

  constructor(options: IrisClassifierOptions) {
    super();
    this.saveHyperparameters({ model: options.hidden.length === 0 ? 'single' : 'multi', ...options });
    const layers = [];
    let width = 4;
    for (const units of options.hidden) {
      layers.push(new Linear(width, units, { activation: 'relu' }));
      width = units;
    }
    layers.push(new Linear(width, 3));
    this.net = new Sequential(...layers);
  }

  /** The logits; `tf.softmax` of them gives the class probabilities. */
  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(x);
  }

  /** The batch's loss; the batch also goes into `acc`. */
  private evaluate([x, y]: IrisBatch, acc: Accuracy): tf.Scalar {
    const logits = this.forward(x);
    acc.update(logits, y);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), logits) as tf.Scalar;
  }

  trainingStep(batch: IrisBatch): tf.Scalar {
    const loss = this.evaluate(batch, this.trainAcc);
    this.log('train_loss', loss, { onStep: false, onEpoch: true });
    this.log('train_acc', this.trainAcc);
    return loss;
  }

  override validationStep(batch: IrisBatch): void {
    this.log('val_loss', this.evaluate(batch, this.valAcc), { progBar: true });
    this.log('val_acc', this.valAcc, { progBar: true });
  }

  override testStep(batch: IrisBatch): void {
    this.log('test_loss', this.evaluate(batch, this.testAcc));
    this.log('test_acc', this.testAcc);
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(this.hparams.learningRate as number);
  }
}
