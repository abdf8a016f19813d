import * as tf from '@tensorflow/tfjs';
import { floatTypeAttr, rawScalar, type TensorflowBackend, type TfOpAttr } from './tensorflow-backend.js';

/**
 * The per-step scalars of one Adam update, in TensorFlow's `ApplyAdam` form:
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

/** The moments of one parameter, kept on one backend. */
export interface AdamSlot {
  /** The backend instance whose memory holds the state. */
  readonly backend: tf.KernelBackend;
  /** Applies one update to `param` and the moments. */
  update(param: tf.Variable, grad: tf.Tensor, scalars: AdamStepScalars, shared: SharedScalars | undefined): void;
  /** Copies of the moments as fresh tfjs tensors (the caller owns them). */
  read(): { m: tf.Tensor; v: tf.Tensor };
  dispose(): void;
}

/** Raw TensorFlow scalars shared by every slot in one `applyGradients` call (native path). */
export interface SharedScalars {
  readonly ids: readonly number[];
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

/** TensorFlow's `VarHandleOp` shared_name for an anonymous resource (`ResourceHandle::ANONYMOUS_NAME`). */
const ANONYMOUS_NAME = 'cd2c89b7-88b7-44c8-ad83-06c2a9158347';

/**
 * Moments (and a copy of the parameter) in TensorFlow resource variables, updated in place by one
 * `ResourceApplyAdam` kernel (one pass over memory, both cores) and read back with one
 * `ReadVariableOp`: 2 TensorFlow ops per parameter and step instead of about 16 tfjs ops.
 */
export class NativeAdamSlot implements AdamSlot {
  readonly backend: tf.KernelBackend;
  private readonly native: TensorflowBackend;
  private readonly handles: { param: number; m: number; v: number };
  /** The dataId the parameter had after our last write; another one means it was assigned from outside. */
  private synced: object | undefined;
  private disposed = false;

  constructor(native: TensorflowBackend, param: tf.Variable, m: tf.Tensor, v: tf.Tensor) {
    this.native = native;
    this.backend = native as unknown as tf.KernelBackend;
    const shape = param.shape;
    const created: number[] = [];
    try {
      for (let i = 0; i < 3; i++) created.push(this.varHandle(shape));
    } catch (error) {
      for (const id of created) this.destroy(id);
      throw error;
    }
    this.handles = { param: created[0]!, m: created[1]!, v: created[2]! };
    this.assign(this.handles.m, m);
    this.assign(this.handles.v, v);
    this.synced = undefined;
  }

  private get attrs(): { dtype: TfOpAttr[]; apply: TfOpAttr[] } {
    const b = this.native.binding;
    return (nativeAttrs ??= {
      dtype: [floatTypeAttr(b, 'dtype')],
      apply: [
        floatTypeAttr(b, 'T'),
        { name: 'use_locking', type: b.TF_ATTR_BOOL, value: false },
        { name: 'use_nesterov', type: b.TF_ATTR_BOOL, value: false },
      ],
    });
  }

  private varHandle(shape: readonly number[]): number {
    const b = this.native.binding;
    const [handle] = b.executeOp(
      'VarHandleOp',
      [
        floatTypeAttr(b, 'dtype'),
        { name: 'shape', type: b.TF_ATTR_SHAPE, value: [...shape] },
        { name: 'container', type: b.TF_ATTR_STRING, value: '' },
        { name: 'shared_name', type: b.TF_ATTR_STRING, value: ANONYMOUS_NAME },
      ],
      [],
      1,
    );
    return handle!.id;
  }

  private assign(handle: number, value: tf.Tensor): void {
    const [id] = this.native.getInputTensorIds([value]);
    this.native.binding.executeOp('AssignVariableOp', this.attrs.dtype, [handle, id!], 0);
  }

  private readRaw(handle: number): tf.Tensor {
    const [meta] = this.native.binding.executeOp('ReadVariableOp', this.attrs.dtype, [handle], 1);
    return this.native.createOutputTensor(meta!);
  }

  private destroy(handle: number): void {
    const b = this.native.binding;
    try {
      b.executeOp('DestroyResourceOp', [{ name: 'ignore_lookup_error', type: b.TF_ATTR_BOOL, value: true }], [handle], 0);
    } finally {
      b.deleteTensor(handle);
    }
  }

  /** Raw scalars for one step: [zero, beta1, beta2, alpha, epsilon]; delete them with `releaseShared`. */
  static shareScalars(native: TensorflowBackend, s: AdamStepScalars): SharedScalars {
    const b = native.binding;
    return { ids: [rawScalar(b, 0), rawScalar(b, s.beta1), rawScalar(b, s.beta2), rawScalar(b, s.alpha), rawScalar(b, s.epsilon)] };
  }

  static releaseShared(native: TensorflowBackend, shared: SharedScalars): void {
    for (const id of shared.ids) native.binding.deleteTensor(id);
  }

  update(param: tf.Variable, grad: tf.Tensor, _s: AdamStepScalars, shared: SharedScalars | undefined): void {
    const [zero, beta1, beta2, alpha, epsilon] = shared!.ids as [number, number, number, number, number];
    if (param.dataId !== this.synced) this.assign(this.handles.param, param);
    const [gradId] = this.native.getInputTensorIds([grad]);
    const { param: p, m, v } = this.handles;
    this.native.binding.executeOp('ResourceApplyAdam', this.attrs.apply, [p, m, v, zero, zero, alpha, beta1, beta2, epsilon, gradId!], 0);
    const next = this.readRaw(p);
    param.assign(next);
    next.dispose();
    this.synced = param.dataId;
  }

  read(): { m: tf.Tensor; v: tf.Tensor } {
    if (tf.backend() === this.backend) return { m: this.readRaw(this.handles.m), v: this.readRaw(this.handles.v) };
    // Another backend is active (it changed between steps): copy through the host, as tfjs's
    // engine would have tracked a native output tensor on the wrong backend.
    return { m: this.readToHost(this.handles.m), v: this.readToHost(this.handles.v) };
  }

  private readToHost(handle: number): tf.Tensor {
    const b = this.native.binding;
    const [meta] = b.executeOp('ReadVariableOp', this.attrs.dtype, [handle], 1);
    try {
      return tf.tensor(b.tensorDataSync(meta!.id), meta!.shape, 'float32');
    } finally {
      b.deleteTensor(meta!.id);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const h of [this.handles.param, this.handles.m, this.handles.v]) this.destroy(h);
  }
}

let nativeAttrs: { dtype: TfOpAttr[]; apply: TfOpAttr[] } | undefined;
