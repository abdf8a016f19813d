import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { DataError } from './errors.js';
import { parseOptions } from './options.js';

/**
 * Name of the kernel behind `crossEntropy`: inputs `{ logits: [batch, classes], labels }` with labels
 * int32 `[batch]` (class indices) or float32 `[batch, classes]` (probabilities); outputs
 * `[loss [batch], backprop [batch, classes]]`, where backprop is `softmax(logits) - onehot(labels)`,
 * as TensorFlow's (Sparse)SoftmaxCrossEntropyWithLogits. A backend may register it
 * (`@flint/backends` does for the native and the wasm backend); elsewhere `crossEntropy` computes the same with
 * tfjs ops.
 */
export const SOFTMAX_CROSS_ENTROPY_KERNEL = 'FlintSoftmaxCrossEntropyWithLogits';

export const crossEntropyOptionsSchema = z.strictObject({
  /** 'mean' over the batch (default, as Lightning/PyTorch and `tf.losses.softmaxCrossEntropy`), 'sum', or 'none' (one loss per row). */
  reduction: z.enum(['mean', 'sum', 'none']).default('mean'),
});

export type CrossEntropyOptions = z.input<typeof crossEntropyOptionsSchema>;

const DEFAULTS = { reduction: 'mean' } as const satisfies z.output<typeof crossEntropyOptionsSchema>;

/**
 * Softmax cross-entropy of logits, PyTorch's `F.cross_entropy(input, target)`: `target` holds class
 * indices (int32, shape `[batch]`) or class probabilities / one-hot rows (float32, same shape as
 * `logits`, each row summing to 1). Returns the mean over the batch (or the sum, or the per-row
 * losses with `reduction`).
 *
 * Equal to `tf.losses.softmaxCrossEntropy(oneHot(target), logits)` in value and gradient, with a
 * fraction of its ops: one kernel computes the losses and their gradient together (one TensorFlow
 * op on the native backend), so class indices need no `oneHot`/`cast` per step and the backward
 * pass is a single multiplication.
 *
 * Class indices outside `[0, classes)` throw on the native backend (TensorFlow checks them) and on
 * wasm with `@flint/backends`' layer kernels; the cpu backend does not read the labels back to check
 * them and treats such a row as an all-zero target (loss 0, gradient softmax).
 */
export function crossEntropy(logits: tf.Tensor, target: tf.Tensor, options?: CrossEntropyOptions): tf.Tensor {
  const { reduction } = options === undefined ? DEFAULTS : parseOptions('crossEntropy', crossEntropyOptionsSchema, options);
  const sparse = checkShapes(logits, target);
  const useKernel = tf.getKernel(SOFTMAX_CROSS_ENTROPY_KERNEL, tf.getBackend()) !== undefined;
  const rows = logits.shape[0]!;
  // The target is closed over rather than passed to customGrad: it has no gradient, and an input
  // would need one (a zerosLike per step).
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const [perRow, backprop] = useKernel
      ? (tf.engine().runKernel(SOFTMAX_CROSS_ENTROPY_KERNEL, { logits: x, labels: target }) as tf.Tensor[])
      : softmaxCrossEntropyOps(x, target, sparse);
    save([backprop!]);
    const value = reduction === 'mean' ? tf.mean(perRow!) : reduction === 'sum' ? tf.sum(perRow!) : perRow!;
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const bp = saved[0]!;
        if (reduction === 'none') return tf.mul(bp, tf.expandDims(dy, 1));
        return tf.mul(bp, reduction === 'mean' ? tf.div(dy, rows) : dy);
      },
    };
  });
  return f(logits);
}

/** Loss per row and its gradient with tfjs ops (for backends without the kernel). */
export function softmaxCrossEntropyOps(logits: tf.Tensor, labels: tf.Tensor, sparse: boolean): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const shifted = tf.sub(logits, tf.max(logits, 1, true));
    const exp = tf.exp(shifted);
    const sumExp = tf.sum(exp, 1, true);
    const logProb = tf.sub(shifted, tf.log(sumExp));
    // oneHot's own float32 output is wrong on tfjs-backend-wasm 4.22 (it writes int32 bits): cast.
    const probs = sparse ? tf.cast(tf.oneHot(labels as tf.Tensor1D, logits.shape[1]!), 'float32') : labels;
    const perRow = tf.neg(tf.sum(tf.mul(probs, logProb), 1));
    const backprop = tf.sub(tf.div(exp, sumExp), probs);
    return [perRow, backprop];
  });
}

/** Checks shapes and dtypes (no data is read); returns whether the target holds class indices. */
function checkShapes(logits: tf.Tensor, target: tf.Tensor): boolean {
  if (!(logits instanceof tf.Tensor) || !(target instanceof tf.Tensor)) {
    throw new DataError('crossEntropy(logits, target): both must be tensors.');
  }
  if (logits.rank !== 2 || logits.dtype !== 'float32') {
    throw new DataError(`crossEntropy: logits must be a float32 tensor of shape [batch, classes] (received ${logits.dtype} [${logits.shape.join(', ')}]).`);
  }
  const [rows, classes] = logits.shape as [number, number];
  if (target.rank === 1) {
    if (target.dtype !== 'int32') {
      throw new DataError(
        `crossEntropy: a target of shape [batch] holds class indices and must be int32 (received ${target.dtype}); cast it (tf.cast(target, 'int32')) or give one-hot rows of shape [${rows}, ${classes}].`,
      );
    }
    if (target.shape[0] !== rows) {
      throw new DataError(`crossEntropy: target has ${target.shape[0]} class indices for ${rows} rows of logits.`);
    }
    return true;
  }
  if (target.rank === 2 && target.shape[0] === rows && target.shape[1] === classes) {
    if (target.dtype !== 'float32') {
      throw new DataError(`crossEntropy: a target of shape [${rows}, ${classes}] holds class probabilities and must be float32 (received ${target.dtype}).`);
    }
    return false;
  }
  throw new DataError(
    `crossEntropy: target must be class indices of shape [${rows}] (int32) or probabilities of shape [${rows}, ${classes}] (float32), like the logits (received ${target.dtype} [${target.shape.join(', ')}]).`,
  );
}
