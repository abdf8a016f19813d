import * as tf from '@tensorflow/tfjs';
import { DataLoader, MisconfigurationError, seedEverything, type LightningModule } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { Trainer, type TrainerOptions } from '../index.js';
import { afterAll, describe, expect, it } from 'vitest';
import { EarlyStopping, LambdaCallback } from '@flint/callbacks';
import { FakeTrainer } from '../../../callbacks/src/test-utils/fake-trainer.js';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false };
const data = randomClassificationDataset({ n: 64, features: 4, classes: 2, seed: 3 });
afterAll(() => data.dispose());
const loaders = () => [new DataLoader(data, { batchSize: 16, shuffle: true, seed: 1 }), new DataLoader(data, { batchSize: 32 })] as const;
const weights = (m: LightningModule) => Object.fromEntries(m.namedParameters().map((p) => [p.name, Array.from(p.variable.dataSync())]));

/** Runs validation-end checks with the given values, one per epoch. */
function feed(es: EarlyStopping, trainer: FakeTrainer, values: number[], module = new BoringModule()): void {
  for (const v of values) {
    if (trainer.shouldStop) break;
    trainer.callbackMetrics = { ...trainer.callbackMetrics, val_loss: v };
    es.onValidationEnd(trainer, module);
    trainer.currentEpoch += 1;
  }
}

describe('EarlyStopping options', () => {
  it('are checked, with pinned messages; mode defaults to min', () => {
    expect(new EarlyStopping({ monitor: 'val_loss' }).options).toEqual({
      monitor: 'val_loss',
      mode: 'min',
      minDelta: 0,
      patience: 3,
      checkFinite: true,
      startFromEpoch: 0,
      checkOnTrainEpochEnd: false,
      restoreBestWeights: false,
      strict: true,
      verbose: false,
    });
    expect(() => new EarlyStopping({} as never)).toThrow("EarlyStopping option 'monitor': must be the name of a logged metric");
    expect(() => new EarlyStopping({ monitor: 'val_loss', mode: 'auto' as never })).toThrow(
      `EarlyStopping option 'mode': must be 'min' (lower is better) or 'max' (higher is better) (received "auto")`,
    );
    expect(() => new EarlyStopping({ monitor: 'val_loss', patience: 1.5 })).toThrow("EarlyStopping option 'patience': must be a whole number >= 0 (received 1.5)");
    expect(() => new EarlyStopping({ monitor: 'val_loss', minDelta: -1 })).toThrow("EarlyStopping option 'minDelta': must be a number >= 0 (received -1)");
    expect(() => new EarlyStopping({ monitor: 'val_loss', stoppingThreshold: Number.NaN })).toThrow("EarlyStopping option 'stoppingThreshold': must be a finite number");
    expect(() => new EarlyStopping({ monitor: 'val_loss', baseline: 1 } as never)).toThrow(MisconfigurationError);
    expect(() => new EarlyStopping({ monitor: 'val_loss', baseline: 1 } as never)).toThrow(`EarlyStopping option '(options)': Unrecognized key: "baseline"`);
  });

  it('state key names the monitor and mode, so two EarlyStoppings keep separate states', () => {
    expect(new EarlyStopping({ monitor: 'val_loss' }).stateKey).toBe('EarlyStopping{"monitor":"val_loss","mode":"min"}');
    expect(new EarlyStopping({ monitor: 'val_acc', mode: 'max' }).stateKey).toBe('EarlyStopping{"monitor":"val_acc","mode":"max"}');
  });
});

