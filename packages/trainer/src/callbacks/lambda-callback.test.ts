import { DataLoader } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { Trainer } from '../index.js';
import { afterAll, describe, expect, it } from 'vitest';
import { LambdaCallback } from '@flint/callbacks';

const data = randomClassificationDataset({ n: 32, features: 4, classes: 2, seed: 1 });
afterAll(() => data.dispose());

describe('LambdaCallback', () => {
  it('calls the given functions as hooks, in a real fit, and leaks nothing', async () => {
    const calls: string[] = [];
    const cb = new LambdaCallback({
      onFitStart: () => void calls.push('fitStart'),
      onTrainEpochEnd: (trainer) => void calls.push(`epochEnd ${trainer.currentEpoch} ${Object.keys(trainer.callbackMetrics).sort().join(',')}`),
      onFitEnd: () => void calls.push('fitEnd'),
      readsEpochMetrics: true,
    });
    expect(cb.readsEpochMetrics).toBe(true);
    expect(cb.stateKey).toBe('LambdaCallback[onFitStart,onFitEnd,onTrainEpochEnd]');
    const trainer = new Trainer({ logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 2, callbacks: [cb] });
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16 })), 'fit');
    // readsEpochMetrics: the epoch's train_loss_epoch is there when the hook runs.
    expect(calls).toEqual(['fitStart', 'epochEnd 0 train_loss,train_loss_epoch,train_loss_step', 'epochEnd 1 train_loss,train_loss_epoch,train_loss_step', 'fitEnd']);
  });

  it('options are checked: unknown hooks and non-functions are errors', () => {
    expect(() => new LambdaCallback({ onTrainEpochEnds: () => undefined } as never)).toThrow(`LambdaCallback option '(options)': Unrecognized key: "onTrainEpochEnds"`);
    expect(() => new LambdaCallback({ onFitStart: 'yes' } as never)).toThrow(`LambdaCallback option 'onFitStart': must be a function (trainer, module, ...) => void (received "yes")`);
    expect(new LambdaCallback({ onFitEnd: () => undefined, stateKey: 'mine' }).stateKey).toBe('mine');
  });
});
