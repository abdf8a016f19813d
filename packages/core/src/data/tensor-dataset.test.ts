import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataError, DataLoader, MisconfigurationError, TensorDataset } from '@flint/core';
import { copiesEveryArray } from './tensor-dataset.js';

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

const values = (t: tf.Tensor) => Array.from(t.dataSync());

describe('TensorDataset.from', () => {
  it('a tensor: batches are slices of it; the tensor stays the caller\'s', () => {
    const x = tf.tensor2d([[0, 1], [2, 3], [4, 5]]);
    const ds = TensorDataset.from(x);
    expect(ds.length).toBe(3);
    const batch = ds.getBatch({ start: 1, end: 3 });
    expect(batch.shape).toEqual([2, 2]);
    expect(values(batch)).toEqual([2, 3, 4, 5]);
    batch.dispose();
    ds.dispose();
    expect(x.isDisposed).toBe(false);
    x.dispose();
  });

  it('an array of columns: batches are arrays [x, y] in the same order', () => {
    const x = tf.tensor2d([[0, 0], [1, 1], [2, 2], [3, 3]]);
    const ds = TensorDataset.from([x, { data: new Int32Array([10, 11, 12, 13]), shape: [4] }]);
    const [bx, by] = ds.getBatch(new Int32Array([3, 0]));
    expect(bx!.shape).toEqual([2, 2]);
    expect(values(bx!)).toEqual([3, 3, 0, 0]);
    expect(by!.dtype).toBe('int32');
    expect(values(by!)).toEqual([13, 10]);
    tf.dispose([bx!, by!]);
    ds.dispose();
    expect(x.isDisposed).toBe(false);
    x.dispose();
  });

  it('a record of columns from typed arrays and number arrays: batches are records', () => {
    const ds = TensorDataset.from({
      image: { data: new Uint8Array([1, 2, 3, 4, 5, 6]), shape: [3, 2] },
      weight: { data: new Float64Array([0.5, 1.5, 2.5]), shape: [3] },
      label: { data: [0, 1, 1], shape: [3], dtype: 'int32' },
      mask: { data: [1, 0, 1], shape: [3], dtype: 'bool' },
    });
    const b = ds.getBatch({ start: 0, end: 3 });
    expect(Object.keys(b)).toEqual(['image', 'weight', 'label', 'mask']);
    expect([b.image!.dtype, b.weight!.dtype, b.label!.dtype, b.mask!.dtype]).toEqual(['int32', 'float32', 'int32', 'bool']);
    expect(b.image!.shape).toEqual([3, 2]);
    expect(values(b.weight!)).toEqual([0.5, 1.5, 2.5]);
    tf.dispose(b);
    ds.dispose();
  });

  it('an array of records: fields become columns, float32 unless dtypes says otherwise', () => {
    const rows = [
      { x: [0.5, 1, 1.5, 2], y: 2, ok: true, img: [[1, 2], [3, 4]] },
      { x: new Float32Array([3, 4, 5, 6]), y: 0, ok: false, img: [[5, 6], [7, 8]] },
      { x: [7, 8, 9, 10], y: 1, ok: true, img: [[9, 10], [11, 12]] },
    ];
    const ds = TensorDataset.from(rows, { dtypes: { y: 'int32' } });
    expect(ds.length).toBe(3);
    const b = ds.getBatch({ start: 0, end: 3 });
    expect(b.x!.shape).toEqual([3, 4]);
    expect(b.x!.dtype).toBe('float32');
    expect(values(b.x!)).toEqual([0.5, 1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(b.y!.dtype).toBe('int32');
    expect(values(b.y!)).toEqual([2, 0, 1]);
    expect(b.ok!.dtype).toBe('bool');
    expect(values(b.ok!)).toEqual([1, 0, 1]);
    expect(b.img!.shape).toEqual([3, 2, 2]);
    tf.dispose(b);
    ds.dispose();

    const floats = TensorDataset.from([{ y: 2 }, { y: 1 }]);
    const f = floats.getBatch({ start: 0, end: 2 });
    expect(f.y!.dtype).toBe('float32');
    tf.dispose(f);
    floats.dispose();
  });

  it('keeps array columns in host memory (no tensor of the whole data set) and makes each batch from their rows', () => {
    const ds = TensorDataset.from({ x: { data: [1, 2, 3, 4], shape: [4] } });
    const afterConstruction = tf.memory().numTensors;
    expect(afterConstruction - before).toBe(0);
    for (let i = 0; i < 3; i++) {
      const b = ds.getBatch({ start: 1, end: 3 });
      expect(b.x!.arraySync()).toEqual([2, 3]);
      tf.dispose(b);
    }
    expect(tf.memory().numTensors).toBe(afterConstruction);
    ds.dispose();
  });

  it('names each column and its length when columns are ragged', () => {
    const x = tf.zeros([100, 3]);
    const y = tf.zeros([99]);
    expect(() => TensorDataset.from({ x, y })).toThrow(
      new DataError(
        "TensorDataset: the columns have different numbers of rows: column 'x' has 100, column 'y' has 99. Every column needs one row per sample (the same first dimension).",
      ),
    );
    expect(() => TensorDataset.from([x, y])).toThrow(
      'TensorDataset: the columns have different numbers of rows: column 0 has 100, column 1 has 99.',
    );
    tf.dispose([x, y]);
  });

  it('frees the tensors it created when construction fails', () => {
    expect(() =>
      TensorDataset.from({ a: { data: [1, 2, 3], shape: [3] }, b: { data: [1, 2], shape: [2] } }),
    ).toThrow("column 'a' has 3, column 'b' has 2");
  });

  it('rejects empty data, with what is expected', () => {
    expect(() => TensorDataset.from([])).toThrow(
      new DataError('TensorDataset: the source is an empty array; give columns ([x, y]) or rows ([{ x, y }, ...]).'),
    );
    expect(() => TensorDataset.from({ x: { data: [], shape: [0, 3] } })).toThrow(
      new DataError('TensorDataset: the data set is empty (0 rows); it needs at least one sample.'),
    );
    const s = tf.scalar(1);
    expect(() => TensorDataset.from(s)).toThrow(
      'TensorDataset: the tensor is a scalar (float32[]); every column needs a first dimension with one row per sample.',
    );
    s.dispose();
  });

  it('rejects column data that does not fit its shape', () => {
    expect(() => TensorDataset.from({ x: { data: new Float32Array(39), shape: [10, 4] } })).toThrow(
      new DataError("TensorDataset: column 'x' has shape [10,4], which needs 40 values, but its data has 39."),
    );
    expect(() => TensorDataset.from({ y: { data: [0, 1.5], shape: [2], dtype: 'int32' } })).toThrow(
      "TensorDataset: column 'y' is int32, but value 1 is 1.5, not a 32-bit integer.",
    );
  });

  it('rejects rows that differ from row 0, naming the row and the field', () => {
    expect(() => TensorDataset.from([{ x: [1, 2], y: 1 }, { x: [1, 2, 3], y: 0 }])).toThrow(
      new DataError(
        "TensorDataset: row 1 field 'x' is an array of length 3 ([1,2,3]), but row 0 makes it a number array of shape [2]; every row needs the same shape.",
      ),
    );
    expect(() => TensorDataset.from([{ x: [1, 2], y: 1 }, { x: [3, 4] }])).toThrow(
      'TensorDataset: row 1 has fields x but row 0 has x, y (missing: y); every row needs the same fields.',
    );
    expect(() => TensorDataset.from([{ x: 'cat' }] as never)).toThrow(
      "TensorDataset: row 0 field 'x' is the string \"cat\"; a field is a number, a boolean, a (nested) number array or a typed array.",
    );
    expect(() => TensorDataset.from([{ y: 1 }, { y: 2.5 }], { dtypes: { y: 'int32' } })).toThrow(
      "TensorDataset: row 1 field 'y' holds 2.5, not a 32-bit integer, but the field is int32.",
    );
  });

  it('rejects bad options, naming the option', () => {
    expect(() => TensorDataset.from([{ y: 1 }], { dtypes: { z: 'int32' } })).toThrow(
      new MisconfigurationError("TensorDataset option 'dtypes.z': the data has no field 'z' (fields: y)."),
    );
    expect(() => TensorDataset.from([{ y: 1 }], { dtypes: { y: 'int64' } } as never)).toThrow(MisconfigurationError);
    expect(() => TensorDataset.from([{ y: 1 }], { batchSize: 3 } as never)).toThrow(
      `TensorDataset option '(options)': Unrecognized key: "batchSize"`,
    );
    const x = tf.zeros([2]);
    expect(() => TensorDataset.from([x], { dtypes: { 0: 'int32' } })).toThrow(
      "TensorDataset option 'dtypes' names fields of records, but the source is an array of columns",
    );
    x.dispose();
  });

  it('casts a tensor column once when dtypes asks for another dtype, and frees the cast', () => {
    const y = tf.tensor1d([0, 1, 2]);
    const ds = TensorDataset.from({ y }, { dtypes: { y: 'int32' } });
    const b = ds.getBatch({ start: 0, end: 3 });
    expect(b.y!.dtype).toBe('int32');
    tf.dispose(b);
    ds.dispose();
    expect(y.isDisposed).toBe(false);
    y.dispose();
  });
});

describe('TensorDataset.subset and getBatch', () => {
  it('a subset is a view in the given order; its batches gather through it', () => {
    const ds = TensorDataset.from({ id: { data: [10, 11, 12, 13, 14], shape: [5] } });
    const sub = ds.subset([4, 1, 3]);
    expect(sub.length).toBe(3);
    const range = sub.getBatch({ start: 1, end: 3 });
    expect(values(range.id!)).toEqual([11, 13]);
    const rows = sub.getBatch(new Int32Array([2, 0]));
    expect(values(rows.id!)).toEqual([13, 14]);
    const subsub = sub.subset([2]);
    const one = subsub.getBatch({ start: 0, end: 1 });
    expect(values(one.id!)).toEqual([13]);
    tf.dispose([range, rows, one]);
    subsub.dispose();
    sub.dispose();
    ds.dispose();
  });

  it('a subset keeps the shared tensors alive until it is disposed too', () => {
    const ds = TensorDataset.from({ id: { data: [0, 1, 2], shape: [3] } });
    const sub = ds.subset([2]);
    ds.dispose();
    const b = sub.getBatch({ start: 0, end: 1 });
    expect(values(b.id!)).toEqual([2]);
    tf.dispose(b);
    sub.dispose();
  });

  it('gives fresh tensors: disposing a batch leaves the data set intact', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const ds = TensorDataset.from(x);
    ds.getBatch({ start: 0, end: 3 }).dispose();
    ds.getBatch(new Int32Array([0, 1, 2])).dispose();
    const again = ds.getBatch({ start: 0, end: 3 });
    expect(values(again)).toEqual([1, 2, 3]);
    again.dispose();
    ds.dispose();
    tf.dispose(x);
  });

  it('a batch of typed-array rows holds its own values: later batches and changes to the array do not reach it', () => {
    // Contiguous float rows (made from a view of the array on wasm), gathered rows and converted
    // rows (staged in an array reused from batch to batch on wasm), on every backend.
    const x = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]);
    const bytes = new Uint8Array([10, 11, 12, 13]);
    const ds = TensorDataset.from([
      { data: x, shape: [4, 2] },
      { data: bytes, shape: [4], dtype: 'float32' },
    ]);
    const range = ds.getBatch({ start: 1, end: 3 });
    const gathered = ds.getBatch(new Int32Array([3, 0]));
    tf.dispose([ds.getBatch(new Int32Array([1, 2])), ds.getBatch({ start: 0, end: 4 })]);
    x.fill(-1);
    bytes.fill(0);
    expect(range.map(values)).toEqual([[2, 3, 4, 5], [11, 12]]);
    expect(gathered.map(values)).toEqual([[6, 7, 0, 1], [13, 10]]);
    tf.dispose([range, gathered]);
    ds.dispose();
  });

  it("tells a backend that copies a batch's array in from one that keeps it (the check behind the reused arrays)", async () => {
    const backend = tf.getBackend();
    // The cpu backend keeps the array a tensor is made from: later writes reach the tensor.
    await tf.setBackend('cpu');
    try {
      expect(copiesEveryArray((t) => t)).toBe(false);
    } finally {
      await tf.setBackend(backend);
    }
    if (backend === 'wasm') expect(copiesEveryArray((t) => t)).toBe(true);
    if (backend === 'tensorflow') {
      const native = tf.backend() as unknown as { binding: { flintCopiesTypedArrays?: boolean }; getInputTensorIds(t: tf.Tensor[]): number[] };
      // Handed to TensorFlow: a copy with setup-native's build; tfjs-node's own shares aligned memory.
      expect(copiesEveryArray((t) => (native.getInputTensorIds([t]), t))).toBe(native.binding.flintCopiesTypedArrays === true);
      // Kept in JavaScript until its first op, a tensor still sees later writes.
      expect(copiesEveryArray((t) => t)).toBe(false);
    }
  });

  it('rejects rows out of range and use after dispose', () => {
    const ds = TensorDataset.from({ id: { data: [0, 1, 2], shape: [3] } });
    expect(() => ds.getBatch({ start: 2, end: 4 })).toThrow(
      new DataError(
        'TensorDataset.getBatch: rows { start: 2, end: 4 } are not a range of this data set; valid ranges have integers 0 <= start < end <= 3.',
      ),
    );
    expect(() => ds.getBatch(new Int32Array([0, 3]))).toThrow(
      'TensorDataset.getBatch: row 3 (at position 1) is out of range; valid rows are [0, 2].',
    );
    expect(() => ds.subset([1, 5])).toThrow(
      'TensorDataset.subset: index 5 (at position 1) is not a row of this data set; valid rows are integers in [0, 2].',
    );
    ds.dispose();
    ds.dispose();
    expect(() => ds.getBatch({ start: 0, end: 1 })).toThrow('TensorDataset.getBatch: this data set was disposed; create a new one.');
  });
});

