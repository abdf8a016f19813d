import * as tf from '@tensorflow/tfjs';
import type { DataLoader } from '@flint/core';

/**
 * The batches of one pass over `loader` from batch `start`, at most up to index `limit` (exclusive),
 * as `[batchIdx, batch]`. The one place where batches are disposed: each one once the loop is done
 * with it (when the loop asks for the next, breaks or throws), and the one fetched past the limit.
 * `epoch` picks the loader's shuffle order.
 */
export async function* limitedBatches<B>(loader: DataLoader<B>, limit: number, epoch = 0, start = 0): AsyncGenerator<[number, B]> {
  let batchIdx = start;
  for await (const batch of loader.batches(epoch, start)) {
    try {
      if (batchIdx >= limit) return;
      yield [batchIdx, batch];
    } finally {
      tf.dispose(batch as tf.TensorContainer);
    }
    batchIdx += 1;
  }
}

/** The tensors of a batch (arrays and plain objects of tensors, any depth). */
function tensorsOf(batch: unknown, out: Set<tf.Tensor> = new Set()): Set<tf.Tensor> {
  if (batch instanceof tf.Tensor) out.add(batch);
  else if (Array.isArray(batch)) for (const b of batch) tensorsOf(b, out);
  else if (batch !== null && typeof batch === 'object') for (const b of Object.values(batch)) tensorsOf(b, out);
  return out;
}

/** The module's batch hooks, if it has any: Lightning calls them on every batch of every loop. */
interface BatchHooks {
  onBeforeBatchTransfer?(batch: unknown, dataloaderIdx: number): unknown;
  onAfterBatchTransfer?(batch: unknown, dataloaderIdx: number): unknown;
}

/**
 * Runs `body` on the batch as the module's `onBeforeBatchTransfer` and `onAfterBatchTransfer`
 * return it (Lightning's order; tfjs has no transfer between them), inside `tf.tidy` so that what
 * the hooks make for the batch lives until `body` is done and is disposed then. The loader's own
 * tensors stay the business of `limitedBatches`.
 */
export async function withTransferredBatch<T>(
  run: { readonly module: object },
  raw: unknown,
  body: (batch: unknown) => Promise<T>,
  /** What the caller keeps (predict's outputs): tensors of the batch found in it are not disposed. */
  kept?: () => unknown,
): Promise<T> {
  const m = run.module as BatchHooks;
  if (typeof m.onBeforeBatchTransfer !== 'function' && typeof m.onAfterBatchTransfer !== 'function') return body(raw);
  const batch = tf.tidy(() => {
    let b = raw;
    if (typeof m.onBeforeBatchTransfer === 'function') b = m.onBeforeBatchTransfer(b, 0);
    if (typeof m.onAfterBatchTransfer === 'function') b = m.onAfterBatchTransfer(b, 0);
    return b as tf.TensorContainer;
  });
  try {
    return await body(batch);
  } finally {
    const own = tensorsOf(raw);
    if (kept !== undefined) tensorsOf(kept(), own);
    for (const t of tensorsOf(batch)) if (!own.has(t) && !t.isDisposed) t.dispose();
  }
}
