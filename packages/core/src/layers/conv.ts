import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { MisconfigurationError } from '../errors.js';
import { Module } from '../module.js';
import { parseOptions } from '../options.js';
import {
  dataFormatSchema,
  expectRank,
  nonNegativeInt,
  pair,
  pairOf,
  positiveInt,
  showShape,
  uniform,
  variableFrom,
  type DataFormat,
} from './internal/shared.js';

const paddingSchema = z.union([z.enum(['same', 'valid']), pairOf(nonNegativeInt)]);

const convFields = {
  inChannels: positiveInt,
  outChannels: positiveInt,
  stride: pairOf(positiveInt).default(1),
  padding: paddingSchema.default(0),
  dilation: pairOf(positiveInt).default(1),
  groups: positiveInt.default(1),
  bias: z.boolean().default(true),
  /** 'relu' applies a ReLU in the same fused op as the convolution and bias (as tfjs-layers' conv2d does): one op less forward and back than a separate ReLU. */
  activation: z.enum(['linear', 'relu']).default('linear'),
};

type ConvOptionsOut = {
  inChannels: number;
  outChannels: number;
  stride: number | [number, number];
  padding: 'same' | 'valid' | number | [number, number];
  dilation: number | [number, number];
  groups: number;
};

/** The checks PyTorch's `_ConvNd` makes: channels divisible by groups; 'same' only with stride 1. */
function checkConv(o: ConvOptionsOut, ctx: z.RefinementCtx): void {
  if (o.inChannels % o.groups !== 0) {
    ctx.addIssue({ code: 'custom', path: ['groups'], message: `inChannels (${o.inChannels}) must be divisible by groups (${o.groups})` });
  }
  if (o.outChannels % o.groups !== 0) {
    ctx.addIssue({ code: 'custom', path: ['groups'], message: `outChannels (${o.outChannels}) must be divisible by groups (${o.groups})` });
  }
  if (o.padding === 'same' && pair(o.stride).some((s) => s !== 1)) {
    ctx.addIssue({ code: 'custom', path: ['padding'], message: `'same' needs stride 1, as in PyTorch (stride is ${JSON.stringify(o.stride)}); give the padding as a number` });
  }
}

export const conv2dOptionsSchema = z
  .strictObject({ ...convFields, kernelSize: pairOf(positiveInt), dataFormat: dataFormatSchema.default('NCHW') })
  .superRefine(checkConv);
export type Conv2dOptions = Omit<z.input<typeof conv2dOptionsSchema>, 'inChannels' | 'outChannels' | 'kernelSize'>;

export const conv1dOptionsSchema = z
  .strictObject({
    ...convFields,
    kernelSize: positiveInt,
    stride: positiveInt.default(1),
    padding: z.union([z.enum(['same', 'valid']), nonNegativeInt]).default(0),
    dilation: positiveInt.default(1),
  })
  .superRefine(checkConv);
export type Conv1dOptions = Omit<z.input<typeof conv1dOptionsSchema>, 'inChannels' | 'outChannels' | 'kernelSize'>;

/** Geometry of one 2-D convolution (1-D ones use a height of 1). */
interface Geometry {
  readonly kernel: [number, number];
  readonly stride: [number, number];
  readonly dilation: [number, number];
  /** [top, bottom, left, right] zeros added around the input. */
  readonly pads: [number, number, number, number];
  readonly groups: number;
  readonly activation: 'linear' | 'relu';
}

/** PyTorch's padding: 'valid' is none, 'same' puts the odd one at the end (bottom/right), a number pads both sides. */
function explicitPads(padding: 'same' | 'valid' | number | [number, number], kernel: [number, number], dilation: [number, number]): Geometry['pads'] {
  if (padding === 'valid') return [0, 0, 0, 0];
  if (padding === 'same') {
    const [th, tw] = [dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)];
    return [Math.floor(th / 2), th - Math.floor(th / 2), Math.floor(tw / 2), tw - Math.floor(tw / 2)];
  }
  const [ph, pw] = pair(padding);
  return [ph, ph, pw, pw];
}

/** Output size along one dimension, as PyTorch computes it. */
function outSize(input: number, kernel: number, stride: number, dilation: number, padBefore: number, padAfter: number): number {
  return Math.floor((input + padBefore + padAfter - dilation * (kernel - 1) - 1) / stride) + 1;
}

/**
 * A filter [out, in/groups, kh, kw] dilated by inserting `d - 1` zeros between its taps, so that a
 * tfjs convolution with dilation 1 computes the dilated one (tfjs has no gradient for dilation > 1).
 */
function dilateFilter(weight: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  if (dh === 1 && dw === 1) return weight;
  const [o, i, kh, kw] = weight.shape;
  const spread = tf.pad(tf.reshape(weight, [o, i, kh, 1, kw, 1]), [[0, 0], [0, 0], [0, 0], [0, dh - 1], [0, 0], [0, dw - 1]]);
  const full = tf.reshape(spread, [o, i, kh * dh, kw * dw]);
  return tf.slice(full, [0, 0, 0, 0], [o, i, dh * (kh - 1) + 1, dw * (kw - 1) + 1]) as tf.Tensor4D;
}

