import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { BackendError, MisconfigurationError } from '@flint/core';
import { probeNativeBackend } from './native/index.js';
import { installNativeKernels } from './native-kernels/index.js';
import { installWasmImprovements, uninstallWasmImprovements, type WasmImprovementsOptions } from './wasm/index.js';
import { tameWasmModule } from './wasm/process-handlers.js';

export type AcceleratorName = 'auto' | 'cpu' | 'gpu';
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** What the accelerator selection chose and why; printed once at the start. */
export interface BackendChoice {
  readonly accelerator: 'cpu' | 'gpu';
  readonly backend: BackendName;
  /** The package that provides the backend. */
  readonly provider: string;
  /** Why this one: what was asked, and what was skipped on the way with the reason. */
  readonly reason: string;
  /** Extra facts (threads, versions). */
  readonly details: readonly string[];
}

export interface BackendRequest {
  readonly accelerator: AcceleratorName;
  readonly backend?: BackendName | undefined;
  /** Flint's improvements of the wasm backend (fast transposed matmul, threads, missing gradient kernels), or false for stock wasm. Default: all on. */
  readonly wasm?: WasmImprovementsOptions | false | undefined;
}

/** Tries a backend; returns a reason string when it is not installed or does not work. */
interface Candidate {
  readonly backend: BackendName;
  readonly accelerator: 'cpu' | 'gpu';
  readonly provider: string;
  readonly install: string;
  load(): Promise<{ ok: true; details: string[] } | { ok: false; reason: string }>;
}

function isResolvable(name: string): boolean {
  for (const base of [process.cwd() + '/', import.meta.url]) {
    try {
      createRequire(base).resolve(`${name}/package.json`);
      return true;
    } catch {
      // not from here
    }
  }
  return false;
}

async function importOptional(name: string): Promise<unknown> {
  // The optional peers are loaded dynamically so that Flint works without them.
  for (const base of [process.cwd() + '/', import.meta.url]) {
    let resolved: string;
    try {
      resolved = createRequire(base).resolve(name);
    } catch {
      continue;
    }
    return import(resolved);
  }
  return import(name);
}

async function activate(name: BackendName): Promise<boolean> {
  if (tf.getBackend() === name) return true;
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

interface CpuBackend {
  readSync(dataId: object): tf.TypedArray;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.TypedArray): TensorInfo;
  disposeIntermediateTensorInfo(info: TensorInfo): void;
}
const castsCopy = Symbol.for('flint.cpuCastsCopy');

/**
 * Makes the cpu backend's Cast give every cast to another dtype a buffer of its own. tfjs's cpu
 * backend shares the input's buffer when nothing is lost (int32 or bool to float32, bool to int32),
 * so one buffer serves an int32 and a float32 tensor, and tfjs records it as int32. Moved to wasm or
 * tensorflow (where the backend is chosen inside `fit`, after the data was made on cpu), it is copied
 * as int32 and the float32 tensor reads those bytes as floats: [1, 2, 3] becomes [1.4e-45, 2.8e-45,
 * 4.2e-45]. With a buffer per dtype every tensor moves with its values. Done when `@flint/trainer` is
 * imported, which in an ES module is before any of the importer's own code runs.
 */
function castOnCpuByValue(): void {
  const stock = tf.getKernel('Cast', 'cpu') as (KernelConfig & { [castsCopy]?: true }) | undefined;
  if (stock === undefined || stock[castsCopy] === true) return;
  const kernel: KernelConfig & { [castsCopy]: true } = {
    kernelName: 'Cast',
    backendName: 'cpu',
    kernelFunc: (args) => {
      const out = stock.kernelFunc(args) as TensorInfo;
      const { x } = args.inputs as { x: TensorInfo };
      if (out.dataId !== x.dataId || out.dtype === x.dtype) return out;
      const backend = args.backend as unknown as CpuBackend;
      const values = tf.util.toTypedArray(backend.readSync(x.dataId), out.dtype);
      backend.disposeIntermediateTensorInfo(out); // the shared reference the stock kernel took
      return backend.makeTensorInfo([...out.shape], out.dtype, values);
    },
    [castsCopy]: true,
  };
  tf.unregisterKernel('Cast', 'cpu');
  tf.registerKernel(kernel);
}

