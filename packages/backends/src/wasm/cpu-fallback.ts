import * as tf from '@tensorflow/tfjs';
import type { DataId, KernelBackend, KernelConfig, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '@flint/core';

/**
 * A wasm kernel that runs the cpu backend's kernel of the same name: copies the inputs out of the wasm
 * heap into the cpu backend, runs the cpu kernel there and copies its outputs back. tfjs has no
 * per-kernel fallback, so this is one, for kernels that wasm lacks and whose cost is small next to
 * the rest of a step.
 */
export function cpuFallbackKernel(kernelName: string): KernelConfig {
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => runOnCpu(kernelName, inputs as never, backend as BackendWasm, attrs ?? {}),
  };
}

/** True when the cpu backend can serve `kernelName` (it is registered by '@tensorflow/tfjs'). */
export function cpuCanRun(kernelName: string): boolean {
  return tf.getKernel(kernelName, 'cpu') !== undefined && tf.findBackendFactory('cpu') != null;
}

function runOnCpu(
  kernelName: string,
  inputs: Record<string, TensorInfo | undefined> | TensorInfo[],
  wasm: BackendWasm,
  attrs: NamedAttrMap,
): TensorInfo | TensorInfo[] {
  const kernel = tf.getKernel(kernelName, 'cpu');
  // findBackend initializes the cpu backend on first use (synchronously: it has no async setup).
  const cpu: KernelBackend | null = kernel === undefined ? null : tf.engine().findBackend('cpu');
  if (kernel === undefined || cpu == null) {
    throw new BackendError(
      `The wasm backend has no '${kernelName}' kernel and Flint's fallback runs the cpu backend's, which is not ` +
        `available here (import '@tensorflow/tfjs', which registers it, or pass fallbackKernels: false).`,
    );
  }
  const created: DataId[] = [];
  const toCpu = (t: TensorInfo): TensorInfo => {
    const dataId = cpu.write(wasm.readSync(t.dataId), t.shape, t.dtype);
    created.push(dataId);
    return { dataId, shape: t.shape, dtype: t.dtype };
  };
  try {
    const cpuInputs = Array.isArray(inputs)
      ? inputs.map(toCpu)
      : Object.fromEntries(
          Object.entries(inputs).flatMap(([name, t]) => (t === undefined || t === null ? [] : [[name, toCpu(t)]])),
        );
    const out = kernel.kernelFunc({ inputs: cpuInputs as never, backend: cpu, attrs });
    const outs = Array.isArray(out) ? out : [out];
    for (const o of outs) created.push(o.dataId);
    const back = outs.map((o) => wasm.makeOutput(o.shape, o.dtype, undefined, cpu.readSync(o.dataId)));
    return Array.isArray(out) ? back : back[0]!;
  } finally {
    for (const dataId of created) cpu.disposeData(dataId, true);
  }
}
