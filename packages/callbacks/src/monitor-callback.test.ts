import { MisconfigurationError, type TrainerContext } from '@flint/core';
import { describe, expect, it } from 'vitest';
import { MonitorCallback, type MonitorSettings } from './index.js';
import { FakeTrainer } from './test-utils/fake-trainer.js';

class Probe extends MonitorCallback {
  constructor(settings: Partial<MonitorSettings> = {}) {
    super({ monitor: 'val_loss', mode: 'min', minDelta: 0, strict: true, ...settings });
  }
  read(trainer: TrainerContext) {
    return this.readMonitor(trainer);
  }
  stale(trainer: TrainerContext) {
    return this.isStale(trainer);
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

  it('a missing metric is an error listing the metrics that exist (strict), or one printed warning (strict: false)', () => {
    const trainer = new FakeTrainer();
    trainer.callbackMetrics = { train_loss: 1, val_acc: 0.5 };
    expect(() => new Probe().read(trainer)).toThrow(MisconfigurationError);
    expect(() => new Probe().read(trainer)).toThrow(
      "Probe: the monitored metric 'val_loss' is not among the metrics logged so far: train_loss, val_acc. Log it with this.log('val_loss', value) (validation metrics in validationStep), fix the name, or pass strict: false to skip the check while it is missing.",
    );
    const lenient = new Probe({ strict: false });
    expect(lenient.read(trainer)).toBeUndefined();
    expect(lenient.read(trainer)).toBeUndefined();
    expect(trainer.printed).toEqual([
      "Probe: the monitored metric 'val_loss' is not among the metrics logged so far: train_loss, val_acc; skipping the check while it is missing (strict: false). This warning is printed once.",
    ]);
    trainer.callbackMetrics = { val_loss: 0.25 };
    expect(lenient.read(trainer)).toBe(0.25);
    expect(() => new Probe().read(new FakeTrainer())).toThrow("not among the metrics logged so far: (none logged yet).");
  });

  it('a validation metric from an earlier epoch is stale at an epoch without validation', () => {
    const trainer = new FakeTrainer();
    const probe = new Probe();
    trainer.record({ train_loss: 1, val_loss: 0.9 }, 0);
    expect(probe.stale(trainer)).toBe(false);
    trainer.currentEpoch = 1;
    trainer.record({ train_loss: 0.8 }, 1);
    expect(probe.stale(trainer)).toBe(true);
    trainer.record({ val_loss: 0.7 }, 1);
    expect(probe.stale(trainer)).toBe(false);
  });
});
