import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, loadCheckpointFile, MisconfigurationError, seedEverything } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { Trainer, type TrainerOptions } from '../index.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LambdaCallback, ModelCheckpoint } from '@flint/callbacks';
import { FakeTrainer } from '../../../callbacks/src/test-utils/fake-trainer.js';
import { Net, weightsOf } from './test-utils/net.js';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' };
const data = randomClassificationDataset({ n: 48, features: 4, classes: 2, seed: 11 });
const loaders = () => [new DataLoader(data, { batchSize: 8, shuffle: true, seed: 5 }), new DataLoader(data, { batchSize: 24 })] as const;
let root: string;
let n = 0;
const freshDir = async () => fs.mkdtemp(path.join(root, `case${n++}-`));
const ckpts = async (dir: string) => (await fs.readdir(dir)).filter((f) => f.endsWith('.ckpt')).sort();
const silence = (trainer: Trainer) => trainer.events.on('message', () => undefined);

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-mc-'));
});
afterAll(async () => {
  data.dispose();
  await fs.rm(root, { recursive: true, force: true });
  await tf.setBackend(process.env.FLINT_BACKEND ?? 'wasm');
});

describe('ModelCheckpoint options', () => {
  it('defaults: every epoch, the latest checkpoint, named epoch=E-step=S', () => {
    const mc = new ModelCheckpoint();
    expect(mc.options).toEqual({
      filename: '{epoch}-{step}',
      mode: 'min',
      saveTopK: 1,
      saveLast: false,
      saveWeightsOnly: false,
      everyNEpochs: 1,
      everyNTrainSteps: 0,
      autoInsertMetricName: true,
      strict: true,
      verbose: false,
    });
    expect(new ModelCheckpoint({ everyNTrainSteps: 10 }).options.everyNEpochs).toBe(0);
    expect(new ModelCheckpoint({ trainTimeInterval: '00:00:30:00' }).options.everyNEpochs).toBe(0);
    expect(mc.stateKey).toBe('ModelCheckpoint{"mode":"min","everyNTrainSteps":0,"everyNEpochs":1}');
  });

  it('bad values and combinations are errors with pinned messages', () => {
    expect(() => new ModelCheckpoint({ everyNEpochs: 2, everyNTrainSteps: 100 })).toThrow(
      "ModelCheckpoint option '(options)': everyNEpochs (2), everyNTrainSteps (100) and trainTimeInterval (undefined) are mutually exclusive: set one of them",
    );
    expect(() => new ModelCheckpoint({ saveTopK: 3 })).toThrow(
      "ModelCheckpoint option 'saveTopK': saveTopK 3 needs a 'monitor' to rank checkpoints by; without one use saveTopK 1 (the latest), -1 (all) or 0 (none) (received 3)",
    );
    expect(() => new ModelCheckpoint({ saveTopK: -2 })).toThrow("ModelCheckpoint option 'saveTopK': must be -1 (all), 0 (none) or a whole number k (received -2)");
    expect(() => new ModelCheckpoint({ trainTimeInterval: '1h' })).toThrow(
      `ModelCheckpoint option 'trainTimeInterval': must be seconds (a number > 0), "DD:HH:MM:SS" (e.g. "00:12:00:00") or { days, hours, minutes, seconds } adding up to more than 0 (received "1h")`,
    );
    expect(() => new ModelCheckpoint({ filename: '{val_loss:.4g}' })).toThrow(
      `ModelCheckpoint option 'filename': unsupported format '.4g' in {val_loss:.4g} (received "{val_loss:.4g}"); use '.Nf' (fixed), '.Ne' (exponent), 'd' or '0Nd' (whole numbers), e.g. '{epoch:02d}-{val_loss:.4f}'.`,
    );
    expect(() => new ModelCheckpoint({ filename: 'runs/{epoch}' })).toThrow(`ModelCheckpoint option 'filename' must be a file name without folders (received "runs/{epoch}"); put folders in 'dirpath'.`);
    expect(() => new ModelCheckpoint({ filename: '{epoch}.ckpt' })).toThrow(MisconfigurationError);
    expect(() => new ModelCheckpoint({ monitor: 'val_loss', mode: 'auto' } as never)).toThrow("ModelCheckpoint option 'mode': must be 'min' (lower is better) or 'max' (higher is better)");
  });
});