/** Bytes of data copies in host memory since `from`: array buffers outside V8's heap, plus tensor bytes in a wasm heap. */
function copyMeter() {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const heap = (): number => ((tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.byteLength ?? 0);
  const snapshot = () => {
    gc();
    gc();
    return { external: process.memoryUsage().external, heap: heap(), tensors: tf.memory().numBytes };
  };
  const from = snapshot();
  return (): number => {
    const now = snapshot();
    // Native tensors live outside both: count every tensor byte there is (tf.memory counts them on every backend).
    const outsideHeap = now.external - from.external - (now.heap - from.heap);
    return Math.max(0, outsideHeap) + (now.tensors - from.tensors);
  };
}

describe('memory of in-memory data', () => {
  it('a DataLoader over typed arrays the caller keeps adds no copy of them: neither tensors nor converted arrays', async () => {
    const rows = 8_000;
    const features = 784;
    // Kept by the caller for the whole test, as a script keeps what it loaded: the pixels as bytes, the labels as int32.
    const pixels = new Uint8Array(rows * features).fill(7);
    const labels = new Int32Array(rows).fill(3);
    const bytes = pixels.byteLength + labels.byteLength;
    const meter = copyMeter();
    const loader = new DataLoader<tf.Tensor[]>(
      [
        { data: pixels, shape: [rows, features], dtype: 'float32' },
        { data: labels, shape: [rows] },
      ],
      { batchSize: 256, shuffle: true, seed: 2 },
    );
    const afterBuild = meter();
    let seen = 0;
    for await (const [x, y] of loader.batches(1)) {
      if (seen === 0) {
        expect(x!.dtype).toBe('float32');
        expect(x!.dataSync()[0]).toBe(7);
        expect(y!.dataSync()[0]).toBe(3);
      }
      seen += x!.shape[0]!;
      tf.dispose([x!, y!]);
    }
    const afterEpoch = meter();
    loader.dispose();
    expect(seen).toBe(rows);
    const mb = (x: number): string => `${(x / 2 ** 20).toFixed(1)} MB`;
    // A copy would be >= 1x the data (4x for the pixels as float32 tensors or arrays); batches are freed.
    expect(afterBuild, `${mb(afterBuild)} added for ${mb(bytes)} of data on ${tf.getBackend()}`).toBeLessThan(0.1 * bytes);
    expect(afterEpoch, `${mb(afterEpoch)} added after an epoch for ${mb(bytes)} of data on ${tf.getBackend()}`).toBeLessThan(0.1 * bytes);
  });

  it('a DataLoader over tensors slices them: no clone or cast of the whole data set, before or after an epoch', async () => {
    const x = tf.fill([6_000, 784], 0.5);
    const y = tf.fill([6_000], 1, 'int32');
    const numBytes = tf.memory().numBytes;
    const loader = new DataLoader<tf.Tensor[]>([x, y], { batchSize: 500, shuffle: true, seed: 3 });
    expect(tf.memory().numBytes).toBe(numBytes);
    let batches = 0;
    for await (const batch of loader.batches(0)) {
      batches++;
      tf.dispose(batch);
    }
    expect(batches).toBe(12);
    expect(tf.memory().numBytes).toBe(numBytes);
    loader.dispose();
    expect(x.isDisposed || y.isDisposed).toBe(false); // the caller's tensors stay the caller's
    tf.dispose([x, y]);
  });

  it('a DataLoader over typed arrays holds one copy of the data set (the tensors), not a second one, also after a shuffled epoch', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // Copies of data in host memory: array buffers (outside V8's heap, counted in `external`) plus,
    // on wasm, tensor bytes in the wasm heap (its memory is in `external` too, but grows in steps
    // and is reused: count the tensors' bytes there instead of its growth).
    const heap = (): number => ((tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.byteLength ?? 0);
    const snapshot = () => {
      gc();
      gc();
      return { external: process.memoryUsage().external, heap: heap(), tensors: tf.memory().numBytes };
    };
    const copies = (from: ReturnType<typeof snapshot>): number => {
      const now = snapshot();
      const outsideHeap = now.external - from.external - (now.heap - from.heap);
      return outsideHeap + (now.heap > 0 ? now.tensors - from.tensors : 0);
    };
    const rows = 10_000;
    const features = 800;
    const bytes = rows * features * 4 + rows; // 32 MB of float32 features, 10 KB of uint8 labels
    const start = snapshot();
    // The caller's arrays are dropped once the loader exists, as when data is read, handed over and forgotten.
    const make = () =>
      new DataLoader<tf.Tensor[]>(
        [
          { data: new Float32Array(rows * features).fill(0.25), shape: [rows, features] },
          { data: new Uint8Array(rows).fill(3), shape: [rows] },
        ],
        { batchSize: 500, shuffle: true, seed: 1 },
      );
    const loader = make();
    const afterBuild = copies(start);
    let seen = 0;
    for await (const batch of loader.batches(0)) {
      seen += batch[0]!.shape[0]!;
      tf.dispose(batch);
    }
    const afterEpoch = copies(start);
    loader.dispose();
    expect(seen).toBe(rows);
    // One copy is `bytes` (+ the labels as int32); a second copy would make it at least 2x.
    const mb = (x: number): string => `${(x / 2 ** 20).toFixed(1)} MB`;
    expect(afterBuild, `${mb(afterBuild)} held for ${mb(bytes)} of data on ${tf.getBackend()}`).toBeLessThan(1.25 * bytes);
    expect(afterEpoch, `${mb(afterEpoch)} held after an epoch for ${mb(bytes)} of data on ${tf.getBackend()}`).toBeLessThan(1.25 * bytes);
  });
});
