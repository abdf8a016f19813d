import { MisconfigurationError, type TrainerContext } from '@flint/core';
import { describe, expect, it } from 'vitest';
import { isFitCheck, isStaleMetric, MonitorCallback, readMonitoredMetric, type MonitorSettings } from './index.js';
import { FakeTrainer } from './test-utils/fake-trainer.js';

class Probe extends MonitorCallback {
  constructor(settings: Partial<MonitorSettings> = {}) {
    super({ monitor: 'val_loss', mode: 'min', minDelta: 0, strict: true, ...settings });
  }
  read(trainer: TrainerContext, epochEnd = false) {
    return this.readMonitor(trainer, epochEnd);
  }
}

describe('MonitorCallback', () => {
  it("isImprovement: 'min' wants lower, 'max' higher, by more than minDelta; NaN never improves", () => {
    const min = new Probe({ minDelta: 0.1 });
    expect(min.isImprovement(0.5, 1)).toBe(true);
    expect(min.isImprovement(0.95, 1)).toBe(false);
    expect(min.isImprovement(0.9, 1)).toBe(false);
    expect(min.isImprovement(1, min.worstScore)).toBe(true);
    expect(min.isImprovement(Number.NaN, min.worstScore)).toBe(false);
    const max = new Probe({ mode: 'max' });
    expect(max.worstScore).toBe(-Infinity);
    expect(max.isImprovement(0.8, 0.7)).toBe(true);
    expect(max.isImprovement(0.7, 0.7)).toBe(false);
    expect(max.isImprovement(0.6, 0.7)).toBe(false);
  });

  it('reads epoch metrics, so that its epoch-end hooks run after the module', () => {
    expect(new Probe().readsEpochMetrics).toBe(true);
  });

  it('after a validation run, a missing metric is an error listing the metrics that exist (strict), or one printed warning (strict: false)', () => {
    const trainer = new FakeTrainer();
    trainer.validationRuns = 1;
    trainer.callbackMetrics = { train_loss: 1, val_acc: 0.5 };
    expect(() => new Probe().read(trainer)).toThrow(MisconfigurationError);
    expect(() => new Probe().read(trainer)).toThrow(
      "Probe: the monitored metric 'val_loss' is not among the metrics logged so far: train_loss, val_acc. Log it with this.log('val_loss', value) (validation metrics in validationStep, a training metric per epoch with onEpoch: true), fix the name, or pass strict: false to skip the check while it is missing.",
    );
    const lenient = new Probe({ strict: false });
    expect(lenient.read(trainer)).toBeUndefined();
    expect(lenient.read(trainer)).toBeUndefined();
    expect(trainer.printed).toEqual([
      "Probe: the monitored metric 'val_loss' is not among the metrics logged so far: train_loss, val_acc; skipping the check while it is missing (strict: false). This warning is printed once.",
    ]);
    trainer.callbackMetrics = { val_loss: 0.25 };
    expect(lenient.read(trainer)).toBe(0.25);
    const none = new FakeTrainer();
    none.validationRuns = 1;
    expect(() => new Probe().read(none)).toThrow("not among the metrics logged so far: (none logged yet).");
  });

  it('before the first validation run of the fit a metric that is not there is not logged yet: one note, no error, also when strict', () => {
    const trainer = new FakeTrainer();
    trainer.callbackMetrics = { train_loss: 1 };
    const probe = new Probe();
    expect(probe.read(trainer)).toBeUndefined();
    expect(probe.read(trainer, true)).toBeUndefined();
    expect(trainer.printed).toEqual([
      "Probe: 'val_loss' is not logged yet (no validation has run in this fit; the metrics logged so far: train_loss): it is not checked until it is. This note is printed once.",
    ]);
    trainer.validationRuns = 1;
    expect(() => probe.read(trainer)).toThrow("Probe: the monitored metric 'val_loss' is not among the metrics logged so far: train_loss.");
    trainer.callbackMetrics.val_loss = 0.5;
    expect(probe.read(trainer)).toBe(0.5);
  });

  it('readMonitoredMetric is the same rule outside a callback (the trainer\'s LR schedulers), with its own warn-once record', () => {
    const trainer = new FakeTrainer();
    const warned = new Set<string>();
    const options = { strict: false, owner: 'lrScheduler ReduceLROnPlateau', warned };
    expect(readMonitoredMetric(trainer, 'ts', options)).toBeUndefined();
    trainer.validationRuns = 1;
    expect(readMonitoredMetric(trainer, 'ts', options)).toBeUndefined();
    expect(readMonitoredMetric(trainer, 'ts', options)).toBeUndefined();
    expect(trainer.printed).toEqual([
      "lrScheduler ReduceLROnPlateau: 'ts' is not logged yet (no validation has run in this fit; the metrics logged so far: (none logged yet)): it is not checked until it is. This note is printed once.",
      "lrScheduler ReduceLROnPlateau: the monitored metric 'ts' is not among the metrics logged so far: (none logged yet); skipping the check while it is missing (strict: false). This warning is printed once.",
    ]);
    expect(() => readMonitoredMetric(trainer, 'ts', { ...options, strict: true })).toThrow(MisconfigurationError);
    trainer.callbackMetrics = { ts: 2 };
    expect(readMonitoredMetric(trainer, 'ts', options)).toBe(2);
  });

  it('isFitCheck: only during fit, outside the sanity check and fastDevRun', () => {
    const trainer = new FakeTrainer();
    expect(isFitCheck(trainer)).toBe(true);
    trainer.runningStage = 'sanity_check';
    expect(isFitCheck(trainer)).toBe(false);
    trainer.runningStage = 'train';
    trainer.fastDevRun = true;
    expect(isFitCheck(trainer)).toBe(false);
    trainer.fastDevRun = false;
    trainer.stage = 'validate';
    expect(isFitCheck(trainer)).toBe(false);
  });

  it('a validation metric from an earlier epoch is stale at an epoch without validation', () => {
    const trainer = new FakeTrainer();
    const probe = new Probe();
    trainer.record({ train_loss: 1, val_loss: 0.9 }, 0);
    trainer.callbackMetrics = { train_loss: 1, val_loss: 0.9 };
    expect(isStaleMetric(trainer, 'val_loss')).toBe(false);
    expect(probe.read(trainer, true)).toBe(0.9);
    trainer.currentEpoch = 1;
    trainer.record({ train_loss: 0.8 }, 1);
    expect(isStaleMetric(trainer, 'val_loss')).toBe(true);
    expect(probe.read(trainer, true)).toBeUndefined();
    expect(probe.read(trainer)).toBe(0.9);
    trainer.record({ val_loss: 0.7 }, 1);
    trainer.callbackMetrics.val_loss = 0.7;
    expect(probe.read(trainer, true)).toBe(0.7);
    expect(trainer.printed).toEqual([]);
  });
});
