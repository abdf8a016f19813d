import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';

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
 * 4.2e-45]. With a buffer per dtype every tensor moves with its values. Done when `@flint/backends`
 * (so `@flint/trainer`) is imported, which in an ES module is before any of the importer's own code
 * runs, and again by the Trainer's backend selection. Idempotent.
 */
export function castOnCpuByValue(): void {
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
