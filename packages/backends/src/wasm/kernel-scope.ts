import * as tf from '@tensorflow/tfjs';
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** Inputs of a kernel call: named tensors, or a list (Concat, AddN, Einsum). */
export type KernelInputs = Record<string, TensorInfo | undefined> | TensorInfo[];

/**
 * Runs wasm kernels from inside another wasm kernel, the way tfjs backends compose kernels (calling
 * kernel functions directly, never ops, so nothing lands on the gradient tape), and disposes every
 * intermediate result when the composite kernel ends. `keep` hands one result out.
 */
export class KernelScope {
  private readonly temps: TensorInfo[] = [];

  constructor(readonly backend: BackendWasm) {}

  /** Runs the wasm kernel `name` and tracks its output for disposal. */
  run(name: string, inputs: KernelInputs, attrs: object = {}): TensorInfo {
    const kernel = tf.getKernel(name, 'wasm');
    if (kernel === undefined) throw new Error(`Flint wasm kernels: the wasm kernel '${name}' is not registered`);
    const out = kernel.kernelFunc({
      inputs: inputs as never,
      backend: this.backend,
      attrs: attrs as NamedAttrMap,
    });
    if (Array.isArray(out)) throw new Error(`Flint wasm kernels: '${name}' returned several tensors`);
    return this.track(out);
  }

  /** Tracks a tensor made by other means (makeOutput, a saved kernel function). */
  track(t: TensorInfo): TensorInfo {
    this.temps.push(t);
    return t;
  }

  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return this.run('Transpose', { x }, { perm });
  }

  /** A tensor of `shape` filled with `value` (also fine for empty shapes). */
  fill(shape: number[], value: number, dtype: 'float32' | 'int32' = 'float32'): TensorInfo {
    return this.run('Fill', {}, { shape, value, dtype });
  }

  /** A zero-filled tensor (also fine for empty shapes). */
  zeros(shape: number[], dtype: 'float32' | 'int32' = 'float32'): TensorInfo {
    return this.fill(shape, 0, dtype);
  }

  /** Stops tracking `t` so that it survives `dispose` (the composite kernel's result). */
  keep(t: TensorInfo): TensorInfo {
    const i = this.temps.lastIndexOf(t);
    if (i >= 0) this.temps.splice(i, 1);
    return t;
  }

  /** Disposes every tracked intermediate (reshapes only drop a reference). */
  dispose(): void {
    for (const t of this.temps) this.backend.disposeData(t.dataId);
    this.temps.length = 0;
  }
}

/** Runs `body` with a fresh scope and disposes the scope's intermediates afterwards, also on error. */
export function withKernelScope(backend: BackendWasm, body: (scope: KernelScope) => TensorInfo): TensorInfo {
  const scope = new KernelScope(backend);
  try {
    return scope.keep(body(scope));
  } finally {
    scope.dispose();
  }
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
