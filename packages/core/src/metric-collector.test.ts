import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { MetricCollector } from './index.js';

describe('MetricCollector', () => {
  it("uses Lightning's defaults per hook and names _step/_epoch when both are on", () => {
    const c = new MetricCollector();
    c.hookKind = 'train_step';
    c.currentBatchSize = 2;
    c.log('loss', tf.scalar(4));
    c.log('acc', tf.scalar(0.5), { onEpoch: true, progBar: true });
    let step = c.readStep();
    expect(step.logged).toEqual({ loss: 4, acc_step: 0.5 });
    expect(step.progBar).toEqual({ acc_step: 0.5 });
    expect(step.callback).toEqual({ loss: 4, acc_step: 0.5, acc: 0.5 });
    c.currentBatchSize = 6;
    c.log('acc', tf.scalar(1), { onEpoch: true });
    step = c.readStep();
    const epoch = c.takeEpoch('train');
    // weighted by batch size: (0.5*2 + 1*6) / 8
    expect(epoch.logged).toEqual({ acc_epoch: 0.875 });
    expect(epoch.callback).toEqual({ acc_epoch: 0.875, acc: 0.875 });

    c.hookKind = 'eval_step';
    c.loop = 'validate';
    c.log('val_loss', 3);
    expect(c.readStep().logged).toEqual({});
    expect(c.takeEpoch('validate').logged).toEqual({ val_loss: 3 });
  });

  it('reads all tensors logged in a step with one read, and disposes them', () => {
    const c = new MetricCollector();
    c.hookKind = 'train_step';
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      c.log('a', tf.scalar(1));
      c.log('b', tf.scalar(2, 'int32'));
      c.log('c', tf.tensor1d([3]));
    });
    expect(tf.memory().numTensors).toBe(before + 3);
    expect(c.readStep().logged).toEqual({ a: 1, b: 2, c: 3 });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad values and options with what would be valid', () => {
    const c = new MetricCollector();
    c.hookKind = 'epoch';
    c.hookName = 'onTrainEpochEnd';
    expect(() => c.log('x', tf.zeros([2]))).toThrow("log('x'): the value must be a scalar (a number or a tensor with one element); received a tensor of shape [2].");
    expect(() => c.log('x', 1, { reduce: 'median' as 'mean' })).toThrow(`log('x'): option 'reduce' must be one of mean, sum, max, min (received "median").`);
    expect(() => c.log('x', 1, { onStep: true })).toThrow("log('x', ..., { onStep: true }) is not allowed in onTrainEpochEnd: epoch-level hooks log once per epoch (use onEpoch).");
    expect(() => c.log('', 1)).toThrow(/non-empty string/);
  });
});
