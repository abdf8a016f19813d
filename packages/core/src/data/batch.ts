import * as tf from '@tensorflow/tfjs';
import { DataError } from '../errors.js';

/** What a `TensorDataset` yields per batch: one tensor, an array of tensors (`[x, y]`), or a record (`{ x, y }`). */
export type TensorBatch = tf.Tensor | tf.Tensor[] | Record<string, tf.Tensor>;

/**
 * The first dimension of the first tensor found in a batch (depth first, arrays in order, records
 * in key order); 1 for a scalar tensor. Throws a DataError naming the batch when it holds no tensor.
 */
export function inferBatchSize(batch: unknown): number {
  const first = findTensor(batch, 0);
  if (first === undefined) {
    throw new DataError(
      `Cannot infer the batch size: the batch holds no tensor (received ${describeBatch(batch)}). ` +
        'A batch is a tensor, an array of tensors or a record of tensors.',
    );
  }
  return first.rank === 0 ? 1 : first.shape[0]!;
}

function findTensor(value: unknown, depth: number): tf.Tensor | undefined {
  if (value instanceof tf.Tensor) return value;
  if (depth > 8 || value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return undefined;
  const children = Array.isArray(value) ? value : Object.values(value as Record<string, unknown>);
  for (const child of children) {
    const found = findTensor(child, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * A short description of a batch for error messages: `{x: float32[64,784], y: int32[64]}`,
 * `[float32[64,784], int32[64]]`, `float32[64,10]`.
 */
export function describeBatch(batch: unknown): string {
  return describe(batch, 0);
}

function describe(value: unknown, depth: number): string {
  if (value instanceof tf.Tensor) return `${value.dtype}[${value.shape.join(',')}]`;
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (ArrayBuffer.isView(value)) {
    return `${value.constructor.name}(${(value as unknown as ArrayLike<number>).length ?? value.byteLength})`;
  }
  if (typeof value !== 'object') return typeof value === 'string' ? JSON.stringify(value) : typeof value;
  if (depth > 4) return Array.isArray(value) ? '[...]' : '{...}';
  if (Array.isArray(value)) {
    const shown = value.slice(0, 8).map((v) => describe(v, depth + 1));
    if (value.length > 8) shown.push(`... ${value.length - 8} more`);
    return `[${shown.join(', ')}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  const shown = entries.slice(0, 8).map(([k, v]) => `${k}: ${describe(v, depth + 1)}`);
  if (entries.length > 8) shown.push(`... ${entries.length - 8} more`);
  return `{${shown.join(', ')}}`;
}
