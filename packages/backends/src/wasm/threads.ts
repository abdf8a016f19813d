import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '@flint/core';
import { tameWasmModule, workerScriptEpilogue } from './process-handlers.js';

/*
 * tfjs-backend-wasm turns threads off in Node (flag WASM_HAS_MULTITHREAD_SUPPORT is false there)
 * because its emscripten worker is created from a blob: URL, which Node's worker_threads refuse. The
 * package still ships the threaded build: `wasm-out/tfjs-backend-wasm-threaded-simd.js` (emscripten
 * glue), `dist/tfjs-backend-wasm-threaded-simd.wasm`, and the worker script as a string in
 * `wasm-out/tfjs-backend-wasm-threaded-simd.worker.js`. Flint writes that worker script (plus a line that
 * removes emscripten's process handlers in each worker, see process-handlers.ts) to a cached
 * file, instantiates the threaded build itself with the worker pointed at that file, and hands the
 * module to tfjs's own `BackendWasm` class. The C++ side sizes XNNPACK's pool as
 * min(requested, 8, logical cores / 2) ("2 hyper-threads per core"); the cores it sees come from a wasm
 * import that Flint answers with 2 × the requested threads, so the pool gets exactly what was asked.
 */

const requireHere = createRequire(import.meta.url);

export type WasmPackageModule = typeof import('@tensorflow/tfjs-backend-wasm');

export interface WasmPackage {
  readonly module: WasmPackageModule;
  /** The package folder (holds dist/ and wasm-out/). */
  readonly root: string;
  readonly version: string;
}

/** Loads '@tensorflow/tfjs-backend-wasm' (registering the 'wasm' backend) and finds its folder. */
export async function loadWasmPackage(): Promise<WasmPackage> {
  let module: WasmPackageModule;
  let main: string;
  try {
    module = await import('@tensorflow/tfjs-backend-wasm');
    main = requireHere.resolve('@tensorflow/tfjs-backend-wasm');
  } catch (error) {
    throw new BackendError(
      `installWasmImprovements: '@tensorflow/tfjs-backend-wasm' could not be loaded; install it next to '@tensorflow/tfjs' ` +
        `(npm install @tensorflow/tfjs-backend-wasm).`,
      { cause: error },
    );
  }
  return { module, root: path.dirname(path.dirname(main)), version: module.version_wasm };
}

export interface ThreadedBuildFiles {
  readonly glue: string;
  readonly wasm: string;
  readonly workerSource: string;
}

