import * as tf from '@tensorflow/tfjs';
import { OneCycleLR } from '@flint/callbacks';
import { adam, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential, type OptimizersReturn } from '@flint/core';
import { MnistModule } from '@flint/example-mnist';

export interface ConvNetOptions {
  /** Channels of the two convolutions. */
  channels: [number, number];
  /** Units of the hidden dense layer. */
  hidden: number;
  /** Dropout before the last layer (only while training). */
  dropout: number;
  /** The peak learning rate of the one-cycle schedule (Adam's rate when `totalSteps` is not given). */
  learningRate: number;
  /**
   * Optimizer steps of the whole run (epochs · batches per epoch): with it, Adam follows PyTorch's
   * `OneCycleLR` (warm-up to `learningRate` over 30% of the steps, then cosine annealing), stepped
   * every batch; without it, a constant rate.
   */
  totalSteps?: number;
}

/**
 * Two convolution blocks and a dense head, written as in PyTorch (channels-first [N, 1, 28, 28]):
 * Conv2d 3x3 (padding 1) -> BatchNorm2d -> ReLU -> MaxPool2d 2, twice, then Flatten -> Linear ReLU
 * -> Dropout -> Linear 10. The first Linear's width comes from `features.outputShape`, without a
 * forward pass; every weight exists once the constructor returns, so checkpoints load at once.
 * Loss and logged metrics come from the dense example's MnistModule; the optimizer is Adam with a
 * one-cycle schedule, as a PyTorch user would write `OneCycleLR(opt, max_lr, total_steps)`.
 */
export class MnistConvNet extends MnistModule {
  readonly features: Sequential;
  readonly head: Sequential;

  constructor(options: ConvNetOptions) {
    super();
    this.saveHyperparameters({ ...options });
    const [c1, c2] = options.channels;
    this.features = new Sequential(
      new Conv2d(1, c1, 3, { padding: 1 }),
      new BatchNorm2d(c1),
      new ReLU(),
      new MaxPool2d(2),
      new Conv2d(c1, c2, 3, { padding: 1 }),
      new BatchNorm2d(c2),
      new ReLU(),
      new MaxPool2d(2),
      new Flatten(),
    );
    const [, width] = this.features.outputShape([1, 1, 28, 28]); // c2 · 7 · 7
    this.head = new Sequential(new Linear(width!, options.hidden, { activation: 'relu' }), new Dropout(options.dropout), new Linear(options.hidden, 10));
  }

  override configureOptimizers(): OptimizersReturn {
    const { learningRate, totalSteps } = this.hparams as unknown as ConvNetOptions;
    const optimizer = adam({ learningRate });
    if (totalSteps === undefined) return optimizer;
    return { optimizer, lrScheduler: { scheduler: new OneCycleLR(optimizer, { maxLr: learningRate, totalSteps }), interval: 'step' } };
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return this.head.forward(this.features.forward(tf.reshape(x, [-1, 1, 28, 28])));
  }
}
