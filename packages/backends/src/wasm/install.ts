import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { KernelBackend, KernelConfig } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BackendError, parseOptions } from '@flint/core';
import { cpuCanRun } from './cpu-fallback.js';
import { fastMatmulKernels } from './fast-matmul.js';
import { fewerCopiesKernels } from './fewer-copies.js';
import { cpuProbe } from './idle-cpus.js';
import { fasterKernelConfigs, fixedKernelConfigs, missingKernelConfigs } from './gradient-kernels.js';
import { adamKernelConfigs } from './adam-kernel.js';
import { layerKernelConfigs } from './layer-kernels.js';
import {
  AUTO_WASM_THREADS_CAP,
  type AddedKernelSource,
  type ResolvedWasmImprovementsOptions,
  type WasmImprovementsOptions,
  type WasmSetupReport,
  wasmImprovementsOptionsSchema,
} from './options.js';
import {
  createThreadedBackend,
  describeError,
  loadWasmPackage,
  threadedBuildFiles,
  threadsOf,
  type WasmPackage,
} from './threads.js';
import { tameWasmModule } from './process-handlers.js';
import { ensureWorkerScript } from './worker-script.js';

type BackendFactory = () => KernelBackend | Promise<KernelBackend>;
interface FactoryEntry {
  factory: BackendFactory;
  priority: number;
}

interface Installed {
  readonly options: ResolvedWasmImprovementsOptions;
  readonly report: WasmSetupReport;
  readonly pkg: WasmPackage;
  /** Original wasm kernels that Flint replaced. */
  readonly replaced: KernelConfig[];
  /** Names of kernels Flint added. */
  readonly added: string[];
  /** The stock 'wasm' factory, when Flint registered its threaded one. */
  readonly stockFactory?: FactoryEntry;
  /** Stops the pre-built threaded backend if tfjs never took it. */
  readonly discardPrebuilt?: () => void;
}

let installed: Installed | null = null;
let queue: Promise<unknown> = Promise.resolve();

/** Runs install/uninstall one at a time, in call order. */
function serialized<T>(task: () => Promise<T>): Promise<T> {
  const run = queue.then(task, task);
  queue = run.catch(() => undefined);
  return run;
}

/**
 * Makes the wasm backend fast and complete in Node: XNNPACK for every matmul, worker threads, and the
 * kernels that gradients of conv and embedding layers need. Call it before or after the wasm backend
 * is initialized; tensors that already live on wasm move to the new backend when next used. Calling it
 * again with the same options does nothing; with other options it re-installs.
 */
export function installWasmImprovements(options?: WasmImprovementsOptions): Promise<WasmSetupReport> {
  let parsed: ResolvedWasmImprovementsOptions;
  try {
    parsed = parseOptions('installWasmImprovements', wasmImprovementsOptionsSchema, options);
  } catch (error) {
    return Promise.reject(error);
  }
  return serialized(async () => {
    if (installed !== null && sameOptions(installed.options, parsed)) return installed.report;
    if (installed !== null) await uninstall();
    return install(parsed);
  });
}

/**
 * Puts the stock wasm backend back (kernels and the single-threaded build). Tensors on the threaded
 * backend move to the stock one when next used.
 */
export function uninstallWasmImprovements(): Promise<void> {
  return serialized(uninstall);
}

function sameOptions(a: ResolvedWasmImprovementsOptions, b: ResolvedWasmImprovementsOptions): boolean {
  return (
    a.fastMatmul === b.fastMatmul &&
    a.fewerCopies === b.fewerCopies &&
    a.threads === b.threads &&
    a.fallbackKernels === b.fallbackKernels &&
    a.layerKernels === b.layerKernels &&
    a.cacheDir === b.cacheDir
  );
}

