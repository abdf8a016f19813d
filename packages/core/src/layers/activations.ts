import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { Module } from '../module.js';
import { parseOptions } from '../options.js';
import { resolveAxis } from './internal/shared.js';

/** An activation with no options, as a module: shape in, same shape out. */
abstract class Elementwise extends Module {
  outputShape(inputShape: readonly number[]): number[] {
    return inputShape.slice();
  }

  abstract forward(x: tf.Tensor): tf.Tensor;
}

/** `torch.nn.ReLU`: max(0, x). */
export class ReLU extends Elementwise {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.relu(x);
  }
}

/** `torch.nn.Sigmoid`: 1 / (1 + e^-x). */
export class Sigmoid extends Elementwise {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.sigmoid(x);
  }
}

/** `torch.nn.Tanh`. */
export class Tanh extends Elementwise {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tanh(x);
  }
}

/** `torch.nn.SiLU` (swish): x · sigmoid(x). */
export class SiLU extends Elementwise {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.mul(x, tf.sigmoid(x));
  }
}

/** `torch.nn.SELU`: scale · (max(0, x) + min(0, α(e^x - 1))) with PyTorch's α and scale. */
export class SELU extends Elementwise {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.selu(x);
  }
}

export const leakyReLUOptionsSchema = z.strictObject({ negativeSlope: z.number().default(0.01) });
export type LeakyReLUOptions = z.input<typeof leakyReLUOptionsSchema>;

/** `torch.nn.LeakyReLU`: x for x > 0, negativeSlope · x otherwise. */
export class LeakyReLU extends Elementwise {
  readonly negativeSlope: number;

  constructor(options: LeakyReLUOptions = {}) {
    super();
    this.negativeSlope = parseOptions('LeakyReLU', leakyReLUOptionsSchema, options).negativeSlope;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.leakyRelu(x, this.negativeSlope);
  }
}

export const eluOptionsSchema = z.strictObject({ alpha: z.number().default(1) });
export type ELUOptions = z.input<typeof eluOptionsSchema>;

/** `torch.nn.ELU`: x for x > 0, alpha · (e^x - 1) otherwise. */
export class ELU extends Elementwise {
  readonly alpha: number;

  constructor(options: ELUOptions = {}) {
    super();
    this.alpha = parseOptions('ELU', eluOptionsSchema, options).alpha;
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (this.alpha === 1) return tf.elu(x);
    // relu(x) + alpha · (e^min(x, 0) - 1): each part is zero where the other applies, and e^min(x, 0)
    // never overflows.
    return tf.add(tf.relu(x), tf.mul(this.alpha, tf.sub(tf.exp(tf.minimum(x, 0)), 1)));
  }
}

export const geluOptionsSchema = z.strictObject({ approximate: z.enum(['none', 'tanh']).default('none') });
export type GELUOptions = z.input<typeof geluOptionsSchema>;

/**
 * `torch.nn.GELU`: x · Φ(x) with the exact normal CDF (0.5 · (1 + erf(x / √2))), or with
 * `approximate: 'tanh'` 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 x³))).
 */
export class GELU extends Elementwise {
  readonly approximate: 'none' | 'tanh';

  constructor(options: GELUOptions = {}) {
    super();
    this.approximate = parseOptions('GELU', geluOptionsSchema, options).approximate;
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (this.approximate === 'tanh') {
      const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
      return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
    }
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
  }
}

export const softmaxOptionsSchema = z.strictObject({ dim: z.number().int().default(-1) });
export type SoftmaxOptions = z.input<typeof softmaxOptionsSchema>;

/** x - logsumexp(x) along `dim` (tfjs's logSoftmax works on the last dimension only). */
function logSoftmax(x: tf.Tensor, layer: string, dim: number): tf.Tensor {
  const axis = resolveAxis(layer, 'dim', dim, x.rank);
  if (axis === x.rank - 1) return tf.logSoftmax(x);
  return tf.sub(x, tf.logSumExp(x, axis, true));
}

/** `torch.nn.Softmax`: e^x / Σ e^x along `dim`. */
export class Softmax extends Elementwise {
  readonly dim: number;

  constructor(options: SoftmaxOptions = {}) {
    super();
    this.dim = parseOptions('Softmax', softmaxOptionsSchema, options).dim;
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (resolveAxis('Softmax', 'dim', this.dim, x.rank) === x.rank - 1) return tf.softmax(x);
    return tf.exp(logSoftmax(x, 'Softmax', this.dim));
  }
}

/** `torch.nn.LogSoftmax`: log of the softmax along `dim`, computed stably. */
export class LogSoftmax extends Elementwise {
  readonly dim: number;

  constructor(options: SoftmaxOptions = {}) {
    super();
    this.dim = parseOptions('LogSoftmax', softmaxOptionsSchema, options).dim;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return logSoftmax(x, 'LogSoftmax', this.dim);
  }
}
