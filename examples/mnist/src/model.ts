import * as tf from '@tensorflow/tfjs';
import { adam, crossEntropy, Dropout, LightningModule, Linear, Sequential, type OptimizersReturn } from '@flint/core';
import { Accuracy } from '@flint/metrics';

/** A batch of MNIST: flattened images [n, 784] in [0, 1] and integer labels [n]. */
export type MnistBatch = [tf.Tensor2D, tf.Tensor1D];

export interface MnistClassifierOptions {
  /** Hidden layer sizes; [] for the single-layer net (784 -> 10). */
  hidden: number[];
  /** Dropout after each hidden layer (only while training). */
  dropout: number;
  learningRate: number;
}

/**
 * What every MNIST classifier here shares: softmax cross-entropy on the logits of `forward`, Adam
 * with `hparams.learningRate`, and the logged train_loss, val_loss, val_acc, test_loss, test_acc
 * (accuracies as metric objects, accumulated over the epoch). Subclasses build the net and `forward`.
 */
export abstract class MnistModule extends LightningModule<MnistBatch> {
  /** One accuracy per evaluation stage: each accumulates its epoch and is reset after it. */
  readonly valAcc = new Accuracy({ task: 'multiclass', numClasses: 10 });
  readonly testAcc = new Accuracy({ task: 'multiclass', numClasses: 10 });

  abstract override forward(x: tf.Tensor): tf.Tensor;

  /** The batch's loss; with `acc`, the batch also goes into that accuracy. */
  private evaluate([x, y]: MnistBatch, acc?: Accuracy): tf.Scalar {
    const logits = this.forward(x);
    acc?.update(logits, y);
    return crossEntropy(logits, y) as tf.Scalar; // y: int32 class indices, no oneHot
  }

  trainingStep(batch: MnistBatch): tf.Scalar {
    const loss = this.evaluate(batch);
    this.log('train_loss', loss, { onStep: true, onEpoch: true, progBar: true });
    return loss;
  }

  override validationStep(batch: MnistBatch): void {
    this.log('val_loss', this.evaluate(batch, this.valAcc), { progBar: true });
    this.log('val_acc', this.valAcc, { progBar: true });
  }

  override testStep(batch: MnistBatch): void {
    this.log('test_loss', this.evaluate(batch, this.testAcc));
    this.log('test_acc', this.testAcc);
  }

  configureOptimizers(): OptimizersReturn {
    return adam({ learningRate: this.hparams.learningRate as number });
  }
}

/**
 * A dense classifier for MNIST: 784 -> hidden... -> 10 logits, ReLU and dropout between (see
 * MnistModule for the loss, optimizer and logged metrics).
 */
export class MnistClassifier extends MnistModule {
  readonly net: Sequential;

  constructor(options: MnistClassifierOptions) {
    super();
    this.saveHyperparameters({ ...options });
    const layers = [];
    let width = 784;
    for (const units of options.hidden) {
      layers.push(new Linear(width, units, { activation: 'relu' }));
      if (options.dropout > 0) layers.push(new Dropout(options.dropout));
      width = units;
    }
    layers.push(new Linear(width, 10));
    this.net = new Sequential(...layers);
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(x);
  }
}
