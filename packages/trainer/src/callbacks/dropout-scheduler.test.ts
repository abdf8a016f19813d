import * as tf from '@tensorflow/tfjs';
import { CheckpointError, DataLoader, Dropout, LightningModule, Linear, seedEverything, type Metrics, type OptimizersReturn } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { Trainer } from '../index.js';
import { afterAll, describe, expect, it } from 'vitest';
import { DropoutScheduler, LambdaCallback, scheduledRate } from '@flint/callbacks';
import { FakeTrainer, MemoryLogger } from '../../../callbacks/src/test-utils/fake-trainer.js';

const data = randomClassificationDataset({ n: 64, features: 4, classes: 2, seed: 4 });
afterAll(() => data.dispose());

const zeroFraction = (t: tf.Tensor) => tf.mean(tf.cast(tf.equal(t, 0), 'float32'));

/** A Flint Dropout and a tfjs-layers Dropout; each step measures the share of zeros each puts into a tensor of ones. */
class Drop extends LightningModule<BoringBatch> {
  flint = new Dropout(0.5);
  tfjs = tf.layers.dropout({ rate: 0.5 });
  layer = new Linear(4, 2);
  trainingStep([x, y]: BoringBatch) {
    const ones = tf.ones([100, 100]);
    this.log('zeros_flint', zeroFraction(this.flint.forward(ones)), { onStep: true, onEpoch: true });
    this.log('zeros_tfjs', zeroFraction(this.tfjs.apply(ones, { training: this.training }) as tf.Tensor), { onStep: true, onEpoch: true });
    return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.layer.forward(x)) as tf.Scalar;
  }
  override validationStep() {
    const ones = tf.ones([100, 100]);
    this.log('val_zeros_flint', zeroFraction(this.flint.forward(ones)));
    this.log('val_zeros_tfjs', zeroFraction(this.tfjs.apply(ones, { training: this.training }) as tf.Tensor));
  }
  configureOptimizers(): OptimizersReturn {
    return tf.train.sgd(0.1);
  }
}

describe('dropout schedules', () => {
  it('constant, linear, step, exponential, cosine and warm-up-then-decay', () => {
    const at = (s: Parameters<typeof scheduledRate>[0], ts: number[]) => ts.map((t) => Number(scheduledRate(s, t).toFixed(6)));
    expect(at({ type: 'constant', rate: 0.3 }, [0, 5])).toEqual([0.3, 0.3]);
    expect(at({ type: 'linear', start: 0.5, end: 0.1, duration: 4 }, [0, 1, 2, 4, 9])).toEqual([0.5, 0.4, 0.3, 0.1, 0.1]);
    expect(at({ type: 'step', start: 0.4, gamma: 0.5, stepSize: 2 }, [0, 1, 2, 3, 4])).toEqual([0.4, 0.4, 0.2, 0.2, 0.1]);
    expect(at({ type: 'exponential', start: 0.4, gamma: 0.5 }, [0, 1, 2])).toEqual([0.4, 0.2, 0.1]);
    expect(at({ type: 'cosine', start: 0.5, end: 0.1, duration: 2 }, [0, 1, 2, 3])).toEqual([0.5, 0.3, 0.1, 0.1]);
    expect(at({ type: 'warmup', start: 0, peak: 0.4, end: 0, warmup: 2, duration: 4, decay: 'linear' }, [0, 1, 2, 3, 4, 5])).toEqual([0, 0.2, 0.4, 0.2, 0, 0]);
    expect(at({ type: 'warmup', start: 0, peak: 0.4, end: 0.2, warmup: 1, duration: 3, decay: 'cosine' }, [1, 2, 3])).toEqual([0.4, 0.3, 0.2]);
  });

  it('options are checked with pinned messages', () => {
    expect(new DropoutScheduler({ schedule: { type: 'constant', rate: 0.2 } }).options).toEqual({ schedule: { type: 'constant', rate: 0.2 }, interval: 'epoch', layers: 'all', logRates: true });
    expect(() => new DropoutScheduler({ schedule: { type: 'linear', start: 1, end: 0, duration: 3 } })).toThrow("DropoutScheduler option 'schedule.start': must be a dropout rate in [0, 1) (received 1)");
    expect(() => new DropoutScheduler({ schedule: { type: 'sine' } as never })).toThrow(
      "DropoutScheduler option 'schedule': must be a function (epoch, step) => rate or { type: 'constant' | 'linear' | 'step' | 'exponential' | 'cosine' | 'warmup', ... } (see docs/callbacks.md) (received {\"type\":\"sine\"})",
    );
    expect(() => new DropoutScheduler({ schedule: { type: 'warmup', peak: 0.5, end: 0, warmup: 5, duration: 5 } })).toThrow(
      "DropoutScheduler option 'schedule': duration must be larger than warmup (both count intervals from the start)",
    );
    expect(() => new DropoutScheduler({ schedule: { type: 'exponential', start: 0.1, gamma: 1.5 } })).toThrow("DropoutScheduler option 'schedule.gamma': must be a factor in (0, 1] (received 1.5)");
    expect(() => new DropoutScheduler({ schedule: () => 0.1, layers: [] })).toThrow("DropoutScheduler option 'layers': must be 'all' or a non-empty list of layer names (received [])");
    expect(() => new DropoutScheduler({ schedule: () => 0.1, interval: 'batch' as never })).toThrow("DropoutScheduler option 'interval': must be 'epoch' or 'step' (received \"batch\")");
  });

  it('a user function that leaves [0, 1) is an error naming the epoch and step', () => {
    const s = new DropoutScheduler({ schedule: (epoch) => epoch / 2 });
    expect(s.rateAt(1, 10)).toBe(0.5);
    expect(() => s.rateAt(2, 20)).toThrow('DropoutScheduler: the schedule gave the rate 1 at epoch 2, step 20; a dropout rate must be in [0, 1).');
  });
});

