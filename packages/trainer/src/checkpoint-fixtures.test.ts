import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, Dropout, LightningModule, Linear, seedEverything, Sequential, type OptimizersReturn } from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { StepLR } from '@flint/callbacks';
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, type TrainerOptions } from './index.js';

// Checkpoints written by main before the trainer's loops moved to src/internal/ (format v1; see
// fixtures/make-v1-checkpoints.mjs, whose Net this one mirrors): they must keep loading and resuming exactly.
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const expected = JSON.parse(readFileSync(path.join(fixtures, 'v1-expected.json'), 'utf8')) as {
  globalStep: number;
  weights: Array<{ name: string; values: number[] }>;
  history: Array<{ epoch: number; globalStep: number; metrics: Record<string, number> }>;
};

class Net extends LightningModule<BoringBatch> {
  net = new Sequential(new Linear(4, 16, { activation: 'relu' }), new Dropout(0.3), new Linear(16, 2));
  override forward(x: tf.Tensor) {
    return this.net.forward(x);
  }
  trainingStep([x, y]: BoringBatch) {
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)) as tf.Scalar;
    this.log('train_loss', loss, { onStep: true, onEpoch: true });
    return loss;
  }
  override validationStep([x, y]: BoringBatch) {
    this.log('val_loss', tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)));
  }
  configureOptimizers(): OptimizersReturn {
    const optimizer = tf.train.adam(0.02);
    return { optimizer, lrScheduler: { scheduler: new StepLR(optimizer, { stepSize: 4, gamma: 0.5 }), interval: 'step' } };
  }
}

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu', maxEpochs: 3 };
const data = randomClassificationDataset({ n: 48, features: 4, classes: 2, seed: 11 });
const loaders = () => [new DataLoader(data, { batchSize: 8, shuffle: true, seed: 5 }), new DataLoader(data, { batchSize: 24 })] as const;
const weights = (m: LightningModule) => m.namedParameters().map((p) => ({ name: p.name, values: Array.from(p.variable.dataSync()) }));
/** The epoch-level values the run computed, by the names logged (`train_loss`, `val_loss`). */
const losses = (history: ReadonlyArray<{ metrics: Readonly<Record<string, number>> }>) => history.map((r) => [r.metrics.train_loss, r.metrics.val_loss]);

afterAll(async () => {
  data.dispose();
  await tf.setBackend(process.env.FLINT_BACKEND ?? 'wasm');
});

describe('format-v1 checkpoints written before the trainer split', () => {
  for (const [file, at] of [
    ['v1-epoch-end.ckpt', 'epoch 2, batch 0 (global step 12)'],
    ['v1-mid-epoch.ckpt', 'epoch 1, batch 3 (global step 9)'],
  ] as const) {
    it(`${file} resumes at ${at} and ends with the uninterrupted run's weights, step and epoch metrics, to the bit`, async () => {
      seedEverything(4242); // other initial weights and RNG state: everything must come from the file
      const module = new Net();
      const lines: string[] = [];
      const trainer = new Trainer(quiet);
      trainer.events.on('message', (line) => lines.push(line));
      await expectNoLeak(() => trainer.fit(module, ...loaders(), { ckptPath: path.join(fixtures, file) }), 'resumed fit');
      expect(lines).toContain(`Flint: resumed from ${path.join(fixtures, file)} at ${at}.`);
      expect(weights(module)).toEqual(expected.weights);
      expect(trainer.globalStep).toBe(expected.globalStep);
      expect(trainer.history.map((r) => [r.epoch, r.globalStep])).toEqual(expected.history.map((r) => [r.epoch, r.globalStep]));
      expect(losses(trainer.history)).toEqual(losses(expected.history));
    });
  }

  it('v1-weights-only.ckpt loads into a module for test(), and cannot resume a fit', async () => {
    seedEverything(4242);
    const module = Object.assign(new Net(), {
      testStep(this: Net, [x, y]: BoringBatch) {
        this.log('test_loss', tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)));
      },
    });
    const file = path.join(fixtures, 'v1-weights-only.ckpt');
    const metrics = await new Trainer(quiet).test(module, loaders()[1], { ckptPath: file });
    expect(Number.isFinite(metrics.test_loss)).toBe(true);
    const loaded = await Net.loadFromCheckpoint(file);
    expect(weights(module)).toEqual(weights(loaded));
    await expect(new Trainer(quiet).fit(new Net(), ...loaders(), { ckptPath: file })).rejects.toThrow(
      `checkpoint ${file} holds weights only (saveWeightsOnly): it can initialize a module or be tested, not resume a fit.`,
    );
  });
});
