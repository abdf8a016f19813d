import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { MisconfigurationError } from '../errors.js';
import { Module } from '../module.js';
import { parseOptions } from '../options.js';
import { resolveAxis } from './internal/shared.js';

export const flattenOptionsSchema = z.strictObject({
  startDim: z.number().int().default(1),
  endDim: z.number().int().default(-1),
});
export type FlattenOptions = z.input<typeof flattenOptionsSchema>;

/**
 * Joins the dimensions `startDim` to `endDim` (inclusive; default 1 to -1: everything but the
 * batch) into one, as `torch.nn.Flatten`. A channels-first [N, C, H, W] input flattens in C, H, W
 * order, as in PyTorch.
 */
export class Flatten extends Module {
  readonly startDim: number;
  readonly endDim: number;

  constructor(options: FlattenOptions = {}) {
    super();
    const o = parseOptions('Flatten', flattenOptionsSchema, options);
    this.startDim = o.startDim;
    this.endDim = o.endDim;
  }

  outputShape(inputShape: readonly number[]): number[] {
    const rank = inputShape.length;
    const start = resolveAxis('Flatten', 'startDim', this.startDim, rank);
    const end = resolveAxis('Flatten', 'endDim', this.endDim, rank);
    if (start > end) {
      throw new MisconfigurationError(
        `Flatten options 'startDim' (${this.startDim}) and 'endDim' (${this.endDim}) select dimensions ${start} to ${end} of a ${rank}-dimensional input: startDim must not come after endDim.`,
      );
    }
    const joined = inputShape.slice(start, end + 1).reduce((a, b) => a * b, 1);
    return [...inputShape.slice(0, start), joined, ...inputShape.slice(end + 1)];
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.reshape(x, this.outputShape(x.shape));
  }
}