castOnCpuByValue();

let wasmOptions: WasmImprovementsOptions | false = {};

/** Installs (or removes) Flint's wasm improvements as asked; returns the facts to print. */
async function prepareWasm(): Promise<string[]> {
  if (wasmOptions === false) {
    await uninstallWasmImprovements();
    return ['stock'];
  }
  const report = await installWasmImprovements(wasmOptions);
  return [...report.details];
}

function nativeCandidate(pkg: '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu'): Candidate {
  const gpu = pkg === '@tensorflow/tfjs-node-gpu';
  return {
    backend: 'tensorflow',
    accelerator: gpu ? 'gpu' : 'cpu',
    provider: pkg,
    install: gpu
      ? 'install @tensorflow/tfjs-node-gpu (npm install @tensorflow/tfjs-node-gpu) on a machine with CUDA'
      : 'install @tensorflow/tfjs-node (npm install @tensorflow/tfjs-node), or where its download is blocked run `npx flint setup-native`',
    async load() {
      if (!isResolvable(pkg)) return { ok: false, reason: `${pkg} is not installed` };
      if (!gpu) {
        // A missing or broken build is found out in a child process, so it cannot harm this one.
        const probe = await probeNativeBackend();
        if (!probe.ok) return { ok: false, reason: probe.reason };
        // TensorFlow's startup lines (CPU features, oneDNN) are INFO/WARNING: keep them off the console.
        process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
      }
      try {
        await importOptional(pkg);
      } catch (error) {
        return { ok: false, reason: `${pkg} is installed but does not load (${firstLine(error)})` };
      }
      if (!(await activate('tensorflow'))) return { ok: false, reason: `${pkg} loaded but its backend did not initialize` };
      const backend = tf.backend() as unknown as { isUsingGpuDevice?: () => boolean; binding?: { TF_Version?: string } };
      if (gpu && backend.isUsingGpuDevice?.() !== true) {
        return { ok: false, reason: `${pkg} is installed but TensorFlow sees no GPU` };
      }
      const version = backend.binding?.TF_Version;
      // Flint's kernels for this backend (dense layer, cross-entropy, cheaper Cast/Reshape/Step/_FusedMatMul).
      installNativeKernels();
      return { ok: true, details: [...(version === undefined ? [] : [`TensorFlow ${version}`]), 'Flint kernels'] };
    },
  };
}

const wasmCandidate: Candidate = {
  backend: 'wasm',
  accelerator: 'cpu',
  provider: '@tensorflow/tfjs-backend-wasm',
  install: 'install @tensorflow/tfjs-backend-wasm (npm install @tensorflow/tfjs-backend-wasm)',
  async load() {
    if (!isResolvable('@tensorflow/tfjs-backend-wasm')) return { ok: false, reason: '@tensorflow/tfjs-backend-wasm is not installed' };
    let details: string[] = [];
    try {
      await importOptional('@tensorflow/tfjs-backend-wasm');
      details = await prepareWasm();
    } catch (error) {
      return { ok: false, reason: `@tensorflow/tfjs-backend-wasm does not load (${firstLine(error)})` };
    }
    if (!(await activate('wasm'))) return { ok: false, reason: 'the wasm backend did not initialize' };
    // emscripten's process handlers would take over every uncaught error of the program.
    tameWasmModule((tf.backend() as unknown as { wasm?: unknown }).wasm);
    return { ok: true, details: ['XNNPACK', ...details] };
  },
};

const cpuCandidate: Candidate = {
  backend: 'cpu',
  accelerator: 'cpu',
  provider: '@tensorflow/tfjs (pure JavaScript)',
  install: 'install @tensorflow/tfjs',
  async load() {
    if (!(await activate('cpu'))) return { ok: false, reason: 'the cpu backend did not initialize' };
    return { ok: true, details: [] };
  },
};

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

