import * as tf from '@tensorflow/tfjs';
import { DataLoader, LightningModule, Linear, MisconfigurationError, seedEverything, Sequential, type OptimizersReturn } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { Trainer, type TrainerOptions } from '../index.js';
import { afterAll, describe, expect, it } from 'vitest';
import { judgeFit, OverfittingMonitor, type EpochFit, type JudgeSettings } from '@flint/callbacks';
import { FakeTrainer, MemoryLogger } from '../../../callbacks/src/test-utils/fake-trainer.js';
import { irisSplit } from './test-utils/iris.js';

afterAll(async () => {
  await tf.setBackend(process.env.FLINT_BACKEND ?? 'wasm');
});

const settings: JudgeSettings = { trainMetric: 'train_loss', valMetric: 'val_loss', mode: 'min', minDelta: 0, patience: 3, improvementTolerance: 0.005 };
const curve = (pairs: Array<[number, number]>): EpochFit[] => pairs.map(([train, val], epoch) => ({ epoch, train, val, gap: val - train }));

describe('judgeFit: the verdict of a learning curve', () => {
  it('overfitting since the epoch after the best validation value, when training kept improving', () => {
    const v = judgeFit(curve([[1, 1.1], [0.6, 0.7], [0.4, 0.6], [0.3, 0.65], [0.2, 0.7], [0.1, 0.8]]), settings);
    expect(v).toMatchObject({ kind: 'overfitting', reason: 'val_stopped_improving', bestEpoch: 2, onsetEpoch: 3 });
    expect(v.message).toBe(
      'overfitting since epoch 3: val_loss was best at epoch 2 (0.6) and has not improved in the 3 validated epoch(s) since, while train_loss kept improving (0.4 -> 0.1); the gap grew from 0.2 to 0.7. ' +
        "Keep the weights of epoch 2 (EarlyStopping with restoreBestWeights, or ModelCheckpoint's best), add regularization (dropout, weight decay), more data, or use a smaller model.",
    );
  });

  it('underfitting while training is still improving, or when it ends worse than the target', () => {
    const still = judgeFit(curve([[1.2, 1.3], [1.1, 1.2], [1.0, 1.1], [0.9, 1.0], [0.8, 0.9]]), settings);
    expect(still).toMatchObject({ kind: 'underfitting', reason: 'still_improving', bestEpoch: 4 });
    expect(still.trainImprovementPerEpoch).toBeCloseTo(0.3 / 1.1 / 3, 12);
    expect(still.message).toMatch(/^underfitting: train_loss is still improving \(1\.1 -> 0\.8 over the last 3 epoch\(s\), 9\.1% per epoch\)/);
    const flat = curve([[0.9, 0.95], [0.6, 0.62], [0.5, 0.52], [0.5, 0.52], [0.5, 0.52], [0.5, 0.52]]);
    expect(judgeFit(flat, settings).kind).toBe('good_fit');
    expect(judgeFit(flat, { ...settings, target: 0.1 })).toMatchObject({ kind: 'underfitting', reason: 'target_not_reached' });
  });

  it("a good fit: training levelled off and validation at its best; mode 'max' for accuracies", () => {
    const good = judgeFit(curve([[0.9, 0.95], [0.3, 0.4], [0.2, 0.3], [0.2, 0.3], [0.2, 0.3], [0.2, 0.29]]), settings);
    expect(good).toMatchObject({ kind: 'good_fit', reason: 'levelled_off', bestEpoch: 5 });
    expect(good.message).toBe('good fit: train_loss has levelled off (0.0% per epoch over the last 3 epoch(s)) and val_loss is best at epoch 5 (0.29); train_loss 0.2, val_loss 0.29, gap 0.09 at epoch 5.');
    const acc = (pairs: Array<[number, number]>): EpochFit[] => pairs.map(([train, val], epoch) => ({ epoch, train, val, gap: train - val }));
    const max = { ...settings, trainMetric: 'train_acc', valMetric: 'val_acc', mode: 'max' as const };
    expect(judgeFit(acc([[0.5, 0.5], [0.8, 0.8], [0.9, 0.85], [0.95, 0.82], [0.99, 0.8], [1, 0.78]]), max)).toMatchObject({ kind: 'overfitting', bestEpoch: 2, onsetEpoch: 3 });
  });

  it('needs two validated epochs', () => {
    expect(judgeFit(curve([[1, 1]]), settings)).toMatchObject({ kind: 'unknown', reason: 'too_few_epochs', message: 'not enough data: 1 epoch(s) with both train_loss and val_loss, at least 2 are needed.' });
  });
});

