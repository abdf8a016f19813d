import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { MisconfigurationError } from '../../errors.js';
import { createRng } from '../../seed.js';

export { positiveInt, wholeNumber as nonNegativeInt } from '../../schemas.js';
/** A size given once for both spatial dimensions or as [height, width], as PyTorch's `_pair`. */
export const pairOf = <T extends z.ZodType<number>>(item: T) => z.union([item, z.tuple([item, item])]);
/** Where a layer's input keeps its channels: PyTorch's channels-first (default) or channels-last. */
export const dataFormatSchema = z.enum(['NCHW', 'NHWC']);
export type DataFormat = z.infer<typeof dataFormatSchema>;

/** `[v, v]` for a number, the pair itself otherwise. */
export function pair(value: number | readonly [number, number]): [number, number] {
  return typeof value === 'number' ? [value, value] : [value[0], value[1]];
}

/** Values drawn uniformly from [-bound, bound] with Math.random as the seed (seeded by seedEverything). */
export function uniform(shape: number[], bound: number): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  const rng = createRng(Math.floor(Math.random() * 0xffffffff));
  for (let i = 0; i < size; i++) values[i] = (rng.next() * 2 - 1) * bound;
  return tf.tensor(values, shape);
}

/** Standard normal values (Box-Muller) with Math.random as the seed, as `torch.nn.init.normal_`. */
export function normal(shape: number[]): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  const rng = createRng(Math.floor(Math.random() * 0xffffffff));
  for (let i = 0; i < size; i++) values[i] = Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  return tf.tensor(values, shape);
}

/** A trainable (or not) variable holding `init`, which is disposed. */
export function variableFrom(init: tf.Tensor, trainable = true): tf.Variable {
  const v = tf.variable(init, trainable);
  init.dispose();
  return v;
}

/** `[a, b, c]` for messages. */
export function showShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Throws unless `shape` has one of the ranks `ranks`, naming the layer and what it expects. */
export function expectRank(layer: string, shape: readonly number[], ranks: readonly number[], expected: string): void {
  if (!ranks.includes(shape.length)) {
    throw new MisconfigurationError(`${layer} expects input of shape ${expected} (received ${showShape(shape)}).`);
  }
}

/** `x` whose gradient is zero: tfjs has no stop_gradient op. */
export const stopGradient = tf.customGrad(((x: tf.Tensor) => ({
  value: tf.clone(x),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as never) as (x: tf.Tensor) => tf.Tensor;

/** A negative axis counted from the end; throws when outside the rank. */
export function resolveAxis(layer: string, option: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    throw new MisconfigurationError(`${layer} option '${option}' is ${axis}, outside the input's ${rank} dimensions (valid: ${-rank} to ${rank - 1}).`);
  }
  return a;
}
