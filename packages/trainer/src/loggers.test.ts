import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Callback, DataLoader, type TrainerContext } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { CSVLogger, TensorBoardLogger } from '@flint/loggers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv } from '../../loggers/src/internal/csv.js';
import { readLogDir } from '../../loggers/src/testing/event-reader.js';
import { Trainer, type TrainerOptions } from './index.js';

const quiet: TrainerOptions = { enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false };
const data = randomClassificationDataset({ n: 32, features: 4, classes: 2, seed: 4 });
let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-trainer-loggers-'));
});
afterAll(async () => {
  data.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

class SaveAt extends Callback {
  override readonly readsEpochMetrics = true;
  constructor(private readonly file: string, private readonly epoch: number) {
    super();
  }
  override async onTrainEpochEnd(trainer: TrainerContext) {
    if (trainer.currentEpoch === this.epoch) {
      await trainer.saveCheckpoint(this.file);
      trainer.requestStop({ rule: 'test', message: 'interrupted' });
    }
  }
}

describe('Trainer with TensorBoard and CSV loggers', () => {
  it('a fit writes the same metrics to both loggers in one version folder, with the epoch series', async () => {
    const saveDir = path.join(dir, 'fit');
    const tb = new TensorBoardLogger({ saveDir });
    const csv = new CSVLogger({ saveDir });
    const trainer = new Trainer({ ...quiet, maxEpochs: 2, logEveryNSteps: 1, logger: [tb, csv] });
    const module = new BoringModule();
    module.saveHyperparameters({ lr: 0.1 });
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 8 }), new DataLoader(data, { batchSize: 16 })));
    expect(tb.logDir).toBe(csv.logDir);
    expect(path.relative(saveDir, tb.logDir)).toBe(path.join('flint_logs', 'version_0'));
    const run = readLogDir(path.join(saveDir, 'flint_logs')).runs['version_0']!;
    expect(run.scalars.train_loss_step!.points.map((p) => p[0])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(run.scalars.val_loss!.points.map((p) => p[0])).toEqual([4, 8]);
    const valLosses = trainer.history.map((r) => r.metrics.val_loss!);
    run.scalars.val_loss!.points.forEach((p, i) => expect(p[1]).toBeCloseTo(valLosses[i]!, 5));
    expect(run.scalars.epoch!.points.at(-1)![1]).toBe(1);
    const rows = (await fs.readFile(path.join(csv.logDir, 'metrics.csv'), 'utf8')).trim().split('\n');
    expect(rows[0]!.split(',')).toEqual(expect.arrayContaining(['step', 'epoch', 'train_loss_step', 'val_loss', 'val_acc']));
    expect(await fs.readFile(path.join(csv.logDir, 'hparams.yaml'), 'utf8')).toContain('lr: 0.1');
  });

  it("epochAxisMetrics ['val_*', '*_epoch'] through fit and validate: every call carries epoch, one epoch point per step", async () => {
    const saveDir = path.join(dir, 'epoch-axis');
    const tb = new TensorBoardLogger({ saveDir, epochAxisMetrics: ['val_*', '*_epoch'] });
    const csv = new CSVLogger({ saveDir });
    const trainer = new Trainer({ ...quiet, maxEpochs: 3, logEveryNSteps: 2, logger: [tb, csv] });
    const messages: string[] = [];
    trainer.events.on('message', (text) => messages.push(text));
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 8 }), new DataLoader(data, { batchSize: 16 })));
    await expectNoLeak(() => trainer.validate(module, new DataLoader(data, { batchSize: 16 })));
    const run = readLogDir(path.join(saveDir, 'flint_logs')).runs['version_0']!;
    const steps = (tag: string) => run.scalars[tag]!.points.map((p) => p[0]);
    // 4 batches per epoch: step-level metrics every 2 steps; epoch-level ones at their epoch.
    expect(steps('train_loss_step')).toEqual([2, 4, 6, 8, 10, 12]);
    expect(steps('train_loss_epoch')).toEqual([0, 1, 2]);
    expect(steps('val_loss')).toEqual([0, 1, 2, 3]); // epochs 0-2 of fit, then validate after 3 epochs
    expect(steps('val_acc')).toEqual([0, 1, 2, 3]);
    expect(run.scalars.epoch!.points.map((p) => [p[0], p[1]])).toEqual([[2, 0], [4, 0], [6, 1], [8, 1], [10, 2], [12, 2]]);
    expect(messages.filter((m) => m.includes('is not written'))).toEqual([]);
    const [header, ...rows] = parseCsv(await fs.readFile(path.join(csv.logDir, 'metrics.csv'), 'utf8'));
    const epochColumn = header!.indexOf('epoch');
    expect(rows.map((r) => r[epochColumn])).toEqual(['0', '0', '1', '1', '2', '2', '3']);
  });

  it('a resumed fit continues the same version folder and TensorBoard shows one series', async () => {
    const saveDir = path.join(dir, 'resume');
    const file = path.join(dir, 'resume.ckpt');
    const first = new Trainer({ ...quiet, maxEpochs: 4, logEveryNSteps: 1, logger: new TensorBoardLogger({ saveDir }), callbacks: [new SaveAt(file, 1)] });
    await first.fit(new BoringModule(), new DataLoader(data, { batchSize: 8 }));
    const tb = new TensorBoardLogger({ saveDir, version: 0 });
    const second = new Trainer({ ...quiet, maxEpochs: 4, logEveryNSteps: 1, logger: tb });
    await second.fit(new BoringModule(), new DataLoader(data, { batchSize: 8 }), undefined, { ckptPath: file });
    const run = readLogDir(path.join(saveDir, 'flint_logs')).runs['version_0']!;
    expect(run.scalars.train_loss_step!.points.map((p) => p[0])).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(run.scalars.train_loss_epoch!.points.map((p) => p[0])).toEqual([4, 8, 12, 16]);
  });
});
