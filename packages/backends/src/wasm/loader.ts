import * as tf from '@tensorflow/tfjs';
import { activate, firstLine, importOptional, isResolvable } from '../internal/optional.js';
import type { BackendLoader } from '../loader.js';
import { installWasmImprovements, uninstallWasmImprovements } from './install.js';
import type { WasmImprovementsOptions } from './options.js';
import { tameWasmModule } from './process-handlers.js';

/** Installs (or removes) Flint's wasm improvements as asked; returns the facts to print. */
async function prepareWasm(options: WasmImprovementsOptions | false): Promise<string[]> {
  if (options === false) {
    await uninstallWasmImprovements();
    return ['stock'];
  }
  const report = await installWasmImprovements(options);
  return [...report.details];
}

/** The wasm backend (XNNPACK) with Flint's improvements as `options` asks, or stock with `false`. */
export function wasmLoader(options: WasmImprovementsOptions | false = {}): BackendLoader {
  return {
    backend: 'wasm',
    accelerator: 'cpu',
    provider: '@tensorflow/tfjs-backend-wasm',
    install: 'install @tensorflow/tfjs-backend-wasm (npm install @tensorflow/tfjs-backend-wasm)',
    async load() {
      if (!isResolvable('@tensorflow/tfjs-backend-wasm')) return { ok: false, reason: '@tensorflow/tfjs-backend-wasm is not installed' };
      let details: string[] = [];
      try {
        await importOptional('@tensorflow/tfjs-backend-wasm');
        details = await prepareWasm(options);
      } catch (error) {
        return { ok: false, reason: `@tensorflow/tfjs-backend-wasm does not load (${firstLine(error)})` };
      }
      if (!(await activate('wasm'))) return { ok: false, reason: 'the wasm backend did not initialize' };
      // emscripten's process handlers would take over every uncaught error of the program.
      tameWasmModule((tf.backend() as unknown as { wasm?: unknown }).wasm);
      return { ok: true, details: ['XNNPACK', ...details] };
    },
  };
}
