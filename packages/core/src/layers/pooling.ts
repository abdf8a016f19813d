import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { MisconfigurationError } from '../errors.js';
import { Module } from '../module.js';
import { parseOptions } from '../options.js';
import { dataFormatSchema, expectRank, nonNegativeInt, pair, pairOf, positiveInt, showShape, type DataFormat } from './internal/shared.js';

const poolFields = {
  kernelSize: pairOf(positiveInt),
  /** Default: the kernel size, as PyTorch. */
  stride: pairOf(positiveInt).optional(),
  padding: pairOf(nonNegativeInt).default(0),
  dataFormat: dataFormatSchema.default('NCHW'),
};

function checkPadding(o: { kernelSize: number | [number, number]; padding: number | [number, number] }, ctx: z.RefinementCtx): void {
  const k = pair(o.kernelSize);
  if (pair(o.padding).some((p, i) => p > k[i]! / 2)) {
    ctx.addIssue({ code: 'custom', path: ['padding'], message: `must be at most half the kernel size (${k.join('x')}), as in PyTorch` });
  }
}

export const maxPool2dOptionsSchema = z.strictObject(poolFields).superRefine(checkPadding);
export type MaxPool2dOptions = Omit<z.input<typeof maxPool2dOptionsSchema>, 'kernelSize'>;

export const avgPool2dOptionsSchema = z
  .strictObject({ ...poolFields, countIncludePad: z.boolean().default(true) })
  .superRefine(checkPadding);
export type AvgPool2dOptions = Omit<z.input<typeof avgPool2dOptionsSchema>, 'kernelSize'>;

abstract class Pool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dataFormat: DataFormat;

  protected constructor(o: { kernelSize: number | [number, number]; stride?: number | [number, number] | undefined; padding: number | [number, number]; dataFormat: DataFormat }) {
    super();
    this.kernelSize = pair(o.kernelSize);
    this.stride = pair(o.stride ?? o.kernelSize);
    this.padding = pair(o.padding);
    this.dataFormat = o.dataFormat;
  }

  /** The output shape for an input shape, checked as `forward` checks it. */
  outputShape(inputShape: readonly number[]): number[] {
    const name = this.constructor.name;
    const expected = this.dataFormat === 'NCHW' ? '[batch, channels, height, width]' : '[batch, height, width, channels]';
    expectRank(name, inputShape, [4], expected);
    const [n, a, b, c] = inputShape as [number, number, number, number];
    const [ch, h, w] = this.dataFormat === 'NCHW' ? [a, b, c] : [c, a, b];
    const out = [h, w].map((size, i) => Math.floor((size + 2 * this.padding[i]! - this.kernelSize[i]!) / this.stride[i]!) + 1);
    if (out.some((s) => s < 1)) {
      throw new MisconfigurationError(`${name}: the input ${showShape(inputShape)} is smaller than the kernel (${this.kernelSize.join('x')}, padding ${this.padding.join('x')}): the output would be empty.`);
    }
    return this.dataFormat === 'NCHW' ? [n, ch, out[0]!, out[1]!] : [n, out[0]!, out[1]!, ch];
  }

  forward(x: tf.Tensor): tf.Tensor {
    this.outputShape(x.shape);
    const nhwc = (this.dataFormat === 'NCHW' ? tf.transpose(x, [0, 2, 3, 1]) : x) as tf.Tensor4D;
    const y = this.poolNhwc(nhwc);
    return this.dataFormat === 'NCHW' ? tf.transpose(y, [0, 3, 1, 2]) : y;
  }

  protected abstract poolNhwc(x: tf.Tensor4D): tf.Tensor4D;

  protected explicitPad(): [[number, number], [number, number], [number, number], [number, number]] {
    const [ph, pw] = this.padding;
    return [[0, 0], [ph, ph], [pw, pw], [0, 0]];
  }
}

/**
 * Max pooling over [N, C, H, W] (or [N, H, W, C] with `dataFormat: 'NHWC'`), as `torch.nn.MaxPool2d`:
 * padding counts as -infinity.
 */
export class MaxPool2d extends Pool2d {
  constructor(kernelSize: number | [number, number], options: MaxPool2dOptions = {}) {
    super(parseOptions('MaxPool2d', maxPool2dOptionsSchema, { ...options, kernelSize }));
  }

  protected poolNhwc(x: tf.Tensor4D): tf.Tensor4D {
    const [ph, pw] = this.padding;
    if (ph === 0 && pw === 0) return tf.maxPool(x, this.kernelSize, this.stride, 'valid');
    // Pad with the lowest float so padded cells never win, then pool without padding.
    return tf.maxPool(tf.pad(x, this.explicitPad(), -3.4e38), this.kernelSize, this.stride, 'valid');
  }
}

/**
 * Average pooling over [N, C, H, W] (or [N, H, W, C]), as `torch.nn.AvgPool2d`: with
 * `countIncludePad` (default true, as PyTorch) padded zeros count in the divisor; with false each
 * window is divided by the number of input cells in it.
 */
export class AvgPool2d extends Pool2d {
  readonly countIncludePad: boolean;

  constructor(kernelSize: number | [number, number], options: AvgPool2dOptions = {}) {
    const o = parseOptions('AvgPool2d', avgPool2dOptionsSchema, { ...options, kernelSize });
    super(o);
    this.countIncludePad = o.countIncludePad;
  }

  protected poolNhwc(x: tf.Tensor4D): tf.Tensor4D {
    const [ph, pw] = this.padding;
    if (ph === 0 && pw === 0) return tf.avgPool(x, this.kernelSize, this.stride, 'valid');
    const padded = tf.avgPool(tf.pad(x, this.explicitPad()), this.kernelSize, this.stride, 'valid');
    if (this.countIncludePad) return padded;
    // Divided by the share of real cells under each window: the same pooling over ones padded with zeros.
    const ones = tf.pad(tf.ones([1, x.shape[1], x.shape[2], 1]), this.explicitPad()) as tf.Tensor4D;
    return tf.div(padded, tf.avgPool(ones, this.kernelSize, this.stride, 'valid'));
  }
}
