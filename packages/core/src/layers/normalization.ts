import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { MisconfigurationError } from '../errors.js';
import { Module } from '../module.js';
import { parseOptions } from '../options.js';
import { dataFormatSchema, positiveInt, showShape, variableFrom, type DataFormat } from './internal/shared.js';

const batchNormFields = {
  numFeatures: positiveInt,
  eps: z.number().positive().default(1e-5),
  /** Weight of the new batch in the running statistics; null: a cumulative average (PyTorch's momentum=None). */
  momentum: z.number().min(0).max(1).nullable().default(0.1),
  affine: z.boolean().default(true),
  trackRunningStats: z.boolean().default(true),
};

export const batchNorm1dOptionsSchema = z.strictObject(batchNormFields);
export type BatchNorm1dOptions = Omit<z.input<typeof batchNorm1dOptionsSchema>, 'numFeatures'>;

export const batchNorm2dOptionsSchema = z.strictObject({ ...batchNormFields, dataFormat: dataFormatSchema.default('NCHW') });
export type BatchNorm2dOptions = Omit<z.input<typeof batchNorm2dOptionsSchema>, 'numFeatures'>;

/**
 * Batch normalization with PyTorch's parameters and buffers, under PyTorch's `state_dict` names:
 * `weight` and `bias` (trainable, with `affine`), `running_mean`, `running_var` and
 * `num_batches_tracked` (non-trainable variables, with `trackRunningStats`; checkpoints save them
 * as they save every parameter). While the module is training it normalizes with the batch's
 * statistics (biased variance) and updates the running ones as PyTorch does (the unbiased variance,
 * `running = (1 - momentum) · running + momentum · batch`); in eval mode it uses the running ones.
 */
abstract class BatchNormBase extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly weight: tf.Variable | undefined;
  readonly bias: tf.Variable | undefined;
  readonly running_mean: tf.Variable | undefined;
  readonly running_var: tf.Variable | undefined;
  readonly num_batches_tracked: tf.Variable | undefined;

  protected constructor(o: z.output<typeof batchNorm1dOptionsSchema>) {
    super();
    this.numFeatures = o.numFeatures;
    this.eps = o.eps;
    this.momentum = o.momentum;
    const c = o.numFeatures;
    this.weight = o.affine ? variableFrom(tf.ones([c])) : undefined;
    this.bias = o.affine ? variableFrom(tf.zeros([c])) : undefined;
    this.running_mean = o.trackRunningStats ? variableFrom(tf.zeros([c]), false) : undefined;
    this.running_var = o.trackRunningStats ? variableFrom(tf.ones([c]), false) : undefined;
    this.num_batches_tracked = o.trackRunningStats ? variableFrom(tf.scalar(0, 'int32'), false) : undefined;
  }

  /** The running mean (PyTorch's `running_mean`), undefined without `trackRunningStats`. */
  get runningMean(): tf.Variable | undefined {
    return this.running_mean;
  }

  /** The running variance (PyTorch's `running_var`). */
  get runningVar(): tf.Variable | undefined {
    return this.running_var;
  }

  /** Normalizes `x` over `axes`, the features lying along `featureAxis`. */
  protected normalize(x: tf.Tensor, axes: number[], featureAxis: number): tf.Tensor {
    const shape = x.shape.map((d, i) => (i === featureAxis ? d : 1));
    const perFeature = (t: tf.Tensor) => tf.reshape(t, shape);
    let mean: tf.Tensor;
    let variance: tf.Tensor;
    if (this.training || this.running_mean === undefined || this.running_var === undefined) {
      const count = axes.reduce((a, i) => a * x.shape[i]!, 1);
      if (this.training && count < 2) {
        throw new MisconfigurationError(
          `${this.constructor.name}: expected more than 1 value per channel when training (received input of shape ${showShape(x.shape)}), as PyTorch.`,
        );
      }
      const moments = tf.moments(x, axes, true);
      mean = moments.mean;
      variance = moments.variance;
      if (this.training && this.running_mean !== undefined && this.running_var !== undefined) this.track(mean, variance, count);
    } else {
      mean = perFeature(this.running_mean);
      variance = perFeature(this.running_var);
    }
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
    if (this.weight !== undefined) y = tf.mul(y, perFeature(this.weight));
    if (this.bias !== undefined) y = tf.add(y, perFeature(this.bias));
    return y;
  }

  /** PyTorch's running-statistics update (no gradient flows into it). */
  private track(mean: tf.Tensor, variance: tf.Tensor, count: number): void {
    const tracked = this.num_batches_tracked!;
    tracked.assign(tf.add(tracked, tf.scalar(1, 'int32')));
    // momentum null: a cumulative average, 1 / batches seen (kept on the device: no read per step).
    const factor: number | tf.Tensor = this.momentum ?? tf.div(1, tf.cast(tracked, 'float32'));
    const c = this.numFeatures;
    const batchMean = tf.reshape(mean, [c]);
    const unbiased = tf.mul(tf.reshape(variance, [c]), count / (count - 1));
    const keep = tf.sub(1, factor);
    this.running_mean!.assign(tf.add(tf.mul(this.running_mean!, keep), tf.mul(batchMean, factor)));
    this.running_var!.assign(tf.add(tf.mul(this.running_var!, keep), tf.mul(unbiased, factor)));
  }
}

