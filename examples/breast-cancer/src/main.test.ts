import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readLogDir } from '../../../packages/loggers/src/testing/event-reader.js';
import { describe, expect, it } from 'vitest';
import { BinaryClassifier, BREAST_CANCER_CSV, featureStats, main, readLabelledCsv, stratifiedSplit } from './index.js';

describe('examples/breast-cancer main (small)', () => {
  it('trains sigmoid nets with binary cross-entropy, reports binary test accuracy and the confusion matrix, logs runs, leaks nothing', async () => {
    const lines: string[] = [];
    const logDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-breast-cancer-'));
    try {
      const before = tf.memory().numTensors;
      const result = await main({ maxEpochs: 8, seed: 42, logDir, enableProgressBar: false, print: (l) => lines.push(l) });
      expect(tf.memory().numTensors).toBe(before);

      expect(result.classNames).toEqual(['malignant', 'benign']);
      expect(result.sizes).toEqual({ train: 343, val: 113, test: 113 });
      const table = await readLabelledCsv(BREAST_CANCER_CSV);
      expect(table.numFeatures).toBe(30);
      const [trainRows] = stratifiedSplit(table.labels, [0.6, 0.2, 0.2], 42);
      expect([...result.stats.std]).toEqual([...featureStats(table, trainRows!).std]); // training rows only

      expect(result.runs.map((r) => [r.model, r.params])).toEqual([
        ['single', 31],
        ['multi', 30 * 16 + 16 + 16 + 1],
      ]);
      for (const run of result.runs) {
        for (const { metrics } of run.history) {
          for (const key of ['train_loss', 'train_acc', 'val_loss', 'val_acc']) expect(Number.isFinite(metrics[key])).toBe(true);
        }
        expect(Number.isFinite(run.test.test_loss)).toBe(true);
        expect(run.test.test_acc).toBeGreaterThan(0.9); // 357/569 = 63% by always answering benign
        const [[tn, fp], [fn, tp]] = run.confusion;
        expect(tn + fp).toBe(42); // malignant test rows
        expect(fn + tp).toBe(71); // benign test rows
        expect((tn + tp) / 113).toBeCloseTo(run.test.test_acc!, 5); // the confusion matrix agrees with binary accuracy
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
        const events = (await fs.readdir(run.runDir!)).filter((f) => f.includes('tfevents') && !f.endsWith('.flint-hparams'));
        expect(events.length).toBeGreaterThanOrEqual(1);
        expect((await fs.stat(path.join(run.runDir!, events[0]!))).size).toBeGreaterThan(500);
      }
      expect(lines.at(-1)).toBe(`\nOpen the runs in TensorBoard:\n  tensorboard --logdir ${path.join(logDir, 'breast-cancer')}`);
    } finally {
      await fs.rm(logDir, { recursive: true, force: true });
    }
  });

  it('outputs a probability per row, through a sigmoid', () => {
    const module = new BinaryClassifier({ numFeatures: 30, hidden: [], learningRate: 0.01 });
    const p = tf.tidy(() => module.forward(tf.randomNormal([5, 30])).dataSync());
    expect(p).toHaveLength(5);
    for (const v of p) expect(v > 0 && v < 1).toBe(true);
    tf.dispose(module.parameters());
  });
});