async function install(options: ResolvedWasmImprovementsOptions): Promise<WasmSetupReport> {
  const pkg = await loadWasmPackage();
  if (tf.findBackendFactory('wasm') == null) {
    throw new BackendError(
      "installWasmImprovements: no 'wasm' backend is registered (was tf.removeBackend('wasm') called?); it is registered " +
        "when '@tensorflow/tfjs-backend-wasm' is first imported.",
    );
  }
  const replaced: KernelConfig[] = [];
  const added: { name: string; via: AddedKernelSource }[] = [];
  const layer: string[] = [];
  try {
    if (options.fastMatmul) {
      const originals = stockKernels('fastMatmul', pkg, ['BatchMatMul', '_FusedMatMul'] as const);
      replaceKernels(fastMatmulKernels(originals.BatchMatMul, originals._FusedMatMul), replaced);
    }
    if (options.fewerCopies) {
      const originals = stockKernels('fewerCopies', pkg, ['Identity', 'Slice', 'StridedSlice', 'SplitV', 'Unpack'] as const);
      replaceKernels(fewerCopiesKernels(originals), replaced);
    }
    if (options.fallbackKernels) {
      for (const { config, via } of missingKernelConfigs()) {
        if (tf.getKernel(config.kernelName, 'wasm') !== undefined) continue; // a later tfjs has it
        if (via === 'cpu-fallback' && !cpuCanRun(config.kernelName)) continue;
        tf.registerKernel(config);
        added.push({ name: config.kernelName, via });
      }
      replaceKernels(fixedKernelConfigs(), replaced);
      replaceKernels(fasterKernelConfigs(stockKernels('fallbackKernels', pkg, ['Conv2DBackpropInput'] as const)), replaced);
    }
    if (options.layerKernels) {
      for (const config of [...layerKernelConfigs(), ...adamKernelConfigs()]) {
        if (tf.getKernel(config.kernelName, 'wasm') !== undefined) continue; // registered by someone else
        tf.registerKernel(config);
        layer.push(config.kernelName);
      }
    }
    const threads = await setUpThreads(options, pkg);
    const report = makeReport(options, replaced, added, threads);
    installed = {
      options,
      report,
      pkg,
      replaced,
      added: [...added.map((k) => k.name), ...layer],
      ...(threads.stockFactory === undefined ? {} : { stockFactory: threads.stockFactory }),
      ...(threads.discardPrebuilt === undefined ? {} : { discardPrebuilt: threads.discardPrebuilt }),
    };
    return report;
  } catch (error) {
    restoreKernels(replaced, [...added.map((k) => k.name), ...layer]);
    throw error;
  }
}

async function uninstall(): Promise<void> {
  const current = installed;
  if (current === null) return;
  installed = null;
  restoreKernels(current.replaced, current.added);
  if (current.stockFactory !== undefined) {
    current.discardPrebuilt?.();
    current.pkg.module.setThreadsCount(-1); // tfjs's initial value
    await replaceWasmFactory(current.stockFactory);
  }
}

/** The wasm kernels `names`, which an improvement replaces; throws when this tfjs lacks one. */
function stockKernels<N extends string>(option: string, pkg: WasmPackage, names: readonly N[]): Record<N, KernelConfig> {
  const found = {} as Record<N, KernelConfig>;
  for (const name of names) {
    const kernel = tf.getKernel(name, 'wasm');
    if (kernel === undefined) {
      throw new BackendError(
        `installWasmImprovements option '${option}': the wasm backend has no ${name} kernel to replace ` +
          `(tfjs-backend-wasm ${pkg.version}); pass ${option}: false.`,
      );
    }
    found[name] = kernel;
  }
  return found;
}

/** Registers `replacements` over the wasm kernels of the same names, recording the originals. */
function replaceKernels(replacements: readonly KernelConfig[], replaced: KernelConfig[]): void {
  for (const config of replacements) {
    const original = tf.getKernel(config.kernelName, 'wasm');
    if (original === undefined) continue; // stockKernels checked
    tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
    replaced.push(original);
  }
}

