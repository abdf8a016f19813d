import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { DataError, MisconfigurationError } from '../errors.js';
import { parseOptions } from '../options.js';
import { positiveInt } from '../schemas.js';
import { deriveSeed, getGlobalSeed, permutation } from '../seed.js';
import { inferBatchSize, type TensorBatch } from './batch.js';
import { RecordDataset } from './record-file.js';
import { streamRecordBatches } from './record-stream.js';
import { TensorDataset, type TensorDatasetSource } from './tensor-dataset.js';

export const dataLoaderOptionsSchema = z.strictObject({
  /** Samples per batch. For a tf.data.Dataset, giving it makes the loader batch the dataset. */
  batchSize: positiveInt.default(32),
  /** Reshuffle every epoch: epoch e is `permutation(n, deriveSeed(seed, e))`. */
  shuffle: z.boolean().default(false),
  /** Seed of the shuffle. Default: the seed of `seedEverything`, else one drawn once at construction. */
  seed: z
    .number()
    .int({ error: 'must be an integer in [0, 4294967295]' })
    .min(0, { error: 'must be an integer in [0, 4294967295]' })
    .max(0xffff_ffff, { error: 'must be an integer in [0, 4294967295]' })
    .optional(),
  /** Drop the last batch of an epoch when it is smaller than batchSize. */
  dropLast: z.boolean().default(false),
  /** tf.data.Dataset and RecordDataset sources only: the size of the sliding shuffle buffer (samples). */
  shuffleBuffer: positiveInt.default(10_000),
  /** RecordDataset sources only: records read ahead of the training step, at most (two chunks of half of it). */
  readAhead: z.number().int({ error: 'must be a whole number >= 2' }).min(2, { error: 'must be a whole number >= 2' }).default(4096),
});

export type DataLoaderOptions = z.input<typeof dataLoaderOptionsSchema>;

/**
 * Iterates a data set in batches, epoch after epoch, reproducibly.
 *
 * - Sources: a `TensorDataset`, anything `TensorDataset.from` accepts (the loader then owns the
 *   data set it creates and frees it in `dispose()`), or a `tf.data.Dataset`.
 * - Every yielded batch holds fresh tensors owned by the consumer, who disposes them (the trainer
 *   does so after each step).
 * - With `shuffle`, epoch `e` visits the rows in the order `permutation(n, deriveSeed(seed, e))`:
 *   the same seed gives the same order per epoch, and `batches(e, k)` resumes at batch `k` with
 *   exactly the batches an uninterrupted epoch would yield, without building the skipped ones.
 * - A `RecordDataset` (a record file on disk) is streamed: chunks of records are read ahead while
 *   the step runs, and at most `shuffleBuffer + readAhead` records are in memory (plus the batch).
 *   With `shuffle`, epoch `e` visits the file's shards in the order `permutation(shards,
 *   deriveSeed(seed, e, 1))` and mixes records through a sliding buffer seeded with
 *   `deriveSeed(seed, e, 2)`; `batches(e, k)` replays that order on indices, reads the records the
 *   buffer held at batch `k`, and yields exactly the batches an uninterrupted epoch would.
 * - A `tf.data.Dataset` is batched with `.batch(batchSize)` only when `batchSize` is given (else it
 *   is taken to yield batches already), shuffled with `.shuffle(shuffleBuffer, seed of the epoch)`
 *   before batching, and resumed with `.skip(start)` (tf.data builds the skipped batches).
 */
export class DataLoader<B = TensorBatch> implements AsyncIterable<B> {
  /** Samples per batch; NaN for a tf.data.Dataset given without `batchSize` (it yields its own batches). */
  readonly batchSize: number;
  /** Samples per epoch; NaN when unknown (a tf.data.Dataset of unknown size, or one that batches itself). */
  readonly numSamples: number;
  /** Whether each epoch is shuffled. */
  readonly shuffle: boolean;
  /** Whether the last, smaller batch of an epoch is dropped. */
  readonly dropLast: boolean;
  /** The seed the epochs' shuffles derive from. */
  readonly seed: number;

  private readonly dataset: TensorDataset | undefined;
  private readonly tfDataset: tf.data.Dataset<tf.TensorContainer> | undefined;
  private readonly ownsDataset: boolean;
  private readonly batchesTfData: boolean;
  private readonly shuffleBuffer: number;
  private readonly readAhead: number;
  private readonly records: RecordDataset | undefined;
  private disposed = false;

