import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataError } from '@flint/core';
import { describe, expect, it } from 'vitest';
import { main, makeClassification, SyntheticClassificationData } from './index.js';

describe('examples/custom-data main (small)', () => {
  it('fits and tests through the DataModule once per class separation, closer classes scoring lower, logs runs, leaks nothing', async () => {
    const lines: string[] = [];
    const logDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-custom-data-'));
    try {
      const before = tf.memory().numTensors;
      const result = await main({ classSeps: [2, 0.3], samples: 400, maxEpochs: 6, seed: 7, logDir, print: (l) => lines.push(l) });
      expect(tf.memory().numTensors).toBe(before);
      expect(result.runs.map((r) => r.classSep)).toEqual([2, 0.3]);
      for (const run of result.runs) {
        expect(run.sizes).toEqual({ train: 280, val: 60, test: 60 });
        expect(run.history).toHaveLength(6);
        for (const { metrics } of run.history) expect(Number.isFinite(metrics.train_loss)).toBe(true);
        expect(Number.isFinite(run.test.test_loss)).toBe(true);
        const events = (await fs.readdir(run.runDir!)).filter((f) => f.includes('tfevents') && !f.endsWith('.flint-hparams'));
        expect(events.length).toBeGreaterThanOrEqual(1);
      }
      const [easy, hard] = result.runs as [(typeof result.runs)[0], (typeof result.runs)[0]];
      expect(easy.test.test_acc).toBeGreaterThan(0.9);
      expect(hard.test.test_acc).toBeLessThan(easy.test.test_acc!);
      expect(lines.filter((l) => l.startsWith('classSep'))).toHaveLength(2);
    } finally {
      await fs.rm(logDir, { recursive: true, force: true });
    }
  });
});

describe('makeClassification', () => {
  it('gives the same data for the same seed, balanced classes, and the columns it promises', () => {
    const a = makeClassification({ samples: 200, informative: 3, redundant: 2, useless: 1, seed: 1, flipY: 0 });
    expect(makeClassification({ samples: 200, informative: 3, redundant: 2, useless: 1, seed: 1, flipY: 0 })).toEqual(a);
    expect(makeClassification({ samples: 200, informative: 3, redundant: 2, useless: 1, seed: 2, flipY: 0 }).x).not.toEqual(a.x);
    expect(a.features).toBe(6);
    expect(a.x).toHaveLength(200 * 6);
    expect(a.y.filter((v) => v === 1).length).toBe(100);
    // redundant columns are fixed linear combinations of the informative ones: solve for the
    // coefficients on three rows, they predict every other row
    const row = (i: number) => Array.from(a.x.subarray(i * 6, i * 6 + 6));
    const [r0, r1, r2] = [row(0), row(1), row(2)];
    const solve3 = (m: number[][], v: number[]): number[] => {
      const det = (q: number[][]) =>
        q[0]![0]! * (q[1]![1]! * q[2]![2]! - q[1]![2]! * q[2]![1]!) -
        q[0]![1]! * (q[1]![0]! * q[2]![2]! - q[1]![2]! * q[2]![0]!) +
        q[0]![2]! * (q[1]![0]! * q[2]![1]! - q[1]![1]! * q[2]![0]!);
      const d = det(m);
      return [0, 1, 2].map((c) => det(m.map((r, i) => r.map((x, j) => (j === c ? v[i]! : x)))) / d);
    };
    const inf = [r0.slice(0, 3), r1.slice(0, 3), r2.slice(0, 3)];
    const coef = solve3(inf, [r0[3]!, r1[3]!, r2[3]!]);
    for (let i = 3; i < 200; i++) {
      const r = row(i);
      expect(coef[0]! * r[0]! + coef[1]! * r[1]! + coef[2]! * r[2]!).toBeCloseTo(r[3]!, 3);
    }
  });

  it('moves the clusters apart with classSep', () => {
    const spread = (classSep: number) => {
      const { x, y, features } = makeClassification({ samples: 400, classSep, seed: 3, flipY: 0 });
      const mean = (c: number) => [0, 1].map((f) => x.filter((_, k) => k % features === f && y[Math.floor(k / features)] === c).reduce((s, v) => s + v, 0));
      return mean(0).concat(mean(1));
    };
    expect(spread(4).map(Math.abs).reduce((s, v) => s + v, 0)).toBeGreaterThan(spread(1).map(Math.abs).reduce((s, v) => s + v, 0));
  });

  it('refuses options that cannot work, naming them', () => {
    expect(() => makeClassification({ informative: 1, clustersPerClass: 2 })).toThrow(
      new DataError(
        'makeClassification: 4 clusters (2 classes x clustersPerClass 2) need 4 corners, but 1 informative features give a hypercube of 2; raise informative or lower clustersPerClass.',
      ),
    );
    expect(() => makeClassification({ classSep: 0 })).toThrow('makeClassification: classSep must be > 0 (received 0).');
    expect(() => makeClassification({ samples: 2.5 })).toThrow('makeClassification: samples must be a whole number >= 4 (received 2.5).');
  });
});

describe('SyntheticClassificationData', () => {
  it('builds the splits once, hands out loaders, and frees every tensor in teardown', async () => {
    const before = tf.memory().numTensors;
    const data = new SyntheticClassificationData({ samples: 100, seed: 5, batchSize: 16 });
    data.setup('fit');
    data.setup('test'); // the trainer calls setup per stage: the data are built once
    expect(data.sizes).toEqual({ train: 70, val: 15, test: 15 });
    expect(data.numFeatures).toBe(5);
    expect(data.trainDataloader().length).toBe(5); // ceil(70 / 16)
    expect(data.valDataloader().length).toBe(1);
    const [x, y] = (await data.testDataloader()[Symbol.asyncIterator]().next()).value as [tf.Tensor, tf.Tensor];
    expect(x.shape).toEqual([15, 5]);
    expect(y.dtype).toBe('int32');
    tf.dispose([x, y]);
    expect(data.stateDict()).toEqual({ options: { samples: 100, seed: 5, batchSize: 16 } });
    data.teardown('fit');
    expect(tf.memory().numTensors).toBe(before);
    expect(() => data.trainDataloader()).toThrow('SyntheticClassificationData: the train split does not exist yet; call setup(stage) first.');
  });
});
