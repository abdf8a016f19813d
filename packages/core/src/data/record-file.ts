import { closeSync, fstatSync, openSync, promises as fs, readSync } from 'node:fs';
import * as path from 'node:path';
import { endianness } from 'node:os';
import { z } from 'zod';
import { atomicTempPath, removeStaleTempFiles, trackTempFile } from '../atomic-write.js';
import { DataError, MisconfigurationError } from '../errors.js';
import { parseOptions } from '../options.js';
import { positiveInt } from '../schemas.js';

/**
 * Flint record files: samples of fixed size on disk, for data sets bigger than memory.
 *
 * Layout (all numbers little-endian):
 *
 * | bytes | content |
 * |---|---|
 * | 0-7 | magic `FLINTREC` (ASCII) |
 * | 8-11 | format version, uint32 (1) |
 * | 12-15 | header length H in bytes, uint32 |
 * | 16-23 | record count N, uint64 |
 * | 24 .. 24+H | header, UTF-8 JSON: `{ "fields": [{ "name", "dtype", "shape" }, ...], "recordBytes": R }` |
 * | 24+H .. | N records of R bytes each |
 *
 * A record holds its fields one after the other in header order, each as `prod(shape)` values of
 * its dtype (`float32`, `int32`: 4 bytes; `uint8`: 1 byte), so record `i` starts at byte
 * `24 + H + i * R`. The file's size is exactly `24 + H + N * R`.
 */
export const RECORD_FILE_MAGIC = 'FLINTREC';
const VERSION = 1;
const PREFIX_BYTES = 24;
/** Headers longer than this are not Flint headers (a guard against reading garbage as a length). */
const MAX_HEADER_BYTES = 1 << 20;

/** The dtypes a record field can have on disk. `uint8` fields become int32 tensors. */
export type RecordDtype = 'float32' | 'int32' | 'uint8';

/** One field of every record: its name, dtype and the shape of one sample's value (`[]` for a scalar). */
export interface RecordField {
  name: string;
  dtype: RecordDtype;
  shape: number[];
}

/** One sample for `writeRecordFile`: a value per field, a number for a scalar field, else its values in row-major order. */
export type RecordSample = Readonly<Record<string, number | ArrayLike<number>>>;

const fieldSchema = z.strictObject({
  name: z.string().min(1, { error: 'must be a non-empty string' }),
  dtype: z.enum(['float32', 'int32', 'uint8']),
  shape: z.array(z.number().int().min(1, { error: 'dimensions must be whole numbers >= 1' })),
});
const fieldsSchema = z.array(fieldSchema).min(1, { error: 'needs at least one field' });

const BYTES: Record<RecordDtype, number> = { float32: 4, int32: 4, uint8: 1 };

/** A field with its place inside a record. */
export interface RecordFieldLayout extends RecordField {
  /** Values per sample (`prod(shape)`). */
  readonly size: number;
  /** Byte offset of the field inside a record. */
  readonly offset: number;
  /** Bytes per sample. */
  readonly bytes: number;
}

function layout(fields: readonly RecordField[]): { fields: RecordFieldLayout[]; recordBytes: number } {
  let offset = 0;
  const out = fields.map((f) => {
    const size = f.shape.reduce((a, b) => a * b, 1);
    const bytes = size * BYTES[f.dtype];
    const l = { name: f.name, dtype: f.dtype, shape: [...f.shape], size, offset, bytes };
    offset += bytes;
    return l;
  });
  return { fields: out, recordBytes: offset };
}