/** The threaded build's files inside the package; throws when this package version lacks them. */
export function threadedBuildFiles(pkg: WasmPackage): ThreadedBuildFiles {
  const glue = path.join(pkg.root, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
  const wasm = path.join(pkg.root, 'dist', 'tfjs-backend-wasm-threaded-simd.wasm');
  const workerModule = path.join(pkg.root, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js');
  for (const file of [glue, wasm, workerModule]) {
    if (!fs.existsSync(file)) throw new Error(`${file} is missing from @tensorflow/tfjs-backend-wasm ${pkg.version}`);
  }
  const packageJson = JSON.parse(fs.readFileSync(path.join(pkg.root, 'package.json'), 'utf8')) as { version?: string };
  if (packageJson.version !== pkg.version) {
    throw new Error(
      `the files at ${pkg.root} are tfjs-backend-wasm ${String(packageJson.version)} but the loaded module is ${pkg.version}`,
    );
  }
  const { wasmWorkerContents } = requireHere(workerModule) as { wasmWorkerContents?: unknown };
  if (typeof wasmWorkerContents !== 'string') throw new Error(`${workerModule} does not export wasmWorkerContents`);
  return { glue, wasm, workerSource: wasmWorkerContents + workerScriptEpilogue };
}

/** The parts of an emscripten module that tfjs's BackendWasm and Flint use. */
interface EmscriptenModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  tfjs?: Record<string, (...args: number[]) => number>;
  PThread?: { terminateAllThreads(): void; runningWorkers?: { unref?: () => void }[] };
}

type EmscriptenFactory = (config: Record<string, unknown>) => PromiseLike<EmscriptenModule>;

/** The WebAssembly API of the runtime (our lib settings carry no WebAssembly types). */
type WasmModuleHandle = { readonly __brand: 'WebAssembly.Module' };
type WasmInstanceHandle = { readonly __brand: 'WebAssembly.Instance' };
const WebAssemblyApi = (
  globalThis as unknown as {
    WebAssembly: {
      compile(bytes: Uint8Array): Promise<WasmModuleHandle>;
      instantiate(module: WasmModuleHandle, imports: object): Promise<WasmInstanceHandle>;
    };
  }
).WebAssembly;

const compiled = new Map<string, Promise<WasmModuleHandle>>();

function compileOnce(wasmFile: string): Promise<WasmModuleHandle> {
  let module = compiled.get(wasmFile);
  if (module === undefined) {
    module = fs.promises.readFile(wasmFile).then((bytes) => WebAssemblyApi.compile(bytes));
    compiled.set(wasmFile, module);
    module.catch(() => compiled.delete(wasmFile));
  }
  return module;
}

/** How long the threaded build may take to start its workers before Flint gives up. */
const START_TIMEOUT_MS = 60_000;

/**
 * Instantiates the threaded build with `threads` XNNPACK threads and wraps it in tfjs's BackendWasm.
 * Rejects (and stops any workers it started) when the build cannot start.
 */
export async function createThreadedBackend(
  pkg: WasmPackage,
  files: ThreadedBuildFiles,
  workerScript: string,
  threads: number,
): Promise<BackendWasm> {
  const factory = requireHere(files.glue) as EmscriptenFactory;
  const wasmModule = await compileOnce(files.wasm);
  // emscripten uses this object as the Module: after a failed start, its PThread stops the workers.
  const config: Record<string, unknown> = {};
  const { m: module } = await new Promise<{ m: EmscriptenModule }>((resolve, reject) => {
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        (config as { PThread?: { terminateAllThreads(): void } }).PThread?.terminateAllThreads();
      } catch {
        // best effort: the start already failed
      }
      reject(error instanceof Error ? error : new Error(String(error)));
    };
    const timer = setTimeout(() => fail(new Error(`its workers did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    timer.unref();
    Object.assign(config, {
      locateFile: (file: string, prefix: string) =>
        file.endsWith('.worker.js') ? workerScript : file.endsWith('.wasm') ? files.wasm : prefix + file,
      // The workers load the glue from this path (importScripts = readFileSync + eval in Node).
      mainScriptUrlOrBlob: files.glue,
      instantiateWasm: (
        imports: { env: Record<string, unknown> },
        receive: (instance: WasmInstanceHandle, module: WasmModuleHandle) => void,
      ) => {
        imports.env['emscripten_num_logical_cores'] = () => threads * 2;
        WebAssemblyApi.instantiate(wasmModule, imports).then((instance) => receive(instance, wasmModule), fail);
        return {};
      },
      onAbort: (what: unknown) => fail(new Error(`emscripten aborted: ${String(what)}`)),
    });
    let started: PromiseLike<EmscriptenModule>;
    try {
      started = factory(config);
    } catch (error) {
      fail(error);
      return;
    }
    started.then(
      (m) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ m }); // wrapped so that the module is never taken for a thenable
      },
      fail,
    );
  });
  // The same bindings tfjs's own init() makes.
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  tameWasmModule(module);
  pkg.module.setThreadsCount(threads);
  const backend = new pkg.module.BackendWasm(module as never); // starts XNNPACK's pool threads
  // emscripten refs the worker of every running pthread, as a Node program's own threads should keep
  // it alive. XNNPACK's pool threads only wait for work: with them referenced the process never
  // exits after training. Idle workers are unreferenced by emscripten already.
  for (const worker of module.PThread?.runningWorkers ?? []) worker.unref?.();
  return backend;
}

/** XNNPACK threads of a wasm backend instance. */
export function threadsOf(backend: BackendWasm): number {
  const tfjs = (backend.wasm as unknown as EmscriptenModule).tfjs;
  const count = tfjs?.['getThreadsCount']?.();
  return typeof count === 'number' && count > 0 ? count : 1;
}

export function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