describe('ModelCheckpoint file names', () => {
  const metrics = { epoch: 3, step: 120, val_loss: 0.123456, 'train/acc': 0.5 };
  it("follow Lightning: '{epoch}-{val_loss:.4f}' gives epoch=3-val_loss=0.1235.ckpt", () => {
    expect(new ModelCheckpoint().formatCheckpointName(metrics)).toBe('epoch=3-step=120.ckpt');
    expect(new ModelCheckpoint({ filename: '{epoch}-{val_loss:.4f}' }).formatCheckpointName(metrics)).toBe('epoch=3-val_loss=0.1235.ckpt');
    expect(new ModelCheckpoint({ filename: '{epoch}-{val_loss:.4f}', autoInsertMetricName: false }).formatCheckpointName(metrics)).toBe('3-0.1235.ckpt');
    expect(new ModelCheckpoint({ filename: 'model-{epoch:03d}-{val_loss:.2e}' }).formatCheckpointName(metrics)).toBe('model-epoch=003-val_loss=1.23e-01.ckpt');
    expect(new ModelCheckpoint({ filename: '{train/acc:.1f}' }).formatCheckpointName(metrics)).toBe('train_acc=0.5.ckpt');
    expect(new ModelCheckpoint({ filename: '{val_loss}' }).formatCheckpointName({ val_loss: Number.NaN })).toBe('val_loss=nan.ckpt');
  });

  it('a metric the template needs and nobody logged is an error listing what was logged', () => {
    expect(() => new ModelCheckpoint({ filename: '{epoch}-{val_acc:.2f}' }).formatCheckpointName(metrics)).toThrow(
      `ModelCheckpoint: the filename template "{epoch}-{val_acc:.2f}" needs 'val_acc', which is not among the metrics logged so far: epoch, step, train/acc, val_loss. Log it before this checkpoint is saved, or remove it from 'filename'.`,
    );
    expect(() => new ModelCheckpoint({ filename: '{val_loss:d}' }).formatCheckpointName(metrics)).toThrow(
      "ModelCheckpoint: the filename formats 'val_loss' as a whole number ('d') but its value is 0.123456; use '.4f'.",
    );
  });
});

/** Calls the hooks of one training epoch on a fake trainer: batches, then the epoch end with these metrics. */
async function epoch(mc: ModelCheckpoint, t: FakeTrainer, metrics: Record<string, number>, batches = 4): Promise<void> {
  const module = new BoringModule();
  for (let b = 0; b < batches; b++) {
    t.globalStep += 1;
    t.progress.batchInEpoch = b + 1;
    await mc.onTrainBatchEnd(t, module, {}, undefined, b);
  }
  t.record(metrics);
  await mc.onTrainEpochEnd(t, module);
  t.currentEpoch += 1;
}

