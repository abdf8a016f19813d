import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataError, DataLoader, MisconfigurationError, TensorDataset, seedEverything } from '@flint/core';

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

/** A data set whose row i has id i (x = [i, i], id = i). */
function idDataset(n: number) {
  const x = new Float32Array(n * 2).map((_, k) => Math.floor(k / 2));
  const id = new Int32Array(n).map((_, i) => i);
  return TensorDataset.from({ x: { data: x, shape: [n, 2] }, id: { data: id, shape: [n] } });
}

/** Reads every batch of an epoch as the list of row ids per batch, disposing the batches. */
async function epochIds(loader: DataLoader<Record<string, tf.Tensor>>, epoch: number, start = 0): Promise<number[][]> {
  const out: number[][] = [];
  for await (const batch of loader.batches(epoch, start)) {
    out.push(Array.from(await batch.id!.data()));
    tf.dispose(batch);
  }
  return out;
}

describe('DataLoader over a TensorDataset', () => {
  it('yields batches of batchSize with a smaller last one, in order when not shuffling', async () => {
    const ds = idDataset(10);
    const loader = new DataLoader(ds, { batchSize: 4 });
    expect(loader.batchSize).toBe(4);
    expect(loader.numSamples).toBe(10);
    expect(loader.length).toBe(3);
    const shapes: number[][] = [];
    for await (const batch of loader) {
      shapes.push(batch.x!.shape);
      tf.dispose(batch);
    }
    expect(shapes).toEqual([[4, 2], [4, 2], [2, 2]]);
    expect(await epochIds(loader, 0)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    loader.dispose();
    ds.dispose();
  });

  it('drops the smaller last batch with dropLast', async () => {
    const ds = idDataset(10);
    const loader = new DataLoader(ds, { batchSize: 4, dropLast: true });
    expect(loader.length).toBe(2);
    expect(await epochIds(loader, 0)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
    const exact = new DataLoader(ds, { batchSize: 5, dropLast: true });
    expect(exact.length).toBe(2);
    expect((await epochIds(exact, 0)).map((b) => b.length)).toEqual([5, 5]);
    ds.dispose();
  });

  it('defaults to batches of 32, no shuffle, no drop', async () => {
    const ds = idDataset(70);
    const loader = new DataLoader(ds);
    expect([loader.batchSize, loader.shuffle, loader.dropLast, loader.length]).toEqual([32, false, false, 3]);
    expect((await epochIds(loader, 0)).map((b) => b.length)).toEqual([32, 32, 6]);
    ds.dispose();
  });

  it('shuffles reproducibly: same seed and epoch, same order; another epoch, another order; every row once', async () => {
    const ds = idDataset(50);
    const a = new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 123 });
    const b = new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 123 });
    const e0 = await epochIds(a, 0);
    expect(await epochIds(b, 0)).toEqual(e0);
    expect(await epochIds(a, 0)).toEqual(e0);
    const e1 = await epochIds(a, 1);
    expect(e1).not.toEqual(e0);
    for (const epoch of [e0, e1]) {
      expect(epoch.flat().sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(epoch.map((batch) => batch.length)).toEqual([8, 8, 8, 8, 8, 8, 2]);
    }
    expect(e0.flat()).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    const other = new DataLoader(ds, { batchSize: 8, shuffle: true, seed: 124 });
    expect(await epochIds(other, 0)).not.toEqual(e0);
    ds.dispose();
  });

  it('with dropLast and shuffle, every epoch drops different rows but never repeats one', async () => {
    const ds = idDataset(10);
    const loader = new DataLoader(ds, { batchSize: 3, shuffle: true, seed: 1, dropLast: true });
    const seen = (await epochIds(loader, 0)).flat();
    expect(seen).toHaveLength(9);
    expect(new Set(seen).size).toBe(9);
    ds.dispose();
  });

  it('resumes mid-epoch: batches(e, k) yields exactly batches k.. of the full epoch', async () => {
    const ds = idDataset(37);
    const loader = new DataLoader(ds, { batchSize: 5, shuffle: true, seed: 9 });
    const full = await epochIds(loader, 3);
    expect(await epochIds(loader, 3, 4)).toEqual(full.slice(4));
    expect(await epochIds(loader, 3, loader.length)).toEqual([]);
    const plain = new DataLoader(ds, { batchSize: 5 });
    expect(await epochIds(plain, 0, 6)).toEqual([[30, 31, 32, 33, 34], [35, 36]]);
    ds.dispose();
  });

  it('uses the seedEverything seed by default', async () => {
    const ds = idDataset(20);
    seedEverything(77);
    const implicit = new DataLoader(ds, { shuffle: true, batchSize: 20 });
    expect(implicit.seed).toBe(77);
    const explicit = new DataLoader(ds, { shuffle: true, batchSize: 20, seed: 77 });
    expect(await epochIds(implicit, 2)).toEqual(await epochIds(explicit, 2));
    ds.dispose();
  });

  it('stops early without leaking, and leaves a loader that can iterate again', async () => {
    const ds = idDataset(20);
    const loader = new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 2 });
    for await (const batch of loader.batches(0)) {
      tf.dispose(batch);
      break;
    }
    expect((await epochIds(loader, 0)).length).toBe(5);
    ds.dispose();
  });

  it('accepts raw sources and frees what it created: tensors, typed arrays, records', async () => {
    const x = tf.tensor2d([[1], [2], [3]]);
    const fromTensor = new DataLoader(x, { batchSize: 2 });
    const shapes: number[][] = [];
    for await (const batch of fromTensor) {
      shapes.push((batch as tf.Tensor).shape);
      tf.dispose(batch);
    }
    expect(shapes).toEqual([[2, 1], [1, 1]]);
    fromTensor.dispose();
    expect(x.isDisposed).toBe(false);
    x.dispose();

    const fromTyped = new DataLoader([{ data: new Float32Array(12), shape: [6, 2] }, { data: new Int32Array(6), shape: [6] }], {
      batchSize: 4,
    });
    const structure: string[] = [];
    for await (const batch of fromTyped) {
      const [bx, by] = batch as tf.Tensor[];
      structure.push(`${bx!.shape}|${by!.dtype}`);
      tf.dispose(batch);
    }
    expect(structure).toEqual(['4,2|int32', '2,2|int32']);
    fromTyped.dispose();

    const fromRecords = new DataLoader(
      Array.from({ length: 5 }, (_, i) => ({ x: [i, i, i, i], y: i % 2 })),
      { batchSize: 5 },
    );
    for await (const batch of fromRecords) {
      const { x: bx, y: by } = batch as Record<string, tf.Tensor>;
      expect(bx!.shape).toEqual([5, 4]);
      expect(by!.shape).toEqual([5]);
      tf.dispose(batch);
    }
    fromRecords.dispose();
    fromRecords.dispose();
    expect(() => fromRecords.batches(0)).toThrow(new DataError('DataLoader.batches: this loader was disposed; create a new one.'));
  });

  it('leaves tf.memory().numTensors where it was after iterating, disposing batches and the loader', async () => {
    const loader = new DataLoader({ x: { data: new Float32Array(300), shape: [100, 3] }, y: { data: new Int32Array(100), shape: [100] } }, {
      batchSize: 16,
      shuffle: true,
      seed: 5,
    });
    for (let epoch = 0; epoch < 3; epoch++) {
      for await (const batch of loader.batches(epoch)) tf.dispose(batch);
    }
    loader.dispose();
  });
});

