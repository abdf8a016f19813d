import * as tf from '@tensorflow/tfjs';
import type { Backend } from './workload.js';

/** A peer or backend that cannot run here: the harness skips it and prints the reason. */
export class SkipError extends Error {
  override readonly name = 'SkipError';
}

export interface BackendInfo {
  /** The harness's name for it. */
  readonly name: Backend;
  /** The tfjs backend name in use ('wasm', 'tensorflow', 'cpu'). */
  readonly tfBackend: string;
  /** The backend name Flint's Trainer takes for it. */
  readonly trainerBackend: 'wasm' | 'tensorflow' | 'cpu';
  readonly detail: string;
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n')[0] ?? text;
}

/**
 * Makes `backend` the active tfjs backend of this process. Throws SkipError when it does not exist
 * here (Flint's wasm improvements not written yet, tfjs-node not built).
 */
export async function setupBackend(backend: Backend): Promise<BackendInfo> {
  switch (backend) {
    case 'wasm-stock': {
      await import('@tensorflow/tfjs-backend-wasm');
      await activate('wasm');
      return { name: backend, tfBackend: 'wasm', trainerBackend: 'wasm', detail: `tfjs-backend-wasm ${tf.version_core}, stock kernels, ${await wasmThreads()}` };
    }
    case 'wasm-flint': {
      await import('@tensorflow/tfjs-backend-wasm');
      let trainer: Record<string, unknown>;
      try {
        trainer = (await import('@flint/trainer')) as Record<string, unknown>;
      } catch (e) {
        throw new SkipError(`'@flint/trainer' does not load (is it built? \`pnpm build\`): ${firstLine(e)}`);
      }
      const install = trainer['installWasmImprovements'];
      if (typeof install !== 'function') {
        throw new SkipError("'@flint/trainer' does not export installWasmImprovements() yet, so Flint's wasm cannot be measured");
      }
      await (install as (options: Record<string, unknown>) => unknown)({});
      await activate('wasm');
      return { name: backend, tfBackend: 'wasm', trainerBackend: 'wasm', detail: `tfjs-backend-wasm ${tf.version_core} + installWasmImprovements(), ${await wasmThreads()}` };
    }
    case 'tensorflow': {
      const nativeName = '@tensorflow/tfjs-node';
      // TensorFlow's start-up lines (CPU features) are INFO: keep them off the console.
      process.env['TF_CPP_MIN_LOG_LEVEL'] ??= '2';
      try {
        await import(nativeName);
      } catch (e) {
        throw new SkipError(`'${nativeName}' is not built or does not work here (run the native backend setup first): ${firstLine(e)}`);
      }
      await activate('tensorflow');
      const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string; releaseLibraryPages?: () => number } }).binding;
      const tfVersion = binding?.TF_Version ?? 'unknown';
      // As Flint's loader does (and so a Trainer that picks this backend, or selectBackend() before
      // the data is loaded): give back the library pages only TensorFlow's start-up touched. Every
      // JavaScript peer on this backend gets it, since it is a property of the build, not of a peer.
      const releasedKb = typeof binding?.releaseLibraryPages === 'function' ? binding.releaseLibraryPages() : 0;
      const released = releasedKb > 0 ? `, ${Math.round(releasedKb / 1024)} MB of start-up library pages released` : '';
      return { name: backend, tfBackend: 'tensorflow', trainerBackend: 'tensorflow', detail: `tfjs-node ${tf.version_core}, TensorFlow ${tfVersion}${released}` };
    }
    case 'cpu': {
      await activate('cpu');
      return { name: backend, tfBackend: 'cpu', trainerBackend: 'cpu', detail: `tfjs ${tf.version_core} cpu (pure JS)` };
    }
  }
}

async function activate(name: string): Promise<void> {
  let ok = false;
  try {
    ok = await tf.setBackend(name);
  } catch (e) {
    throw new SkipError(`tfjs backend '${name}' failed to initialize: ${firstLine(e)}`);
  }
  if (!ok) throw new SkipError(`tfjs backend '${name}' could not be initialized`);
  await tf.ready();
}

async function wasmThreads(): Promise<string> {
  const { getThreadsCount } = await import('@tensorflow/tfjs-backend-wasm');
  const count = getThreadsCount();
  return `${count} thread${count === 1 ? '' : 's'}`;
}
