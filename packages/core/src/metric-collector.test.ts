import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { MetricCollector } from './index.js';

describe('MetricCollector', () => {
  it("uses Lightning's defaults per hook and names _step/_epoch when both are on", () => {
    const c = new MetricCollector();
    let step = c.scope({ kind: 'train_step', hook: 'trainingStep', batchSize: 2 }, () => {
      c.log('loss', tf.scalar(4));
      c.log('acc', tf.scalar(0.5), { onEpoch: true, progBar: true });
      return c.readStep();
    });
    expect(step.logged).toEqual({ loss: 4, acc_step: 0.5 });
    expect(step.progBar).toEqual({ acc_step: 0.5 });
    expect(step.callback).toEqual({ loss: 4, acc_step: 0.5, acc: 0.5 });
    step = c.scope({ kind: 'train_step', hook: 'trainingStep', batchSize: 6 }, () => {
      c.log('acc', tf.scalar(1), { onEpoch: true });
      return c.readStep();
    });
    const epoch = c.takeEpoch('train');
    // weighted by batch size: (0.5*2 + 1*6) / 8
    expect(epoch.logged).toEqual({ acc_epoch: 0.875 });
    expect(epoch.callback).toEqual({ acc_epoch: 0.875, acc: 0.875 });
    expect(epoch.byName).toEqual({ acc: 0.875 });

    c.scope({ loop: 'validate' }, () =>
      c.scope({ kind: 'eval_step', hook: 'validationStep' }, () => {
        c.log('val_loss', 3);
        expect(c.readStep().logged).toEqual({});
      }),
    );
    expect(c.takeEpoch('validate').logged).toEqual({ val_loss: 3 });
  });

  it('a scope lasts while its function runs (until its promise settles) and the enclosing one comes back, also after a throw', async () => {
    const c = new MetricCollector();
    const where = () => [c.hookKind, c.hookName, c.loop, c.currentBatchSize];
    expect(where()).toEqual(['none', '', 'train', 1]);
    await c.scope({ loop: 'validate' }, async () => {
      await c.scope({ kind: 'epoch', hook: 'onValidationEpochEnd' }, async () => {
        await Promise.resolve();
        expect(where()).toEqual(['epoch', 'onValidationEpochEnd', 'validate', 1]);
      });
      expect(where()).toEqual(['none', '', 'validate', 1]);
      expect(() =>
        c.scope({ kind: 'eval_step', hook: 'validationStep', batchSize: 4 }, () => {
          throw new Error('step failed');
        }),
      ).toThrow('step failed');
      expect(where()).toEqual(['none', '', 'validate', 1]);
    });
    expect(where()).toEqual(['none', '', 'train', 1]);
  });

  it('reads all tensors logged in a step with one read, and disposes them', () => {
    const c = new MetricCollector();
    const before = tf.memory().numTensors;
    c.scope({ kind: 'train_step', hook: 'trainingStep' }, () =>
      tf.tidy(() => {
        c.log('a', tf.scalar(1));
        c.log('b', tf.scalar(2, 'int32'));
        c.log('c', tf.tensor1d([3]));
      }),
    );
    expect(tf.memory().numTensors).toBe(before + 3);
    expect(c.readStep().logged).toEqual({ a: 1, b: 2, c: 3 });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad values and options with what would be valid', () => {
    const c = new MetricCollector();
    c.scope({ kind: 'epoch', hook: 'onTrainEpochEnd' }, () => {
      expect(() => c.log('x', tf.zeros([2]))).toThrow("log('x'): the value must be a scalar (a number or a tensor with one element); received a tensor of shape [2].");
      expect(() => c.log('x', 1, { reduce: 'median' as 'mean' })).toThrow(`log('x'): option 'reduce' must be one of mean, sum, max, min (received "median").`);
      expect(() => c.log('x', 1, { onStep: true })).toThrow("log('x', ..., { onStep: true }) is not allowed in onTrainEpochEnd: epoch-level hooks log once per epoch (use onEpoch).");
      expect(() => c.log('', 1)).toThrow(/non-empty string/);
    });
  });
});
