import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { resetBackendChoice, selectBackend, type BackendName } from './accelerator.js';
import { probeNativeBackend } from '@flint/backends';

/**
 * A tensor made on one backend and used on another keeps its values, whatever made it: casts between
 * dtypes (which tfjs's cpu backend used to answer with the input's buffer, read as floats after a move
 * to wasm or tensorflow) and plain tensors. Each cell makes the tensors on the source backend, switches
 * as the Trainer does, and reads them through a kernel of the destination and directly.
 */

const native = await probeNativeBackend();
const nativeSkip = native.ok ? '' : ` (skipped: the native backend is not built here: ${native.reason})`;
if (!native.ok) console.warn(`backend-moves: tensorflow cells skipped: ${native.reason}`);
const backends: BackendName[] = ['cpu', 'wasm', 'tensorflow'];
const suiteBackend = (process.env.FLINT_BACKEND ?? 'wasm') as BackendName;

afterAll(async () => {
  resetBackendChoice();
  await selectBackend({ accelerator: 'auto', backend: suiteBackend });
});

async function use(backend: BackendName): Promise<void> {
  await selectBackend({ accelerator: 'cpu', backend });
  expect(tf.getBackend()).toBe(backend);
}

interface Made {
  readonly name: string;
  readonly tensor: tf.Tensor;
  readonly dtype: tf.DataType;
  readonly values: number[];
}

/** The tensors of one cell, made on the active backend; inputs of the casts stay alive (they share on cpu). */
function make(): Made[] {
  const ints = tf.tensor1d([1, 2, -3, 2 ** 24 + 1], 'int32');
  const bools = tf.tensor1d([true, false, true, true], 'bool');
  const floats = tf.tensor1d([1.7, 2.2, -3.6, 0.5]);
  return [
    { name: 'int32 -> float32', tensor: tf.cast(ints, 'float32'), dtype: 'float32', values: [1, 2, -3, Math.fround(2 ** 24 + 1)] },
    { name: 'bool -> float32', tensor: tf.cast(bools, 'float32'), dtype: 'float32', values: [1, 0, 1, 1] },
    { name: 'bool -> int32', tensor: tf.cast(bools, 'int32'), dtype: 'int32', values: [1, 0, 1, 1] },
    { name: 'float32 -> int32', tensor: tf.cast(floats, 'int32'), dtype: 'int32', values: [1, 2, -3, 0] },
    { name: 'int32', tensor: ints, dtype: 'int32', values: [1, 2, -3, 2 ** 24 + 1] },
    { name: 'bool', tensor: bools, dtype: 'bool', values: [1, 0, 1, 1] },
    { name: 'float32', tensor: floats, dtype: 'float32', values: [1.7, 2.2, -3.6, 0.5].map(Math.fround) },
  ];
}

/** Runs a kernel of the active backend on `t` that gives back the same values. */
function throughKernel(t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => (t.dtype === 'bool' ? tf.logicalAnd(t, tf.onesLike(t)) : tf.add(t, tf.zerosLike(t))));
}

describe('tensors keep their values from one backend to another', () => {
  for (const from of backends) {
    for (const to of backends) {
      if (from === to) continue;
      const needsNative = from === 'tensorflow' || to === 'tensorflow';
      it.skipIf(needsNative && !native.ok)(`made on ${from}, used on ${to}${needsNative ? nativeSkip : ''}`, async () => {
        await use(from);
        const made = make();
        try {
          await use(to);
          for (const { name, tensor, dtype, values } of made) {
            const result = throughKernel(tensor);
            expect({ name, dtype: result.dtype, values: Array.from(result.dataSync()) }).toEqual({ name, dtype, values });
            result.dispose();
            // the tensor itself now lives on `to` and reads the same
            expect({ name, dtype: tensor.dtype, values: Array.from(tensor.dataSync()) }).toEqual({ name, dtype, values });
          }
        } finally {
          tf.dispose(made.map((m) => m.tensor));
        }
      });
    }
  }
});
