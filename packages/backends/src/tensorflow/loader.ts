import * as tf from '@tensorflow/tfjs';
import { activate, firstLine, importOptional, isResolvable } from '../internal/optional.js';
import type { BackendLoader } from '../loader.js';
import { installNativeKernels } from './kernels/index.js';
import { probeNativeBackend } from './setup/index.js';

/**
 * Loading TensorFlow runs the static initialisers spread over its 600 MB library, which leaves
 * about 250 MB of it resident though training uses a small part: the binding built by setup-native
 * gives those clean, file-backed pages back (`releaseLibraryPages`); any page used again is mapped
 * back from the page cache. Returns the kilobytes released (0 with a binding without it).
 */
export function releaseLibraryPages(binding: unknown): number {
  const release = (binding as { releaseLibraryPages?: () => number } | undefined)?.releaseLibraryPages;
  return typeof release === 'function' ? release.call(binding) : 0;
}

/** Native TensorFlow from `@tensorflow/tfjs-node` (CPU) or `@tensorflow/tfjs-node-gpu`, with Flint's kernels. */
export function tensorflowLoader(pkg: '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu'): BackendLoader {
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
      // Flint's kernels for this backend (dense layer, cross-entropy, Adam, cheaper Cast/Reshape/Step/_FusedMatMul).
      installNativeKernels();
      releaseLibraryPages(backend.binding);
      return { ok: true, details: [...(version === undefined ? [] : [`TensorFlow ${version}`]), 'Flint kernels'] };
    },
  };
}
