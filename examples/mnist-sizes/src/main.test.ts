import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLogDir } from '../../../packages/loggers/src/testing/event-reader.js';
import { CONFIGS, main } from './index.js';

let logDir: string;
beforeEach(async () => {
  logDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-mnist-sizes-'));
});
afterEach(async () => {
  await fs.rm(logDir, { recursive: true, force: true });
});

describe('examples/mnist-sizes main (small)', () => {
  it('runs every configuration on a tiny subset and returns the table as data, with checkpoints and event files, without leaking tensors', async () => {
    const lines: string[] = [];
    const before = tf.memory().numTensors;
    const result = await main({
      sizes: { small: 4, medium: 8, large: 16 },
      trainSize: 200,
      valSize: 100,
      testSize: 100,
      maxEpochs: 2,
      batchSize: 100,
      seed: 1,
      logDir,
      enableProgressBar: false,
      print: (l) => lines.push(l),
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(result.rows.map((r) => r.config)).toEqual(CONFIGS.map((c) => c.name));
    expect(result.rows.map((r) => r.hidden)).toEqual([[4], [8], [16], [4, 4], [8, 8], [16, 16], [16, 16], [16, 16], [16, 16]]);
    expect(result.rows.map((r) => r.regularization)).toEqual(['none', 'none', 'none', 'none', 'none', 'none', 'dropout', 'weight_decay', 'dropout+weight_decay']);
    expect(result.rows[0]!.params).toBe(784 * 4 + 4 + 4 * 10 + 10);
    for (const r of result.rows) {
      expect(r.epochs).toBe(2);
      expect(r.stoppedBy).toBe('max_epochs');
      expect([0, 1]).toContain(r.bestEpoch);
      for (const x of [r.bestValAcc, r.valAccAtBest, r.testAcc, r.bestValLoss, r.lastTrainLoss, r.lastValLoss, r.lastGap, r.seconds]) expect(Number.isFinite(x)).toBe(true);
      expect(r.testAcc).toBeGreaterThanOrEqual(0);
      expect(r.testAcc).toBeLessThanOrEqual(1);
      expect(['underfitting', 'good_fit', 'overfitting', 'unknown']).toContain(r.verdict.kind);
      // one TensorBoard version per configuration, checkpoints (best and last) under it
      expect(path.relative(logDir, r.runDir)).toBe(path.join('mnist-sizes', r.config));
      expect(path.dirname(r.bestCheckpoint!)).toBe(path.join(r.runDir, 'checkpoints'));
      expect(path.basename(r.bestCheckpoint!)).toMatch(new RegExp(`^epoch=${r.bestEpoch}-val_loss=\\d\\.\\d{4}\\.ckpt$`));
      expect(path.basename(r.lastCheckpoint!)).toBe('last.ckpt');
      const files = await fs.readdir(path.join(r.runDir, 'checkpoints'));
      expect(files.sort()).toEqual([path.basename(r.bestCheckpoint!), 'last.ckpt'].sort());
      const events = (await fs.readdir(r.runDir)).filter((f) => f.includes('tfevents') && !f.endsWith('.flint-hparams'));
      expect(events.length).toBeGreaterThanOrEqual(1);
      expect((await fs.stat(path.join(r.runDir, events[0]!))).size).toBeGreaterThan(200);
    }
    // the printed table: a header, a rule, one line per configuration
    const tableLines = result.table.split('\n');
    expect(tableLines).toHaveLength(2 + CONFIGS.length);
    expect(tableLines[0]).toMatch(/^\| config +\| +hidden \| +params \| epochs \| best epoch \| best val acc \| test acc \| train loss \| val loss \(best\/last\) \| +gap \| verdict +\|$/);
    expect(lines.some((l) => l.includes(result.table))).toBe(true);
    expect(result.tensorboardCommand).toBe(`npx flint tensorboard ${path.join(logDir, 'mnist-sizes')}`);
    expect(lines.at(-1)).toMatch(new RegExp(`Open the runs in TensorBoard:\\n  npx flint tensorboard ${path.join(logDir, 'mnist-sizes')}$`));
    // TensorBoard: train and validation loss of each configuration on one chart (epoch_loss in both
    // sub-runs), the dropout schedule as the hparam, and the test metrics among the first five columns
    const tb = readLogDir(path.join(logDir, 'mnist-sizes'));
    for (const r of result.rows) {
      const train = tb.runs[`${r.config}/train`]!.scalars.epoch_loss!.points;
      const val = tb.runs[`${r.config}/validation`]!.scalars.epoch_loss!.points;
      expect(train.map((p) => p[0])).toEqual(val.map((p) => p[0]));
      expect(train.at(-1)![1]).toBe(Math.fround(r.lastTrainLoss));
      expect(val.at(-1)![1]).toBe(Math.fround(r.lastValLoss));
    }
    const groups = tb.hparams_dashboard!.session_groups.session_groups;
    const dropoutOf = (name: string) => (groups.find((g) => g['name'] === name)!['hparams'] as Record<string, unknown>)['dropout'];
    expect(dropoutOf('multi-large+dropout')).toBe('0.2->0.5');
    expect(dropoutOf('multi-large+dropout+weight_decay')).toBe('0.2->0.5');
    expect(dropoutOf('multi-large')).toBe(0);
    const metricNames = (tb.hparams_dashboard!.experiment['metric_infos'] as Array<{ display_name?: string; name: { tag: string } }>).map((m) => m.display_name ?? m.name.tag);
    expect(metricNames.slice(0, 5)).toEqual(['val_loss', 'val_acc', 'test_loss', 'test_acc', 'train_loss_epoch']);
  });

  it('a second run in the same log dir gets new version folders instead of mixing with the first', async () => {
    const opts = { configs: ['single-small'], sizes: { small: 4 }, trainSize: 100, valSize: 100, testSize: 100, maxEpochs: 1, batchSize: 100, logDir, enableProgressBar: false, print: () => {} };
    const first = await main(opts);
    const second = await main(opts);
    expect(path.basename(first.rows[0]!.runDir)).toBe('single-small');
    expect(path.basename(second.rows[0]!.runDir)).toBe('single-small-2');
  });

  it('judges the plain large net overfitting, deterministically, on a setting small enough for the tests', async () => {
    const result = await main({
      configs: ['multi-large'],
      sizes: { large: 128 },
      trainSize: 200,
      valSize: 500,
      testSize: 100,
      maxEpochs: 20,
      patience: 4,
      monitorPatience: 3,
      batchSize: 50,
      seed: 0,
      logDir,
      enableProgressBar: false,
      print: () => {},
    });
    const [row] = result.rows;
    expect(row!.verdict.kind).toBe('overfitting');
    expect(row!.verdict.onsetEpoch).toBe(row!.bestEpoch + 1);
    expect(row!.epochs).toBeLessThan(20);
    expect(row!.stoppedBy).toBe('early_stopping');
    // train loss fell after the best epoch while val loss rose: the gap grew
    expect(row!.verdict.last!.train).toBeLessThan(row!.verdict.best!.train);
    expect(row!.verdict.last!.val).toBeGreaterThan(row!.verdict.best!.val);
    expect(result.table).toContain(`overfitting since epoch ${row!.bestEpoch + 1}`);
  });
});
