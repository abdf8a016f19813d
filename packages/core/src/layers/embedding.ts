import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { MisconfigurationError } from '../errors.js';
import { Module } from '../module.js';
import { parseOptions } from '../options.js';
import { normal, positiveInt, showShape, stopGradient, variableFrom } from './internal/shared.js';

export const embeddingOptionsSchema = z
  .strictObject({
    numEmbeddings: positiveInt,
    embeddingDim: positiveInt,
    /** A row that stays zero at initialization and gets no gradient (PyTorch's padding_idx); may be negative. */
    paddingIdx: z.number().int().optional(),
  })
  .superRefine((o, ctx) => {
    if (o.paddingIdx !== undefined && (o.paddingIdx >= o.numEmbeddings || o.paddingIdx < -o.numEmbeddings)) {
      ctx.addIssue({ code: 'custom', path: ['paddingIdx'], message: `must be within numEmbeddings (${-o.numEmbeddings} to ${o.numEmbeddings - 1})` });
    }
  });
export type EmbeddingOptions = Omit<z.input<typeof embeddingOptionsSchema>, 'numEmbeddings' | 'embeddingDim'>;

/**
 * A lookup table, as `torch.nn.Embedding`: integer indices of any shape [...] give vectors
 * [..., embeddingDim]. Parameter `weight` [numEmbeddings, embeddingDim], initialized from N(0, 1)
 * as PyTorch (the `paddingIdx` row zero). Indices outside the table throw.
 */
export class Embedding extends Module {
  readonly weight: tf.Variable;
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly paddingIdx: number | undefined;

  constructor(numEmbeddings: number, embeddingDim: number, options: EmbeddingOptions = {}) {
    super();
    const o = parseOptions('Embedding', embeddingOptionsSchema, { ...options, numEmbeddings, embeddingDim });
    this.numEmbeddings = o.numEmbeddings;
    this.embeddingDim = o.embeddingDim;
    this.paddingIdx = o.paddingIdx === undefined ? undefined : (o.paddingIdx + o.numEmbeddings) % o.numEmbeddings;
    const init = normal([o.numEmbeddings, o.embeddingDim]);
    if (this.paddingIdx === undefined) this.weight = variableFrom(init);
    else {
      const row = this.paddingIdx;
      const mask = tf.tidy(() => tf.reshape(tf.notEqual(tf.range(0, o.numEmbeddings, 1, 'int32'), row), [-1, 1]));
      this.weight = variableFrom(tf.tidy(() => tf.where(mask, init, 0)));
      tf.dispose([init, mask]);
    }
  }

  outputShape(inputShape: readonly number[]): number[] {
    return [...inputShape, this.embeddingDim];
  }

  forward(indices: tf.Tensor): tf.Tensor {
    if (indices.dtype !== 'int32') {
      throw new MisconfigurationError(`Embedding expects int32 indices (received a ${indices.dtype} tensor of shape ${showShape(indices.shape)}).`);
    }
    const flat = tf.reshape(indices, [-1]);
    // tfjs's gather gives zeros for an index outside the table: check, as PyTorch does (one small read;
    // wasm, cpu and tensorflow hold tensors in host memory).
    const [lo, hi] = flat.size === 0 ? [0, 0] : [tf.min(flat), tf.max(flat)].map((t) => t.dataSync()[0]!);
    if (lo! < 0 || hi! >= this.numEmbeddings) {
      throw new MisconfigurationError(`Embedding: index out of range: indices span ${lo} to ${hi}, the table has rows 0 to ${this.numEmbeddings - 1}.`);
    }
    let rows: tf.Tensor = tf.gather(this.weight, flat);
    if (this.paddingIdx !== undefined) {
      const isPad = tf.reshape(tf.equal(flat, this.paddingIdx), [-1, 1]);
      rows = tf.where(tf.broadcastTo(isPad, rows.shape), stopGradient(rows), rows);
    }
    return tf.reshape(rows, this.outputShape(indices.shape));
  }
}