describe('OverfittingMonitor with a fake trainer', () => {
  it('logs the gap each validated epoch and reads the pair from the history', async () => {
    const t = new FakeTrainer();
    const m = new OverfittingMonitor({ patience: 2 });
    for (const [train, val] of [[1, 1.2], [0.5, 0.8], [0.3, 0.9], [0.2, 1.0]] as const) {
      t.record({ val_loss: val });
      t.validationRuns += 1;
      t.validatedThisEpoch = true;
      t.record({ train_loss: train, train_loss_epoch: train });
      await m.onTrainEpochEnd(t, new BoringModule());
      t.currentEpoch += 1;
    }
    expect(t.logged.map((l) => l.metrics.generalization_gap)).toEqual([0.19999999999999996, 0.30000000000000004, 0.6000000000000001, 0.8]);
    expect(m.verdict).toMatchObject({ kind: 'overfitting', bestEpoch: 1, onsetEpoch: 2 });
    expect(t.printed).toHaveLength(1);
    expect(t.printed[0]).toMatch(/^OverfittingMonitor: overfitting since epoch 2:/);
  });

  it('a pair member that is not logged is an error listing the epoch metrics (strict), or one warning', async () => {
    const t = new FakeTrainer();
    t.record({ val_loss: 1, train_loss_step: 1 });
    t.validationRuns = 1;
    t.validatedThisEpoch = true;
    const m = new OverfittingMonitor();
    await expect(m.onTrainEpochEnd(t, new BoringModule())).rejects.toThrow(MisconfigurationError);
    await expect(m.onTrainEpochEnd(t, new BoringModule())).rejects.toThrow(
      "OverfittingMonitor: the monitored metric 'train_loss' is not among the epoch-level metrics of epoch 0: train_loss_step, val_loss. Log it with this.log('train_loss', value) (validation metrics in validationStep, a training metric per epoch with onEpoch: true), fix the name, or pass strict: false to skip the check while it is missing.",
    );
    const lenient = new OverfittingMonitor({ strict: false, valMetric: 'val_acc' });
    await lenient.onTrainEpochEnd(t, new BoringModule());
    await lenient.onTrainEpochEnd(t, new BoringModule());
    expect(t.printed).toEqual([
      "OverfittingMonitor: the monitored metric 'train_loss' is not among the epoch-level metrics of epoch 0: train_loss_step, val_loss; skipping the check while it is missing (strict: false). This warning is printed once.",
      "OverfittingMonitor: the monitored metric 'val_acc' is not among the epoch-level metrics of epoch 0: train_loss_step, val_loss; skipping the check while it is missing (strict: false). This warning is printed once.",
    ]);
    expect(() => new OverfittingMonitor({ patience: 0 })).toThrow("OverfittingMonitor option 'patience': must be a whole number >= 1 (received 0)");
  });
});

/** An MLP with the given hidden layers (ReLU), no regularization, Adam. */
class Mlp extends LightningModule<BoringBatch> {
  net: Sequential;
  constructor(hidden: number[]) {
    super();
    const layers: Linear[] = [];
    let width = 4;
    for (const h of hidden) {
      layers.push(new Linear(width, h, { activation: 'relu' }));
      width = h;
    }
    this.net = new Sequential(...layers, new Linear(width, 3));
  }
  override forward(x: tf.Tensor) {
    return this.net.forward(x);
  }
  trainingStep([x, y]: BoringBatch) {
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), this.forward(x)) as tf.Scalar;
    this.log('train_loss', loss, { onEpoch: true, onStep: false });
    return loss;
  }
  override validationStep([x, y]: BoringBatch) {
    this.log('val_loss', tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), this.forward(x)));
  }
  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(0.01);
  }
}

const quiet: TrainerOptions = { enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' };

/** 30 Iris rows to train on, the other 120 to validate, 60 epochs (cpu backend, seeded: the same numbers every run). */
async function irisRun(hidden: number[]) {
  const { train, val } = irisSplit(30, 3);
  seedEverything(0);
  const module = new Mlp(hidden);
  const monitor = new OverfittingMonitor();
  const logger = new MemoryLogger();
  const trainer = new Trainer({ ...quiet, logger, maxEpochs: 60, callbacks: [monitor] });
  const printed: string[] = [];
  trainer.events.on('message', (m) => printed.push(m));
  await expectNoLeak(() => trainer.fit(module, new DataLoader(train, { batchSize: 16, shuffle: true, seed: 1 }), new DataLoader(val, { batchSize: 200 })), 'iris fit');
  train.dispose();
  val.dispose();
  return { monitor, logger, printed };
}

describe('OverfittingMonitor on real data (Iris)', () => {
  it('a too-large model without regularization (2 x 128 hidden units, 17k weights for 30 rows) overfits', async () => {
    const { monitor, logger, printed } = await irisRun([128, 128]);
    const v = monitor.verdict;
    expect(v.kind).toBe('overfitting');
    expect(v.bestEpoch).toBe(4);
    expect(v.onsetEpoch).toBe(5);
    expect(v.best!.val).toBeLessThan(0.3);
    expect(v.last!.val).toBeGreaterThan(3 * v.best!.val);
    expect(v.last!.train).toBeLessThan(0.001);
    expect(logger.series('generalization_gap')).toHaveLength(60);
    expect(printed.filter((m) => m.startsWith('OverfittingMonitor: overfitting since epoch 5:'))).toHaveLength(2);
    console.log(`Iris, [128, 128]: ${v.message}`);
  });

  it('a tiny model (one hidden unit) underfits', async () => {
    const { monitor } = await irisRun([1]);
    const v = monitor.verdict;
    expect(v.kind).toBe('underfitting');
    expect(v.reason).toBe('still_improving');
    expect(v.bestEpoch).toBe(59);
    expect(v.last!.train).toBeGreaterThan(0.8);
    console.log(`Iris, [1]: ${v.message}`);
  });

  it('works with BoringModule on random data too, with no leaks', async () => {
    const data = randomClassificationDataset({ n: 64, features: 4, classes: 2, seed: 1 });
    const monitor = new OverfittingMonitor({ verbose: false });
    const trainer = new Trainer({ ...quiet, logger: false, maxEpochs: 3, callbacks: [monitor] });
    const module = new BoringModule(4, 2, 0.3);
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16 }), new DataLoader(data, { batchSize: 64 })), 'fit');
    expect(monitor.epochs.map((e) => e.epoch)).toEqual([0, 1, 2]);
    data.dispose();
  });
});