function restoreKernels(replaced: readonly KernelConfig[], added: readonly string[]): void {
  for (const name of added) {
    if (tf.getKernel(name, 'wasm') !== undefined) tf.unregisterKernel(name, 'wasm');
  }
  for (const original of replaced) {
    if (tf.getKernel(original.kernelName, 'wasm') !== undefined) tf.unregisterKernel(original.kernelName, 'wasm');
    tf.registerKernel(original);
  }
}

interface ThreadsSetup {
  threads: number;
  wasmBinary: WasmSetupReport['wasmBinary'];
  note?: string;
  workerScript?: string;
  stockFactory?: FactoryEntry;
  discardPrebuilt?: () => void;
}

async function setUpThreads(options: ResolvedWasmImprovementsOptions, pkg: WasmPackage): Promise<ThreadsSetup> {
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const stock: ThreadsSetup = { threads: 1, wasmBinary: simd ? 'tfjs-backend-wasm-simd.wasm' : 'tfjs-backend-wasm.wasm' };
  const requested = options.threads;
  if (requested === false || requested === 1) return stock;
  let wanted: number;
  let autoNote: string | undefined;
  if (requested === 'auto') {
    const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    if (cpus < 2) return { ...stock, note: `${cpus} CPU available` };
    // One thread per CPU that is idle now (this one's main thread included), at most 4: on cores busy
    // with other work, workers only wait to be scheduled.
    const idle = await cpuProbe.idleCpus();
    wanted = Math.max(1, Math.min(Math.floor(idle + 0.25), cpus, AUTO_WASM_THREADS_CAP));
    if (wanted < Math.min(cpus, AUTO_WASM_THREADS_CAP)) autoNote = `${idle.toFixed(1)} of ${cpus} CPUs idle`;
    if (wanted < 2) return { ...stock, ...(autoNote === undefined ? {} : { note: autoNote }) };
  } else {
    wanted = requested;
  }

  let backend: BackendWasm;
  let workerScript: string;
  try {
    if (!simd) throw new Error("this runtime's WebAssembly has no SIMD, and tfjs ships its threaded build with SIMD only");
    if (typeof SharedArrayBuffer !== 'function') throw new Error('this runtime has no SharedArrayBuffer');
    const files = threadedBuildFiles(pkg);
    workerScript = ensureWorkerScript(options.cacheDir, pkg.version, files.workerSource);
    backend = await createThreadedBackend(pkg, files, workerScript, wanted);
  } catch (error) {
    if (requested === 'auto') return { ...stock, note: `threads could not start: ${describeError(error)}` };
    throw new BackendError(
      `installWasmImprovements option 'threads': ${wanted} threads were requested but the threaded wasm build could not ` +
        `start (${describeError(error)}). Pass threads: false for the single-threaded build, or 'auto' to use threads ` +
        `only where they start.`,
      { cause: error },
    );
  }

  // tfjs takes the pre-built backend the first time it initializes 'wasm'; after that (e.g. after
  // tf.removeBackend('wasm') and a new setBackend) it gets a fresh threaded one.
  let prebuilt: BackendWasm | null = backend;
  const factory: BackendFactory = async () => {
    if (prebuilt !== null) {
      const b = prebuilt;
      prebuilt = null;
      return b;
    }
    const files = threadedBuildFiles(pkg);
    return createThreadedBackend(pkg, files, ensureWorkerScript(options.cacheDir, pkg.version, files.workerSource), wanted);
  };
  const stockFactory = await replaceWasmFactory({ factory, priority: tf.engine().registryFactory['wasm']?.priority ?? 2 });
  return {
    threads: threadsOf(backend),
    wasmBinary: 'tfjs-backend-wasm-threaded-simd.wasm',
    ...(autoNote === undefined ? {} : { note: autoNote }),
    workerScript,
    stockFactory,
    discardPrebuilt: () => {
      if (prebuilt === null) return;
      prebuilt.dispose();
      prebuilt = null;
    },
  };
}