function checkHost(): void {
  if (endianness() !== 'LE') throw new DataError('Flint record files are little-endian; this machine is big-endian, which is not supported.');
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/** Bytes buffered before each write to disk. */
const WRITE_BUFFER_BYTES = 4 << 20;

/**
 * Writes a record file sample by sample with bounded memory (a 4 MB buffer), atomically: the
 * records go to a temporary file beside the target, which is flushed to disk and renamed over the
 * target by `close()`, so a crash leaves the old file or the new one, never half of one.
 * `abort()` (or a failing `append`) removes the temporary file.
 */
export class RecordFileWriter {
  /** The fields of every record, with their byte offsets. */
  readonly fields: readonly RecordFieldLayout[];
  /** Bytes per record. */
  readonly recordBytes: number;
  private count = 0;
  private readonly buffer: Buffer;
  private used = 0;
  private position: number;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly tmp: string,
    private readonly handle: fs.FileHandle,
    private readonly untrack: () => void,
    header: Buffer,
    fields: RecordFieldLayout[],
    recordBytes: number,
  ) {
    this.fields = fields;
    this.recordBytes = recordBytes;
    this.buffer = Buffer.allocUnsafe(Math.max(WRITE_BUFFER_BYTES, recordBytes));
    header.copy(this.buffer, 0);
    this.used = header.length;
    this.position = 0;
  }

  /** Starts a record file at `target` whose records have the given fields (in this order). */
  static async create(target: string, fields: readonly RecordField[]): Promise<RecordFileWriter> {
    checkHost();
    const parsed = fieldsSchema.safeParse(fields);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new MisconfigurationError(
        `writeRecordFile: fields${issue.path.map((p) => `[${JSON.stringify(p)}]`).join('')} ${issue.message} (received ${JSON.stringify(fields)}); ` +
          "give [{ name: 'x', dtype: 'float32', shape: [784] }, { name: 'y', dtype: 'int32', shape: [] }]-like fields.",
        { cause: parsed.error },
      );
    }
    const names = parsed.data.map((f) => f.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw new MisconfigurationError(`writeRecordFile: field name '${dup}' appears twice in fields (${names.join(', ')}); names must be unique.`);
    const { fields: laid, recordBytes } = layout(parsed.data);
    const json = Buffer.from(JSON.stringify({ fields: parsed.data, recordBytes }), 'utf8');
    const header = Buffer.alloc(PREFIX_BYTES + json.length);
    header.write(RECORD_FILE_MAGIC, 0, 'ascii');
    header.writeUInt32LE(VERSION, 8);
    header.writeUInt32LE(json.length, 12);
    header.writeBigUInt64LE(0n, 16);
    json.copy(header, PREFIX_BYTES);
    const dir = path.dirname(target);
    await fs.mkdir(dir, { recursive: true });
    removeStaleTempFiles(dir, { once: true });
    const tmp = path.resolve(atomicTempPath(target));
    const untrack = trackTempFile(tmp);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(tmp, 'w');
    } catch (error) {
      untrack();
      throw error;
    }
    return new RecordFileWriter(target, tmp, handle, untrack, header, laid, recordBytes);
  }

  /** Records appended so far. */
  get length(): number {
    return this.count;
  }

  /** Appends one sample: a value per field (a number for a scalar field, else `prod(shape)` values). */
  async append(sample: RecordSample): Promise<void> {
    if (this.closed) throw new DataError(`RecordFileWriter(${this.path}): append after close() or abort().`);
    if (this.used + this.recordBytes > this.buffer.length) await this.flush();
    const base = this.used;
    for (const f of this.fields) {
      const value = sample[f.name];
      const at = base + f.offset;
      if (typeof value === 'number') {
        if (f.size !== 1) throw this.sampleError(f, value);
        this.put(f, at, 0, value);
      } else if (value !== null && typeof value === 'object' && typeof (value as ArrayLike<number>).length === 'number') {
        if (value.length !== f.size) throw this.sampleError(f, value);
        if (f.dtype === 'float32' && value instanceof Float32Array) {
          this.buffer.set(new Uint8Array(value.buffer, value.byteOffset, f.bytes), at);
        } else {
          for (let i = 0; i < f.size; i++) this.put(f, at, i, value[i]!);
        }
      } else {
        throw this.sampleError(f, value);
      }
    }
    this.used += this.recordBytes;
    this.count += 1;
  }

  /** Flushes the records to disk and renames the file into place; returns the number of records. */
  async close(): Promise<number> {
    if (this.closed) throw new DataError(`RecordFileWriter(${this.path}): close() called twice.`);
    try {
      await this.flush();
      const count = Buffer.alloc(8);
      count.writeBigUInt64LE(BigInt(this.count));
      await this.handle.write(count, 0, 8, 16);
      await this.handle.sync();
      this.closed = true;
      await this.handle.close();
      await fs.rename(this.tmp, this.path);
      this.untrack();
    } catch (error) {
      await this.abort();
      throw error;
    }
    try {
      const dirHandle = await fs.open(path.dirname(this.path), 'r');
      await dirHandle.sync().finally(() => dirHandle.close());
    } catch {
      // Some file systems cannot fsync a directory; the rename is still atomic.
    }
    return this.count;
  }

  /** Stops writing and removes the temporary file (the target is left as it was). Idempotent. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => undefined);
    }
    await fs.rm(this.tmp, { force: true }).catch(() => undefined);
    this.untrack();
  }

  private put(f: RecordFieldLayout, at: number, i: number, v: number): void {
    if (typeof v !== 'number' || (Number.isNaN(v) && f.dtype !== 'float32')) throw this.sampleError(f, v, i);
    if (f.dtype === 'float32') this.buffer.writeFloatLE(v, at + 4 * i);
    else if (f.dtype === 'int32') {
      if (!Number.isInteger(v) || v < -0x8000_0000 || v > 0x7fff_ffff) throw this.sampleError(f, v, i);
      this.buffer.writeInt32LE(v, at + 4 * i);
    } else {
      if (!Number.isInteger(v) || v < 0 || v > 255) throw this.sampleError(f, v, i);
      this.buffer[at + i] = v;
    }
  }

  private sampleError(f: RecordFieldLayout, value: unknown, index?: number): DataError {
    const range = f.dtype === 'uint8' ? ', whole numbers in [0, 255]' : f.dtype === 'int32' ? ', 32-bit integers' : '';
    const expected = f.shape.length === 0 ? `one ${f.dtype} number${range ? ` (${range.slice(2)})` : ''}` : `${f.size} ${f.dtype} values (shape [${f.shape.join(',')}]${range})`;
    const shown =
      index !== undefined
        ? `holds ${String(value)} (value ${index})`
        : typeof value === 'object' && value !== null && 'length' in value
          ? `has ${(value as ArrayLike<number>).length} values`
          : `is ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`;
    return new DataError(`writeRecordFile(${this.path}): sample ${this.count} field '${f.name}' ${shown}; it needs ${expected}.`);
  }

  private async flush(): Promise<void> {
    let done = 0;
    while (done < this.used) {
      const { bytesWritten } = await this.handle.write(this.buffer, done, this.used - done, this.position);
      done += bytesWritten;
      this.position += bytesWritten;
    }
    this.used = 0;
  }
}

/**
 * Writes `samples` (an iterable or async iterable, consumed once, with bounded memory) to a
 * record file at `target`, atomically (see `RecordFileWriter`). Returns the number of records.
 *
 * ```ts
 * import { writeRecordFile } from '@flint/core';
 * function* samples() {
 *   for (let i = 0; i < 1000; i++) yield { x: new Float32Array(784), y: i % 10 };
 * }
 * await writeRecordFile('/tmp/mnist.rec', [
 *   { name: 'x', dtype: 'float32', shape: [784] },
 *   { name: 'y', dtype: 'int32', shape: [] },
 * ], samples());
 * ```
 */