  constructor(
    source: TensorDataset<B & TensorBatch> | tf.data.Dataset<B & tf.TensorContainer> | RecordDataset | TensorDatasetSource,
    options?: DataLoaderOptions,
  ) {
    const parsed = parseOptions('DataLoader', dataLoaderOptionsSchema, options);
    const given = (options ?? {}) as Partial<Record<keyof DataLoaderOptions, unknown>>;
    this.shuffle = parsed.shuffle;
    this.dropLast = parsed.dropLast;
    this.shuffleBuffer = parsed.shuffleBuffer;
    this.readAhead = parsed.readAhead;
    this.seed = parsed.seed ?? getGlobalSeed() ?? Math.floor(Math.random() * 0x1_0000_0000);

    if (given.readAhead !== undefined && !(source instanceof RecordDataset)) {
      throw new MisconfigurationError(
        `DataLoader option 'readAhead' (received ${JSON.stringify(given.readAhead)}) applies to RecordDataset sources only; ` +
          'in-memory data is not read ahead. Remove the option.',
      );
    }
    if (source instanceof RecordDataset) {
      this.records = source;
      this.dataset = undefined;
      this.tfDataset = undefined;
      this.ownsDataset = false;
      this.batchesTfData = false;
      this.batchSize = parsed.batchSize;
      this.numSamples = source.length;
      return;
    }
    this.records = undefined;
    if (isTfDataset(source)) {
      this.dataset = undefined;
      this.tfDataset = source;
      this.ownsDataset = false;
      this.batchesTfData = given.batchSize !== undefined;
      if (this.dropLast && !this.batchesTfData) {
        throw new MisconfigurationError(
          "DataLoader option 'dropLast': true applies when the loader batches, but no batchSize was given for this tf.data.Dataset " +
            '(it is taken to yield batches already); give batchSize, or drop the small batch in the dataset itself.',
        );
      }
      const size = source.size;
      const known = typeof size === 'number' && Number.isFinite(size) && size >= 0;
      this.batchSize = this.batchesTfData ? parsed.batchSize : Number.NaN;
      this.numSamples = this.batchesTfData && known ? size : Number.NaN;
      return;
    }

    if (given.shuffleBuffer !== undefined) {
      throw new MisconfigurationError(
        `DataLoader option 'shuffleBuffer' (received ${JSON.stringify(given.shuffleBuffer)}) applies to tf.data.Dataset and RecordDataset sources only; ` +
          'a TensorDataset is shuffled in full. Remove the option.',
      );
    }
    this.tfDataset = undefined;
    this.batchesTfData = false;
    this.ownsDataset = !(source instanceof TensorDataset);
    this.dataset = source instanceof TensorDataset ? (source as TensorDataset) : TensorDataset.from(source as TensorDatasetSource);
    if (this.dataset.isDisposed) {
      throw new DataError('DataLoader: the TensorDataset given was disposed; give a live data set.');
    }
    this.batchSize = parsed.batchSize;
    this.numSamples = this.dataset.length;
  }

  /** Batches per epoch (after `dropLast`); Infinity when unknown. */
  get length(): number {
    if (this.tfDataset !== undefined && !this.batchesTfData) {
      const size = this.tfDataset.size;
      return typeof size === 'number' && Number.isFinite(size) && size >= 0 ? size : Number.POSITIVE_INFINITY;
    }
    if (Number.isNaN(this.numSamples)) return Number.POSITIVE_INFINITY;
    return this.dropLast ? Math.floor(this.numSamples / this.batchSize) : Math.ceil(this.numSamples / this.batchSize);
  }

