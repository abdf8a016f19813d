import type * as tf from '@tensorflow/tfjs';

/**
 * Name of the kernel `FlintAdam` runs for each parameter when the active backend registers it
 * (`@flint/backends` does for the native backend: TensorFlow's fused `ResourceApplyAdam` on moments
 * kept in TensorFlow resource variables). One Adam step of one parameter:
 *
 * - inputs `{ param, grad, m?, v? }`: `m` and `v`, the moments to start from, come only with the
 *   slot's first step; from then on the kernel keeps the moments;
 * - attributes `{ slot, step }` (`ApplyAdamAttrs`);
 * - output: the parameter's new value, which `FlintAdam` assigns to it.
 *
 * Without the kernel `FlintAdam` runs tfjs ops (12 per parameter and step) on any backend.
 */
export const APPLY_ADAM_KERNEL = 'FlintApplyAdam';

/**
 * The scalars of one Adam step, in TensorFlow's `ApplyAdam` form:
 * `m += (g - m) * oneMinusBeta1; v += (g² - v) * oneMinusBeta2; p -= alpha * m / (sqrt(v) + epsilon)`.
 */
export interface AdamStepScalars {
  /** beta1 as float32 (TensorFlow computes `1 - beta1` from it). */
  readonly beta1: number;
  readonly beta2: number;
  /** `1 - beta1` exactly as TensorFlow computes it in float32 from `beta1`. */
  readonly oneMinusBeta1: number;
  readonly oneMinusBeta2: number;
  /** Step size with the bias corrections folded in. */
  readonly alpha: number;
  /** Epsilon scaled so that the update equals tfjs's `lr * m̂ / (sqrt(v̂) + eps)`. */
  readonly epsilon: number;
}

/**
 * One step's scalars, the same object for every parameter of one `applyGradients` call. The kernel
 * may keep what it derives from them for the step (TensorFlow scalars) and set `release`, which
 * `FlintAdam` calls once the step is done.
 */
export interface AdamStep extends AdamStepScalars {
  release?: (() => void) | undefined;
  /**
   * The step's scalars as float32 tensors `[0, beta1, beta2, alpha, epsilon]`, given when the step is
   * traced into one TensorFlow call (`Trainer({ compile: true })`): the kernel uses them instead of
   * making its own from the numbers, so that they are inputs of the traced step and not constants.
   */
  feed?: readonly tf.Tensor[] | undefined;
}

/** A raw TensorFlow handle a compiled step takes as an input: its binding id and TF_DataType. */
export interface RawHandle {
  readonly id: number;
  readonly dtype: number;
}

/** What a kernel that keeps a slot's state in backend resources tells a compiled step (see `AdamKernelSlot.compiled`). */
export interface AdamCompiledSlot {
  /** The resources the update works on, in a fixed order, to be passed as inputs of a traced step. */
  readonly inputs: readonly RawHandle[];
  /** Whether the kernel's copy of the parameter holds `param`'s current value (it was not assigned from outside since). */
  inSync(param: tf.Tensor): boolean;
  /** `param` now holds the kernel's copy (a compiled step assigned the value it read back). */
  markSynced(param: tf.Tensor): void;
}

/**
 * What the kernel keeps for one parameter between steps. `FlintAdam` creates it empty; at the
 * slot's first step the kernel takes the moments over and sets `read` and `release`.
 */
export interface AdamKernelSlot {
  /** Copies of the moments as tfjs tensors on the active backend (the caller owns them). */
  read?: (() => { m: tf.Tensor; v: tf.Tensor }) | undefined;
  /** Frees what the kernel keeps for this slot. */
  release?: (() => void) | undefined;
  /** Set by a kernel whose state a compiled training step can take as inputs (the native backend's), until `release`. */
  compiled?: AdamCompiledSlot | undefined;
}

/** The attributes of `APPLY_ADAM_KERNEL`. */
export interface ApplyAdamAttrs {
  readonly slot: AdamKernelSlot;
  readonly step: AdamStep;
}
