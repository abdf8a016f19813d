import { DataLoader } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { Trainer } from '../index.js';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { LambdaCallback, Timer } from '@flint/callbacks';
import { FakeTrainer } from '../../../callbacks/src/test-utils/fake-trainer.js';

const data = randomClassificationDataset({ n: 64, features: 4, classes: 2, seed: 1 });
afterAll(() => data.dispose());
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('Timer', () => {
  it('options: durations as seconds, "DD:HH:MM:SS" or parts; bad ones are errors', () => {
    expect(new Timer({ duration: '00:01:30:00' }).durationSeconds).toBe(5400);
    expect(new Timer({ duration: { minutes: 2, seconds: 3 } }).durationSeconds).toBe(123);
    expect(new Timer({ duration: 7.5 }).durationSeconds).toBe(7.5);
    expect(new Timer().durationSeconds).toBe(Infinity);
    expect(() => new Timer({ duration: 0 })).toThrow(`Timer option 'duration': must be seconds (a number > 0), "DD:HH:MM:SS" (e.g. "00:12:00:00") or { days, hours, minutes, seconds } adding up to more than 0 (received 0)`);
    expect(() => new Timer({ interval: 'batch' as never })).toThrow(`Timer option 'interval': must be 'step' or 'epoch' (received "batch")`);
  });

  it("stops a fit with rule 'max_time' once the training time passes the duration", async () => {
    const timer = new Timer({ duration: 0.15, verbose: false });
    const slow = new LambdaCallback({ onTrainBatchEnd: () => sleep(30) });
    const trainer = new Trainer({ logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 100, callbacks: [slow, timer] });
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16 })), 'fit');
    expect(trainer.stopReason).toMatchObject({ rule: 'max_time', source: 'Timer', values: { durationSeconds: 0.15 } });
    expect(trainer.stopReason!.message).toMatch(/^Timer: time is up after \d+\.\d s of training \(duration 0\.15 s\) at epoch \d+, step \d+\.$/);
    // The first step on a loaded machine may take over a second: the stop comes at the first batch end past 0.15 s.
    expect(trainer.currentEpoch).toBeLessThan(5);
    expect(timer.timeElapsed('train')).toBeGreaterThanOrEqual(0.15);
    expect(timer.timeRemaining()).toBeLessThanOrEqual(0);
  });

  it('the elapsed training time goes into checkpoints: a resumed run only gets what is left', () => {
    let now = 5000;
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => now);
    try {
      const t = new FakeTrainer();
      const timer = new Timer({ duration: 10, interval: 'epoch' });
      timer.onTrainStart();
      now += 4000;
      expect(timer.stateDict()).toEqual({ timeElapsed: { train: 4, validate: 0, test: 0 } });
      const resumed = new Timer({ duration: 10, interval: 'epoch' });
      resumed.loadStateDict({ timeElapsed: { train: 9 } });
      resumed.onTrainStart();
      now += 500;
      resumed.onTrainEpochEnd(t, new BoringModule());
      expect(t.shouldStop).toBe(false);
      expect(resumed.timeRemaining()).toBe(0.5);
      now += 600;
      resumed.onTrainEpochEnd(t, new BoringModule());
      expect(t.stopReason).toMatchObject({ rule: 'max_time', values: { elapsedSeconds: 10.1, durationSeconds: 10 } });
      expect(t.printed).toEqual(['Timer: time is up after 10.1 s of training (duration 10 s) at epoch 0, step 0.']);
    } finally {
      clock.mockRestore();
    }
  });

  it('measures validation runs separately and adds them up; the sanity check does not count', () => {
    let now = 0;
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => now);
    try {
      const t = new FakeTrainer();
      const timer = new Timer();
      t.runningStage = 'sanity_check';
      timer.onValidationStart(t);
      now += 3000;
      timer.onValidationEnd(t);
      expect(timer.timeElapsed('validate')).toBe(0);
      t.runningStage = 'validate';
      for (let i = 0; i < 2; i++) {
        timer.onValidationStart(t);
        now += 1500;
        timer.onValidationEnd(t);
        now += 10_000;
      }
      expect(timer.timeElapsed('validate')).toBe(3);
      expect(timer.endTime('validate')).toBe(now - 10_000);
    } finally {
      clock.mockRestore();
    }
  });
});