/**
 * `torch.nn.BatchNorm1d`: input [N, C] or [N, C, L], statistics per channel C over the other axes.
 * See BatchNormBase for parameters, buffers and train/eval behaviour.
 */
export class BatchNorm1d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNorm1dOptions = {}) {
    super(parseOptions('BatchNorm1d', batchNorm1dOptionsSchema, { ...options, numFeatures }));
  }

  outputShape(inputShape: readonly number[]): number[] {
    if ((inputShape.length !== 2 && inputShape.length !== 3) || inputShape[1] !== this.numFeatures) {
      throw new MisconfigurationError(
        `BatchNorm1d expects input of shape [batch, ${this.numFeatures}] or [batch, ${this.numFeatures}, length] (received ${showShape(inputShape)}).`,
      );
    }
    return inputShape.slice();
  }

  forward(x: tf.Tensor): tf.Tensor {
    this.outputShape(x.shape);
    return this.normalize(x, x.rank === 2 ? [0] : [0, 2], 1);
  }
}

/**
 * `torch.nn.BatchNorm2d`: input [N, C, H, W] (or [N, H, W, C] with `dataFormat: 'NHWC'`),
 * statistics per channel over N, H and W. See BatchNormBase for parameters, buffers and train/eval
 * behaviour.
 */
export class BatchNorm2d extends BatchNormBase {
  readonly dataFormat: DataFormat;

  constructor(numFeatures: number, options: BatchNorm2dOptions = {}) {
    const { dataFormat, ...o } = parseOptions('BatchNorm2d', batchNorm2dOptionsSchema, { ...options, numFeatures });
    super(o);
    this.dataFormat = dataFormat;
  }

  outputShape(inputShape: readonly number[]): number[] {
    const channelAxis = this.dataFormat === 'NCHW' ? 1 : 3;
    if (inputShape.length !== 4 || inputShape[channelAxis] !== this.numFeatures) {
      const expected = this.dataFormat === 'NCHW' ? `[batch, ${this.numFeatures}, height, width]` : `[batch, height, width, ${this.numFeatures}]`;
      throw new MisconfigurationError(`BatchNorm2d expects input of shape ${expected} (received ${showShape(inputShape)}).`);
    }
    return inputShape.slice();
  }

  forward(x: tf.Tensor): tf.Tensor {
    this.outputShape(x.shape);
    return this.dataFormat === 'NCHW' ? this.normalize(x, [0, 2, 3], 1) : this.normalize(x, [0, 1, 2], 3);
  }
}

export const layerNormOptionsSchema = z.strictObject({
  normalizedShape: z.union([positiveInt, z.array(positiveInt).min(1)]),
  eps: z.number().positive().default(1e-5),
  elementwiseAffine: z.boolean().default(true),
  bias: z.boolean().default(true),
});
export type LayerNormOptions = Omit<z.input<typeof layerNormOptionsSchema>, 'normalizedShape'>;

/**
 * `torch.nn.LayerNorm`: normalizes over the last dimensions given by `normalizedShape` (biased
 * variance), then scales by `weight` and shifts by `bias` (both of that shape), in training and in
 * eval mode alike.
 */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly weight: tf.Variable | undefined;
  readonly bias: tf.Variable | undefined;

  constructor(normalizedShape: number | number[], options: LayerNormOptions = {}) {
    super();
    const o = parseOptions('LayerNorm', layerNormOptionsSchema, { ...options, normalizedShape });
    this.normalizedShape = typeof o.normalizedShape === 'number' ? [o.normalizedShape] : o.normalizedShape.slice();
    this.eps = o.eps;
    this.weight = o.elementwiseAffine ? variableFrom(tf.ones(this.normalizedShape)) : undefined;
    this.bias = o.elementwiseAffine && o.bias ? variableFrom(tf.zeros(this.normalizedShape)) : undefined;
  }

  outputShape(inputShape: readonly number[]): number[] {
    const k = this.normalizedShape.length;
    if (inputShape.length < k || this.normalizedShape.some((d, i) => inputShape[inputShape.length - k + i] !== d)) {
      throw new MisconfigurationError(
        `LayerNorm expects input whose last dimensions are [${this.normalizedShape.join(', ')}] (received ${showShape(inputShape)}).`,
      );
    }
    return inputShape.slice();
  }

  forward(x: tf.Tensor): tf.Tensor {
    this.outputShape(x.shape);
    const axes = this.normalizedShape.map((_, i) => x.rank - this.normalizedShape.length + i);
    const { mean, variance } = tf.moments(x, axes, true);
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
    if (this.weight !== undefined) y = tf.mul(y, this.weight);
    if (this.bias !== undefined) y = tf.add(y, this.bias);
    return y;
  }
}