  /**
   * The batches of epoch `epoch`, starting at batch `start` (for a mid-epoch resume). Each batch's
   * tensors are fresh and owned by the consumer. Stopping early (break) leaves nothing behind.
   */
  batches(epoch: number, start = 0): AsyncIterableIterator<B> {
    if (this.disposed) throw new DataError('DataLoader.batches: this loader was disposed; create a new one.');
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new MisconfigurationError(`DataLoader.batches: epoch must be a whole number >= 0 (received ${epoch}).`);
    }
    const length = this.length;
    if (!Number.isInteger(start) || start < 0 || (Number.isFinite(length) && start > length)) {
      throw new MisconfigurationError(
        `DataLoader.batches: start must be a whole number in [0, ${length}], the batches of an epoch (received ${start}).`,
      );
    }
    if (this.records !== undefined) return this.iterateRecords(this.records, epoch, start);
    return this.tfDataset !== undefined ? this.iterateTfData(this.tfDataset, epoch, start) : this.iterateTensors(epoch, start);
  }

  /** The batches of epoch 0: `for await (const batch of loader)`. */
  [Symbol.asyncIterator](): AsyncIterableIterator<B> {
    return this.batches(0);
  }

  /** Frees the data set the loader created from a raw source (never one you passed in). Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ownsDataset) this.dataset?.dispose();
  }

  private async *iterateRecords(records: RecordDataset, epoch: number, start: number): AsyncGenerator<B, void, undefined> {
    const { batchSize, dropLast, shuffle, seed, shuffleBuffer, readAhead } = this;
    for await (const batch of streamRecordBatches(records, { epoch, start, batchSize, dropLast, shuffle, seed, shuffleBuffer, readAhead })) {
      if (this.disposed) {
        tf.dispose(batch);
        throw new DataError('DataLoader: the loader was disposed during iteration.');
      }
      yield batch as B;
    }
  }

  private async *iterateTensors(epoch: number, start: number): AsyncGenerator<B, void, undefined> {
    const dataset = this.dataset!;
    const n = dataset.length;
    const order = this.shuffle ? permutation(n, deriveSeed(this.seed, epoch)) : undefined;
    const end = this.length;
    try {
      for (let b = start; b < end; b++) {
        if (this.disposed) throw new DataError('DataLoader: the loader was disposed during iteration.');
        const first = b * this.batchSize;
        const last = Math.min(n, first + this.batchSize);
        yield (order === undefined ? dataset.getBatch({ start: first, end: last }) : dataset.getBatch(order.subarray(first, last))) as B;
      }
    } finally {
      // A pass that ended (or stopped early) keeps no staging array: an epoch adds nothing that stays.
      dataset._releaseStaging();
    }
  }

  private async *iterateTfData(
    source: tf.data.Dataset<tf.TensorContainer>,
    epoch: number,
    start: number,
  ): AsyncGenerator<B, void, undefined> {
    let dataset = source;
    if (this.shuffle) dataset = dataset.shuffle(this.shuffleBuffer, String(deriveSeed(this.seed, epoch)));
    // Always keep the small last batch here and drop it below: tf.data's batch(n, false) forgets
    // to dispose the tensors of the batch it drops.
    if (this.batchesTfData) dataset = dataset.batch(this.batchSize, true);
    if (start > 0) dataset = dataset.skip(start);
    const iterator = await dataset.iterator();
    let exhausted = false;
    try {
      for (;;) {
        const item = await iterator.next();
        if (item.done) {
          exhausted = true;
          return;
        }
        if (this.batchesTfData && this.dropLast && inferBatchSize(item.value) < this.batchSize) {
          tf.dispose(item.value);
          continue;
        }
        yield item.value as B;
      }
    } finally {
      if (!exhausted) await releaseBuffered(iterator);
    }
  }
}

/** True for a tf.data.Dataset (also one from another copy of tfjs). */
function isTfDataset(x: unknown): x is tf.data.Dataset<tf.TensorContainer> {
  if (x instanceof tf.data.Dataset) return true;
  if (x === null || typeof x !== 'object' || x instanceof TensorDataset) return false;
  const d = x as Record<string, unknown>;
  return ['iterator', 'batch', 'shuffle', 'skip'].every((m) => typeof d[m] === 'function') && 'size' in d;
}

/**
 * Disposes what a tf.data iterator chain holds in its buffers (shuffle and prefetch buffers, queues)
 * when iteration stops early: tf.data has no way to cancel an iterator, and these elements would
 * otherwise leak. Walks the chain through its `upstream` links (tfjs-data 4.x internals).
 */
async function releaseBuffered(iterator: unknown): Promise<void> {
  const seen = new Set<unknown>();
  let node = iterator;
  while (node !== null && typeof node === 'object' && !seen.has(node)) {
    seen.add(node);
    for (const field of ['buffer', 'outputQueue']) {
      const queue = (node as Record<string, unknown>)[field] as { isEmpty?: unknown; shift?: unknown } | undefined;
      if (queue === undefined || typeof queue.isEmpty !== 'function' || typeof queue.shift !== 'function') continue;
      const { isEmpty, shift } = queue as { isEmpty: () => boolean; shift: () => unknown };
      while (!isEmpty.call(queue)) {
        try {
          const entry = await shift.call(queue);
          if (entry !== null && typeof entry === 'object' && 'done' in entry && 'value' in entry) {
            if (!(entry as IteratorResult<unknown>).done) tf.dispose((entry as { value: tf.TensorContainer }).value);
          } else {
            tf.dispose(entry as tf.TensorContainer);
          }
        } catch {
          // An element that failed to load holds no tensor of ours.
        }
      }
    }
    node = (node as { upstream?: unknown }).upstream;
  }
}
