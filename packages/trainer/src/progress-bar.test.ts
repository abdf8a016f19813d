import { DataLoader } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { describe, expect, it } from 'vitest';
import { ProgressBar, Trainer, type ProgressStream } from './index.js';

function stream(isTTY: boolean): ProgressStream & { text: string } {
  return {
    text: '',
    isTTY,
    columns: 200,
    write(chunk: string) {
      this.text += chunk;
      return true;
    },
  };
}

async function run(out: ProgressStream) {
  const data = randomClassificationDataset({ n: 32, features: 4, classes: 2, seed: 3 });
  const trainer = new Trainer({ maxEpochs: 2, logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false });
  const detach = new ProgressBar(out).attach(trainer.events);
  const module = new BoringModule();
  await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 8 }), new DataLoader(data, { batchSize: 16 })));
  detach();
  data.dispose();
}

describe('ProgressBar', () => {
  it('prints one plain line per epoch with the progBar metrics when stdout is not a TTY', async () => {
    const out = stream(false);
    await run(out);
    const lines = out.text.trim().split('\n').filter((l) => l.startsWith('Epoch'));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^Epoch 0: \d+s train_loss_step=\d\.\d{4} val_loss=\d\.\d{4} train_loss_epoch=\d\.\d{4}$/);
    expect(out.text).not.toContain('\r');
  });

  it('redraws a bar with batch, it/s and ETA in place on a TTY', async () => {
    const out = stream(true);
    await run(out);
    expect(out.text).toMatch(/\rEpoch 0 [█░]+ 4\/4 \[\d+s<\d+s, [\d.]+it\/s\] train_loss_step=/);
    expect(out.text).toMatch(/Epoch 1: \d+s .*val_loss=/);
  });
});
