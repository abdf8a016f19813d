import * as tf from '@tensorflow/tfjs';
import { MnistClassifier, type MnistBatch, type MnistClassifierOptions } from '@flint/example-mnist';

export interface WeightDecayClassifierOptions extends MnistClassifierOptions {
  /** L2 coefficient: `weightDecay / 2 * sum(w^2)` over the dense kernels (not the biases) is added to the loss. */
  weightDecay: number;
}

/**
 * The MNIST example's `MnistClassifier` with weight decay as an L2 penalty in the loss.
 *
 * tfjs's Adam has no weight-decay option, so the penalty goes into the loss that `trainingStep`
 * returns (classic L2 regularization, as `kernelRegularizer: l2` does in tfjs-layers). The logged
 * `train_loss` stays the plain cross-entropy, so that its gap to `val_loss` compares with the
 * unregularized nets; the penalty is logged beside it as `l2_penalty`.
 */
export class WeightDecayClassifier extends MnistClassifier {
  constructor(options: WeightDecayClassifierOptions) {
    super(options);
  }

  override trainingStep(batch: MnistBatch): tf.Scalar {
    const loss = super.trainingStep(batch);
    const decay = this.hparams.weightDecay as number;
    const kernels = this.namedParameters().filter((p) => p.name.endsWith('.weight'));
    const penalty = tf.mul(decay / 2, tf.addN(kernels.map((p) => tf.sum(tf.square(p.variable))))) as tf.Scalar;
    this.log('l2_penalty', penalty, { onStep: false, onEpoch: true });
    return tf.add(loss, penalty) as tf.Scalar;
  }
}
