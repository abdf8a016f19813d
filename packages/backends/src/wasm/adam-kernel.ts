import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { APPLY_ADAM_KERNEL, type AdamKernelSlot, type ApplyAdamAttrs } from '@flint/core';

/*
 * `APPLY_ADAM_KERNEL` (core's FlintAdam runs it per parameter where the backend registers it) for
 * wasm: one pass over the parameter, its gradient and the moments instead of 12 tfjs kernels (each a
 * pass over memory and an allocation on the heap). The moments live in JavaScript Float32Arrays
 * owned by the slot, off the wasm heap: the heap can grow (and detach views) whenever something is
 * allocated on it, the moments never move, and they are not tensors the engine counts.
 */

/** The moments of one parameter, kept by the kernel between steps. */
interface Moments {
  readonly m: Float32Array;
  readonly v: Float32Array;
  readonly shape: readonly number[];
}

const moments = new WeakMap<AdamKernelSlot, Moments>();

function floatData(wasm: BackendWasm, t: TensorInfo, what: string): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`${APPLY_ADAM_KERNEL} (wasm): ${what} must be float32 (received ${t.dtype})`);
  return wasm.typedArrayFromHeap(t) as Float32Array;
}

/** Takes the moments over at the slot's first step and teaches the slot to read and release them. */
function createMoments(wasm: BackendWasm, slot: AdamKernelSlot, param: TensorInfo, m?: TensorInfo, v?: TensorInfo): Moments {
  if (m === undefined || v === undefined) throw new Error(`${APPLY_ADAM_KERNEL} (wasm): the first step of a slot needs the moments m and v`);
  const size = tf.util.sizeFromShape(param.shape);
  for (const [label, t] of [['m', m], ['v', v]] as const) {
    if (tf.util.sizeFromShape(t.shape) !== size) {
      throw new Error(`${APPLY_ADAM_KERNEL} (wasm): moment ${label} has shape [${t.shape.join(', ')}], the parameter [${param.shape.join(', ')}]`);
    }
  }
  const state: Moments = {
    m: Float32Array.from(floatData(wasm, m, 'the moment m')),
    v: Float32Array.from(floatData(wasm, v, 'the moment v')),
    shape: [...param.shape],
  };
  moments.set(slot, state);
  // Copies on whichever backend is active when read (a checkpoint, or a change of backend).
  slot.read = () => ({ m: tf.tensor(state.m.slice(), [...state.shape], 'float32'), v: tf.tensor(state.v.slice(), [...state.shape], 'float32') });
  slot.release = () => {
    moments.delete(slot);
  };
  return state;
}

/**
 * One Adam step of one parameter in TensorFlow's `ApplyAdam` form (core's `AdamStepScalars`):
 * `m += (g - m)(1 - β1); v += (g² - v)(1 - β2); p -= α m / (sqrt(v) + ε)`, the moments updated in
 * place, the new parameter returned as a new tensor (FlintAdam assigns it).
 */
export const applyAdamWasm: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const { param, grad, m, v } = inputs as { param: TensorInfo; grad: TensorInfo; m?: TensorInfo; v?: TensorInfo };
  const { slot, step } = attrs as unknown as ApplyAdamAttrs;
  const size = tf.util.sizeFromShape(param.shape);
  if (tf.util.sizeFromShape(grad.shape) !== size) {
    throw new Error(`${APPLY_ADAM_KERNEL} (wasm): the gradient has shape [${grad.shape.join(', ')}], the parameter [${param.shape.join(', ')}]`);
  }
  // Inputs first (moving a tensor here allocates), then the output, then views: an allocation can
  // grow the heap and detach views taken before it.
  wasm.dataIdMap.get(param.dataId);
  wasm.dataIdMap.get(grad.dataId);
  const state = moments.get(slot) ?? createMoments(wasm, slot, param, m, v);
  if (state.m.length !== size) {
    throw new Error(`${APPLY_ADAM_KERNEL} (wasm): the slot holds moments of shape [${state.shape.join(', ')}], the parameter is [${param.shape.join(', ')}]`);
  }
  const out = wasm.makeOutput([...param.shape], 'float32');
  const p = floatData(wasm, param, 'the parameter');
  const g = floatData(wasm, grad, 'the gradient');
  const next = wasm.typedArrayFromHeap(out) as Float32Array;
  const mm = state.m;
  const vv = state.v;
  // Intermediates in float64, rounded to float32 where stored: within a few float32 ulps of the
  // tfjs ops (which round every intermediate; 4e-7 relative after 50 steps), at half the time of
  // rounding each one with Math.fround, which measured no faster than the 12 tfjs kernels.
  const b1 = step.oneMinusBeta1;
  const b2 = step.oneMinusBeta2;
  const alpha = step.alpha;
  const eps = step.epsilon;
  for (let i = 0; i < size; i++) {
    const gi = g[i]!;
    const mi = mm[i]!;
    const vi = vv[i]!;
    const m1 = mi + (gi - mi) * b1;
    const v1 = vi + (gi * gi - vi) * b2;
    mm[i] = m1;
    vv[i] = v1;
    next[i] = p[i]! - (alpha * m1) / (Math.sqrt(v1) + eps);
  }
  return out;
};

/** FlintAdam's update for wasm. */
export function adamKernelConfigs(): KernelConfig[] {
  return [{ kernelName: APPLY_ADAM_KERNEL, backendName: 'wasm', kernelFunc: applyAdamWasm }];
}