/** The candidates for a request, in order of preference. */
function candidatesFor(request: BackendRequest): Candidate[] {
  const { accelerator, backend } = request;
  if (accelerator === 'gpu') {
    if (backend !== undefined && backend !== 'tensorflow') {
      throw new MisconfigurationError(
        `Trainer options accelerator 'gpu' and backend '${backend}' do not fit: only backend 'tensorflow' (@tensorflow/tfjs-node-gpu) runs on a GPU.`,
      );
    }
    return [nativeCandidate('@tensorflow/tfjs-node-gpu')];
  }
  if (backend === 'tensorflow') {
    return accelerator === 'cpu' ? [nativeCandidate('@tensorflow/tfjs-node')] : [nativeCandidate('@tensorflow/tfjs-node-gpu'), nativeCandidate('@tensorflow/tfjs-node')];
  }
  if (backend === 'wasm') return [wasmCandidate];
  if (backend === 'cpu') return [cpuCandidate];
  // auto backend: the best that is installed and works.
  const list = [nativeCandidate('@tensorflow/tfjs-node'), wasmCandidate, cpuCandidate];
  return accelerator === 'auto' ? [nativeCandidate('@tensorflow/tfjs-node-gpu'), ...list] : list;
}

let current: { key: string; choice: BackendChoice } | undefined;

/**
 * Selects and activates the backend for an accelerator request: 'auto' prefers
 * @tensorflow/tfjs-node-gpu with a visible GPU, then @tensorflow/tfjs-node, then wasm, then the
 * pure-JS cpu backend, each only if installed and working. An explicit request that cannot be met
 * fails with a BackendError that says what to install; it never runs elsewhere silently.
 * The result is cached per process; `printed` tells whether the caller should print it.
 */
export async function selectBackend(request: BackendRequest): Promise<{ choice: BackendChoice; fresh: boolean }> {
  const key = `${request.accelerator}/${request.backend ?? 'auto'}/${JSON.stringify(request.wasm ?? {})}`;
  wasmOptions = request.wasm ?? {};
  castOnCpuByValue();
  if (current !== undefined && current.key === key && tf.getBackend() === current.choice.backend) {
    return { choice: current.choice, fresh: false };
  }
  const skipped: string[] = [];
  const candidates = candidatesFor(request);
  const explicit = request.backend !== undefined || request.accelerator === 'gpu';
  for (const candidate of candidates) {
    const result = await candidate.load();
    if (result.ok) {
      const asked = explicit ? `asked for accelerator '${request.accelerator}'${request.backend === undefined ? '' : `, backend '${request.backend}'`}` : `accelerator '${request.accelerator}' picked the best available`;
      const choice: BackendChoice = {
        accelerator: candidate.accelerator,
        backend: candidate.backend,
        provider: candidate.provider,
        reason: skipped.length === 0 ? asked : `${asked}; skipped: ${skipped.join('; ')}`,
        details: result.details,
      };
      current = { key, choice };
      return { choice, fresh: true };
    }
    skipped.push(result.reason);
    if (explicit && candidates.length === 1) {
      throw new BackendError(
        `Trainer option ${request.backend !== undefined ? `backend '${request.backend}'` : `accelerator '${request.accelerator}'`} cannot run here: ${result.reason}. To use it, ${candidate.install}.`,
      );
    }
  }
  const last = candidates[candidates.length - 1]!;
  throw new BackendError(
    `No backend for accelerator '${request.accelerator}'${request.backend === undefined ? '' : ` and backend '${request.backend}'`} works here: ${skipped.join('; ')}. To fix it, ${last.install}.`,
  );
}

/** One line describing a choice, as printed at the start of a run. */
export function describeChoice(choice: BackendChoice): string {
  const details = choice.details.length > 0 ? ` (${choice.details.join(', ')})` : '';
  return `Flint: accelerator ${choice.accelerator}, backend '${choice.backend}' from ${choice.provider}${details}: ${choice.reason}.`;
}

/** @internal for tests: forget the cached choice. */
export function resetBackendChoice(): void {
  current = undefined;
}

