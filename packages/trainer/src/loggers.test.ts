import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Callback, DataLoader, MisconfigurationError, seedEverything, type Logger, type TrainerContext } from '@flint/core';
import { LambdaCallback, ModelCheckpoint } from '@flint/callbacks';
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
    const runs = readLogDir(path.join(saveDir, 'flint_logs')).runs;
    const run = runs['version_0']!;
    // Lightning's steps: a batch's values at the optimizer steps before it, an epoch's at its last batch's.
    expect(run.scalars.train_loss_step!.points.map((p) => p[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // Epoch metrics go to the train and validation sub-runs under one tag: one chart in TensorBoard.
    expect(Object.keys(runs).sort()).toEqual(['version_0', 'version_0/train', 'version_0/validation']);
    expect(Object.keys(run.scalars).sort()).toEqual(['train_loss_step', 'trainer/epoch']);
    expect(Object.keys(runs['version_0/train']!.scalars)).toEqual(['epoch_loss']);
    expect(Object.keys(runs['version_0/validation']!.scalars).sort()).toEqual(['epoch_acc', 'epoch_loss']);
    const valLoss = runs['version_0/validation']!.scalars.epoch_loss!;
    expect(valLoss.points.map((p) => p[0])).toEqual([3, 7]);
    const valLosses = trainer.history.map((r) => r.metrics.val_loss!);
    valLoss.points.forEach((p, i) => expect(p[1]).toBeCloseTo(valLosses[i]!, 5));
    const trainLosses = trainer.history.map((r) => r.metrics.train_loss!);
    expect(runs['version_0/train']!.scalars.epoch_loss!.points.map((p) => [p[0], p[1]])).toEqual(trainLosses.map((v, i) => [4 * (i + 1) - 1, Math.fround(v)]));
    expect(run.scalars['trainer/epoch']!.points.at(-1)![1]).toBe(1);
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
    const runs = readLogDir(path.join(saveDir, 'flint_logs')).runs;
    const run = runs['version_0']!;
    const steps = (tag: string, sub = '') => runs[`version_0${sub}`]!.scalars[tag]!.points.map((p) => p[0]);
    // 4 batches per epoch: step-level metrics every 2 steps; epoch-level ones at their epoch.
    expect(steps('train_loss_step')).toEqual([1, 3, 5, 7, 9, 11]);
    expect(steps('epoch_loss', '/train')).toEqual([0, 1, 2]);
    expect(steps('epoch_loss', '/validation')).toEqual([0, 1, 2, 3]); // epochs 0-2 of fit, then validate after 3 epochs
    expect(steps('epoch_acc', '/validation')).toEqual([0, 1, 2, 3]);
    expect(run.scalars['trainer/epoch']!.points.map((p) => [p[0], p[1]])).toEqual([[1, 0], [3, 0], [5, 1], [7, 1], [9, 2], [11, 2], [12, 3]]);
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
    const runs = readLogDir(path.join(saveDir, 'flint_logs')).runs;
    expect(runs['version_0']!.scalars.train_loss_step!.points.map((p) => p[0])).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(runs['version_0/train']!.scalars.epoch_loss!.points.map((p) => p[0])).toEqual([3, 7, 11, 15]);
  });
});

// ---- resume: every logger combination, fit -> test -> fit, where 'last' looks ----

type Kind = 'tb' | 'csv';
const make = (kind: Kind, saveDir: string, name = 'flint_logs'): TensorBoardLogger | CSVLogger =>
  kind === 'tb' ? new TensorBoardLogger({ saveDir, name, maxQueue: 4 }) : new CSVLogger({ saveDir, name, flushLogsEveryNSteps: 3 });
const loaders = () => [new DataLoader(data, { batchSize: 4, shuffle: true, seed: 2 }), new DataLoader(data, { batchSize: 16 })] as const;

