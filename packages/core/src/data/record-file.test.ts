import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataError, DataLoader, MisconfigurationError, RecordDataset, RecordFileWriter, writeRecordFile } from '@flint/core';

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-records-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

type Rec = Record<string, tf.Tensor>;

const FIELDS = [
  { name: 'x', dtype: 'float32', shape: [3] },
  { name: 'id', dtype: 'int32', shape: [] },
  { name: 'px', dtype: 'uint8', shape: [2] },
] as const;

/** Sample i: x = [i, i + 0.5, -i], id = i, px = [i % 256, 255 - i % 256]. */
function columns(n: number) {
  const x = new Float32Array(n * 3);
  const id = new Int32Array(n);
  const px = new Uint8Array(n * 2);
  for (let i = 0; i < n; i++) {
    x.set([i, i + 0.5, -i], i * 3);
    id[i] = i;
    px.set([i % 256, 255 - (i % 256)], i * 2);
  }
  return { x, id, px };
}

async function writeIds(file: string, n: number): Promise<string> {
  const { x, id, px } = columns(n);
  function* samples() {
    for (let i = 0; i < n; i++) yield { x: x.subarray(i * 3, i * 3 + 3), id: id[i]!, px: px.subarray(i * 2, i * 2 + 2) };
  }
  const count = await writeRecordFile(file, FIELDS.map((f) => ({ ...f, shape: [...f.shape] })), samples());
  expect(count).toBe(n);
  return file;
}

/** Row ids per batch of one epoch (from batch `start`), disposing the batches. */
async function epochIds(loader: DataLoader<Record<string, tf.Tensor>>, epoch: number, start = 0): Promise<number[][]> {
  const out: number[][] = [];
  for await (const batch of loader.batches(epoch, start)) {
    out.push(Array.from(await batch.id!.data()));
    tf.dispose(batch);
  }
  return out;
}