describe('ModelCheckpoint with a fake trainer', () => {
  it('keeps the top k by the monitor and deletes the files that fall out', async () => {
    const dir = await freshDir();
    const t = new FakeTrainer(dir);
    const mc = new ModelCheckpoint({ monitor: 'val_loss', saveTopK: 2, filename: '{epoch}-{val_loss:.2f}' });
    t.callbacks = [mc];
    mc.setup(t, new BoringModule(), 'fit');
    expect(mc.dirpath).toBe(path.join(dir, 'checkpoints'));
    for (const v of [0.5, 0.4, 0.6, 0.3, 0.45]) await epoch(mc, t, { val_loss: v });
    const cdir = path.join(dir, 'checkpoints');
    expect(await ckpts(cdir)).toEqual(['epoch=1-val_loss=0.40.ckpt', 'epoch=3-val_loss=0.30.ckpt']);
    expect(mc.bestModelPath).toBe(path.join(cdir, 'epoch=3-val_loss=0.30.ckpt'));
    expect(mc.bestModelScore).toBe(0.3);
    expect(mc.kthBestModelPath).toBe(path.join(cdir, 'epoch=1-val_loss=0.40.ckpt'));
    expect(mc.kthValue).toBe(0.4);
    expect(mc.bestKModels).toEqual({ [path.join(cdir, 'epoch=1-val_loss=0.40.ckpt')]: 0.4, [path.join(cdir, 'epoch=3-val_loss=0.30.ckpt')]: 0.3 });
    expect(mc.checkpointPath('best')).toBe(mc.bestModelPath);
    // The state inside a file is the state after that save.
    const inFile = (await loadCheckpointFile(mc.bestModelPath!)).callbacks as Record<string, Record<string, unknown>>;
    expect(inFile[mc.stateKey]!.bestModelPath).toBe(mc.bestModelPath);
  });

  it("mode 'max', saveTopK -1 keeps all; a stale validation metric is not ranked again", async () => {
    const dir = await freshDir();
    const t = new FakeTrainer(dir);
    const mc = new ModelCheckpoint({ dirpath: dir, monitor: 'val_acc', mode: 'max', saveTopK: -1, filename: '{epoch}' });
    await epoch(mc, t, { train_loss: 1, val_acc: 0.5 });
    await epoch(mc, t, { train_loss: 0.9 }); // no validation this epoch: val_acc is stale
    await epoch(mc, t, { train_loss: 0.8, val_acc: 0.7 });
    expect(await ckpts(dir)).toEqual(['epoch=0.ckpt', 'epoch=2.ckpt']);
    expect(mc.bestModelScore).toBe(0.7);
  });

  it('without a monitor: saveTopK 1 keeps the latest, -1 all, 0 only last.ckpt; "best" needs a monitor', async () => {
    const latest = await freshDir();
    const one = new ModelCheckpoint({ dirpath: latest });
    const t1 = new FakeTrainer(latest);
    for (let e = 0; e < 3; e++) await epoch(one, t1, { train_loss: 1 });
    expect(await ckpts(latest)).toEqual(['epoch=2-step=12.ckpt']);
    expect(one.checkpointPath('best')).toBeUndefined();
    expect(one.checkpointPath('last')).toBe(path.join(latest, 'epoch=2-step=12.ckpt'));

    const all = await freshDir();
    const every = new ModelCheckpoint({ dirpath: all, saveTopK: -1, everyNEpochs: 2 });
    const t2 = new FakeTrainer(all);
    for (let e = 0; e < 5; e++) await epoch(every, t2, { train_loss: 1 });
    expect(await ckpts(all)).toEqual(['epoch=1-step=8.ckpt', 'epoch=3-step=16.ckpt']);

    const lastOnly = await freshDir();
    const last = new ModelCheckpoint({ dirpath: lastOnly, saveTopK: 0, saveLast: true });
    const t3 = new FakeTrainer(lastOnly);
    for (let e = 0; e < 2; e++) await epoch(last, t3, { train_loss: 1 });
    expect(await ckpts(lastOnly)).toEqual(['last.ckpt']);
    expect(last.lastModelPath).toBe(path.join(lastOnly, 'last.ckpt'));
    expect(last.checkpointPath('last')).toBe(last.lastModelPath);
  });

  it('everyNTrainSteps saves mid-epoch; a save due on the last batch of an epoch is written at its end', async () => {
    const dir = await freshDir();
    const t = new FakeTrainer(dir);
    const mc = new ModelCheckpoint({ dirpath: dir, everyNTrainSteps: 2, saveTopK: -1, filename: '{step}' });
    const module = new BoringModule();
    const saves: Array<[number, string]> = [];
    const at = async (hook: string, run: () => unknown) => {
      const before = t.saved.length;
      await run();
      for (const p of t.saved.slice(before)) saves.push([t.progress.batchInEpoch, `${hook}:${path.basename(p)}`]);
    };
    for (let b = 0; b < 4; b++) {
      t.globalStep += 1;
      t.progress.batchInEpoch = b + 1;
      await at('batch', () => mc.onTrainBatchEnd(t, module, {}, undefined, b));
    }
    t.record({ train_loss: 1 });
    await at('epochEnd', () => mc.onTrainEpochEnd(t, module));
    expect(saves).toEqual([
      [2, 'batch:step=2.ckpt'],
      [4, 'epochEnd:step=4.ckpt'],
    ]);
  });

  it('a step save before the first validation is not ranked by a validation metric (said once); after one, a missing metric is an error', async () => {
    const dir = await freshDir();
    const t = new FakeTrainer(dir);
    t.numTrainingBatches = 100;
    const mc = new ModelCheckpoint({ dirpath: dir, monitor: 'val_loss', everyNTrainSteps: 1, saveLast: true, filename: '{step}-{val_loss:.2f}' });
    await mc.onFitStart(t);
    const module = new BoringModule();
    for (const step of [1, 2]) {
      t.globalStep = step;
      await mc.onTrainBatchEnd(t, module, {}, undefined, step - 1);
    }
    expect(await ckpts(dir)).toEqual(['last.ckpt']);
    expect(t.printed).toEqual([
      "ModelCheckpoint: 'val_loss' is not logged yet (no validation has run in this fit; the metrics logged so far: (none logged yet)): it is not checked until it is. This note is printed once.",
    ]);
    t.validationRuns = 1;
    t.globalStep = 3;
    await expect(mc.onTrainBatchEnd(t, module, {}, undefined, 2)).rejects.toThrow("ModelCheckpoint: the monitored metric 'val_loss' is not among the metrics logged so far");
    t.callbackMetrics.val_loss = 0.5;
    t.globalStep = 4;
    await mc.onTrainBatchEnd(t, module, {}, undefined, 3);
    expect(await ckpts(dir)).toEqual(['last.ckpt', 'step=4-val_loss=0.50.ckpt']);
  });

  it('trainTimeInterval saves after the first batch that ends past the interval', async () => {
    let now = 1000;
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => now);
    try {
      const dir = await freshDir();
      const t = new FakeTrainer(dir);
      t.numTrainingBatches = 100;
      const mc = new ModelCheckpoint({ dirpath: dir, trainTimeInterval: { minutes: 1 }, saveTopK: -1, filename: '{step}' });
      await mc.onFitStart(t);
      const module = new BoringModule();
      const batch = async (step: number, seconds: number) => {
        now += seconds * 1000;
        t.globalStep = step;
        await mc.onTrainBatchEnd(t, module, {}, undefined, step - 1);
      };
      await batch(1, 59);
      expect(t.saved).toEqual([]);
      await batch(2, 2);
      expect(t.saved).toEqual([path.join(dir, 'step=2.ckpt')]);
      await batch(3, 30);
      expect(t.saved).toHaveLength(1);
      await batch(4, 30);
      expect(t.saved).toEqual([path.join(dir, 'step=2.ckpt'), path.join(dir, 'step=4.ckpt')]);
    } finally {
      clock.mockRestore();
    }
  });

  it('state round-trips; in a new process with the same dirpath, "last" and "best" are found on disk', async () => {
    const dir = await freshDir();
    const t = new FakeTrainer(dir);
    const mc = new ModelCheckpoint({ dirpath: dir, monitor: 'val_loss', saveTopK: 2, saveLast: true, filename: '{epoch}' });
    t.callbacks = [mc];
    for (const v of [0.5, 0.3, 0.4]) await epoch(mc, t, { val_loss: v });
    expect(await ckpts(dir)).toEqual(['epoch=1.ckpt', 'epoch=2.ckpt', 'last.ckpt']);
    const state = mc.stateDict();
    const copy = new ModelCheckpoint({ dirpath: dir, monitor: 'val_loss', saveTopK: 2, saveLast: true, filename: '{epoch}' });
    copy.loadStateDict(state);
    expect(copy.stateDict()).toEqual(state);

    const fresh = new ModelCheckpoint({ dirpath: dir, monitor: 'val_loss', saveTopK: 2, saveLast: true, filename: '{epoch}' });
    expect(fresh.checkpointPath('last')).toBe(path.join(dir, 'last.ckpt'));
    expect(fresh.checkpointPath('best')).toBe(path.join(dir, 'epoch=1.ckpt'));
    await fs.rm(path.join(dir, 'epoch=1.ckpt'));
    expect(fresh.checkpointPath('best')).toBeUndefined();
  });

  it('a name already taken by another file gets -v1, -v2', async () => {
    const dir = await freshDir();
    await fs.writeFile(path.join(dir, 'run.ckpt'), 'someone else');
    const mc = new ModelCheckpoint({ dirpath: dir, filename: 'run', saveTopK: -1 });
    const t = new FakeTrainer(dir);
    await mc.onFitStart(t);
    expect(t.printed).toEqual([
      `ModelCheckpoint: the folder ${dir} already holds 1 checkpoint(s) (run.ckpt); new files get a '-vN' suffix when a name is taken, and old ones are not deleted.`,
    ]);
    await epoch(mc, t, { train_loss: 1 });
    await epoch(mc, t, { train_loss: 1 });
    expect(await ckpts(dir)).toEqual(['run-v1.ckpt', 'run-v2.ckpt', 'run.ckpt']);
    expect(await fs.readFile(path.join(dir, 'run.ckpt'), 'utf8')).toBe('someone else');
  });

  it('writes nothing in fastDevRun, during the sanity check, or outside fit', async () => {
    const dir = await freshDir();
    const mc = new ModelCheckpoint({ dirpath: dir });
    for (const change of [(t: FakeTrainer) => (t.fastDevRun = true), (t: FakeTrainer) => (t.runningStage = 'sanity_check'), (t: FakeTrainer) => (t.stage = 'validate')]) {
      const t = new FakeTrainer(dir);
      change(t);
      await epoch(mc, t, { train_loss: 1 });
    }
    expect(await ckpts(dir)).toEqual([]);
  });
});

