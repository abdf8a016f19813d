import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { readLogDir } from '../../../packages/loggers/src/testing/event-reader.js';
import { main } from './index.js';

describe('examples/mnist main (small)', () => {
  it('trains both nets on real MNIST for one epoch and reports finite figures, without leaking tensors', async () => {
    const lines: string[] = [];
    const before = tf.memory().numTensors;
    const logDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-mnist-'));
    const results = await main({ maxEpochs: 1, trainLimit: 3000, testLimit: 1000, enableProgressBar: false, logDir, print: (l) => lines.push(l) });
    expect(tf.memory().numTensors).toBe(before);
    expect(results.map((r) => r.model)).toEqual(['single', 'multi']);
    for (const r of results) {
      expect(Number.isFinite(r.history[0]!.metrics.train_loss)).toBe(true);
      expect(r.test.test_acc).toBeGreaterThan(0.5); // chance is 0.1
      expect(r.epochs).toBe(1);
    }
    expect(results[0]!.params).toBe(7850);
    expect(results[1]!.params).toBe(784 * 256 + 256 + 256 * 10 + 10);
    expect(lines[0]).toBe('MNIST: 2700 training, 300 validation, 1000 test images; batch size 128.');
    expect(lines.some((l) => /^single: test accuracy \d+\.\d\d%/.test(l))).toBe(true);
    // one TensorBoard run per net, named after it, with train and validation sub-runs sharing a tag
    expect(results.map((r) => path.relative(logDir, r.runDir!))).toEqual([path.join('mnist', 'single-layer'), path.join('mnist', 'multi-layer-256')]);
    const tb = readLogDir(path.join(logDir, 'mnist'));
    for (const [i, name] of ['single-layer', 'multi-layer-256'].entries()) {
      const run = tb.runs[name]!;
      const [train, validation] = [tb.runs[`${name}/train`]!, tb.runs[`${name}/validation`]!];
      expect(Object.keys(train.scalars)).toEqual(['epoch_loss']);
      expect(Object.keys(validation.scalars).sort()).toEqual(['epoch_acc', 'epoch_loss']);
      // the figures the job printed are the ones TensorBoard shows
      expect(validation.scalars.epoch_acc!.points.at(-1)![1]).toBe(Math.fround(results[i]!.val.val_acc!));
      expect(tb.runs[`${name}/test`]!.scalars.epoch_acc!.points.at(-1)![1]).toBe(Math.fround(results[i]!.test.test_acc!));
      expect(Object.keys(run.scalars).sort()).toEqual(['train_loss_step', 'trainer/epoch']);
      // weight histograms every epoch, and the two test pictures
      const weights = Object.keys(run.histograms).filter((t) => t.startsWith('weights/'));
      expect(weights.length).toBe(i === 0 ? 2 : 4);
      for (const t of weights) expect(run.histograms[t]!.map((h) => h.total_count)[0]).toBeGreaterThan(0);
      expect(Object.keys(run.images).sort()).toEqual(['test/confusion_matrix', 'test/misclassified']);
      expect(run.images['test/confusion_matrix']![0]!.images[0]!.png_wh).toEqual([604, 604]);
      expect(run.text['hparams']![0]!.step).toBe(0);
    }
    // HParams: the validation and test metrics first
    const metricNames = (tb.hparams_dashboard!.experiment['metric_infos'] as Array<{ display_name?: string; name: { tag: string } }>).map((m) => m.display_name ?? m.name.tag);
    expect(metricNames.slice(0, 4)).toEqual(['val_loss', 'val_acc', 'test_loss', 'test_acc']);
    expect(lines.at(-1)).toBe(`\nOpen the runs in TensorBoard (train and validation on one chart, weights, misclassified digits):\n  npx flint tensorboard ${path.join(logDir, 'mnist')}`);
    await fs.rm(logDir, { recursive: true, force: true });
  });
});
