import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { APPLY_ADAM_KERNEL, type AdamKernelSlot, type ApplyAdamAttrs } from '@flint/core';
import { adamSimdLoop } from './adam-simd.js';

/*
 * `APPLY_ADAM_KERNEL` (core's FlintAdam runs it per parameter where the backend registers it) for
 * wasm: one pass over the parameter, its gradient and the moments instead of 12 tfjs kernels (each a
 * pass over memory and an allocation on the heap). The moments live on the wasm heap, allocated with
 * the module's own `_malloc` and owned by the slot: they are not tensors the engine counts, and the
 * pass is a wasm SIMD loop (adam-simd.ts) that imports the heap's `WebAssembly.Memory`. Where that
 * loop cannot run (no WebAssembly SIMD in this runtime, or the module's memory cannot be found), a
 * JavaScript loop does the same pass over views of the heap.
 *
 * Heap offsets stay valid when the heap grows; typed-array views of it may detach then (an unshared
 * memory's buffer is replaced), so views are taken afresh after every allocation and never kept.
 */

/** The parts of tfjs-wasm's emscripten module used here. */
interface HeapModule {
  readonly HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(offset: number): void;
  /** The threaded build's memory (shared, created by the glue and imported by the binary). */
  readonly wasmMemory?: unknown;
  /** The binary's exports; the single-threaded builds export their memory as `memory`. */
  readonly asm?: { readonly memory?: unknown };
}

/** The moments of one parameter, kept by the kernel between steps: m then v in one heap block. */
interface Moments {
  /** The emscripten module whose heap holds them (kept: a disposed BackendWasm drops its own reference). */
  readonly heap: HeapModule;
  /** Byte offsets on that heap. */
  readonly m: number;
  readonly v: number;
  readonly size: number;
  readonly shape: readonly number[];
}

const moments = new WeakMap<AdamKernelSlot, Moments>();

/** Frees the moments of a slot that was dropped without `release()` (an optimizer never disposed). */
const dropped = new FinalizationRegistry<{ heap: HeapModule; block: number }>(({ heap, block }) => heap._free(block));

/** The `WebAssembly.Memory` behind a tfjs-wasm module's heap, where it can be found. */
function heapMemory(heap: HeapModule): unknown {
  return heap.wasmMemory ?? heap.asm?.memory;
}

/** The heap's buffer as it is now (after any growth): the memory's own where found, else the one tfjs uses. */
function heapBuffer(heap: HeapModule): ArrayBufferLike {
  const buffer = (heapMemory(heap) as { buffer?: unknown } | undefined)?.buffer;
  const isBuffer = buffer instanceof ArrayBuffer || (typeof SharedArrayBuffer === 'function' && buffer instanceof SharedArrayBuffer);
  return isBuffer ? (buffer as ArrayBufferLike) : heap.HEAPU8.buffer;
}

/** @internal Which loop FlintApplyAdam on wasm runs; tests set `simd` to false to run the JavaScript loop where the SIMD one would. */
export const adamLoopChoice: { simd: boolean } = { simd: true };

let lastLoop: 'simd' | 'javascript' | undefined;

/** @internal Which loop the last FlintApplyAdam on wasm ran: 'simd', 'javascript', or undefined before the first. */
export function lastAdamLoop(): 'simd' | 'javascript' | undefined {
  return lastLoop;
}

function checkFloat(t: TensorInfo, what: string): void {
  if (t.dtype !== 'float32') throw new Error(`${APPLY_ADAM_KERNEL} (wasm): ${what} must be float32 (received ${t.dtype})`);
}

function heapOffset(wasm: BackendWasm, t: TensorInfo): number {
  return wasm.dataIdMap.get(t.dataId)!.memoryOffset >>> 0;
}

