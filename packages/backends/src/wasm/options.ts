import os from 'node:os';
import { z } from 'zod';

/**
 * The threaded wasm build pre-spawns 8 emscripten workers and its C++ side caps XNNPACK's pool at 8,
 * so 8 is the most threads it can run.
 */
export const MAX_WASM_THREADS = 8;

/** What `threads: 'auto'` uses at most: tfjs's own former cap; not measured beyond 2 cores here. */
export const AUTO_WASM_THREADS_CAP = 4;

const threadsMessage = `must be 'auto', false, or a whole number of threads from 1 to ${MAX_WASM_THREADS}`;

export const wasmImprovementsOptionsSchema = z.strictObject({
  /**
   * Replace the wasm `BatchMatMul` and `_FusedMatMul` kernels so that transposed and batched products
   * run through XNNPACK instead of tfjs-backend-wasm's scalar loop (the backward pass of every dense
   * layer asks for transposed products).
   */
  fastMatmul: z.boolean({ error: 'must be true or false' }).default(true),
  /**
   * Replace wasm kernels that copy whole tensors for nothing: `Slice`, `StridedSlice`, `SplitV` and
   * `Unpack` copy their entire input out of the heap on every call (a batch sliced from a 60k-sample
   * tensor copied all of it), and `Identity`, which tfjs runs on every input it saves for the backward
   * pass, copies instead of sharing the buffer.
   */
  fewerCopies: z.boolean({ error: 'must be true or false' }).default(true),
  /**
   * XNNPACK threads on the wasm backend in Node. 'auto': one per CPU idle when installing, at most 4
   * (a busy core only makes the workers wait); false or 1: the stock single-threaded build; a number:
   * exactly that many (error if the threaded build cannot start).
   */
  threads: z
    .union(
      [
        z.literal('auto'),
        z.literal(false),
        z
          .number({ error: threadsMessage })
          .int({ error: threadsMessage })
          .min(1, { error: threadsMessage })
          .max(MAX_WASM_THREADS, { error: threadsMessage }),
      ],
      { error: threadsMessage },
    )
    .default('auto'),
  /**
   * Add the kernels wasm lacks and that gradients need (`UnsortedSegmentSum`, `Conv2DBackpropFilter`,
   * the depthwise backprops) and `Einsum`, so conv nets and embeddings train on wasm; and replace the
   * stock `MaxPoolGrad`, which drops the gradient of windows whose maximum is not positive.
   */
  fallbackKernels: z.boolean({ error: 'must be true or false' }).default(true),
  /**
   * Register wasm kernels for Flint's `Linear` (matmul + bias + activation as one kernel, and its
   * activation gradient) and `crossEntropy` (loss and gradient in one pass), so a training step runs
   * a fraction of the tfjs ops it would otherwise; and `FlintAdam`'s update (`APPLY_ADAM_KERNEL`: m, v and
   * the parameter in one pass instead of 12 kernels per parameter).
   */
  layerKernels: z.boolean({ error: 'must be true or false' }).default(true),
  /**
   * Folder under which the wasm worker script is cached (in a `flint-wasm-<version>` subfolder).
   * Only used when threads are on.
   */
  cacheDir: z.string({ error: 'must be a folder path' }).min(1, { error: 'must be a folder path' }).default(() => os.tmpdir()),
});

export type WasmImprovementsOptions = z.input<typeof wasmImprovementsOptionsSchema>;
export type ResolvedWasmImprovementsOptions = z.output<typeof wasmImprovementsOptionsSchema>;

/** How a kernel that wasm lacked is provided. */
export type AddedKernelSource = 'wasm' | 'cpu-fallback';

/** What `installWasmImprovements` did, for the trainer to print in one line. */
export interface WasmSetupReport {
  /** Whether the transposed/batched matmul fix is installed. */
  readonly fastMatmul: boolean;
  /** Whether the kernels that avoid whole-tensor copies are installed. */
  readonly fewerCopies: boolean;
  /** Kernels of the wasm backend that were replaced by Flint's. */
  readonly replacedKernels: readonly string[];
  /** Whether the kernels of Flint's `Linear` and `crossEntropy` are registered for wasm. */
  readonly layerKernels: boolean;
  /** Kernels that wasm lacked and Flint added, with how each runs. */
  readonly addedKernels: readonly { readonly name: string; readonly via: AddedKernelSource }[];
  /** XNNPACK threads the wasm backend runs with (1 = no worker threads). */
  readonly threads: number;
  /** The `threads` option as given (after defaults). */
  readonly threadsRequested: number | 'auto' | false;
  /** Why 'auto' runs fewer threads than the machine has CPUs (up to 4): few idle, or the threaded build failed. */
  readonly threadsNote?: string;
  /** The wasm binary in use. */
  readonly wasmBinary: 'tfjs-backend-wasm-threaded-simd.wasm' | 'tfjs-backend-wasm-simd.wasm' | 'tfjs-backend-wasm.wasm';
  /** The cached emscripten worker script (threads only). */
  readonly workerScript?: string;
  /** Short facts, e.g. ['2 threads', 'fast matmul', 'fewer copies', 'layer kernels', '+5 kernels']. */
  readonly details: readonly string[];
  /** One line for the console, e.g. "wasm: 2 threads, fast matmul (BatchMatMul, _FusedMatMul), ...". */
  readonly summary: string;
}