/** What a logger shows: the CSV text, or the TensorBoard scalars (of the run and its train/validation sub-runs) as [step, value]. */
function shown(logger: TensorBoardLogger | CSVLogger): unknown {
  if (logger instanceof CSVLogger) return fs.readFile(logger.metricsFile, 'utf8');
  const version = path.basename(logger.logDir);
  const runs = Object.entries(readLogDir(logger.rootDir).runs).filter(([name]) => name === version || name.startsWith(`${version}/`));
  expect(runs.map(([name]) => name).sort()).toEqual([version, `${version}/train`, `${version}/validation`]);
  return Object.fromEntries(runs.flatMap(([name, run]) => Object.entries(run.scalars).map(([tag, sc]) => [`${name}/${tag}`, sc.points.map((p) => [p[0], p[1]])])));
}

/** A fit of 3 epochs x 8 steps, with a step checkpoint every 5 steps; `crashAt` throws at that step. */
async function fitWith(loggers: Logger[], options: { crashAt?: number; ckptPath?: string } = {}): Promise<Trainer> {
  seedEverything(3);
  const module = new BoringModule();
  const callbacks: Callback[] = [new ModelCheckpoint({ saveLast: true, saveTopK: 0, everyNTrainSteps: 5 })];
  if (options.crashAt !== undefined) {
    const at = options.crashAt;
    callbacks.unshift(new LambdaCallback({ onTrainBatchEnd: (t) => {
      if (t.globalStep === at) throw new Error('crash');
    } }));
  }
  const trainer = new Trainer({ ...quiet, maxEpochs: 3, logEveryNSteps: 1, logger: loggers, callbacks });
  trainer.events.on('message', () => undefined);
  const run = expectNoLeak(() => trainer.fit(module, ...loaders(), options.ckptPath === undefined ? {} : { ckptPath: options.ckptPath }));
  if (options.crashAt !== undefined) await expect(run).rejects.toThrow('crash');
  else await run;
  return trainer;
}