describe('DataLoader options', () => {
  const ds = () => idDataset(4);

  it.each([
    [{ batchSize: 0 }, "DataLoader option 'batchSize': must be a whole number >= 1 (received 0)"],
    [{ batchSize: 2.5 }, "DataLoader option 'batchSize': must be a whole number >= 1 (received 2.5)"],
    [{ shuffle: 'yes' }, "DataLoader option 'shuffle': Invalid input: expected boolean, received string (received \"yes\")"],
    [{ seed: -1 }, "DataLoader option 'seed': must be an integer in [0, 4294967295] (received -1)"],
    [{ seed: 2 ** 32 }, "DataLoader option 'seed': must be an integer in [0, 4294967295] (received 4294967296)"],
    [{ batchsize: 8 }, `DataLoader option '(options)': Unrecognized key: "batchsize" (received {"batchsize":8})`],
  ])('rejects %j', (options, message) => {
    const d = ds();
    expect(() => new DataLoader(d, options as never)).toThrow(new MisconfigurationError(message));
    d.dispose();
  });

  it('rejects shuffleBuffer for a TensorDataset, and bad epoch/start arguments', () => {
    const d = ds();
    expect(() => new DataLoader(d, { shuffleBuffer: 100 })).toThrow(
      "DataLoader option 'shuffleBuffer' (received 100) applies to tf.data.Dataset and RecordDataset sources only; a TensorDataset is shuffled in full. Remove the option.",
    );
    const loader = new DataLoader(d, { batchSize: 2 });
    expect(() => loader.batches(-1)).toThrow('DataLoader.batches: epoch must be a whole number >= 0 (received -1).');
    expect(() => loader.batches(0, 3)).toThrow(
      'DataLoader.batches: start must be a whole number in [0, 2], the batches of an epoch (received 3).',
    );
    d.dispose();
  });

  it('frees the data set it built when its source is ragged (nothing leaks)', () => {
    expect(() => new DataLoader({ x: { data: [1, 2, 3], shape: [3] }, y: { data: [1, 2], shape: [2] } })).toThrow(DataError);
  });
});