describe('DropoutScheduler with a fake trainer', () => {
  it("finds Flint's and tfjs-layers' dropout layers by name; unknown names list the ones there are", async () => {
    const t = new FakeTrainer();
    const module = new Drop();
    const only = new DropoutScheduler({ schedule: { type: 'constant', rate: 0.1 }, layers: ['flint'] });
    await only.onFitStart(t, module);
    await only.onTrainEpochStart(t);
    expect(module.flint.rate).toBe(0.1);
    expect((module.tfjs as unknown as { rate: number }).rate).toBe(0.5);
    expect(t.logged).toEqual([{ metrics: { 'dropout/flint': 0.1 }, step: 0 }]);
    await expect(new DropoutScheduler({ schedule: () => 0.1, layers: ['flint', 'fc'] }).onFitStart(t, module)).rejects.toThrow(
      "DropoutScheduler option 'layers': 'fc' is not a dropout layer of Drop; its dropout layers are: flint, tfjs.",
    );
    await expect(new DropoutScheduler({ schedule: () => 0.1 }).onFitStart(t, new BoringModule())).rejects.toThrow(
      "DropoutScheduler: BoringModule has no dropout layers (Flint's Dropout or tfjs-layers Dropout).",
    );
  });

  it('rates round-trip through the state: they are set again when the resumed fit starts', async () => {
    const t = new FakeTrainer();
    const module = new Drop();
    const s = new DropoutScheduler({ schedule: (e) => 0.1 * (e + 1) });
    await s.onFitStart(t, module);
    t.currentEpoch = 2;
    await s.onTrainEpochStart(t);
    expect(s.stateDict()).toEqual({ rates: { flint: 0.30000000000000004, tfjs: 0.30000000000000004 } });
    const resumed = new DropoutScheduler({ schedule: (e) => 0.1 * (e + 1) });
    resumed.loadStateDict(s.stateDict());
    const fresh = new Drop();
    await resumed.onFitStart(t, fresh);
    expect(fresh.flint.rate).toBeCloseTo(0.3, 12);
    expect((fresh.tfjs as unknown as { rate: number }).rate).toBeCloseTo(0.3, 12);
    const stranger = new DropoutScheduler({ schedule: () => 0.1, layers: ['flint'] });
    stranger.loadStateDict({ rates: { tfjs: 0.2 } });
    await expect(stranger.onFitStart(t, new Drop())).rejects.toThrow(CheckpointError);
  });
});

describe('DropoutScheduler in a fit: the rate used in the forward pass follows the schedule', () => {
  it('per epoch, for both kinds of dropout layer; eval mode drops nothing; the rates are logged', async () => {
    seedEverything(8);
    const logger = new MemoryLogger();
    const scheduler = new DropoutScheduler({ schedule: { type: 'linear', start: 0.1, end: 0.5, duration: 4 } });
    const trainer = new Trainer({ logger, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 5, callbacks: [scheduler] });
    const module = new Drop();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16 }), new DataLoader(data, { batchSize: 64 })), 'fit');
    const expected = [0.1, 0.2, 0.3, 0.4, 0.5];
    trainer.history.forEach((r, e) => {
      expect(r.metrics.zeros_flint).toBeCloseTo(expected[e]!, 1);
      expect(Math.abs(r.metrics.zeros_flint! - expected[e]!)).toBeLessThan(0.015);
      expect(Math.abs(r.metrics.zeros_tfjs! - expected[e]!)).toBeLessThan(0.015);
      expect(r.metrics.val_zeros_flint).toBe(0);
      expect(r.metrics.val_zeros_tfjs).toBe(0);
    });
    expect(logger.series('dropout/flint').map(([, v]) => Number(v.toFixed(6)))).toEqual(expected);
    expect(logger.series('dropout/tfjs').map(([step]) => step)).toEqual([0, 4, 8, 12, 16]);
  });

  it('per step, with a user function of (epoch, step)', async () => {
    seedEverything(9);
    const rateOf = (_epoch: number, step: number) => 0.1 + 0.2 * (step % 4);
    const seen: Array<[number, number]> = [];
    const spy = new LambdaCallback({ onTrainBatchEnd: (t, _m, outputs: Metrics) => void seen.push([t.globalStep - 1, outputs.zeros_flint_step!]) });
    const trainer = new Trainer({ logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 2, callbacks: [new DropoutScheduler({ schedule: rateOf, interval: 'step' }), spy] });
    const module = new Drop();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16 })), 'fit');
    expect(seen).toHaveLength(8);
    for (const [step, zeros] of seen) expect(Math.abs(zeros - rateOf(0, step))).toBeLessThan(0.03);
  });
});