/** Whether tfjs's padding 'same' (stride 1) pads exactly `g.pads`: (k_eff - 1) zeros, the odd one at the bottom/right, and some padding at all. */
function samePads(g: Geometry): boolean {
  if (g.stride[0] !== 1 || g.stride[1] !== 1) return false;
  const [th, tw] = [g.dilation[0] * (g.kernel[0] - 1), g.dilation[1] * (g.kernel[1] - 1)];
  const [top, bottom, left, right] = g.pads;
  return (th > 0 || tw > 0) && top === Math.floor(th / 2) && bottom === th - top && left === Math.floor(tw / 2) && right === tw - left;
}

/**
 * The convolution on a channels-last input [N, H, W, C] with a PyTorch-layout filter
 * [out, in/groups, kh, kw]: each group runs `tf.conv2d` (the filter transposed to tfjs's
 * [kh, kw, in, out]) on its slice of channels and the results are concatenated.
 */
function convNhwc(input: tf.Tensor4D, weight: tf.Tensor4D, bias: tf.Tensor1D | undefined, g: Geometry): tf.Tensor4D {
  const filter = dilateFilter(weight, g.dilation);
  // tfjs-node's gradient kernels (Conv2DBackpropInput/Filter) take only 'valid' and 'same', not
  // explicit pads. Where the pads are the ones tfjs's 'same' computes (stride 1, the odd one at the
  // end: a 3x3 kernel with padding 1, say), the convolution pads itself; any other padding is
  // applied by tf.pad, then a 'valid' convolution (one op more forward and one slice more back).
  const same = samePads(g);
  const x = !same && g.pads.some((p) => p > 0) ? (tf.pad(input, [[0, 0], [g.pads[0], g.pads[1]], [g.pads[2], g.pads[3]], [0, 0]]) as tf.Tensor4D) : input;
  const pad = same ? ('same' as const) : ('valid' as const);
  const hwio = (w: tf.Tensor4D) => tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D;
  if (g.groups === 1) {
    return tf.fused.conv2d({ x, filter: hwio(filter), strides: g.stride, pad, dataFormat: 'NHWC', activation: g.activation, ...(bias === undefined ? {} : { bias }) });
  }
  const xs = tf.split(x, g.groups, 3) as tf.Tensor4D[];
  const ws = tf.split(filter, g.groups, 0) as tf.Tensor4D[];
  const y = tf.concat(xs.map((xi, i) => tf.conv2d(xi, hwio(ws[i]!), g.stride, pad, 'NHWC')), 3) as tf.Tensor4D;
  const biased: tf.Tensor4D = bias === undefined ? y : tf.add(y, bias);
  return g.activation === 'relu' ? tf.relu(biased) : biased;
}

/** What Conv1d and Conv2d share: PyTorch's initialization and the output shape. */
abstract class ConvNd extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | undefined;
  readonly inChannels: number;
  readonly outChannels: number;
  protected readonly geometry: Geometry;

  protected constructor(o: ConvOptionsOut & { kernelSize: number | [number, number]; bias: boolean; activation: 'linear' | 'relu' }, weightShape: number[], kernel: [number, number], stride: [number, number], dilation: [number, number]) {
    super();
    this.inChannels = o.inChannels;
    this.outChannels = o.outChannels;
    this.geometry = { kernel, stride, dilation, pads: explicitPads(o.padding, kernel, dilation), groups: o.groups, activation: o.activation };
    // torch.nn.init.kaiming_uniform_(a=√5) and the bias bound 1/√fan_in, as PyTorch's reset_parameters.
    const fanIn = (o.inChannels / o.groups) * kernel[0] * kernel[1];
    const bound = 1 / Math.sqrt(fanIn);
    this.weight = variableFrom(uniform(weightShape, bound));
    this.bias = o.bias ? variableFrom(uniform([o.outChannels], bound)) : undefined;
  }

  /** [outH, outW] for an input of [h, w]; throws when the input is smaller than the dilated kernel. */
  protected spatialOut(layer: string, input: readonly number[], h: number, w: number): [number, number] {
    const g = this.geometry;
    const oh = outSize(h, g.kernel[0], g.stride[0], g.dilation[0], g.pads[0], g.pads[1]);
    const ow = outSize(w, g.kernel[1], g.stride[1], g.dilation[1], g.pads[2], g.pads[3]);
    if (oh < 1 || ow < 1) {
      throw new MisconfigurationError(
        `${layer}: the input ${showShape(input)} is smaller than the kernel (${g.kernel.join('x')}, dilation ${g.dilation.join('x')}, padding ${g.pads.join('/')}): the output would be empty.`,
      );
    }
    return [oh, ow];
  }

  protected checkChannels(layer: string, input: readonly number[], channels: number, expected: string): void {
    if (channels !== this.inChannels) {
      throw new MisconfigurationError(`${layer} expects input of shape ${expected} with ${this.inChannels} channels (received ${showShape(input)}).`);
    }
  }
}

