import * as tf from '@tensorflow/tfjs';
import { LightningModule } from '../lightning-module.js';
import { Linear } from '../nn.js';
import type { OptimizersReturn } from '../optimization.js';

/** A batch of the testing data sets: features and integer labels. */
export type BoringBatch = [tf.Tensor2D, tf.Tensor1D];

/**
 * Lightning's BoringModel: the smallest module that trains (one linear layer, softmax cross-entropy,
 * SGD), logging `train_loss`, `val_loss`, `val_acc`, `test_loss` and `test_acc`. Most tests use it.
 */
export class BoringModule extends LightningModule<BoringBatch> {
  readonly layer: Linear;

  constructor(readonly inFeatures = 4, readonly classes = 2, readonly lr = 0.1) {
    super();
    this.layer = new Linear(inFeatures, classes);
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return this.layer.forward(x);
  }

  protected lossAndAcc(batch: BoringBatch): { loss: tf.Scalar; acc: tf.Scalar } {
    const [x, y] = batch;
    const logits = this.forward(x);
    const labels = tf.oneHot(tf.cast(y, 'int32'), this.classes);
    const loss = tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
    const acc = tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), tf.cast(y, 'int32')), 'float32')) as tf.Scalar;
    return { loss, acc };
  }

  trainingStep(batch: BoringBatch): tf.Scalar {
    const { loss } = this.lossAndAcc(batch);
    this.log('train_loss', loss, { onStep: true, onEpoch: true, progBar: true });
    return loss;
  }

  override validationStep(batch: BoringBatch): void {
    const { loss, acc } = this.lossAndAcc(batch);
    this.log('val_loss', loss, { progBar: true });
    this.log('val_acc', acc);
  }

  override testStep(batch: BoringBatch): void {
    const { loss, acc } = this.lossAndAcc(batch);
    this.log('test_loss', loss);
    this.log('test_acc', acc);
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.sgd(this.lr);
  }
}
