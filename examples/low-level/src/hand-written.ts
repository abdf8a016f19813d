import * as tf from '@tensorflow/tfjs';
import type { LineData } from './line-data.js';

export interface FitResult {
  readonly slope: number;
  readonly intercept: number;
  /** Mean squared error on the data at the end. */
  readonly loss: number;
  /** The loss before each of the logged steps: [step, loss]. */
  readonly curve: Array<[number, number]>;
}

/**
 * Part 1, no framework: two tf.Variables, the loss written as tensor operations, `tf.variableGrads`
 * for the gradients and our own update `w <- w - lr * dL/dw`. Everything a trainer automates.
 */
export function fitByHand(data: LineData, options: { steps: number; learningRate: number; logEvery?: number }): FitResult {
  const { steps, learningRate } = options;
  const logEvery = options.logEvery ?? Math.max(1, Math.round(steps / 5));
  const x = tf.tensor1d(data.x);
  const y = tf.tensor1d(data.y);
  const w = tf.tidy(() => tf.variable(tf.scalar(0)));
  const b = tf.tidy(() => tf.variable(tf.scalar(0)));
  const loss = () => tf.mean(tf.square(tf.sub(tf.add(tf.mul(w, x), b), y))) as tf.Scalar;
  const curve: Array<[number, number]> = [];
  try {
    for (let step = 0; step < steps; step++) {
      tf.tidy(() => {
        // The gradients of the loss with respect to each variable, keyed by the variable's name.
        const { value, grads } = tf.variableGrads(loss, [w, b]);
        if (step % logEvery === 0) curve.push([step, value.dataSync()[0]!]);
        w.assign(tf.sub(w, tf.mul(learningRate, grads[w.name]!)));
        b.assign(tf.sub(b, tf.mul(learningRate, grads[b.name]!)));
      });
    }
    const final = tf.tidy(() => loss().dataSync()[0]!);
    return { slope: w.dataSync()[0]!, intercept: b.dataSync()[0]!, loss: final, curve };
  } finally {
    tf.dispose([x, y, w, b]);
  }
}

/** Autograd on its own: `tf.grad(f)` is the function x -> f'(x). Returns f'(3) for f(x) = x^2 + 2x (8). */
export function derivativeAt3(): number {
  const df = tf.grad((x: tf.Tensor) => tf.add(tf.square(x), tf.mul(2, x)));
  return tf.tidy(() => df(tf.scalar(3)).dataSync()[0]!);
}