describe('EarlyStopping rules (fake trainer)', () => {
  it('patience counts checks without improvement; the stop reason names the rule, epoch and values', () => {
    const trainer = new FakeTrainer();
    const es = new EarlyStopping({ monitor: 'val_loss', patience: 2, minDelta: 0.05 });
    feed(es, trainer, [1, 0.8, 0.78, 0.9, 0.5]);
    expect(trainer.shouldStop).toBe(true);
    expect(es.trigger).toBe('patience');
    expect(es.stoppedEpoch).toBe(3);
    expect(es.bestScore).toBe(0.8);
    expect(es.bestEpoch).toBe(1);
    expect(trainer.stopReason).toEqual({
      rule: 'early_stopping',
      epoch: 3,
      globalStep: 0,
      source: 'EarlyStopping{"monitor":"val_loss","mode":"min"}',
      message:
        'EarlyStopping (patience): val_loss did not improve by more than minDelta=0.05 for 2 check(s) in a row (patience=2); best 0.8 at epoch 1, now 0.9 at epoch 3.',
      values: { trigger: 'patience', monitor: 'val_loss', current: 0.9, best: 0.8, bestEpoch: 1, epoch: 3, wait: 2, patience: 2 },
    });
  });

  it("mode 'max' follows a metric that should rise", () => {
    const trainer = new FakeTrainer();
    const es = new EarlyStopping({ monitor: 'val_loss', mode: 'max', patience: 1 });
    feed(es, trainer, [0.5, 0.6, 0.7, 0.65]);
    expect(es.stoppedEpoch).toBe(3);
    expect(es.bestScore).toBe(0.7);
  });

  it('patience 0 stops at the first check without improvement', () => {
    const trainer = new FakeTrainer();
    const es = new EarlyStopping({ monitor: 'val_loss', patience: 0 });
    feed(es, trainer, [1, 0.9, 0.95]);
    expect(es.stoppedEpoch).toBe(2);
  });

  it('stoppingThreshold, divergenceThreshold and non-finite values stop at once, each named', () => {
    const reached = new FakeTrainer();
    feed(new EarlyStopping({ monitor: 'val_loss', stoppingThreshold: 0.1 }), reached, [1, 0.5, 0.05, 0.01]);
    expect(reached.stopReason?.message).toBe('EarlyStopping (stopping_threshold): val_loss = 0.05 at epoch 2 is below stoppingThreshold=0.1.');
    expect(reached.stopReason?.values).toMatchObject({ trigger: 'stopping_threshold', current: 0.05, best: 0.05, threshold: 0.1 });

    const diverged = new FakeTrainer();
    const divergedEs = new EarlyStopping({ monitor: 'val_loss', divergenceThreshold: 5 });
    feed(divergedEs, diverged, [1, 2, 7]);
    expect(diverged.stopReason?.message).toBe('EarlyStopping (divergence_threshold): val_loss = 7 at epoch 2 is above divergenceThreshold=5: training diverged.');
    // As Lightning's: a threshold stop does not count towards patience (wait is that of the check before).
    expect(divergedEs.wait).toBe(1);

    const nan = new FakeTrainer();
    feed(new EarlyStopping({ monitor: 'val_loss' }), nan, [1, Number.NaN]);
    expect(nan.stopReason?.message).toBe('EarlyStopping (non_finite): val_loss = NaN at epoch 1 is not finite (checkFinite); the best was 1 at epoch 0.');
    const nanAllowed = new FakeTrainer();
    feed(new EarlyStopping({ monitor: 'val_loss', checkFinite: false, patience: 5 }), nanAllowed, [1, Number.NaN]);
    expect(nanAllowed.shouldStop).toBe(false);
  });

  it('startFromEpoch ignores the warm-up epochs; sanity check, fastDevRun and other stages are skipped', () => {
    const trainer = new FakeTrainer();
    const es = new EarlyStopping({ monitor: 'val_loss', patience: 1, startFromEpoch: 3 });
    feed(es, trainer, [0.1, 5, 6, 1, 0.9]);
    expect(es.checks).toBe(2);
    expect(es.bestScore).toBe(0.9);
    expect(trainer.shouldStop).toBe(false);

    const module = new BoringModule();
    const quietEs = new EarlyStopping({ monitor: 'val_loss' });
    const sanity = new FakeTrainer();
    sanity.runningStage = 'sanity_check';
    quietEs.onValidationEnd(sanity, module);
    const fast = new FakeTrainer();
    fast.fastDevRun = true;
    quietEs.onValidationEnd(fast, module);
    const validate = new FakeTrainer();
    validate.stage = 'validate';
    quietEs.onValidationEnd(validate, module);
    expect(quietEs.checks).toBe(0);
  });

  it('checkOnTrainEpochEnd checks at the training epoch end, skipping a stale validation value', () => {
    const trainer = new FakeTrainer();
    const module = new BoringModule();
    const es = new EarlyStopping({ monitor: 'val_loss', checkOnTrainEpochEnd: true });
    trainer.record({ train_loss: 1, val_loss: 1 }, 0);
    es.onValidationEnd(trainer, module);
    expect(es.checks).toBe(0);
    es.onTrainEpochEnd(trainer, module);
    expect(es.checks).toBe(1);
    trainer.currentEpoch = 1;
    trainer.record({ train_loss: 0.9 }, 1);
    es.onTrainEpochEnd(trainer, module);
    expect(es.checks).toBe(1);
  });

  it('a missing metric fails with the keys that exist; strict: false warns once', () => {
    const trainer = new FakeTrainer();
    trainer.validationRuns = 1;
    trainer.callbackMetrics = { train_loss: 1 };
    expect(() => new EarlyStopping({ monitor: 'val_los' }).onValidationEnd(trainer, new BoringModule())).toThrow(
      "EarlyStopping: the monitored metric 'val_los' is not among the metrics logged so far: train_loss.",
    );
    const lenient = new EarlyStopping({ monitor: 'val_los', strict: false });
    lenient.onValidationEnd(trainer, new BoringModule());
    lenient.onValidationEnd(trainer, new BoringModule());
    expect(trainer.printed).toHaveLength(1);
    expect(lenient.checks).toBe(0);
  });

  it('state round-trips, best weights included', async () => {
    const module = new BoringModule();
    const trainer = new FakeTrainer();
    const es = new EarlyStopping({ monitor: 'val_loss', restoreBestWeights: true });
    feed(es, trainer, [1, 0.5, 0.7], module);
    const best = weights(module);
    const state = es.stateDict();
    expect(state).toMatchObject({ wait: 1, bestScore: 0.5, bestEpoch: 1, stoppedEpoch: -1, checks: 3 });
    const copy = new EarlyStopping({ monitor: 'val_loss', restoreBestWeights: true });
    copy.loadStateDict(state);
    expect(copy.stateDict()).toEqual(state);
    es.teardown(trainer, module, 'fit');
    tf.tidy(() => module.layer.weight.assign(tf.zerosLike(module.layer.weight)));
    copy.onTrainEnd(trainer, module);
    expect(weights(module)).toEqual(best);
    copy.teardown(trainer, module, 'fit');
  });
});

