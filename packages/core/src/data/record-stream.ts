import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { DataError } from '../errors.js';
import { createRng, deriveSeed, permutation, type Rng } from '../seed.js';
import type { TensorBatch } from './batch.js';
import type { RecordDataset, RecordFieldLayout } from './record-file.js';

/** How one epoch of a record file is streamed. */
export interface RecordStreamPlan {
  epoch: number;
  /** First batch to yield (a mid-epoch resume). */
  start: number;
  batchSize: number;
  dropLast: boolean;
  shuffle: boolean;
  seed: number;
  /** Shuffle-buffer slots (records); used with `shuffle` only. */
  shuffleBuffer: number;
  /** Records read ahead of the consumer, at most (in two chunks of half of it). */
  readAhead: number;
}

/**
 * The order in which an epoch takes records from the file ("input"): shards of `shardSize`
 * records, in a seeded random order with shuffle, each read front to back.
 */
class InputOrder {
  /** Shards in visiting order. */
  readonly shards: Int32Array;
  /** starts[k]: input position where the k-th visited shard begins; starts[shards.length] = n. */
  readonly starts: Float64Array;

  constructor(
    readonly n: number,
    readonly shardSize: number,
    shuffle: boolean,
    seed: number,
    epoch: number,
  ) {
    const count = Math.ceil(n / shardSize);
    this.shards = shuffle ? permutation(count, deriveSeed(seed, epoch, 1)) : Int32Array.from({ length: count }, (_, i) => i);
    this.starts = new Float64Array(count + 1);
    for (let k = 0; k < count; k++) this.starts[k + 1] = this.starts[k]! + this.shardLength(this.shards[k]!);
  }

  shardLength(shard: number): number {
    return Math.min(this.n, (shard + 1) * this.shardSize) - shard * this.shardSize;
  }

  /** The visit index of the shard that holds input position q. */
  shardAt(q: number): number {
    let lo = 0;
    let hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= q) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The record at input position q. */
  record(q: number, k = this.shardAt(q)): number {
    return this.shards[k]! * this.shardSize + (q - this.starts[k]!);
  }
}

/**
 * The sliding shuffle buffer over record indices (tf.data's algorithm): filled from the input, it
 * emits a seeded random slot and refills that slot with the next input record; once the input is
 * exhausted it drains. The data side mirrors every move (`onFill`, `onEmit`, `onMove`), so running it
 * without data replays an epoch's order to any point (a resume) without reading the skipped records.
 */
class ShuffleIndex {
  readonly slots: Int32Array;
  count = 0;
  /** Next input position. */
  q: number;
  private readonly rng: Rng | undefined;

  constructor(
    readonly input: InputOrder,
    size: number,
    rngSeed: number | undefined,
  ) {
    this.slots = new Int32Array(size);
    this.q = 0;
    this.rng = rngSeed === undefined ? undefined : createRng(rngSeed);
  }

  /** Fills empty slots from the input. */
  fill(): void {
    while (this.count < this.slots.length && this.q < this.input.n) this.fillOne();
  }

  /** Puts the next input record into the first empty slot. */
  fillOne(): void {
    this.slots[this.count] = this.input.record(this.q);
    this.count += 1;
    this.q += 1;
  }

  /**
   * Takes the next record of the epoch: `onEmit(slot)` copies it out, then the slot is refilled from
   * input position q (`onFill`) or from the last slot (`onMove`).
   */
  next(
    onEmit?: (slot: number, record: number) => void,
    onFill?: (slot: number, q: number, record: number) => void,
    onMove?: (from: number, to: number) => void,
  ): number {
    if (this.slots.length === 0) {
      const record = this.input.record(this.q);
      this.q += 1;
      return record;
    }
    this.fill();
    const j = Math.floor(this.rng!.next() * this.count);
    const record = this.slots[j]!;
    onEmit?.(j, record);
    if (this.q < this.input.n) {
      const next = this.input.record(this.q);
      onFill?.(j, this.q, next);
      this.slots[j] = next;
      this.q += 1;
    } else {
      this.count -= 1;
      if (j !== this.count) {
        onMove?.(this.count, j);
        this.slots[j] = this.slots[this.count]!;
      }
    }
    return record;
  }
}

interface Chunk {
  /** Input position of the chunk's first record. */
  q0: number;
  records: number;
  bytes: Buffer;
}

