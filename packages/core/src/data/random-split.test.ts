import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MisconfigurationError, TensorDataset, randomSplit, seedEverything } from '@flint/core';

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

function ids(n: number) {
  return TensorDataset.from({ id: { data: Int32Array.from({ length: n }, (_, i) => i), shape: [n] } });
}

function rowsOf(ds: TensorDataset<Record<string, tf.Tensor>>): number[] {
  const b = ds.getBatch({ start: 0, end: ds.length });
  const out = Array.from(b.id!.dataSync());
  tf.dispose(b);
  return out;
}

describe('randomSplit', () => {
  it('splits by counts into disjoint subsets that cover every row', () => {
    const ds = ids(100);
    const [train, val] = randomSplit(ds, [80, 20], 1);
    expect([train!.length, val!.length]).toEqual([80, 20]);
    const a = rowsOf(train!);
    const b = rowsOf(val!);
    expect(new Set([...a, ...b]).size).toBe(100);
    expect(a).not.toEqual(Array.from({ length: 80 }, (_, i) => i));
    [train!, val!].forEach((s) => s.dispose());
    ds.dispose();
  });

  it('splits by fractions: floor, then the remainder one by one to the first splits', () => {
    const ds = ids(10);
    const splits = randomSplit(ds, [0.33, 0.33, 0.34], 0);
    // floor: 3, 3, 3; one row left goes to the first split
    expect(splits.map((s) => s.length)).toEqual([4, 3, 3]);
    const all = splits.flatMap(rowsOf);
    expect(all.sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    splits.forEach((s) => s.dispose());
    ds.dispose();
  });

  it('is reproducible: same seed, same split; default seed is the global seed', () => {
    const ds = ids(30);
    const split = (seed?: number) =>
      randomSplit(ds, [0.5, 0.5], seed).map((s) => {
        const rows = rowsOf(s);
        s.dispose();
        return rows;
      });
    const first = split(42);
    expect(split(42)).toEqual(first);
    expect(split(43)).not.toEqual(first);
    seedEverything(42);
    expect(split()).toEqual(first);
    ds.dispose();
  });

  it('splits a raw source, whose tensors are freed with the last split', () => {
    const [a, b] = randomSplit({ x: { data: new Float32Array(20), shape: [10, 2] } }, [7, 3]);
    expect([a!.length, b!.length]).toEqual([7, 3]);
    a!.dispose();
    const batch = b!.getBatch({ start: 0, end: 3 }) as Record<string, tf.Tensor>;
    expect(batch.x!.shape).toEqual([3, 2]);
    tf.dispose(batch);
    b!.dispose();
  });

  it('rejects lengths that fit neither way, naming them and n', () => {
    const ds = ids(10);
    const hint =
      'give row counts summing to 10 (e.g. [train, val]) or fractions summing to 1 (e.g. [0.8, 0.2]), each split getting at least one row.';
    expect(() => randomSplit(ds, [5, 4])).toThrow(
      new MisconfigurationError(`randomSplit: lengths [5, 4] sum to 9 for a data set of 10 rows; ${hint}`),
    );
    expect(() => randomSplit(ds, [0.5, 0.4])).toThrow(
      `randomSplit: lengths [0.5, 0.4] are neither whole numbers nor fractions summing to 1 (they sum to 0.9) for a data set of 10 rows; ${hint}`,
    );
    expect(() => randomSplit(ds, [10, 0])).toThrow(
      `randomSplit: lengths [10, 0] leave split 1 empty (row counts [10, 0]) for a data set of 10 rows; ${hint}`,
    );
    expect(() => randomSplit(ds, [-2, 12])).toThrow('randomSplit: lengths [-2, 12] are not all finite numbers >= 0');
    expect(() => randomSplit(ds, [])).toThrow('randomSplit: lengths [] are empty');
    expect(() => randomSplit(ds, [5, 5], -1)).toThrow('randomSplit: seed must be an integer in [0, 4294967295] (received -1).');
    ds.dispose();
  });
});
