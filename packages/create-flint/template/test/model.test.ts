import { fileURLToPath } from 'node:url';
import { seedEverything } from '@flint/core';
import { expectNoLeak } from '@flint/core/testing';
import { Trainer } from '@flint/trainer';
import { describe, expect, it } from 'vitest';
import { IrisData, readIrisCsv } from '../src/data.js';
import { IrisClassifier } from '../src/model.js';

const csvPath = fileURLToPath(new URL('../data/iris.csv', import.meta.url));

describe('IrisData', () => {
  it('reads 150 flowers, 50 of each class', () => {
    const { features, labels } = readIrisCsv(csvPath);
    expect(features).toHaveLength(150);
    expect([0, 1, 2].map((c) => labels.filter((l) => l === c).length)).toEqual([50, 50, 50]);
  });
});

describe('IrisClassifier', () => {
  it('learns: a short fit lowers the validation loss and leaks no tensors', async () => {
    seedEverything(1);
    const data = new IrisData({ csvPath });
    const model = new IrisClassifier({ hidden: 16, learningRate: 0.05 });
    const trainer = new Trainer({ maxEpochs: 15, logger: false, enableCheckpointing: false, enableProgressBar: false, enableModelSummary: false });
    // Every tensor made during fit (the data, freed by IrisData.teardown; the optimizer's state; the steps') is gone afterwards.
    await expectNoLeak(() => trainer.fit(model, data), 'fit');
    const losses = trainer.history.map((r) => r.metrics.val_loss!);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.7);
    expect(trainer.history.at(-1)!.metrics.val_acc!).toBeGreaterThan(0.8);
  });
});