describe('EarlyStopping in a fit', () => {
  it('patience counts validation runs: with checkValEveryNEpoch 2 and patience 2 it stops 4 epochs after the best', async () => {
    seedEverything(0);
    const module = new BoringModule(4, 2, 0.5);
    const es = new EarlyStopping({ monitor: 'val_loss', patience: 2, minDelta: 10 });
    const trainer = new Trainer({ ...quiet, maxEpochs: 20, checkValEveryNEpoch: 2, callbacks: [es] });
    await expectNoLeak(() => trainer.fit(module, ...loaders()), 'fit with EarlyStopping');
    // Validation runs at epochs 1, 3, 5: the first sets the best, the next two do not beat it by 10.
    expect(es.checks).toBe(3);
    expect(trainer.currentEpoch).toBe(6);
    expect(trainer.stopReason).toMatchObject({ rule: 'early_stopping', epoch: 5, values: { trigger: 'patience', wait: 2, bestEpoch: 1 } });
  });

  it('restoreBestWeights restores the best epoch also when maxEpochs ended the run (Keras restores only when it stopped the run itself)', async () => {
    seedEverything(1);
    const module = new BoringModule(4, 2, 0.5);
    const perEpoch: Array<Record<string, number[]>> = [];
    const spy = new LambdaCallback({ onValidationEnd: (t, m) => void (t.sanityChecking || perEpoch.push(weights(m))) });
    // The monitored metric rises from epoch 2 on: the best epoch is 1, and maxEpochs ends the run.
    const fakeMetric = new LambdaCallback({
      onValidationEpochEnd: (t) => {
        if (!t.sanityChecking) (t.callbackMetrics as Record<string, number>).score = Math.abs(t.currentEpoch - 1);
      },
    });
    const es = new EarlyStopping({ monitor: 'score', patience: 100, restoreBestWeights: true });
    const trainer = new Trainer({ ...quiet, maxEpochs: 5, callbacks: [spy, fakeMetric, es] });
    const printed: string[] = [];
    trainer.events.on('message', (m) => printed.push(m));
    await expectNoLeak(() => trainer.fit(module, ...loaders()), 'fit with restoreBestWeights');
    expect(trainer.stopReason?.rule).toBe('max_epochs');
    expect(es.bestEpoch).toBe(1);
    expect(weights(module)).toEqual(perEpoch[1]);
    expect(weights(module)).not.toEqual(perEpoch[4]);
    expect(printed).toContain('EarlyStopping: restored the weights of epoch 1, the best score (0) in 5 check(s); training stopped by max_epochs.');
  });

  it('restoreBestWeights also restores when EarlyStopping stops the run, and leaks nothing', async () => {
    seedEverything(2);
    const module = new BoringModule(4, 2, 0.5);
    const perEpoch: Array<Record<string, number[]>> = [];
    const spy = new LambdaCallback({ onValidationEnd: (t, m) => void (t.sanityChecking || perEpoch.push(weights(m))) });
    const es = new EarlyStopping({ monitor: 'val_loss', patience: 1, minDelta: 1, restoreBestWeights: true });
    const trainer = new Trainer({ ...quiet, maxEpochs: 10, callbacks: [spy, es] });
    await expectNoLeak(() => trainer.fit(module, ...loaders()), 'fit');
    expect(trainer.stopReason?.rule).toBe('early_stopping');
    expect(trainer.currentEpoch).toBe(2);
    expect(weights(module)).toEqual(perEpoch[0]);
  });

  it('a misspelt monitor fails the fit with the metric names that exist', async () => {
    const trainer = new Trainer({ ...quiet, maxEpochs: 2, callbacks: [new EarlyStopping({ monitor: 'val_los' })] });
    const module = new BoringModule();
    // A failed fit leaks nothing either.
    await expectNoLeak(() => expect(trainer.fit(module, ...loaders())).rejects.toThrow(
      "EarlyStopping: the monitored metric 'val_los' is not among the metrics logged so far: train_loss, train_loss_step, val_acc, val_loss. Log it with this.log('val_los', value)",
    ), 'failed fit');
  });

  it('says so at the end of fit when it never checked, e.g. no validation ran (a silent no-op confuses users)', async () => {
    const es = new EarlyStopping({ monitor: 'train_loss' });
    const trainer = new Trainer({ ...quiet, maxEpochs: 2, callbacks: [es] });
    const printed: string[] = [];
    trainer.events.on('message', (m) => printed.push(m));
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, loaders()[0]), 'fit');
    expect(printed).toContain(
      "EarlyStopping made no check of 'train_loss' in this fit: it checks after each validation run and none ran (no validation data, or checkValEveryNEpoch larger than the epochs trained); pass checkOnTrainEpochEnd: true to check a training metric after every epoch.",
    );
    const onTrain = new EarlyStopping({ monitor: 'train_loss', checkOnTrainEpochEnd: true });
    const other = new BoringModule();
    await expectNoLeak(() => new Trainer({ ...quiet, maxEpochs: 2, callbacks: [onTrain] }).fit(other, loaders()[0]), 'fit');
    expect(onTrain.checks).toBe(2);
  });

  it('does nothing in fastDevRun', async () => {
    const es = new EarlyStopping({ monitor: 'val_loss', patience: 0 });
    const module = new BoringModule();
    await expectNoLeak(() => new Trainer({ ...quiet, fastDevRun: true, callbacks: [es] }).fit(module, ...loaders()), 'fastDevRun fit');
    expect(es.checks).toBe(0);
  });
});