describe('resume keeps every logged step, whatever the loggers', () => {
  let reference: Record<Kind, unknown>;
  beforeAll(async () => {
    const saveDir = path.join(dir, 'reference');
    const [tb, csv] = [make('tb', saveDir), make('csv', saveDir)];
    await fitWith([tb, csv]);
    reference = { tb: await shown(tb), csv: await shown(csv) };
    const rows = ((reference.csv as string).trim().split('\n')).slice(1);
    expect(rows.map((r) => Number(r.split(',')[1]))).toEqual(Array.from({ length: 24 }, (_, i) => i));
  });

  const combos: Array<[string, Array<[Kind, string]>]> = [
    ['[tb]', [['tb', 'a']]],
    ['[csv]', [['csv', 'a']]],
    ['[tb, csv]', [['tb', 'a'], ['csv', 'a']]],
    ['[csv, tb]', [['csv', 'a'], ['tb', 'a']]],
    ['two CSVLoggers', [['csv', 'a'], ['csv', 'b']]],
    ['two TensorBoardLoggers', [['tb', 'a'], ['tb', 'b']]],
  ];
  it.each(combos)('%s: a crash after the checkpoint of step 10, a new trainer with ckptPath last: the logs of an uninterrupted run, in version_0', async (label, spec) => {
    const saveDir = path.join(dir, `combo-${label.replace(/\W+/g, '_')}`);
    const crashed = spec.map(([k, n]) => make(k, saveDir, n));
    await fitWith(crashed, { crashAt: 13 });
    const resumed = spec.map(([k, n]) => make(k, saveDir, n));
    // The new loggers pick version_1; the resume takes them back to the checkpoint's version_0.
    expect(resumed.map((l) => l.version)).toEqual(spec.map(() => 1));
    const trainer = await fitWith(resumed, { ckptPath: 'last' });
    expect(trainer.globalStep).toBe(24);
    for (const [i, logger] of resumed.entries()) {
      expect(logger.version).toBe(0);
      expect(await shown(logger)).toEqual(reference[spec[i]![0]]);
      expect((await fs.readdir(logger.rootDir)).filter((f) => f.startsWith('version_'))).toEqual(['version_0']);
    }
    expect(await fs.readdir(path.join(resumed[0]!.logDir, 'checkpoints'))).toEqual(['last.ckpt']);
  });

  it('fastDevRun writes no log files: the trainer leaves its loggers out of the run', async () => {
    const saveDir = path.join(dir, 'fast-dev-run');
    const trainer = new Trainer({ ...quiet, fastDevRun: true, logger: [new TensorBoardLogger({ saveDir }), new CSVLogger({ saveDir })] });
    expect(trainer.loggers).toEqual([]);
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 8 }), new DataLoader(data, { batchSize: 16 })), 'fit');
    expect(await fs.readdir(saveDir).catch(() => [])).toEqual([]);
  });

  it('each logger is flushed once per epoch, after the epoch metrics are logged', async () => {
    class Counting extends CSVLogger {
      saves: Array<{ epoch: number; hasEpochMetric: boolean }> = [];
      private trainerSeen: TrainerContext | undefined;
      override setup(trainer: TrainerContext, module: never, stage: never): void {
        super.setup(trainer, module, stage);
        this.trainerSeen = trainer;
      }
      override save(): void {
        const t = this.trainerSeen;
        if (t !== undefined && t.stage === 'fit') this.saves.push({ epoch: t.currentEpoch, hasEpochMetric: t.history.some((r) => r.epoch === t.currentEpoch && 'train_loss' in r.metrics) });
        super.save();
      }
    }
    const logger = new Counting({ saveDir: path.join(dir, 'flushes') });
    const trainer = new Trainer({ ...quiet, maxEpochs: 2, numSanityValSteps: 0, logger });
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 8 })), 'fit');
    expect(logger.saves).toEqual([
      { epoch: 0, hasEpochMetric: true },
      { epoch: 1, hasEpochMetric: true },
    ]);
  });

  it('refuses two loggers that would share a state (and a folder), naming the key', () => {
    const saveDir = path.join(dir, 'dup');
    expect(() => new Trainer({ ...quiet, logger: [new CSVLogger({ saveDir }), new CSVLogger({ saveDir })] })).toThrow(MisconfigurationError);
    expect(() => new Trainer({ ...quiet, logger: [new TensorBoardLogger({ saveDir }), new TensorBoardLogger({ saveDir })] })).toThrow(
      `Trainer option 'logger': two loggers share the stateKey 'TensorBoardLogger{"saveDir":"${saveDir}","name":"flint_logs"}', so their states would overwrite each other in checkpoints (and they would write the same experiment folder): give them a different saveDir or name.`,
    );
    expect(new TensorBoardLogger({ saveDir, subDir: 'x', version: 2 }).stateKey).toBe(`TensorBoardLogger{"saveDir":"${saveDir}","name":"flint_logs","subDir":"x"}`);
  });
});

describe('a maxSteps stop, then a resume in a new trainer', () => {
  it('maxSteps 10, then ckptPath last with maxSteps 20 and the default checkpointing: steps 0..19 each once in CSV and TensorBoard, step 9 as first logged', async () => {
    const saveDir = path.join(dir, 'max-steps');
    const options = { ...quiet, enableCheckpointing: true, logEveryNSteps: 1 };
    const first = [new TensorBoardLogger({ saveDir }), new CSVLogger({ saveDir })] as const;
    seedEverything(3);
    const a = new Trainer({ ...options, maxSteps: 10, logger: [...first] });
    const [m1, m2] = [new BoringModule(), new BoringModule()];
    await expectNoLeak(() => a.fit(m1, ...loaders()));
    const row9 = (await fs.readFile(first[1].metricsFile, 'utf8')).trim().split('\n').find((l) => l.split(',')[1] === '9');
    const csv = new CSVLogger({ saveDir });
    const b = new Trainer({ ...options, maxSteps: 20, logger: [new TensorBoardLogger({ saveDir }), csv] });
    b.events.on('message', () => undefined);
    await expectNoLeak(() => b.fit(m2, ...loaders(), { ckptPath: 'last' }));
    expect(b.globalStep).toBe(20);
    const rows = (await fs.readFile(csv.metricsFile, 'utf8')).trim().split('\n').slice(1);
    expect(rows.map((l) => Number(l.split(',')[1]))).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(rows[9]).toBe(row9);
    const run = readLogDir(path.join(saveDir, 'flint_logs')).runs['version_0']!;
    expect(run.scalars.train_loss_step!.points.map((p) => p[0])).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(await fs.readdir(path.join(csv.logDir, 'checkpoints'))).toEqual(['last.ckpt']);
  });
});