/** Takes the moments over at the slot's first step (copied onto the heap) and teaches the slot to read and release them. */
function createMoments(wasm: BackendWasm, slot: AdamKernelSlot, param: TensorInfo, m?: TensorInfo, v?: TensorInfo): Moments {
  if (m === undefined || v === undefined) throw new Error(`${APPLY_ADAM_KERNEL} (wasm): the first step of a slot needs the moments m and v`);
  const size = tf.util.sizeFromShape(param.shape);
  for (const [label, t] of [['m', m], ['v', v]] as const) {
    if (tf.util.sizeFromShape(t.shape) !== size) {
      throw new Error(`${APPLY_ADAM_KERNEL} (wasm): moment ${label} has shape [${t.shape.join(', ')}], the parameter [${param.shape.join(', ')}]`);
    }
  }
  checkFloat(m, 'the moment m');
  checkFloat(v, 'the moment v');
  const heap = wasm.wasm as unknown as HeapModule;
  // One block, v starting on a 16-byte boundary after m.
  const stride = Math.ceil(size / 4) * 16;
  const block = heap._malloc(Math.max(16, 2 * stride)) >>> 0;
  if (block === 0) {
    throw new Error(`${APPLY_ADAM_KERNEL} (wasm): the wasm heap has no room for the moments of a parameter of shape [${param.shape.join(', ')}]`);
  }
  const state: Moments = { heap, m: block, v: block + stride, size, shape: [...param.shape] };
  const buffer = heapBuffer(heap); // after the allocation
  new Float32Array(buffer, state.m, size).set(new Float32Array(buffer, heapOffset(wasm, m), size));
  new Float32Array(buffer, state.v, size).set(new Float32Array(buffer, heapOffset(wasm, v), size));
  moments.set(slot, state);
  dropped.register(slot, { heap, block }, slot);
  let freed = false;
  // Copies on whichever backend is active when read (a checkpoint, or a change of backend).
  slot.read = () => {
    if (freed) throw new Error(`${APPLY_ADAM_KERNEL} (wasm): the moments of this slot were released`);
    const now = heapBuffer(heap);
    const copy = (offset: number) => new Float32Array(now, offset, size).slice();
    return { m: tf.tensor(copy(state.m), [...state.shape], 'float32'), v: tf.tensor(copy(state.v), [...state.shape], 'float32') };
  };
  slot.release = () => {
    moments.delete(slot);
    if (freed) return;
    freed = true;
    dropped.unregister(slot);
    heap._free(block);
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
  checkFloat(param, 'the parameter');
  checkFloat(grad, 'the gradient');
  // Inputs first (moving a tensor here allocates), then the moments and the output, then views or
  // offsets: an allocation can grow the heap and detach views taken before it.
  wasm.dataIdMap.get(param.dataId);
  wasm.dataIdMap.get(grad.dataId);
  const state = moments.get(slot) ?? createMoments(wasm, slot, param, m, v);
  if (state.size !== size) {
    throw new Error(`${APPLY_ADAM_KERNEL} (wasm): the slot holds moments of shape [${state.shape.join(', ')}], the parameter is [${param.shape.join(', ')}]`);
  }
  const heap = wasm.wasm as unknown as HeapModule;
  if (state.heap !== heap) {
    throw new Error(`${APPLY_ADAM_KERNEL} (wasm): the slot's moments live on the heap of another wasm backend instance`);
  }
  const out = wasm.makeOutput([...param.shape], 'float32');
  const b1 = step.oneMinusBeta1;
  const b2 = step.oneMinusBeta2;
  const alpha = step.alpha;
  const eps = step.epsilon;

  const simd = adamLoopChoice.simd ? adamSimdLoop(heapMemory(heap)) : undefined;
  if (simd !== undefined) {
    // float32 throughout (the scalars rounded to float32 too), as the tfjs ops compute.
    simd(heapOffset(wasm, param), heapOffset(wasm, grad), state.m, state.v, heapOffset(wasm, out), size, b1, b2, alpha, eps);
    lastLoop = 'simd';
    return out;
  }

  const buffer = heapBuffer(heap);
  const p = new Float32Array(buffer, heapOffset(wasm, param), size);
  const g = new Float32Array(buffer, heapOffset(wasm, grad), size);
  const next = new Float32Array(buffer, heapOffset(wasm, out), size);
  const mm = new Float32Array(buffer, state.m, size);
  const vv = new Float32Array(buffer, state.v, size);
  // Intermediates in float64, rounded to float32 where stored: within a few float32 ulps of the
  // tfjs ops (which round every intermediate; 4e-7 relative after 50 steps), at half the time of
  // rounding each one with Math.fround, which measured no faster than the 12 tfjs kernels.
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
  lastLoop = 'javascript';
  return out;
};

/** FlintAdam's update for wasm. */
export function adamKernelConfigs(): KernelConfig[] {
  return [{ kernelName: APPLY_ADAM_KERNEL, backendName: 'wasm', kernelFunc: applyAdamWasm }];
}
