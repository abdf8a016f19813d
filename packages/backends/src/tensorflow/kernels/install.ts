import * as tf from '@tensorflow/tfjs';
import type { KernelConfig } from '@tensorflow/tfjs';
import { BackendError } from '@flint/core';
import { flintKernelConfigs, replacementKernelConfigs } from './kernels.js';

const BACKEND = 'tensorflow';

interface Installed {
  /** tfjs-node's kernels that Flint replaced, to put back on uninstall. */
  readonly replaced: KernelConfig[];
  /** Names of the kernels Flint registered. */
  readonly names: string[];
}

let installed: Installed | undefined;

/** What installNativeKernels did. */
export interface NativeKernelsReport {
  /** Kernels of tfjs-node replaced by cheaper or fixed ones (Cast, Reshape, Step, Round, _FusedMatMul). */
  readonly replaced: readonly string[];
  /** Flint's kernels added for the native backend (dense layer, activation gradient, cross-entropy). */
  readonly added: readonly string[];
}

/**
 * Registers Flint's kernels for the native backend ('tensorflow', from `@tensorflow/tfjs-node`):
 * the dense layer (`Linear`), its activation gradient and the softmax cross-entropy
 * (`crossEntropy`) as TensorFlow ops, and cheaper versions of tfjs-node's Cast (none to the same
 * dtype), Reshape (none to the same shape), Step (2 ops instead of 5 and a host array) and
 * _FusedMatMul (TensorFlow ops directly), and a Round that returns int32 input unchanged
 * (TensorFlow 2.21's returns zeros). Results equal the cpu backend's (see the tests). Idempotent; the Trainer calls it when it picks the native backend. Load tfjs-node first.
 */
export function installNativeKernels(): NativeKernelsReport {
  if (installed !== undefined) return report(installed);
  const original = (name: string): KernelConfig => {
    const config = tf.getKernel(name, BACKEND);
    if (config === undefined) {
      throw new BackendError(`installNativeKernels: the '${BACKEND}' backend has no ${name} kernel: load @tensorflow/tfjs-node (import '@tensorflow/tfjs-node') before installing Flint's native kernels.`);
    }
    return config;
  };
  const replacements = replacementKernelConfigs(original);
  const replaced = replacements.map((r) => original(r.kernelName));
  const added = flintKernelConfigs();
  for (const config of replacements) {
    tf.unregisterKernel(config.kernelName, BACKEND);
    tf.registerKernel(config);
  }
  for (const config of added) {
    if (tf.getKernel(config.kernelName, BACKEND) !== undefined) tf.unregisterKernel(config.kernelName, BACKEND);
    tf.registerKernel(config);
  }
  installed = { replaced, names: [...replacements, ...added].map((c) => c.kernelName) };
  return report(installed);
}

/** Puts tfjs-node's own kernels back and removes Flint's. Idempotent. */
export function uninstallNativeKernels(): void {
  if (installed === undefined) return;
  for (const name of installed.names) {
    if (tf.getKernel(name, BACKEND) !== undefined) tf.unregisterKernel(name, BACKEND);
  }
  for (const config of installed.replaced) tf.registerKernel(config);
  installed = undefined;
}

/** Whether Flint's native kernels are registered. */
export function nativeKernelsInstalled(): boolean {
  return installed !== undefined;
}

function report(i: Installed): NativeKernelsReport {
  const replacedNames = new Set(i.replaced.map((c) => c.kernelName));
  return { replaced: [...replacedNames], added: i.names.filter((n) => !replacedNames.has(n)) };
}
