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