describe('DataLoader over a tf.data.Dataset', () => {
  /** Rows { x: [i, i], id: i } as tensors. */
  function tfRows(n: number) {
    return tf.data.array(Array.from({ length: n }, (_, i) => ({ x: [i, i], id: i }))).map((row) => {
      const r = row as { x: number[]; id: number };
      return { x: tf.tensor1d(r.x), id: tf.scalar(r.id, 'int32') };
    });
  }

  async function tfIds(loader: DataLoader<unknown>, epoch: number, start = 0): Promise<number[][]> {
    const out: number[][] = [];
    for await (const batch of loader.batches(epoch, start)) {
      const b = batch as Record<string, tf.Tensor>;
      out.push(Array.from(await b.id!.data()));
      tf.dispose(b);
    }
    return out;
  }

  it('batches it when batchSize is given, with and without dropLast; length from its size', async () => {
    const loader = new DataLoader(tfRows(10), { batchSize: 4 });
    expect([loader.numSamples, loader.length]).toEqual([10, 3]);
    expect(await tfIds(loader, 0)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    const dropping = new DataLoader(tfRows(10), { batchSize: 4, dropLast: true });
    expect(dropping.length).toBe(2);
    expect(await tfIds(dropping, 0)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
  });

  it('takes its elements as batches when no batchSize is given', async () => {
    const prebatched = tfRows(10).batch(5);
    const loader = new DataLoader(prebatched);
    expect(Number.isNaN(loader.batchSize)).toBe(true);
    expect(Number.isNaN(loader.numSamples)).toBe(true);
    expect(loader.length).toBe(2);
    expect(await tfIds(loader, 0)).toEqual([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]);
    expect(() => new DataLoader(prebatched, { dropLast: true })).toThrow(
      "DataLoader option 'dropLast': true applies when the loader batches, but no batchSize was given for this tf.data.Dataset",
    );
  });

  it('shuffles per epoch reproducibly, resumes with skip, and sees every row once', async () => {
    const loader = new DataLoader(tfRows(30), { batchSize: 4, shuffle: true, seed: 11, shuffleBuffer: 30 });
    const e0 = await tfIds(loader, 0);
    expect(await tfIds(loader, 0)).toEqual(e0);
    const e1 = await tfIds(loader, 1);
    expect(e1).not.toEqual(e0);
    expect(e0.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(await tfIds(loader, 1, 3)).toEqual(e1.slice(3));
  });

  it('length is Infinity when the size is unknown', () => {
    const unknown = tf.data.generator(function* () {
      yield tf.scalar(1);
    });
    const loader = new DataLoader(unknown, { batchSize: 2 });
    expect(loader.length).toBe(Number.POSITIVE_INFINITY);
    expect(Number.isNaN(loader.numSamples)).toBe(true);
  });

  it('leaks nothing when a shuffled, batched pipeline is left early, or drops its last batch', async () => {
    const rows = tf.tidy(() => tf.unstack(tf.tensor2d(Array.from({ length: 50 }, (_, i) => [i, i]))));
    const loader = new DataLoader(tf.data.array(rows), { batchSize: 4, shuffle: true, seed: 3, shuffleBuffer: 20 });
    const afterSetup = tf.memory().numTensors;
    let seen = 0;
    for await (const batch of loader.batches(0)) {
      tf.dispose(batch as tf.Tensor);
      if (++seen === 2) break;
    }
    expect(tf.memory().numTensors).toBe(afterSetup);
    for await (const batch of loader.batches(1, 5)) tf.dispose(batch as tf.Tensor);
    expect(tf.memory().numTensors).toBe(afterSetup);
    const dropping = new DataLoader(tf.data.array(rows.slice(0, 10)), { batchSize: 4, dropLast: true });
    let batches = 0;
    for await (const batch of dropping) {
      tf.dispose(batch as tf.Tensor);
      batches++;
    }
    expect(batches).toBe(2);
    expect(tf.memory().numTensors).toBe(afterSetup);
    tf.dispose(rows);
  });
});