describe('record files', () => {
  it('stream the exact batches of the in-memory loader when not shuffling, values and dtypes included', async () => {
    const n = 103;
    const file = await writeIds(path.join(dir, 'same.rec'), n);
    const ds = new RecordDataset(file, { shardSize: 16 });
    expect(fs.statSync(file).size).toBe(ds.dataOffset + n * (12 + 4 + 2));
    const { x, id, px } = columns(n);
    const memory = new DataLoader<Rec>({ x: { data: x, shape: [n, 3] }, id: { data: id, shape: [n] }, px: { data: px, shape: [n, 2] } }, { batchSize: 10 });
    const streamed = new DataLoader<Rec>(ds, { batchSize: 10, readAhead: 6 });
    expect(streamed.length).toBe(memory.length);
    const a = memory.batches(0);
    let batches = 0;
    for await (const s of streamed.batches(0)) {
      const m = (await a.next()).value as Record<string, tf.Tensor>;
      for (const key of ['x', 'id', 'px']) {
        expect(s[key]!.dtype).toBe(m[key]!.dtype);
        expect(s[key]!.shape).toEqual(m[key]!.shape);
        expect(Array.from(await s[key]!.data())).toEqual(Array.from(await m[key]!.data()));
      }
      tf.dispose([s, m]);
      batches += 1;
    }
    expect(batches).toBe(11);
    expect((await a.next()).done).toBe(true);
    memory.dispose();
  });

  it('yields [x, y] arrays with structure: array, and drops the small last batch with dropLast', async () => {
    const file = await writeIds(path.join(dir, 'array.rec'), 25);
    const loader = new DataLoader<Rec>(new RecordDataset(file, { structure: 'array' }), { batchSize: 10, dropLast: true });
    const shapes: number[][][] = [];
    for await (const batch of loader.batches(0)) {
      shapes.push((batch as unknown as tf.Tensor[]).map((t) => t.shape));
      tf.dispose(batch);
    }
    expect(shapes).toEqual([
      [[10, 3], [10], [10, 2]],
      [[10, 3], [10], [10, 2]],
    ]);
  });

  it('shuffle by shard and buffer: every record once per epoch, the same order for a seed, another order per epoch', async () => {
    const n = 500;
    const file = await writeIds(path.join(dir, 'shuffle.rec'), n);
    const make = (seed: number) => new DataLoader<Rec>(new RecordDataset(file, { shardSize: 64 }), { batchSize: 32, shuffle: true, seed, shuffleBuffer: 50, readAhead: 20 });
    const e0 = (await epochIds(make(3), 0)).flat();
    expect([...e0].sort((p, q) => p - q)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(e0).not.toEqual(Array.from({ length: n }, (_, i) => i));
    expect((await epochIds(make(3), 0)).flat()).toEqual(e0);
    expect((await epochIds(make(3), 1)).flat()).not.toEqual(e0);
    expect((await epochIds(make(4), 0)).flat()).not.toEqual(e0);
    // Records travel across shards: the first 64 samples do not all come from one shard.
    expect(new Set(e0.slice(0, 64).map((i) => Math.floor(i / 64))).size).toBeGreaterThan(1);
  });

  it('resume: batches(e, k) yields exactly the rest of the uninterrupted epoch, also once the buffer drains', async () => {
    const n = 300;
    const file = await writeIds(path.join(dir, 'resume.rec'), n);
    const loader = new DataLoader<Rec>(new RecordDataset(file, { shardSize: 40 }), { batchSize: 16, shuffle: true, seed: 11, shuffleBuffer: 70, readAhead: 12 });
    const full = await epochIds(loader, 2);
    for (const k of [1, 7, 15, 18, 19]) expect(await epochIds(loader, 2, k)).toEqual(full.slice(k));
    const plain = new DataLoader<Rec>(new RecordDataset(file, { shardSize: 40 }), { batchSize: 16 });
    const order = await epochIds(plain, 0);
    expect(await epochIds(plain, 0, 5)).toEqual(order.slice(5));
  });

  it('holds at most shuffleBuffer + readAhead records while streaming a file many times larger, and reads each record once', async () => {
    const n = 6000;
    const file = await writeIds(path.join(dir, 'big.rec'), n);
    for (const shuffle of [false, true]) {
      const ds = new RecordDataset(file, { shardSize: 512 });
      const loader = new DataLoader<Rec>(ds, { batchSize: 64, shuffle, seed: 1, ...(shuffle ? { shuffleBuffer: 256 } : {}), readAhead: 128 });
      let seen = 0;
      for await (const batch of loader.batches(0)) {
        seen += batch.id!.shape[0]!;
        tf.dispose(batch);
        expect(ds.stats.recordsHeld).toBeLessThanOrEqual((shuffle ? 256 : 0) + 128);
      }
      expect(seen).toBe(n);
      // The file holds 6000 records: 15x the bound.
      expect(ds.stats.peakRecordsHeld).toBeLessThanOrEqual((shuffle ? 256 : 0) + 128);
      expect(ds.stats.peakRecordsHeld).toBeGreaterThanOrEqual(shuffle ? 256 : 64);
      expect(ds.stats.recordsHeld).toBe(0);
      expect(ds.stats.bytesRead).toBe(n * ds.recordBytes);
    }
  });

  it('stopping an epoch early (break) releases everything it held', async () => {
    const file = await writeIds(path.join(dir, 'break.rec'), 400);
    const ds = new RecordDataset(file);
    const loader = new DataLoader<Rec>(ds, { batchSize: 10, shuffle: true, seed: 2, shuffleBuffer: 100, readAhead: 40 });
    for await (const batch of loader.batches(0)) {
      tf.dispose(batch);
      break;
    }
    expect(ds.stats.recordsHeld).toBe(0);
  });

  it('bad input: a DataError naming the file and the byte offset or record', async () => {
    const good = await writeIds(path.join(dir, 'good.rec'), 10);
    const bytes = fs.readFileSync(good);
    const offset = new RecordDataset(good).dataOffset;
    const missing = path.join(dir, 'missing.rec');
    expect(() => new RecordDataset(missing)).toThrow(
      new DataError(`RecordDataset: cannot open ${missing} (ENOENT): no such file; write one with writeRecordFile.`),
    );
    const notRec = path.join(dir, 'not.rec');
    fs.writeFileSync(notRec, 'hello world, this is text and not records');
    expect(() => new RecordDataset(notRec)).toThrow(
      new DataError(`RecordDataset: ${notRec} is not a Flint record file: bytes 0-7 are "hello wo", expected "FLINTREC" (byte offset 0).`),
    );
    const truncated = path.join(dir, 'truncated.rec');
    fs.writeFileSync(truncated, bytes.subarray(0, offset + 4 * 18 + 5));
    expect(() => new RecordDataset(truncated)).toThrow(
      new DataError(
        `RecordDataset: ${truncated} is truncated: its header announces 10 records of 18 bytes (${offset + 180} bytes in all), ` +
          `but the file ends at byte ${offset + 77}, inside record 4 (which starts at byte offset ${offset + 72}).`,
      ),
    );
    const badHeader = path.join(dir, 'header.rec');
    const broken = Buffer.from(bytes);
    broken.write('{', 24 + 5, 'latin1');
    fs.writeFileSync(badHeader, broken);
    expect(() => new RecordDataset(badHeader)).toThrow(/^RecordDataset: .*header\.rec has a header at byte offset 24 that (is not valid JSON|does not describe records)/);
    const version = path.join(dir, 'version.rec');
    const v2 = Buffer.from(bytes);
    v2.writeUInt32LE(2, 8);
    fs.writeFileSync(version, v2);
    expect(() => new RecordDataset(version)).toThrow(new DataError(`RecordDataset: ${version} has format version 2 at byte offset 8; this Flint reads version 1.`));
    const trailing = path.join(dir, 'trailing.rec');
    fs.writeFileSync(trailing, Buffer.concat([bytes, Buffer.from([1, 2, 3])]));
    expect(() => new RecordDataset(trailing)).toThrow(
      new DataError(
        `RecordDataset: ${trailing} has 3 bytes after its last record (from byte offset ${offset + 180}); its header announces 10 records of 18 bytes. The file is damaged or was appended to.`,
      ),
    );
    // Truncated while a loader uses it: the read that comes up short names the record.
    const shrinking = path.join(dir, 'shrinking.rec');
    fs.copyFileSync(good, shrinking);
    const loader = new DataLoader<Rec>(new RecordDataset(shrinking), { batchSize: 4, readAhead: 2 });
    fs.truncateSync(shrinking, offset + 18 * 6);
    const read = async () => {
      for await (const batch of loader.batches(0)) tf.dispose(batch);
    };
    await expect(read()).rejects.toThrow(
      new DataError(
        `RecordDataset: ${shrinking} ended early: record 6 at byte offset ${offset + 108} is incomplete (no bytes at offset ${offset + 108}; ` +
          'the header announces 10 records of 18 bytes). The file was truncated while in use.',
      ),
    );
  });

  it('the writer is atomic: a bad sample leaves neither the target nor a temporary file', async () => {
    const target = path.join(dir, 'atomic', 'bad.rec');
    function* samples() {
      yield { x: [1, 2, 3], id: 1, px: [0, 1] };
      yield { x: [1, 2], id: 2, px: [0, 1] };
    }
    await expect(writeRecordFile(target, [...FIELDS].map((f) => ({ ...f, shape: [...f.shape] })), samples())).rejects.toThrow(
      new DataError(`writeRecordFile(${target}): sample 1 field 'x' has 2 values; it needs 3 float32 values (shape [3]).`),
    );
    expect(fs.readdirSync(path.dirname(target))).toEqual([]);
    const writer = await RecordFileWriter.create(target, [{ name: 'y', dtype: 'uint8', shape: [] }]);
    await expect(writer.append({ y: 300 })).rejects.toThrow(new DataError(`writeRecordFile(${target}): sample 0 field 'y' holds 300 (value 0); it needs one uint8 number (whole numbers in [0, 255]).`));
    await writer.abort();
    expect(fs.readdirSync(path.dirname(target))).toEqual([]);
  });

  it('options: readAhead only for record files, strict fields', async () => {
    expect(() => new DataLoader({ data: new Float32Array(8), shape: [4, 2] }, { readAhead: 8 })).toThrow(
      new MisconfigurationError(
        "DataLoader option 'readAhead' (received 8) applies to RecordDataset sources only; in-memory data is not read ahead. Remove the option.",
      ),
    );
    await expect(RecordFileWriter.create(path.join(dir, 'x.rec'), [{ name: 'x', dtype: 'float64' as 'float32', shape: [2] }])).rejects.toThrow(MisconfigurationError);
  });
});
