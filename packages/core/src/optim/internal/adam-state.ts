import * as tf from '@tensorflow/tfjs';
import { APPLY_ADAM_KERNEL, type AdamCompiledSlot, type AdamKernelSlot, type AdamStep, type AdamStepScalars, type ApplyAdamAttrs } from '../adam-kernel.js';

/** The moments of one parameter, kept on one backend. */
export interface AdamSlot {
  /** The backend instance whose memory holds the state. */
  readonly backend: tf.KernelBackend;
  /** Applies one update to `param` and the moments. */
  update(param: tf.Variable, grad: tf.Tensor, step: AdamStep): void;
  /** Copies of the moments as fresh tfjs tensors (the caller owns them). */
  read(): { m: tf.Tensor; v: tf.Tensor };
  dispose(): void;
}

/** Moments as tfjs tensors, updated with 12 tfjs ops (any backend). */
export class OpsAdamSlot implements AdamSlot {
  readonly backend: tf.KernelBackend;
  private m: tf.Tensor;
  private v: tf.Tensor;

  constructor(m: tf.Tensor, v: tf.Tensor) {
    this.backend = tf.backend();
    this.m = tf.keep(m);
    this.v = tf.keep(v);
  }

  update(param: tf.Variable, grad: tf.Tensor, s: AdamStepScalars): void {
    const [m, v] = tf.tidy(() => {
      const m = tf.add(this.m, tf.mul(tf.sub(grad, this.m), s.oneMinusBeta1));
      const v = tf.add(this.v, tf.mul(tf.sub(tf.square(grad), this.v), s.oneMinusBeta2));
      param.assign(tf.sub(param, tf.div(tf.mul(m, s.alpha), tf.add(tf.sqrt(v), s.epsilon))));
      return [tf.keep(m), tf.keep(v)];
    });
    this.m.dispose();
    this.v.dispose();
    this.m = m;
    this.v = v;
  }

  read(): { m: tf.Tensor; v: tf.Tensor } {
    return { m: this.m.clone(), v: this.v.clone() };
  }

  dispose(): void {
    this.m.dispose();
    this.v.dispose();
  }
}

/**
 * Moments kept by the backend's `APPLY_ADAM_KERNEL` (the native backend's: TensorFlow resource
 * variables updated in place by one fused op), which also computes the new parameter.
 */
export class KernelAdamSlot implements AdamSlot {
  readonly backend: tf.KernelBackend;
  private readonly slot: AdamKernelSlot = {};
  /** The moments to start from, until the kernel takes them over at the first step. */
  private initial: { m: tf.Tensor; v: tf.Tensor } | undefined;

  constructor(m: tf.Tensor, v: tf.Tensor) {
    this.backend = tf.backend();
    this.initial = { m: tf.keep(m), v: tf.keep(v) };
  }

  update(param: tf.Variable, grad: tf.Tensor, step: AdamStep): void {
    const attrs: ApplyAdamAttrs = { slot: this.slot, step };
    const next = tf.engine().runKernel(APPLY_ADAM_KERNEL, { param, grad, ...this.initial }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    param.assign(next);
    next.dispose();
    this.releaseInitial();
  }

  /** The kernel's resources for a compiled step, once its first step has made them. */
  get compiled(): AdamCompiledSlot | undefined {
    return this.initial === undefined ? this.slot.compiled : undefined;
  }

  read(): { m: tf.Tensor; v: tf.Tensor } {
    if (this.initial !== undefined) return { m: this.initial.m.clone(), v: this.initial.v.clone() };
    return this.slot.read!();
  }

  private releaseInitial(): void {
    if (this.initial === undefined) return;
    tf.dispose([this.initial.m, this.initial.v]);
    this.initial = undefined;
  }

  dispose(): void {
    this.releaseInitial();
    this.slot.release?.();
  }
}
