import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readLogDir } from '../../../packages/loggers/src/testing/event-reader.js';
import { describe, expect, it } from 'vitest';
import { featureStats, IRIS_CSV, main, readLabelledCsv, stratifiedSplit } from './index.js';

describe('examples/iris main (small)', () => {
  it('standardizes with the training rows only, trains both nets to high test accuracy, logs train and val curves, leaks nothing', async () => {
    const lines: string[] = [];
    const logDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-iris-'));
    try {
      const before = tf.memory().numTensors;
      const result = await main({ maxEpochs: 30, seed: 42, logDir, enableProgressBar: false, print: (l) => lines.push(l) });
      expect(tf.memory().numTensors).toBe(before);

      // a seeded split by class: 30/10/10 flowers of each class
      expect(result.sizes).toEqual({ train: 90, val: 30, test: 30 });
      const table = await readLabelledCsv(IRIS_CSV);
      const [trainRows] = stratifiedSplit(table.labels, [0.6, 0.2, 0.2], 42);
      // the statistics are those of the training rows, not of all 150 flowers
      expect([...result.stats.mean]).toEqual([...featureStats(table, trainRows!).mean]);
      const all = featureStats(table, Int32Array.from({ length: table.rows }, (_, i) => i));
      expect([...result.stats.mean]).not.toEqual([...all.mean]);

      expect(result.runs.map((r) => [r.model, r.params])).toEqual([
        ['single', 4 * 3 + 3],
        ['multi', 4 * 16 + 16 + 16 * 3 + 3],
      ]);
      for (const run of result.runs) {
        expect(run.history).toHaveLength(30);
        for (const { metrics } of run.history) {
          for (const key of ['train_loss', 'train_acc', 'val_loss', 'val_acc']) expect(Number.isFinite(metrics[key])).toBe(true);
        }
        // it learns: the loss falls, and the held-out flowers are classified well
        expect(run.history.at(-1)!.metrics.train_loss!).toBeLessThan(run.history[0]!.metrics.train_loss! / 2);
        expect(run.test.test_acc).toBeGreaterThanOrEqual(0.9);
        // TensorBoard: train and validation curves of each quantity on one chart (sub-runs sharing a tag),
        // ending at the figures of the history
        const runs = readLogDir(path.dirname(run.runDir!)).runs;
        const version = path.basename(run.runDir!);
        for (const [sub, prefix] of [['train', 'train_'], ['validation', 'val_']] as const) {
          const scalars = runs[`${version}/${sub}`]!.scalars;
          expect(Object.keys(scalars).sort()).toEqual(['epoch_acc', 'epoch_loss']);
          for (const tag of Object.keys(scalars)) {
            const points = scalars[tag]!.points;
            expect(points).toHaveLength(run.history.length);
            expect(points.at(-1)![1]).toBe(Math.fround(run.history.at(-1)!.metrics[`${prefix}${tag.slice('epoch_'.length)}`]!));
          }
        }
        // the curves went to TensorBoard, one run per net
        const events = (await fs.readdir(run.runDir!)).filter((f) => f.includes('tfevents') && !f.endsWith('.flint-hparams'));
        expect(events.length).toBeGreaterThanOrEqual(1);
        expect((await fs.stat(path.join(run.runDir!, events[0]!))).size).toBeGreaterThan(500);
      }
      expect(result.runs.map((r) => path.relative(logDir, r.runDir!))).toEqual([path.join('iris', 'version_0'), path.join('iris', 'version_1')]);
      expect(lines.some((l) => /^ {2}test accuracy \d+\.\d% \(\d+\/30\)/.test(l))).toBe(true);
      expect(lines.at(-1)).toBe(`\nTrain and validation curves in TensorBoard:\n  tensorboard --logdir ${path.join(logDir, 'iris')}`);
    } finally {
      await fs.rm(logDir, { recursive: true, force: true });
    }
  });
});