describe('fit, test, then fit from last on one trainer', () => {
  it('continues the run: every training step once with the values of an uninterrupted fit, and the test row kept', async () => {
    const full = new CSVLogger({ saveDir: path.join(dir, 'ftf-full') });
    await fitWith([full]);
    const saveDir = path.join(dir, 'ftf');
    const tb = new TensorBoardLogger({ saveDir });
    const csv = new CSVLogger({ saveDir });
    seedEverything(3);
    const module = new BoringModule();
    let paused = false;
    const stop = new LambdaCallback({ onTrainEpochEnd: (t) => {
      if (!paused) t.requestStop({ rule: 'test', message: 'pause' });
      paused = true;
    } });
    // last.ckpt at every epoch end: the resume continues from the end of the first fit.
    const trainer = new Trainer({ ...quiet, maxEpochs: 3, logEveryNSteps: 1, logger: [tb, csv], callbacks: [stop, new ModelCheckpoint({ saveLast: true, saveTopK: 0 })] });
    trainer.events.on('message', () => undefined);
    const [train, val] = loaders();
    await expectNoLeak(() => trainer.fit(module, train, val));
    expect(trainer.globalStep).toBe(8);
    await expectNoLeak(() => trainer.test(module, val));
    await expectNoLeak(() => trainer.fit(module, train, val, { ckptPath: 'last' }));
    expect(trainer.globalStep).toBe(24);

    const lines = (await fs.readFile(csv.metricsFile, 'utf8')).trim().split('\n');
    const header = lines[0]!.split(',');
    const testRows = lines.slice(1).filter((l) => l.split(',')[header.indexOf('test_loss')] !== '');
    expect(testRows.map((l) => l.split(',')[header.indexOf('step')])).toEqual(['8']);
    // Without the test row and its columns, the file is the uninterrupted fit's.
    const keep = header.map((c, i) => (c.startsWith('test_') ? -1 : i)).filter((i) => i >= 0);
    const trainOnly = lines.filter((l) => !testRows.includes(l)).map((l) => keep.map((i) => l.split(',')[i]).join(',')).join('\n');
    expect(`${trainOnly}\n`).toBe(await fs.readFile(full.metricsFile, 'utf8'));
    const run = readLogDir(tb.rootDir).runs['version_0']!;
    expect(run.scalars.train_loss_step!.points.map((p) => p[0])).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(readLogDir(tb.rootDir).runs['version_0/test']!.scalars.epoch_loss!.points.map((p) => p[0])).toEqual([8]);
  });
});

