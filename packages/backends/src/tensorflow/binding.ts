import type * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';

/**
 * The parts of `@tensorflow/tfjs-node`'s backend (`NodeJSKernelBackend`) and its N-API binding that
 * Flint's kernels use: the one typing of them. Flint never imports tfjs-node's internals: its
 * kernels get this backend from tfjs and run TensorFlow ops through it directly.
 */
export interface OpAttr {
  readonly name: string;
  readonly type: number;
  readonly value: unknown;
}

export interface OutputMetadata {
  readonly id: number;
  readonly shape: number[];
  readonly dtype: number;
}

export interface TfBinding {
  readonly TF_FLOAT: number;
  readonly TF_INT32: number;
  readonly TF_BOOL: number;
  readonly TF_ATTR_TYPE: number;
  readonly TF_ATTR_BOOL: number;
  readonly TF_ATTR_FLOAT: number;
  readonly TF_ATTR_SHAPE: number;
  readonly TF_ATTR_STRING: number;
  executeOp(name: string, attrs: readonly OpAttr[], inputIds: readonly number[], numOutputs: number): OutputMetadata[];
  createTensor(shape: readonly number[], dtype: number, values: Float32Array | Int32Array): number;
  deleteTensor(id: number): void;
  tensorDataSync(id: number): Float32Array | Int32Array;
}

export interface NodeBackend {
  readonly binding: TfBinding;
  /** TensorFlow handle ids of tfjs tensors (moves data from another backend first). */
  getInputTensorIds(tensors: readonly TensorInfo[]): number[];
  /** Wraps a TensorFlow output handle as a tfjs tensor tracked by the engine (in the active scope). */
  createOutputTensor(metadata: OutputMetadata): tf.Tensor;
  incRef(dataId: object): void;
}

/** `{ name, type: TYPE, value: dtype }`, the `T`/`dtype` attribute most ops take. */
export function typeAttr(b: NodeBackend, name: string, dtype: tf.DataType): OpAttr {
  const value = dtype === 'float32' ? b.binding.TF_FLOAT : dtype === 'int32' ? b.binding.TF_INT32 : dtype === 'bool' ? b.binding.TF_BOOL : undefined;
  if (value === undefined) throw new Error(`Flint native kernels: dtype ${dtype} is not supported here`);
  return { name, type: b.binding.TF_ATTR_TYPE, value };
}

export function boolAttr(b: NodeBackend, name: string, value: boolean): OpAttr {
  return { name, type: b.binding.TF_ATTR_BOOL, value };
}

/** A float32 scalar as a raw TensorFlow handle; delete it with `binding.deleteTensor`. */
export function rawScalar(b: NodeBackend, value: number): number {
  return b.binding.createTensor([], b.binding.TF_FLOAT, new Float32Array([value]));
}