/**
 * Reads the input in chunks that follow the epoch's shard order, one chunk ahead: while the
 * consumer works on chunk i (and the training step runs), chunk i+1 is being read by the thread
 * pool. Holds at most two chunks.
 */
class ChunkReader {
  private current: Chunk | undefined;
  private pending: Promise<Chunk> | undefined;
  private nextQ: number;

  constructor(
    private readonly handle: fs.FileHandle,
    private readonly ds: RecordDataset,
    private readonly input: InputOrder,
    private readonly chunkRecords: number,
    startQ: number,
    private readonly hold: (delta: number) => void,
  ) {
    this.nextQ = startQ;
    this.pending = this.readNext();
  }

  /** The chunk's buffer and the byte offset of the record at input position q (q only grows). */
  async at(q: number): Promise<{ bytes: Buffer; offset: number }> {
    while (this.current === undefined || q >= this.current.q0 + this.current.records) {
      if (this.current !== undefined) this.hold(-this.current.records);
      this.current = undefined;
      if (this.pending === undefined) throw new Error(`record stream: input position ${q} is past the end of the epoch`);
      this.current = await this.pending;
      this.pending = this.readNext();
    }
    return { bytes: this.current.bytes, offset: (q - this.current.q0) * this.ds.recordBytes };
  }

  /** Waits for the read in flight and releases everything held. */
  async close(): Promise<void> {
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined) {
      const chunk = await pending.catch(() => undefined);
      if (chunk !== undefined) this.hold(-chunk.records);
    }
    if (this.current !== undefined) this.hold(-this.current.records);
    this.current = undefined;
  }

  private readNext(): Promise<Chunk> | undefined {
    const q0 = this.nextQ;
    if (q0 >= this.input.n) return undefined;
    const k = this.input.shardAt(q0);
    const shardEnd = this.input.starts[k + 1]!;
    // Chunks are aligned to the shard's start, so a resume reads the same chunks as an uninterrupted run.
    const inShard = q0 - this.input.starts[k]!;
    const alignedEnd = this.input.starts[k]! + (Math.floor(inShard / this.chunkRecords) + 1) * this.chunkRecords;
    const records = Math.min(shardEnd, alignedEnd) - q0;
    this.nextQ = q0 + records;
    const first = this.input.record(q0, k);
    const length = records * this.ds.recordBytes;
    const position = this.ds.dataOffset + first * this.ds.recordBytes;
    this.hold(records);
    const bytes = Buffer.allocUnsafe(length);
    return readFully(this.handle, this.ds, bytes, 0, length, position).then(
      () => ({ q0, records, bytes }),
      (error: unknown) => {
        this.hold(-records);
        throw error;
      },
    );
  }
}

/** Reads `length` bytes at `position`; a short read is a DataError naming the file, record and offset. */
async function readFully(handle: fs.FileHandle, ds: RecordDataset, into: Buffer, at: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(into, at + done, length - done, position + done);
    ds.stats.reads += 1;
    ds.stats.bytesRead += bytesRead;
    if (bytesRead === 0) {
      const offset = position + done;
      const record = Math.floor((offset - ds.dataOffset) / ds.recordBytes);
      throw new DataError(
        `RecordDataset: ${ds.path} ended early: record ${record} at byte offset ${ds.dataOffset + record * ds.recordBytes} is incomplete ` +
          `(no bytes at offset ${offset}; the header announces ${ds.length} records of ${ds.recordBytes} bytes). The file was truncated while in use.`,
      );
    }
    done += bytesRead;
  }
}

/** Per-field arrays a batch is assembled in. */
class BatchBuilder {
  private readonly views: Uint8Array[];
  private readonly arrays: (Float32Array | Int32Array | Uint8Array)[];

  constructor(
    private readonly fields: readonly RecordFieldLayout[],
    readonly rows: number,
  ) {
    this.arrays = fields.map((f) => (f.dtype === 'float32' ? new Float32Array(rows * f.size) : f.dtype === 'int32' ? new Int32Array(rows * f.size) : new Uint8Array(rows * f.size)));
    this.views = this.arrays.map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }

  put(row: number, bytes: Uint8Array, offset: number): void {
    for (let f = 0; f < this.fields.length; f++) {
      const field = this.fields[f]!;
      const start = offset + field.offset;
      this.views[f]!.set(bytes.subarray(start, start + field.bytes), row * field.bytes);
    }
  }

