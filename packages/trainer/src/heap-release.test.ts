import * as tf from '@tensorflow/tfjs';
import { getHeapSpaceStatistics } from 'node:v8';
import { adam, crossEntropy, DataLoader, LightningModule, Linear } from '@flint/core';
import { expectNoLeak } from '@flint/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { heapRelease, heapReleaseLimits } from './internal/heap-release.js';
import { Trainer } from './index.js';

/**
 * Trainer option `releaseHeap`: between epochs, garbage in V8's old generation is collected once it
 * has grown by 8 MB (or 10%), so a fit's memory does not climb for many epochs before V8 gets to it.
 */

const MB = 1024 * 1024;

/** Bytes in V8's old generation (every space but the young one). */
function oldGeneration(): number {
  return getHeapSpaceStatistics().reduce((sum, s) => (s.space_name.startsWith('new_') ? sum : sum + s.space_used_size), 0);
}

type Batch = [tf.Tensor2D, tf.Tensor1D];

/** Keeps about 1 MB of JavaScript objects per step until the end of the epoch: old-generation garbage after it. */
class Hoarder extends LightningModule<Batch> {
  readonly fc = new Linear(4, 2);
  // A private field: the Trainer walks a module's own properties (for submodules), and a walk over
  // this many objects per step would be slow.
  #held: { i: number; s: string }[][] = [];
  /** The old generation's size at the start of each epoch (after the previous epoch's end). */
  readonly atEpochStart: number[] = [];
  override onTrainEpochStart = (): void => {
    this.atEpochStart.push(oldGeneration());
  };
  trainingStep([x, y]: Batch) {
    this.#held.push(Array.from({ length: 20_000 }, (_, i) => ({ i, s: `row ${i}` })));
    return crossEntropy(this.fc.forward(x), y) as tf.Scalar;
  }
  override onTrainEpochEnd = (): void => {
    this.#held = [];
  };
  configureOptimizers() {
    return adam({ learningRate: 0.01 });
  }
}

async function fitHoarder(releaseHeap: boolean | undefined): Promise<number[]> {
  const rows = 24 * 8;
  const loader = new DataLoader(
    [
      { data: Float32Array.from({ length: rows * 4 }, (_, i) => (i % 7) / 7), shape: [rows, 4] },
      { data: Int32Array.from({ length: rows }, (_, i) => i % 2), shape: [rows], dtype: 'int32' },
    ],
    { batchSize: 8 },
  );
  const module = new Hoarder();
  const trainer = new Trainer({ logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 4, ...(releaseHeap === undefined ? {} : { releaseHeap }) });
  await expectNoLeak(() => trainer.fit(module, loader), `fit, releaseHeap ${String(releaseHeap)}`);
  return module.atEpochStart;
}

/** Old-generation garbage: `mb` MB of objects kept alive past two young collections, then dropped. */
function promotedGarbage(mb: number): void {
  let keep: object[] | undefined = Array.from({ length: mb * 16 }, () => Array.from({ length: 2048 }, (_, i) => ({ i })));
  // Enough young allocation in between for the kept objects to be promoted.
  for (let i = 0; i < 64; i++) Array.from({ length: 50_000 }, (_, j) => ({ j }));
  expect(keep.length).toBe(mb * 16);
  keep = undefined;
}

const defaultShare = heapReleaseLimits.maxTimeShare;
afterEach(() => {
  heapReleaseLimits.maxTimeShare = defaultShare;
});

describe('releaseHeap', () => {
  it('by default, collects the garbage an epoch left in the old generation before the next epoch starts', async () => {
    // Every qualifying epoch collects here: these epochs are short, and by default the collections
    // may take at most 2% of the time (the next test).
    heapReleaseLimits.maxTimeShare = 1;
    const readings = await fitHoarder(undefined);
    expect(readings).toHaveLength(4);
    // Each epoch leaves about 24 MB (24 steps of about 1 MB) of garbage that survived to the old generation.
    for (const r of readings.slice(1)) expect((r - readings[0]!) / MB).toBeLessThan(12);
  });

  it('with false leaves it to V8, which has not collected it after one epoch', async () => {
    const readings = await fitHoarder(false);
    expect((readings[1]! - readings[0]!) / MB).toBeGreaterThan(16);
  });

  it('collects at most 2% of the time by default: right after a collection, grown garbage waits', () => {
    heapReleaseLimits.maxTimeShare = 1;
    const release = heapRelease(true);
    promotedGarbage(24);
    expect(release.betweenEpochs()).toBe(true);
    heapReleaseLimits.maxTimeShare = 0.02;
    promotedGarbage(24);
    // The last collection took d ms; the next may come d / 0.02 ms after it, not at once.
    expect(release.betweenEpochs()).toBe(false);
    heapReleaseLimits.maxTimeShare = 1;
    expect(release.betweenEpochs()).toBe(true);
  });

  it('does nothing while the old generation has not grown', () => {
    const release = heapRelease(true);
    expect(release.betweenEpochs()).toBe(false);
    expect(heapRelease(false).betweenEpochs()).toBe(false);
  });

  it('rejects an option that is not a boolean, naming it', () => {
    expect(() => new Trainer({ releaseHeap: 'yes' as unknown as boolean })).toThrow(/releaseHeap/);
  });
});
