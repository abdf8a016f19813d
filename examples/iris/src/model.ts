import * as tf from '@tensorflow/tfjs';
import { LightningModule, Linear, Sequential, type OptimizersReturn } from '@flint/core';

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

  private evaluate([x, y]: IrisBatch): { loss: tf.Scalar; acc: tf.Scalar } {
    const logits = this.forward(x);
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), logits) as tf.Scalar;
    const acc = tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32')) as tf.Scalar;
    return { loss, acc };
  }

  trainingStep(batch: IrisBatch): tf.Scalar {
    const { loss, acc } = this.evaluate(batch);
    this.log('train_loss', loss, { onStep: false, onEpoch: true });
    this.log('train_acc', acc, { onStep: false, onEpoch: true });
    return loss;
  }

  override validationStep(batch: IrisBatch): void {
    const { loss, acc } = this.evaluate(batch);
    this.log('val_loss', loss, { progBar: true });
    this.log('val_acc', acc, { progBar: true });
  }

  override testStep(batch: IrisBatch): void {
    const { loss, acc } = this.evaluate(batch);
    this.log('test_loss', loss);
    this.log('test_acc', acc);
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(this.hparams.learningRate as number);
  }
}
