import { DataLoader } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { Trainer } from '../index.js';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelSummary } from '@flint/callbacks';

const data = randomClassificationDataset({ n: 16, features: 4, classes: 2, seed: 1 });
afterAll(() => data.dispose());

describe('ModelSummary', () => {
  it("prints module.summary() at fit start, through the trainer's print", async () => {
    const cb = new ModelSummary();
    const trainer = new Trainer({ logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 1, callbacks: [cb] });
    const printed: string[] = [];
    trainer.events.on('message', (m) => printed.push(m));
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 8 })), 'fit');
    expect(cb.summary).toBe(module.summary());
    expect(printed).toContain(module.summary());
    expect(cb.summary).toContain('10       Trainable params');
  });

  it('enableModelSummary adds one unless the callbacks hold one: one summary either way', async () => {
    for (const callbacks of [[], [new ModelSummary()]]) {
      const trainer = new Trainer({ logger: false, enableProgressBar: false, enableModelSummary: true, enableCheckpointing: false, maxEpochs: 1, callbacks });
      const printed: string[] = [];
      trainer.events.on('message', (m) => printed.push(m));
      const module = new BoringModule();
      await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 8 })), 'fit');
      expect(printed.filter((m) => m === module.summary())).toHaveLength(1);
      expect(trainer.callbacks.filter((cb) => cb instanceof ModelSummary)).toHaveLength(1);
    }
    const off = new Trainer({ logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false });
    expect(off.callbacks.some((cb) => cb instanceof ModelSummary)).toBe(false);
  });

  it('takes no options yet', () => {
    expect(() => new ModelSummary({ maxDepth: 2 } as never)).toThrow(`ModelSummary option '(options)': Unrecognized key: "maxDepth"`);
  });
});
