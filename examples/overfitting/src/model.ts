import * as tf from '@tensorflow/tfjs';
import { LightningModule, Linear, type OptimizersReturn } from '@flint/core';

/** A batch of points: x [n, 1] and y [n, 1]. */
export type PointBatch = [tf.Tensor2D, tf.Tensor2D];

/**
 * How x becomes the `degree` features of a polynomial model: row k - 1 holds the coefficients of
 * feature k in the powers 1, x, x^2, .., x^degree. Any such basis spans the same functions (with the
 * bias: every polynomial of the degree), so the best fit is the same; bases differ in how fast
 * gradient descent gets there.
 */
export type PolynomialBasis = number[][];

/** The textbook features x, x^2, .., x^degree. Nearly collinear on [-1, 1]: gradient descent crawls. */
export function powerBasis(degree: number): PolynomialBasis {
  return Array.from({ length: degree }, (_, k) => Array.from({ length: degree + 1 }, (_, j) => (j === k + 1 ? 1 : 0)));
}

/**
 * Polynomials of degree 1..degree that are orthonormal on the training points (Gram-Schmidt on
 * 1, x, .., x^degree there, in float64): each has mean 0 and mean square 1 over the training x, and
 * any two are uncorrelated. Fitted on the training points only, like the mean and std of
 * standardization; for degree 1 it is exactly standardization, (x - mean) / std. The loss is then
 * perfectly conditioned and Adam reaches the best fit in a few hundred steps.
 */
export function orthonormalBasis(xTrain: ArrayLike<number>, degree: number): PolynomialBasis {
  const n = xTrain.length;
  const values = (c: number[]) => Array.from({ length: n }, (_, i) => c.reduce((s, cj, j) => s + cj * xTrain[i]! ** j, 0));
  const dot = (a: number[], b: number[]) => a.reduce((s, ai, i) => s + ai * b[i]!, 0) / n;
  const basis: number[][] = []; // coefficient rows of q_0 = 1, q_1, ..
  for (let k = 0; k <= degree; k++) {
    let c: number[] = Array.from({ length: degree + 1 }, (_, j) => (j === k ? 1 : 0));
    // Twice, for numerical stability (classical Gram-Schmidt with re-orthogonalization).
    for (let pass = 0; pass < 2; pass++) {
      const v = values(c);
      for (const q of basis) {
        const p = dot(v, values(q));
        c = c.map((cj, j) => cj - p * q[j]!);
      }
    }
    const norm = Math.sqrt(dot(values(c), values(c)));
    if (!(norm > 1e-9)) throw new Error(`orthonormalBasis: degree ${degree} needs at least ${degree + 1} distinct training x (received ${n}).`);
    basis.push(c.map((cj) => cj / norm));
  }
  return basis.slice(1); // q_0 is the constant: the bias stands for it
}

/** The features of x [n, 1] in a basis: [n, degree]. */
export function polynomialFeatures(x: tf.Tensor, basis: PolynomialBasis): tf.Tensor2D {
  return tf.tidy(() => {
    const degree = basis.length;
    const powers = tf.concat(Array.from({ length: degree + 1 }, (_, j) => (j === 0 ? tf.onesLike(x) : tf.pow(x, j))), 1);
    const coefficients = tf.tensor2d(basis.flat(), [degree, degree + 1]);
    return tf.matMul(powers, coefficients, false, true) as tf.Tensor2D;
  });
}

export interface PolynomialRegressionOptions {
  /** The features (see PolynomialBasis): the degree is its length. */
  basis: PolynomialBasis;
  learningRate: number;
}

/**
 * Polynomial regression: a Linear layer (degree weights + 1 bias) on polynomial features of x,
 * trained on the mean squared error. Degree 1 is the straight line y = w x + b (2 parameters);
 * degree 6 has 7 parameters.
 */
export class PolynomialRegression extends LightningModule<PointBatch> {
  readonly linear: Linear;
  readonly basis: PolynomialBasis;

  constructor(options: PolynomialRegressionOptions) {
    super();
    const degree = options.basis.length;
    this.saveHyperparameters({ model: degree === 1 ? 'linear' : 'polynomial', degree, params: degree + 1, learningRate: options.learningRate });
    this.basis = options.basis;
    this.linear = new Linear(degree, 1);
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return this.linear.forward(polynomialFeatures(x, this.basis));
  }

  trainingStep([x, y]: PointBatch): tf.Scalar {
    const loss = tf.losses.meanSquaredError(y, this.forward(x)) as tf.Scalar;
    this.log('train_mse', loss, { onStep: false, onEpoch: true });
    return loss;
  }

  override validationStep([x, y]: PointBatch): void {
    this.log('val_mse', tf.losses.meanSquaredError(y, this.forward(x)), { progBar: true });
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(this.hparams.learningRate as number);
  }
}
