import * as tf from '@tensorflow/tfjs';
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** Side of the square tiles `swapLastTwo` copies (8×8: wider tiles lose to cache conflicts at power-of-two row lengths, 512×512 0.36 ms against 0.58 with 32×32). */
const TILE = 8;

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

  /**
   * `x` ([batch, r, c]) with its last two dimensions swapped ([batch, c, r]): float32 in a tiled
   * JavaScript loop over heap views, about 4x faster than the wasm Transpose kernel on MLP-sized
   * matrices (which walks the output with a general strided index); other dtypes through Transpose.
   */
  swapLastTwo(x: TensorInfo): TensorInfo {
    if (x.dtype !== 'float32' || x.shape.length !== 3) return this.transpose(x, [0, 2, 1]);
    const [batch, r, c] = x.shape as [number, number, number];
    // The input first (moving it here allocates), then the output, then views: an allocation can grow
    // the heap and detach views taken before it.
    this.backend.dataIdMap.get(x.dataId);
    const out = this.track(this.backend.makeOutput([batch, c, r], 'float32'));
    const src = this.backend.typedArrayFromHeap(x);
    const dst = this.backend.typedArrayFromHeap(out);
    const T = TILE;
    for (let b = 0, o = 0; b < batch; b++, o += r * c) {
      for (let i0 = 0; i0 < r; i0 += T) {
        const i1 = Math.min(i0 + T, r);
        for (let j0 = 0; j0 < c; j0 += T) {
          const j1 = Math.min(j0 + T, c);
          for (let i = i0; i < i1; i++) {
            const row = o + i * c;
            for (let j = j0; j < j1; j++) dst[o + j * r + i] = src[row + j]!;
          }
        }
      }
    }
    return out;
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