  build(structure: 'record' | 'array'): TensorBatch {
    const tensors = this.fields.map((f, i) => {
      const a = this.arrays[i]!;
      return f.dtype === 'uint8' ? tf.tensor(Int32Array.from(a), [this.rows, ...f.shape], 'int32') : tf.tensor(a, [this.rows, ...f.shape], f.dtype);
    });
    if (structure === 'array') return tensors;
    return Object.fromEntries(this.fields.map((f, i) => [f.name, tensors[i]!]));
  }
}

/**
 * The batches of one epoch of a record file, from batch `plan.start`. Memory: at most
 * `shuffleBuffer` records in the shuffle buffer (with shuffle) plus `readAhead` records in chunks,
 * plus the batch being assembled. A resume replays the epoch's order on indices only, then reads
 * the records that the shuffle buffer held at that point.
 */
export async function* streamRecordBatches(ds: RecordDataset, plan: RecordStreamPlan): AsyncGenerator<TensorBatch, void, undefined> {
  const n = ds.length;
  const stats = ds.stats;
  const hold = (delta: number): void => {
    stats.recordsHeld += delta;
    if (stats.recordsHeld > stats.peakRecordsHeld) stats.peakRecordsHeld = stats.recordsHeld;
  };
  const input = new InputOrder(n, ds.shardSize, plan.shuffle, plan.seed, plan.epoch);
  const slotsWanted = plan.shuffle ? Math.min(plan.shuffleBuffer, n) : 0;
  const order = new ShuffleIndex(input, slotsWanted, plan.shuffle ? deriveSeed(plan.seed, plan.epoch, 2) : undefined);
  const batches = plan.dropLast ? Math.floor(n / plan.batchSize) : Math.ceil(n / plan.batchSize);
  const skip = Math.min(n, plan.start * plan.batchSize);
  for (let i = 0; i < skip; i++) order.next();
  if (plan.start >= batches) return;

  let handle: fs.FileHandle;
  try {
    handle = await fs.open(ds.path, 'r');
  } catch (error) {
    throw new DataError(`RecordDataset: cannot open ${ds.path} (${(error as NodeJS.ErrnoException).code ?? String(error)}).`, { cause: error });
  }
  const R = ds.recordBytes;
  const slots = Buffer.allocUnsafe(slotsWanted * R);
  let slotsHeld = 0;
  const reader = new ChunkReader(handle, ds, input, Math.max(1, Math.ceil(plan.readAhead / 2)), order.q, hold);
  try {
    // A resume: the shuffle buffer holds what it held at this point of an uninterrupted epoch.
    if (order.count > 0) {
      const held = Array.from(order.slots.subarray(0, order.count), (record, slot) => ({ record, slot })).sort((a, b) => a.record - b.record);
      hold(held.length);
      slotsHeld = held.length;
      for (let i = 0; i < held.length; i += 64) {
        await Promise.all(
          held.slice(i, i + 64).map(({ record, slot }) => readFully(handle, ds, slots, slot * R, R, ds.dataOffset + record * R)),
        );
      }
    }
    for (let b = plan.start; b < batches; b++) {
      const rows = Math.min(plan.batchSize, n - b * plan.batchSize);
      const builder = new BatchBuilder(ds.fields, rows);
      for (let row = 0; row < rows; row++) {
        if (slotsWanted === 0) {
          const { bytes, offset } = await reader.at(order.q);
          order.next();
          builder.put(row, bytes, offset);
          continue;
        }
        // Fill the shuffle buffer (at the start of the epoch), one input record at a time.
        while (order.count < slotsWanted && order.q < n) {
          const { bytes, offset } = await reader.at(order.q);
          const slot = order.count;
          order.fillOne();
          bytes.copy(slots, slot * R, offset, offset + R);
          hold(1);
          slotsHeld += 1;
        }
        const from = order.q < n ? await reader.at(order.q) : undefined;
        order.next(
          (slot) => builder.put(row, slots, slot * R),
          (slot) => from!.bytes.copy(slots, slot * R, from!.offset, from!.offset + R),
          (src, dst) => slots.copy(slots, dst * R, src * R, src * R + R),
        );
        if (from === undefined) {
          hold(-1);
          slotsHeld -= 1;
        }
      }
      yield builder.build(ds.structure);
    }
  } finally {
    await reader.close();
    hold(-slotsHeld);
    await handle.close().catch(() => undefined);
  }
}
