import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  MisconfigurationError,
  createRng,
  createRngFromState,
  deriveSeed,
  getGlobalSeed,
  getRngState,
  permutation,
  seedEverything,
  setRngState,
} from '@flint/core';

function randomNormalValues(): Float32Array {
  return tf.tidy(() => tf.randomNormal([64]).dataSync() as Float32Array);
}

function denseKernel(): Float32Array {
  const layer = tf.layers.dense({ units: 8, inputShape: [5] });
  tf.tidy(() => layer.apply(tf.zeros([1, 5])) as tf.Tensor);
  const values = layer.getWeights()[0]!.dataSync() as Float32Array;
  layer.dispose();
  return values;
}

function dropoutMask(): Float32Array {
  return tf.tidy(() => tf.dropout(tf.ones([256]), 0.5).dataSync() as Float32Array);
}

describe('seedEverything', () => {
  it('returns the seed and remembers it', () => {
    expect(seedEverything(1234)).toBe(1234);
    expect(getGlobalSeed()).toBe(1234);
  });

  it('makes tf.randomNormal, dense layer initial weights and dropout masks reproducible', () => {
    seedEverything(7);
    const first = [randomNormalValues(), denseKernel(), dropoutMask()];
    seedEverything(7);
    const second = [randomNormalValues(), denseKernel(), dropoutMask()];
    expect(second).toEqual(first);

    seedEverything(8);
    const other = [randomNormalValues(), denseKernel(), dropoutMask()];
    expect(other[0]).not.toEqual(first[0]);
    expect(other[1]).not.toEqual(first[1]);
    expect(other[2]).not.toEqual(first[2]);
  });

  it('rejects seeds that are not integers in [0, 2^32 - 1]', () => {
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN]) {
      expect(() => seedEverything(bad)).toThrow(MisconfigurationError);
    }
    expect(() => seedEverything(-1)).toThrow('seedEverything: seed must be an integer in [0, 4294967295] (received -1).');
    expect(() => seedEverything('3' as unknown as number)).toThrow(
      'seedEverything: seed must be an integer in [0, 4294967295] (received "3").',
    );
  });
});

describe('getRngState / setRngState', () => {
  it('restoring the state replays the following Math.random values and tfjs draws', () => {
    seedEverything(99);
    Math.random();
    const state = getRngState()!;
    const saved = JSON.parse(JSON.stringify(state)) as typeof state; // survives a checkpoint round trip
    const expected = [Math.random(), Math.random(), Math.random()];
    const expectedWeights = denseKernel();

    Math.random();
    setRngState(saved);
    expect([Math.random(), Math.random(), Math.random()]).toEqual(expected);
    expect(denseKernel()).toEqual(expectedWeights);
  });

  it('rejects a state of the wrong shape, naming what is valid', () => {
    const valid = "{ algorithm: 'sfc32', state: [four integers in [0, 4294967295]] } as returned by getRngState()";
    expect(() => setRngState({ algorithm: 'sfc32', state: [1, 2, 3] } as never)).toThrow(
      `setRngState: state must be ${valid} (received {"algorithm":"sfc32","state":[1,2,3]}).`,
    );
    expect(() => setRngState({ algorithm: 'xorshift', state: [1, 2, 3, 4] } as never)).toThrow(MisconfigurationError);
    expect(() => setRngState({ algorithm: 'sfc32', state: [1, 2, 3, -4] } as never)).toThrow(MisconfigurationError);
    expect(() => setRngState(null as never)).toThrow(`setRngState: state must be ${valid} (received null).`);
  });
});

describe('createRng', () => {
  it('is deterministic, independent of Math.random, and in range', () => {
    const a = createRng(5);
    const b = createRng(5);
    seedEverything(1);
    const xs = Array.from({ length: 1000 }, () => a.next());
    Math.random();
    const ys = Array.from({ length: 1000 }, () => b.next());
    expect(ys).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
    const u = createRng(5).nextUint32();
    expect(Number.isInteger(u) && u >= 0 && u < 2 ** 32).toBe(true);
    expect(createRng(6).next()).not.toBe(createRng(5).next());
  });

  it('continues the same sequence from its state', () => {
    const rng = createRng(42);
    rng.next();
    const copy = createRngFromState(rng.state());
    expect([copy.next(), copy.nextUint32()]).toEqual([rng.next(), rng.nextUint32()]);
  });

  it('rejects a bad seed', () => {
    expect(() => createRng(-3)).toThrow('createRng: seed must be an integer in [0, 4294967295] (received -3).');
  });
});

describe('permutation', () => {
  it('is a reproducible permutation of 0..n-1 that depends on the seed', () => {
    const p = permutation(100, 3);
    expect(p).toBeInstanceOf(Int32Array);
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(permutation(100, 3)).toEqual(p);
    expect(permutation(100, 4)).not.toEqual(p);
    expect(permutation(0, 1)).toEqual(new Int32Array(0));
    expect(() => permutation(-1, 0)).toThrow('permutation: n must be an integer in [0, 2147483647] (received -1).');
  });
});

describe('deriveSeed', () => {
  it('gives a different 32-bit seed for each (seed, epoch) and the same for the same parts', () => {
    const seeds = new Set<number>();
    for (let seed = 0; seed < 20; seed++) {
      for (let epoch = 0; epoch < 50; epoch++) {
        const s = deriveSeed(seed, epoch);
        expect(Number.isInteger(s) && s >= 0 && s < 2 ** 32).toBe(true);
        seeds.add(s);
      }
    }
    expect(seeds.size).toBe(1000);
    expect(deriveSeed(1, 2)).toBe(deriveSeed(1, 2));
    expect(deriveSeed(1, 2)).not.toBe(deriveSeed(2, 1));
    expect(deriveSeed(1)).not.toBe(deriveSeed(1, 0));
    expect(() => deriveSeed(1, 0.5)).toThrow('deriveSeed: part 1 must be a safe integer (received 0.5); parts were [1, 0.5].');
  });
});