export async function writeRecordFile(
  target: string,
  fields: readonly RecordField[],
  samples: Iterable<RecordSample> | AsyncIterable<RecordSample>,
): Promise<number> {
  const writer = await RecordFileWriter.create(target, fields);
  try {
    for await (const sample of samples) await writer.append(sample);
  } catch (error) {
    await writer.abort();
    throw error;
  }
  return writer.close();
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

export const recordDatasetOptionsSchema = z.strictObject({
  /**
   * Records per shard: with `shuffle`, each epoch visits the shards (contiguous runs of records)
   * in a seeded random order, then mixes records through the loader's shuffle buffer.
   */
  shardSize: positiveInt.default(4096),
  /** Batches as a record of tensors keyed by field name (`{ x, y }`), or an array in field order (`[x, y]`). */
  structure: z.enum(['record', 'array']).default('record'),
});

export type RecordDatasetOptions = z.input<typeof recordDatasetOptionsSchema>;

/** Counters of what a streaming loader holds in memory, for checks and benchmarks. */
export interface RecordStreamStats {
  /** Records held now: filled shuffle-buffer slots plus records in chunks read or being read. */
  recordsHeld: number;
  /** The most records held at once since the counters were reset. */
  peakRecordsHeld: number;
  /** Bytes read from the file. */
  bytesRead: number;
  /** Read calls made. */
  reads: number;
}

/**
 * A data set of fixed-size records in a Flint record file (see `writeRecordFile`), streamed from
 * disk by a `DataLoader`: nothing but the header is read here. The header is checked at once: a
 * missing file, a wrong magic or version, a bad header or a size that does not match the records
 * it announces throws a DataError naming the file and the byte offset.
 */
export class RecordDataset {
  /** The file (as given). */
  readonly path: string;
  /** The fields of every record, in order, with their byte offsets. */
  readonly fields: readonly RecordFieldLayout[];
  /** Number of records (samples). */
  readonly length: number;
  /** Bytes per record. */
  readonly recordBytes: number;
  /** Byte offset of record 0. */
  readonly dataOffset: number;
  /** Records per shard. */
  readonly shardSize: number;
  /** The form of a batch: `{ x, y }` or `[x, y]`. */
  readonly structure: 'record' | 'array';
  /** What the loader streaming this file holds in memory (updated while it iterates). */
  readonly stats: RecordStreamStats = { recordsHeld: 0, peakRecordsHeld: 0, bytesRead: 0, reads: 0 };

  constructor(file: string, options?: RecordDatasetOptions) {
    const parsed = parseOptions('RecordDataset', recordDatasetOptionsSchema, options);
    checkHost();
    this.path = file;
    this.shardSize = parsed.shardSize;
    this.structure = parsed.structure;
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new DataError(
        `RecordDataset: cannot open ${file} (${code ?? String(error)})${code === 'ENOENT' ? ': no such file; write one with writeRecordFile' : ''}.`,
        { cause: error },
      );
    }
    try {
      const size = fstatSync(fd).size;
      const prefix = Buffer.alloc(PREFIX_BYTES);
      const got = readSync(fd, prefix, 0, PREFIX_BYTES, 0);
      if (got < 8 || prefix.toString('latin1', 0, 8) !== RECORD_FILE_MAGIC) {
        throw new DataError(
          `RecordDataset: ${file} is not a Flint record file: bytes 0-7 are ${JSON.stringify(prefix.toString('latin1', 0, Math.min(got, 8)))}, expected "${RECORD_FILE_MAGIC}" (byte offset 0).`,
        );
      }
      if (got < PREFIX_BYTES) {
        throw new DataError(`RecordDataset: ${file} is truncated: it ends at byte ${size}, inside the ${PREFIX_BYTES}-byte prefix (byte offset ${got}).`);
      }
      const version = prefix.readUInt32LE(8);
      if (version !== VERSION) {
        throw new DataError(`RecordDataset: ${file} has format version ${version} at byte offset 8; this Flint reads version ${VERSION}.`);
      }
      const headerBytes = prefix.readUInt32LE(12);
      const count = prefix.readBigUInt64LE(16);
      if (headerBytes === 0 || headerBytes > MAX_HEADER_BYTES || PREFIX_BYTES + headerBytes > size) {
        throw new DataError(
          `RecordDataset: ${file} has a header length of ${headerBytes} bytes at byte offset 12, but the file has ${size} bytes ` +
            `(a header is 1 to ${MAX_HEADER_BYTES} bytes and fits in the file): the file is truncated or not a record file.`,
        );
      }
      const json = Buffer.alloc(headerBytes);
      readSync(fd, json, 0, headerBytes, PREFIX_BYTES);
      let header: unknown;
      try {
        header = JSON.parse(json.toString('utf8'));
      } catch (error) {
        throw new DataError(`RecordDataset: ${file} has a header at byte offset ${PREFIX_BYTES} that is not valid JSON (${(error as Error).message}).`, { cause: error });
      }
      const h = z.strictObject({ fields: fieldsSchema, recordBytes: z.number().int().min(1) }).safeParse(header);
      if (!h.success) {
        throw new DataError(
          `RecordDataset: ${file} has a header at byte offset ${PREFIX_BYTES} that does not describe records ` +
            `(${h.error.issues.map((i) => `${i.path.join('.') || '(header)'}: ${i.message}`).join('; ')}).`,
          { cause: h.error },
        );
      }
      const { fields, recordBytes } = layout(h.data.fields);
      if (recordBytes !== h.data.recordBytes) {
        throw new DataError(
          `RecordDataset: ${file} has a header at byte offset ${PREFIX_BYTES} whose recordBytes (${h.data.recordBytes}) does not match its fields (${recordBytes} bytes).`,
        );
      }
      this.fields = fields;
      this.recordBytes = recordBytes;
      this.dataOffset = PREFIX_BYTES + headerBytes;
      if (count > BigInt(Number.MAX_SAFE_INTEGER) || count > 0x7fff_ffffn) {
        throw new DataError(`RecordDataset: ${file} announces ${count} records at byte offset 16; at most ${0x7fff_ffff} are supported.`);
      }
      this.length = Number(count);
      if (this.length === 0) throw new DataError(`RecordDataset: ${file} holds 0 records (byte offset 16); a data set needs at least one.`);
      const expected = this.dataOffset + this.length * recordBytes;
      if (size < expected) {
        const record = Math.floor((size - this.dataOffset) / recordBytes);
        throw new DataError(
          `RecordDataset: ${file} is truncated: its header announces ${this.length} records of ${recordBytes} bytes (${expected} bytes in all), ` +
            `but the file ends at byte ${size}, inside record ${record} (which starts at byte offset ${this.dataOffset + record * recordBytes}).`,
        );
      }
      if (size > expected) {
        throw new DataError(
          `RecordDataset: ${file} has ${size - expected} bytes after its last record (from byte offset ${expected}); ` +
            `its header announces ${this.length} records of ${recordBytes} bytes. The file is damaged or was appended to.`,
        );
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Sets the counters back to zero (`stats`). */
  resetStats(): void {
    Object.assign(this.stats, { recordsHeld: 0, peakRecordsHeld: 0, bytesRead: 0, reads: 0 });
  }
}
