import * as tf from '@tensorflow/tfjs';
import { LightningModule, Module, Sequential, type OptimizersReturn } from '@flint/core';

/** A batch of points: x [n, 1] and y [n, 1]. */
export type LineBatch = [tf.Tensor2D, tf.Tensor2D];

/**
 * Part 2: the same line as a LightningModule, with manual optimization. The trainer runs the loop
 * (epochs, batches, shuffling, logging); `trainingStep` does what part 1 did by hand: compute the
 * gradients (`manualBackward`) and apply them (`optimizer.step()`).
 */
export class ManualLineRegression extends LightningModule<LineBatch> {
  override automaticOptimization = false;
  // tidy frees the zeros the variables are initialized from.
  readonly weight = tf.tidy(() => tf.variable(tf.zeros([1, 1])));
  readonly bias = tf.tidy(() => tf.variable(tf.zeros([1])));

  constructor(readonly learningRate: number) {
    super();
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return tf.add(tf.matMul(x, this.weight), this.bias);
  }

  trainingStep([x, y]: LineBatch): void {
    const [optimizer] = this.optimizers();
    // Gradients of the loss with respect to every trainable parameter (weight, bias), collected ...
    const loss = this.manualBackward(() => tf.losses.meanSquaredError(y, this.forward(x)) as tf.Scalar);
    // ... then applied and cleared by the optimizer that configureOptimizers returned.
    optimizer!.step();
    this.log('train_loss', loss, { onStep: false, onEpoch: true });
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.sgd(this.learningRate);
  }
}

/**
 * Part 3, a custom layer from raw variables: `y = x * scale + shift`, one scale and one shift per
 * feature, as two tf.Variables in a Flint Module. Flint finds them without registration.
 */
export class ScaleShift extends Module {
  readonly scale: tf.Variable;
  readonly shift: tf.Variable;

  constructor(units: number) {
    super();
    this.scale = tf.tidy(() => tf.variable(tf.ones([units])));
    this.shift = tf.tidy(() => tf.variable(tf.zeros([units])));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.add(tf.mul(x, this.scale), this.shift);
  }
}

/**
 * Part 3, both APIs together: tfjs layers (`tf.layers.dense`, the Keras-style layers API) with the
 * custom raw-variable layer between them, in one Flint `Sequential`, trained by the trainer with
 * automatic optimization. Every layer is linear, so the whole net is still a line:
 * dense(1 -> 4), ScaleShift(4), dense(4 -> 1).
 */
export class MixedLineRegression extends LightningModule<LineBatch> {
  readonly net: Sequential;

  constructor(readonly learningRate: number, hidden = 4) {
    super();
    this.net = new Sequential(tf.layers.dense({ units: hidden, inputShape: [1] }), new ScaleShift(hidden), tf.layers.dense({ units: 1 }));
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(x);
  }

  trainingStep([x, y]: LineBatch): tf.Scalar {
    const loss = tf.losses.meanSquaredError(y, this.forward(x)) as tf.Scalar;
    this.log('train_loss', loss, { onStep: false, onEpoch: true });
    return loss;
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(this.learningRate);
  }
}

/** Reads a model of one input as a line: intercept f(0), slope f(1) - f(0). */
export function lineOf(module: { forward(x: tf.Tensor): tf.Tensor }): { slope: number; intercept: number } {
  const [at0, at1] = tf.tidy(() => module.forward(tf.tensor2d([0, 1], [2, 1])).dataSync());
  return { slope: at1! - at0!, intercept: at0! };
}