describe('fit and test, then a new trainer resumes from last', () => {
  it("TensorBoardLogger keeps the test points at the resumed step (a test run's files say so) and every training step once", async () => {
    const full = new TensorBoardLogger({ saveDir: path.join(dir, 'ftn-full'), maxQueue: 4 });
    await fitWith([full]);
    const saveDir = path.join(dir, 'ftn');
    seedEverything(3);
    const module = new BoringModule();
    const stop = new LambdaCallback({ onTrainEpochEnd: (t) => t.requestStop({ rule: 'test', message: 'pause' }) });
    const first = new TensorBoardLogger({ saveDir, maxQueue: 4 });
    const trainer = new Trainer({ ...quiet, maxEpochs: 3, logEveryNSteps: 1, logger: first, callbacks: [stop, new ModelCheckpoint({ saveLast: true, saveTopK: 0 })] });
    trainer.events.on('message', () => undefined);
    const [train, val] = loaders();
    await expectNoLeak(() => trainer.fit(module, train, val));
    await expectNoLeak(() => trainer.test(module, val));
    // The test after the fit logs at the step the next training batch logs at, as Lightning's.
    expect(readLogDir(first.rootDir).runs['version_0/test']!.scalars.epoch_loss!.points.map((p) => p[0])).toEqual([8]);

    seedEverything(3);
    const second = new TensorBoardLogger({ saveDir, maxQueue: 4 });
    const resumed = new Trainer({ ...quiet, maxEpochs: 3, logEveryNSteps: 1, logger: second, callbacks: [new ModelCheckpoint({ saveLast: true, saveTopK: 0 })] });
    resumed.events.on('message', () => undefined);
    const again = new BoringModule();
    await expectNoLeak(() => resumed.fit(again, ...loaders(), { ckptPath: 'last' }));
    expect(resumed.globalStep).toBe(24);
    expect(second.version).toBe(0);
    const runs = readLogDir(second.rootDir).runs;
    expect(runs['version_0']!.scalars.train_loss_step!.points.map((p) => p[0])).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(runs['version_0/test']!.scalars.epoch_loss!.points.map((p) => p[0])).toEqual([8]);
    // Apart from the test sub-run, what TensorBoard shows is the uninterrupted fit's.
    const scalarsOf = (logger: TensorBoardLogger) =>
      Object.fromEntries(
        Object.entries(readLogDir(logger.rootDir).runs)
          .filter(([name]) => ['version_0', 'version_0/train', 'version_0/validation'].includes(name))
          .flatMap(([name, run]) => Object.entries(run.scalars).map(([tag, sc]) => [`${name}/${tag}`, sc.points.map((p) => [p[0], p[1]])])),
      );
    expect(scalarsOf(second)).toEqual(scalarsOf(full));
  });
});

describe("ckptPath 'last' and the version folders", () => {
  it('a resume from a checkpoint file writes logs and checkpoints back into its version folder', async () => {
    const saveDir = path.join(dir, 'explicit');
    await fitWith([make('csv', saveDir)], { crashAt: 13 });
    const file = path.join(saveDir, 'flint_logs', 'version_0', 'checkpoints', 'last.ckpt');
    await fs.rename(file, path.join(saveDir, 'step10.ckpt'));
    const csv = make('csv', saveDir);
    await fitWith([csv], { ckptPath: path.join(saveDir, 'step10.ckpt') });
    expect(csv.logDir).toBe(path.join(saveDir, 'flint_logs', 'version_0'));
    expect(await fs.readdir(path.join(saveDir, 'flint_logs'))).toEqual(['version_0']);
    expect(await fs.readdir(path.join(csv.logDir, 'checkpoints'))).toEqual(['last.ckpt']);
  });

  it('when no last.ckpt exists, the error names the folders searched and the checkpoints there', async () => {
    const saveDir = path.join(dir, 'none');
    const ckpts = path.join(saveDir, 'flint_logs', 'version_0', 'checkpoints');
    await fs.mkdir(ckpts, { recursive: true });
    await fs.writeFile(path.join(ckpts, 'epoch=0-step=8.ckpt'), 'x');
    const trainer = new Trainer({ ...quiet, logger: new CSVLogger({ saveDir }) });
    await expect(trainer.fit(new BoringModule(), ...loaders(), { ckptPath: 'last' })).rejects.toThrow(
      `ckptPath 'last': no last checkpoint found: no callback knows one nor in the version folders of ${path.join(saveDir, 'flint_logs')} (<version>/checkpoints/last.ckpt). Checkpoints there: ${path.join(ckpts, 'epoch=0-step=8.ckpt')}; pass one as ckptPath. Add a ModelCheckpoint with saveLast to this trainer's callbacks, or pass a file path.`,
    );
  });
});