describe('ModelCheckpoint in a fit', () => {
  it('top-k by val_loss under <logDir>/checkpoints; files on disk are exactly bestKModels; no leaks', async () => {
    const dir = await freshDir();
    seedEverything(3);
    const mc = new ModelCheckpoint({ monitor: 'val_loss', saveTopK: 2, filename: '{epoch}-{val_loss:.4f}' });
    const trainer = new Trainer({ ...quiet, maxEpochs: 5, defaultRootDir: dir, callbacks: [mc] });
    const module = new Net();
    await expectNoLeak(() => trainer.fit(module, ...loaders()), 'fit with ModelCheckpoint');
    const cdir = path.join(dir, 'checkpoints');
    expect((await ckpts(cdir)).map((f) => path.join(cdir, f))).toEqual(Object.keys(mc.bestKModels).sort());
    const vals = trainer.history.map((r) => r.metrics.val_loss!);
    expect(mc.bestModelScore).toBe(Math.min(...vals));
    const bestEpoch = vals.indexOf(Math.min(...vals));
    expect(path.basename(mc.bestModelPath!)).toBe(`epoch=${bestEpoch}-val_loss=${vals[bestEpoch]!.toFixed(4)}.ckpt`);
    expect((await fs.readdir(cdir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it("monitor 'val_loss' with checkValEveryNEpoch 2: 'not logged yet' at epoch 0 is a note, not an error; saves at epochs 1, 3, 5 as Lightning's", async () => {
    const dir = await freshDir();
    const mc = new ModelCheckpoint({ dirpath: dir, monitor: 'val_loss', saveTopK: -1 });
    const trainer = new Trainer({ ...quiet, maxEpochs: 6, checkValEveryNEpoch: 2, callbacks: [mc] });
    const printed: string[] = [];
    trainer.events.on('message', (m: string) => printed.push(m));
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, ...loaders()), 'fit');
    expect(await ckpts(dir)).toEqual(['epoch=1-step=12.ckpt', 'epoch=3-step=24.ckpt', 'epoch=5-step=36.ckpt']);
    expect(printed.filter((m) => m.startsWith('ModelCheckpoint'))).toEqual([
      "ModelCheckpoint: 'val_loss' is not logged yet (no validation has run in this fit; the metrics logged so far: train_loss, train_loss_epoch, train_loss_step): it is not checked until it is. This note is printed once.",
    ]);
  });

  it("fit(..., { ckptPath: 'last' }) in a new trainer resumes exactly: the weights of an uninterrupted run", async () => {
    seedEverything(0);
    const full = new Net();
    await expectNoLeak(() => new Trainer({ ...quiet, maxEpochs: 4 }).fit(full, ...loaders()), 'uninterrupted fit');

    const dir = await freshDir();
    seedEverything(0);
    const killAt1 = new LambdaCallback({ onTrainEpochEnd: (t) => (t.currentEpoch === 1 ? t.requestStop({ rule: 'test', message: 'killed' }) : undefined) });
    const first = new Trainer({ ...quiet, maxEpochs: 4, callbacks: [killAt1, new ModelCheckpoint({ dirpath: dir, saveLast: true })] });
    const killed = new Net();
    await expectNoLeak(() => first.fit(killed, ...loaders()), 'killed fit');
    expect(await ckpts(dir)).toEqual(['epoch=1-step=12.ckpt', 'last.ckpt']);

    seedEverything(999); // a new process: other initial weights and random state
    const resumed = new Net();
    const trainer = new Trainer({ ...quiet, maxEpochs: 4, callbacks: [new ModelCheckpoint({ dirpath: dir, saveLast: true })] });
    silence(trainer);
    await expectNoLeak(() => trainer.fit(resumed, ...loaders(), { ckptPath: 'last' }), 'resumed fit');
    expect(weightsOf(resumed)).toEqual(weightsOf(full));
    expect(await ckpts(dir)).toEqual(['epoch=3-step=24.ckpt', 'last.ckpt']);
  });

  it('a mid-epoch everyNTrainSteps checkpoint resumes at the next batch: exactly the weights of an uninterrupted run (cpu, seeded)', async () => {
    seedEverything(0);
    const full = new Net();
    const fullTrainer = new Trainer({ ...quiet, maxEpochs: 3 });
    await expectNoLeak(() => fullTrainer.fit(full, ...loaders()), 'uninterrupted fit');

    for (const killStep of [8, 12]) {
      // 6 batches per epoch: step 8 is batch 1 of epoch 1; step 12 is the last batch of epoch 1 (saved at its end).
      const dir = await freshDir();
      seedEverything(0);
      const kill = new LambdaCallback({ onTrainBatchEnd: (t) => (t.globalStep === killStep ? t.requestStop({ rule: 'test', message: 'killed' }) : undefined) });
      const mc = new ModelCheckpoint({ dirpath: dir, everyNTrainSteps: 4, saveLast: true, filename: '{step}' });
      const killed = new Net();
      await expectNoLeak(() => new Trainer({ ...quiet, maxEpochs: 3, callbacks: [mc, kill] }).fit(killed, ...loaders()), 'killed fit');
      const last = await loadCheckpointFile(path.join(dir, 'last.ckpt'));
      expect(last.globalStep).toBe(killStep);
      expect(last.resume).toEqual(killStep === 8 ? { epoch: 1, batch: 2 } : { epoch: 2, batch: 0 });

      seedEverything(4242);
      const resumed = new Net();
      const trainer = new Trainer({ ...quiet, maxEpochs: 3, callbacks: [new ModelCheckpoint({ dirpath: dir, everyNTrainSteps: 4, saveLast: true, filename: '{step}' })] });
      silence(trainer);
      await expectNoLeak(() => trainer.fit(resumed, ...loaders(), { ckptPath: 'last' }), 'fit resumed mid-epoch');
      expect(weightsOf(resumed)).toEqual(weightsOf(full));
      expect(trainer.history).toEqual(fullTrainer.history);
    }
  });

  it("test(..., { ckptPath: 'best' }) evaluates the best epoch's weights", async () => {
    const dir = await freshDir();
    seedEverything(5);
    const perEpoch: Array<Record<string, number[]>> = [];
    const spy = new LambdaCallback({ onTrainEpochEnd: (_t, m) => void perEpoch.push(weightsOf(m)) });
    const mc = new ModelCheckpoint({ dirpath: dir, monitor: 'val_loss', filename: '{epoch}' });
    const module = new Net({ lr: 0.05 });
    const trainer = new Trainer({ ...quiet, maxEpochs: 4, callbacks: [spy, mc] });
    await expectNoLeak(() => trainer.fit(module, ...loaders()), 'fit');
    const vals = trainer.history.map((r) => r.metrics.val_loss!);
    const best = vals.indexOf(Math.min(...vals));
    const metrics = await expectNoLeak(() => trainer.test(module, loaders()[1], { ckptPath: 'best' }), 'test from best');
    expect(weightsOf(module)).toEqual(perEpoch[best]);
    expect(metrics.test_loss).toBeCloseTo(vals[best]!, 5);
  });

  it('saveWeightsOnly files can be tested but not resumed; fastDevRun writes nothing', async () => {
    const dir = await freshDir();
    seedEverything(6);
    const module = new Net();
    await expectNoLeak(() => new Trainer({ ...quiet, maxEpochs: 1, callbacks: [new ModelCheckpoint({ dirpath: dir, saveWeightsOnly: true, filename: 'w' })] }).fit(module, ...loaders()), 'fit');
    const file = path.join(dir, 'w.ckpt');
    expect((await loadCheckpointFile(file)).weightsOnly).toBe(true);
    await expectNoLeak(
      () => expect(new Trainer({ ...quiet, maxEpochs: 2 }).fit(module, ...loaders(), { ckptPath: file })).rejects.toThrow('holds weights only (saveWeightsOnly): it can initialize a module or be tested, not resume a fit.'),
      'refused resume',
    );
    await expectNoLeak(() => expect(new Trainer({ ...quiet }).test(module, loaders()[1], { ckptPath: file })).resolves.toHaveProperty('test_loss'), 'test');

    const fastDir = await freshDir();
    await expectNoLeak(() => new Trainer({ ...quiet, fastDevRun: true, callbacks: [new ModelCheckpoint({ dirpath: fastDir })] }).fit(module, ...loaders()), 'fastDevRun fit');
    expect(await ckpts(fastDir)).toEqual([]);
  });
});

describe('leftovers of killed and failed writes', () => {
  const packages = path.resolve(fileURLToPath(new URL('../../../', import.meta.url)));
  const core = JSON.stringify(path.join(packages, 'core', 'dist', 'index.js'));
  const temps = async (dir: string) => (await fs.readdir(dir)).filter((f) => f.endsWith('.tmp')).sort();

  /** Runs `node -e source` (optionally under `ulimit -f <blocks>`); resolves with the exit and stderr. */
  function node(source: string, options: { fileSizeKb?: number; onSpawn?: (child: ChildProcess) => void } = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
    const args = ['--input-type=module', '-e', source];
    const child =
      options.fileSizeKb === undefined
        ? spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] })
        : spawn('bash', ['-c', `ulimit -f ${options.fileSizeKb} && exec "$0" "$@"`, process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += String(d)));
    options.onSpawn?.(child);
    return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })));
  }

  it('a kill -9 in the middle of a checkpoint write leaves its temporary file; the next fit with a ModelCheckpoint there removes it and says so, and keeps one whose writer is alive', async () => {
    const dir = await freshDir();
    // A 32 MB checkpoint written over and over: SIGKILL as soon as its temporary file shows up.
    const writer = `
      const { HostTensor, saveCheckpointFile } = await import(${core});
      const big = new HostTensor('float32', [8_000_000], new Float32Array(8_000_000));
      for (;;) await saveCheckpointFile(${JSON.stringify(path.join(dir, 'last.ckpt'))}, { format: 'flint-checkpoint', formatVersion: 1, flintVersion: '0', stateDict: { w: big } });
    `;
    let left: string[] = [];
    for (let attempt = 0; attempt < 5 && left.length === 0; attempt++) {
      const end = await node(writer, {
        onSpawn: (child) => {
          const poll = setInterval(() => {
            void fs.readdir(dir).then((names) => {
              if (names.some((f) => /^\.last\.ckpt\.\d+\.[0-9a-f]{8}\.tmp$/.test(f))) child.kill('SIGKILL');
            });
          }, 1);
          child.on('exit', () => clearInterval(poll));
        },
      });
      expect(end.signal, end.stderr).toBe('SIGKILL');
      left = await temps(dir); // empty when the rename won the race with the kill: try again
    }
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^\.last\.ckpt\.\d+\.[0-9a-f]{8}\.tmp$/);
    // A temporary file of a writer that is still alive (the process that started this test's worker).
    const alive = `.last.ckpt.${process.ppid}.0badc0de.tmp`;
    await fs.writeFile(path.join(dir, alive), 'being written');

    const lines: string[] = [];
    const trainer = new Trainer({ ...quiet, maxEpochs: 1, callbacks: [new ModelCheckpoint({ dirpath: dir, saveLast: true, saveTopK: 0 })] });
    trainer.events.on('message', (l) => lines.push(l));
    const module = new Net();
    await expectNoLeak(() => trainer.fit(module, ...loaders()), 'fit');
    expect(lines.filter((l) => l.startsWith('ModelCheckpoint'))).toEqual([`ModelCheckpoint: removed 1 temporary file(s) that killed writers left in ${dir} (${left[0]}).`]);
    expect(await temps(dir)).toEqual([alive]);
    expect((await loadCheckpointFile(path.join(dir, 'last.ckpt'))).globalStep).toBe(6);
  });

  it('a checkpoint write that fails half-way (file size limit, as a full disk) removes its temporary file', async () => {
    const dir = await freshDir();
    const script = `
      const { CheckpointError, DataLoader } = await import(${core});
      const { BoringModule, randomClassificationDataset } = await import(${JSON.stringify(path.join(packages, 'core', 'dist', 'testing', 'index.js'))});
      const { ModelCheckpoint } = await import(${JSON.stringify(path.join(packages, 'callbacks', 'dist', 'index.js'))});
      const { Trainer } = await import(${JSON.stringify(path.join(packages, 'trainer', 'dist', 'index.js'))});
      const trainer = new Trainer({ backend: 'cpu', maxEpochs: 1, logger: false, enableProgressBar: false, enableModelSummary: false, callbacks: [new ModelCheckpoint({ dirpath: ${JSON.stringify(dir)} })] });
      const data = new DataLoader(randomClassificationDataset({ n: 16, features: 64 }), { batchSize: 8 });
      await trainer.fit(new BoringModule(64, 200), data).catch((e) => {
        console.error(e instanceof CheckpointError ? 'CheckpointError: ' + e.message : e);
        process.exit(3);
      });
    `;
    // The checkpoint holds 64 x 200 weights (51 KB) and more; the limit is 32 KB.
    const end = await node(script, { fileSizeKb: 32 });
    expect(end.code, end.stderr).toBe(3);
    expect(end.stderr).toContain(`CheckpointError: could not write the checkpoint ${path.join(dir, 'epoch=0-step=2.ckpt')}: EFBIG: file too large, write`);
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it('after a resume, checkpoints named like its top-k files that the resumed state does not know are reported in one line and kept', async () => {
    const dir = await freshDir();
    seedEverything(8);
    const options = { dirpath: dir, monitor: 'val_loss', saveTopK: 1, saveLast: true } as const;
    const first = new Net();
    await expectNoLeak(() => new Trainer({ ...quiet, maxEpochs: 2, callbacks: [new ModelCheckpoint(options)] }).fit(first, ...loaders()), 'first fit');
    const kept = await ckpts(dir);
    expect(kept).toHaveLength(2);
    // What a run killed between writing a new best file and deleting the one it replaced leaves behind, and a file of the user's.
    await fs.writeFile(path.join(dir, 'epoch=7-step=99.ckpt'), 'old');
    await fs.writeFile(path.join(dir, 'epoch=7-step=99-v1.ckpt'), 'old');
    await fs.writeFile(path.join(dir, 'manual.ckpt'), 'mine');

    const lines: string[] = [];
    const trainer = new Trainer({ ...quiet, maxEpochs: 3, callbacks: [new ModelCheckpoint(options)] });
    trainer.events.on('message', (l) => lines.push(l));
    const resumed = new Net();
    await expectNoLeak(() => trainer.fit(resumed, ...loaders(), { ckptPath: 'last' }), 'resumed fit');
    expect(lines.filter((l) => l.startsWith('ModelCheckpoint'))).toEqual([
      `ModelCheckpoint: ${dir} holds 2 checkpoint(s) that look like top-k files of an earlier run but are not among those this resumed run keeps (epoch=7-step=99-v1.ckpt, epoch=7-step=99.ckpt); they are not ranked and not deleted: remove them if they are not needed.`,
    ]);
    expect(await ckpts(dir)).toEqual(expect.arrayContaining(['epoch=7-step=99-v1.ckpt', 'epoch=7-step=99.ckpt', 'manual.ckpt', 'last.ckpt']));
  });
});
