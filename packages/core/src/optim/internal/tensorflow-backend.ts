import * as tf from '@tensorflow/tfjs';

/**
 * The parts of `@tensorflow/tfjs-node`'s backend (`NodeJSKernelBackend`) and its N-API binding that
 * Flint's fused paths use. Flint never imports tfjs-node: it recognizes the active backend by its
 * name and these members, and runs TensorFlow ops through it directly (no tfjs kernel, no tape).
 */
export interface TfOpAttr {
  readonly name: string;
  readonly type: number;
  readonly value: unknown;
}

export interface TfTensorMetadata {
  readonly id: number;
  readonly shape: number[];
  readonly dtype: number;
}

export interface TfBinding {
  readonly TF_FLOAT: number;
  readonly TF_INT32: number;
  readonly TF_ATTR_TYPE: number;
  readonly TF_ATTR_BOOL: number;
  readonly TF_ATTR_SHAPE: number;
  readonly TF_ATTR_STRING: number;
  executeOp(name: string, attrs: readonly TfOpAttr[], inputIds: readonly number[], numOutputs: number): TfTensorMetadata[];
  createTensor(shape: readonly number[], dtype: number, values: Float32Array | Int32Array): number;
  deleteTensor(id: number): void;
  tensorDataSync(id: number): Float32Array | Int32Array;
}

export interface TensorflowBackend {
  readonly binding: TfBinding;
  /** TensorFlow handle ids of tfjs tensors (moves data from another backend first). */
  getInputTensorIds(tensors: readonly tf.Tensor[]): number[];
  /** Wraps a TensorFlow output handle as a tfjs tensor tracked by the engine (in the active scope). */
  createOutputTensor(metadata: TfTensorMetadata): tf.Tensor;
}

/** The tfjs-node backend when it is the active backend, else undefined. */
export function activeTensorflowBackend(): TensorflowBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const backend = tf.backend() as unknown as Partial<TensorflowBackend>;
  const binding = backend.binding as Partial<TfBinding> | undefined;
  if (
    binding === undefined ||
    typeof binding.executeOp !== 'function' ||
    typeof binding.createTensor !== 'function' ||
    typeof binding.deleteTensor !== 'function' ||
    typeof backend.getInputTensorIds !== 'function' ||
    typeof backend.createOutputTensor !== 'function'
  ) {
    return undefined;
  }
  return backend as TensorflowBackend;
}

/** `{ name, type: TYPE, value: float32 }`, the `T`/`dtype` attribute most ops take. */
export function floatTypeAttr(binding: TfBinding, name: string): TfOpAttr {
  return { name, type: binding.TF_ATTR_TYPE, value: binding.TF_FLOAT };
}

/** A float32 scalar as a raw TensorFlow handle; delete it with `binding.deleteTensor`. */
export function rawScalar(binding: TfBinding, value: number): number {
  return binding.createTensor([], binding.TF_FLOAT, new Float32Array([value]));
}