/**
 * A 2-D convolution, as `torch.nn.Conv2d`: input [N, C_in, H, W], output [N, C_out, H_out, W_out]
 * (channels-first, PyTorch's layout; `dataFormat: 'NHWC'` takes and returns [N, H, W, C] instead
 * and skips two transposes per call). Parameters `weight` [C_out, C_in/groups, kH, kW] and `bias`
 * [C_out], PyTorch's shapes and names, so a PyTorch `state_dict` loads as it is. tfjs convolves
 * channels-last, so a channels-first input is transposed to [N, H, W, C] and back. Dilation is
 * computed with a dilated filter (zeros between taps) and groups with one convolution per group.
 */
export class Conv2d extends ConvNd {
  readonly kernelSize: [number, number];
  readonly dataFormat: DataFormat;

  constructor(inChannels: number, outChannels: number, kernelSize: number | [number, number], options: Conv2dOptions = {}) {
    const o = parseOptions('Conv2d', conv2dOptionsSchema, { ...options, inChannels, outChannels, kernelSize });
    const kernel = pair(o.kernelSize);
    super(o, [o.outChannels, o.inChannels / o.groups, kernel[0], kernel[1]], kernel, pair(o.stride), pair(o.dilation));
    this.kernelSize = kernel;
    this.dataFormat = o.dataFormat;
  }

  private expected(): string {
    return this.dataFormat === 'NCHW' ? '[batch, channels, height, width]' : '[batch, height, width, channels]';
  }

  /** The output shape for an input shape, checked as `forward` checks it. */
  outputShape(inputShape: readonly number[]): number[] {
    expectRank('Conv2d', inputShape, [4], this.expected());
    const [n, a, b, c] = inputShape as [number, number, number, number];
    const [ch, h, w] = this.dataFormat === 'NCHW' ? [a, b, c] : [c, a, b];
    this.checkChannels('Conv2d', inputShape, ch, this.expected());
    const [oh, ow] = this.spatialOut('Conv2d', inputShape, h, w);
    return this.dataFormat === 'NCHW' ? [n, this.outChannels, oh, ow] : [n, oh, ow, this.outChannels];
  }

  forward(x: tf.Tensor): tf.Tensor {
    this.outputShape(x.shape);
    const nhwc = this.dataFormat === 'NCHW' ? tf.transpose(x, [0, 2, 3, 1]) : x;
    const y = convNhwc(nhwc as tf.Tensor4D, this.weight as unknown as tf.Tensor4D, this.bias as tf.Tensor1D | undefined, this.geometry);
    return this.dataFormat === 'NCHW' ? tf.transpose(y, [0, 3, 1, 2]) : y;
  }
}

/**
 * A 1-D convolution, as `torch.nn.Conv1d`: input [N, C_in, L], output [N, C_out, L_out];
 * parameters `weight` [C_out, C_in/groups, k] and `bias` [C_out]. Runs as a 2-D convolution of
 * height 1.
 */
export class Conv1d extends ConvNd {
  readonly kernelSize: number;

  constructor(inChannels: number, outChannels: number, kernelSize: number, options: Conv1dOptions = {}) {
    const o = parseOptions('Conv1d', conv1dOptionsSchema, { ...options, inChannels, outChannels, kernelSize });
    const padding = typeof o.padding === 'number' ? ([0, o.padding] as [number, number]) : o.padding;
    super({ ...o, padding }, [o.outChannels, o.inChannels / o.groups, o.kernelSize], [1, o.kernelSize], [1, o.stride], [1, o.dilation]);
    this.kernelSize = o.kernelSize;
  }

  /** The output shape for an input shape [N, C_in, L]. */
  outputShape(inputShape: readonly number[]): number[] {
    const expected = '[batch, channels, length]';
    expectRank('Conv1d', inputShape, [3], expected);
    const [n, c, l] = inputShape as [number, number, number];
    this.checkChannels('Conv1d', inputShape, c, expected);
    return [n, this.outChannels, this.spatialOut('Conv1d', inputShape, 1, l)[1]];
  }

  forward(x: tf.Tensor): tf.Tensor {
    this.outputShape(x.shape);
    const nhwc = tf.expandDims(tf.transpose(x, [0, 2, 1]), 1) as tf.Tensor4D; // [N, 1, L, C]
    const weight = tf.expandDims(this.weight, 2) as tf.Tensor4D; // [out, in/g, 1, k]
    const y = convNhwc(nhwc, weight, this.bias as tf.Tensor1D | undefined, this.geometry);
    return tf.transpose(tf.squeeze(y, [1]), [0, 2, 1]);
  }
}