/**
 * Registers `entry` as the 'wasm' backend factory and returns the previous one. If 'wasm' is the
 * active backend, the new one is initialized and made active. A previous instance that still holds
 * tensors is kept alive (not disposed): tfjs moves each tensor to the new backend when it is next used,
 * as it does between any two backends.
 */
async function replaceWasmFactory(entry: FactoryEntry): Promise<FactoryEntry> {
  const engine = tf.engine();
  // Let a pending initialization finish first; removing the backend under it would make it fail.
  if (engine.backendName != null && engine.registry[engine.backendName] === undefined) await tf.ready();
  const previous = engine.registryFactory['wasm'];
  if (previous === undefined) throw new BackendError("installWasmImprovements: the 'wasm' backend disappeared from the registry");
  const active = engine.backendName === 'wasm';
  const instance = engine.registry['wasm'];
  // Its dispose must not take the program's process listeners with it.
  if (instance !== undefined) tameWasmModule((instance as unknown as BackendWasm).wasm);
  if (instance !== undefined && instance.numDataIds() > 0) {
    const ownDispose = Object.prototype.hasOwnProperty.call(instance, 'dispose');
    const keep = instance as { dispose(): void };
    keep.dispose = () => {};
    try {
      tf.removeBackend('wasm');
    } finally {
      if (!ownDispose) delete (keep as Partial<typeof keep>).dispose;
    }
  } else {
    tf.removeBackend('wasm');
  }
  tf.registerBackend('wasm', entry.factory, entry.priority);
  if (active && !(await tf.setBackend('wasm'))) {
    throw new BackendError("installWasmImprovements: the 'wasm' backend did not initialize again after its factory was replaced");
  }
  return { factory: previous.factory, priority: previous.priority };
}

function makeReport(
  options: ResolvedWasmImprovementsOptions,
  replaced: readonly KernelConfig[],
  added: readonly { name: string; via: AddedKernelSource }[],
  threads: ThreadsSetup,
): WasmSetupReport {
  const threadText = `${threads.threads} thread${threads.threads === 1 ? '' : 's'}${threads.note === undefined ? '' : ` (${threads.note})`}`;
  const details = [
    threadText,
    ...(options.fastMatmul ? ['fast matmul'] : []),
    ...(options.fewerCopies ? ['fewer copies'] : []),
    ...(options.layerKernels ? ['layer kernels'] : []),
    ...(added.length > 0 ? [`+${added.length} kernels`] : []),
  ];
  const names = replaced.map((k) => k.kernelName);
  const group = (label: string, members: readonly string[]): string[] => {
    const present = names.filter((n) => members.includes(n));
    return present.length > 0 ? [`${label} (${present.join(', ')})`] : [];
  };
  const parts = [
    threadText,
    ...group('fast matmul', ['BatchMatMul', '_FusedMatMul']),
    ...group('fewer copies', ['Identity', 'Slice', 'StridedSlice', 'SplitV', 'Unpack']),
    ...group('fixed', ['MaxPoolGrad']),
    ...group('XNNPACK', ['Conv2DBackpropInput']),
    ...(options.layerKernels ? ['layer kernels (Linear, crossEntropy, Adam)'] : []),
    ...(added.length > 0
      ? [`added ${added.map((k) => (k.via === 'wasm' ? k.name : `${k.name} [cpu fallback]`)).join(', ')}`]
      : []),
  ];
  return {
    fastMatmul: options.fastMatmul,
    fewerCopies: options.fewerCopies,
    layerKernels: options.layerKernels,
    replacedKernels: replaced.map((k) => k.kernelName),
    addedKernels: added.map((k) => ({ name: k.name, via: k.via })),
    threads: threads.threads,
    threadsRequested: options.threads,
    ...(threads.note === undefined ? {} : { threadsNote: threads.note }),
    wasmBinary: threads.wasmBinary,
    ...(threads.workerScript === undefined ? {} : { workerScript: threads.workerScript }),
    details,
    summary: `wasm: ${parts.join(', ')}`,
  };
}
