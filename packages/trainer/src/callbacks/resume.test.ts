import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, loadCheckpointFile, seedEverything, type Callback } from '@flint/core';
import { expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { Trainer, type TrainerOptions } from '../index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DropoutScheduler, EarlyStopping, LambdaCallback, LearningRateMonitor, ModelCheckpoint, OverfittingMonitor, StepLR, Timer } from '@flint/callbacks';
import { Net, weightsOf } from './test-utils/net.js';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' };
const data = randomClassificationDataset({ n: 48, features: 4, classes: 2, seed: 11 });
const loaders = () => [new DataLoader(data, { batchSize: 8, shuffle: true, seed: 5 }), new DataLoader(data, { batchSize: 24 })] as const;
let root: string;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-resume-'));
  Net.scheduler = (opt) => new StepLR(opt, { stepSize: 1, gamma: 0.7 });
});
afterAll(async () => {
  Net.scheduler = undefined;
  data.dispose();
  await fs.rm(root, { recursive: true, force: true });
  await tf.setBackend(process.env.FLINT_BACKEND ?? 'wasm');
});

/** The stateful callbacks, built the same way in every "process". */
function callbacks(dir: string) {
  // A score that is best at epoch 1, so that the best weights are from before the interruption.
  const score = new LambdaCallback({
    onValidationEpochEnd: (t) => {
      if (!t.sanityChecking) (t.callbackMetrics as Record<string, number>).score = Math.abs(t.currentEpoch - 1);
    },
  });
  return {
    score,
    checkpoint: new ModelCheckpoint({ dirpath: dir, monitor: 'val_loss', saveTopK: 2, saveLast: true, filename: '{epoch}-{val_loss:.3f}' }),
    early: new EarlyStopping({ monitor: 'score', patience: 10, restoreBestWeights: true }),
    dropout: new DropoutScheduler({ schedule: { type: 'linear', start: 0.1, end: 0.4, duration: 3 } }),
    timer: new Timer(),
    overfitting: new OverfittingMonitor({ verbose: false }),
    lr: new LearningRateMonitor(),
  };
}
const list = (c: ReturnType<typeof callbacks>): Callback[] => [c.score, c.early, c.dropout, c.timer, c.overfitting, c.lr, c.checkpoint];

describe('every stateful callback round-trips through a checkpoint on resume', () => {
  it('2 epochs, a kill, a new process resuming from last.ckpt: the same weights, states and verdict as an uninterrupted 4-epoch run', async () => {
    seedEverything(0);
    const full = callbacks(path.join(root, 'full'));
    const fullModule = new Net();
    const fullTrainer = new Trainer({ ...quiet, maxEpochs: 4, callbacks: list(full) });
    fullTrainer.events.on('message', () => undefined);
    await expectNoLeak(() => fullTrainer.fit(fullModule, ...loaders()), 'uninterrupted fit');

    const dir = path.join(root, 'run');
    seedEverything(0);
    const first = callbacks(dir);
    const kill = new LambdaCallback({ onTrainEpochEnd: (t) => (t.currentEpoch === 1 ? t.requestStop({ rule: 'test', message: 'killed' }) : undefined) });
    const firstTrainer = new Trainer({ ...quiet, maxEpochs: 4, callbacks: [kill, ...list(first)] });
    firstTrainer.events.on('message', () => undefined);
    const killed = new Net();
    await expectNoLeak(() => firstTrainer.fit(killed, ...loaders()), 'killed fit');
    const firstElapsed = first.timer.timeElapsed();

    seedEverything(31337); // a new process
    const resumed = callbacks(dir);
    const module = new Net();
    const trainer = new Trainer({ ...quiet, maxEpochs: 4, callbacks: list(resumed) });
    trainer.events.on('message', () => undefined);
    await expectNoLeak(() => trainer.fit(module, ...loaders(), { ckptPath: 'last' }), 'resumed fit with every callback');

    // The module: the best weights (epoch 1, before the kill) were restored in both runs.
    expect(weightsOf(module)).toEqual(weightsOf(fullModule));
    expect(trainer.history).toEqual(fullTrainer.history);
    // EarlyStopping: counters, and the best weights kept on the device (disposed after fit; compared in the last checkpoints).
    expect(resumed.early.stateDict()).toEqual(full.early.stateDict());
    expect(resumed.early.stateDict()).toMatchObject({ bestEpoch: 1, checks: 4 });
    const lastState = async (d: string) => ((await loadCheckpointFile(path.join(d, 'last.ckpt'))).callbacks as Record<string, Record<string, unknown>>)[resumed.early.stateKey]!;
    const [resumedLast, fullLast] = [await lastState(dir), await lastState(path.join(root, 'full'))];
    expect(Object.keys(resumedLast.bestWeights as object)).toEqual(['net.layers.0.weight', 'net.layers.0.bias', 'net.layers.2.weight', 'net.layers.2.bias']);
    expect(resumedLast).toEqual(fullLast);
    // ModelCheckpoint: the same top-k by name and score.
    const byName = (m: ModelCheckpoint) => Object.fromEntries(Object.entries(m.bestKModels).map(([p, s]) => [path.basename(p), s]));
    expect(byName(resumed.checkpoint)).toEqual(byName(full.checkpoint));
    expect(path.basename(resumed.checkpoint.bestModelPath!)).toBe(path.basename(full.checkpoint.bestModelPath!));
    expect((await fs.readdir(dir)).sort()).toEqual([...Object.keys(byName(full.checkpoint)), 'last.ckpt'].sort());
    // DropoutScheduler: the rates, in the state and in the module.
    expect(resumed.dropout.stateDict()).toEqual(full.dropout.stateDict());
    expect((module.net.layers[1] as unknown as { rate: number }).rate).toBeCloseTo(0.4, 12);
    // LR scheduler (through the trainer) and LearningRateMonitor: epochs 2 and 3 trained at the same rates.
    expect(resumed.lr.lrs['lr-Adam']).toEqual(full.lr.lrs['lr-Adam']!.slice(2));
    // Timer: the elapsed time of the first run counts against the budget.
    expect(resumed.timer.timeElapsed()).toBeGreaterThan(firstElapsed);
    // OverfittingMonitor: the same verdict from the restored history.
    expect(resumed.overfitting.verdict).toEqual(full.overfitting.verdict);
  });
});
