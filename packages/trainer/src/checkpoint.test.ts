import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  Callback,
  CheckpointError,
  DataLoader,
  Dropout,
  LightningModule,
  Linear,
  seedEverything,
  Sequential,
  type OptimizersReturn,
  type TrainerContext,
} from '@flint/core';
import { expectNoLeak, type BoringBatch, randomClassificationDataset } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer, type TrainerOptions } from './index.js';

/** Dropout (RNG), Adam (moments, step counts) and a step scheduler make an exact resume non-trivial. */
class Net extends LightningModule<BoringBatch> {
  net = new Sequential(new Linear(4, 16, { activation: 'relu' }), new Dropout(0.3), new Linear(16, 2));
  constructor(hparams: { lr: number } = { lr: 0.01 }) {
    super();
    this.saveHyperparameters(hparams);
  }
  override forward(x: tf.Tensor) {
    return this.net.forward(x);
  }
  trainingStep([x, y]: BoringBatch) {
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)) as tf.Scalar;
    this.log('train_loss', loss, { onEpoch: true });
    return loss;
  }
  override validationStep([x, y]: BoringBatch) {
    this.log('val_loss', tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)));
  }
  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(this.hparams.lr as number);
  }
}

/** Saves a checkpoint at a chosen place and stops the run there, like a killed process. */
class SaveAndStop extends Callback {
  override readonly readsEpochMetrics = true;
  constructor(
    private readonly file: string,
    private readonly at: { epoch: number; batch?: number },
  ) {
    super();
  }
  override async onTrainBatchEnd(trainer: TrainerContext, _m: LightningModule, _o: unknown, _b: unknown, batchIdx: number) {
    if (this.at.batch === batchIdx && trainer.currentEpoch === this.at.epoch) {
      await trainer.saveCheckpoint(this.file);
      trainer.requestStop({ rule: 'test', message: 'saved mid-epoch' });
    }
  }
  override async onTrainEpochEnd(trainer: TrainerContext) {
    if (this.at.batch === undefined && trainer.currentEpoch === this.at.epoch) {
      await trainer.saveCheckpoint(this.file);
      trainer.requestStop({ rule: 'test', message: 'saved at epoch end' });
    }
  }
}

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' };
const data = randomClassificationDataset({ n: 48, features: 4, classes: 2, seed: 11 });
const loaders = () => [new DataLoader(data, { batchSize: 8, shuffle: true, seed: 5 }), new DataLoader(data, { batchSize: 24 })] as const;
let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-ckpt-'));
});
afterAll(async () => {
  data.dispose();
  await fs.rm(dir, { recursive: true, force: true });
  await tf.setBackend(process.env.FLINT_BACKEND ?? 'wasm');
});

const weights = (m: LightningModule) => m.namedParameters().map((p) => Array.from(p.variable.dataSync()));

async function uninterrupted(epochs: number) {
  seedEverything(0);
  const module = new Net();
  const trainer = new Trainer({ ...quiet, maxEpochs: epochs });
  await trainer.fit(module, ...loaders());
  return { module, trainer };
}

describe('checkpoints and exact resume (cpu backend, seeded)', () => {
  it('2 epochs, stop, resume for 2 more: exactly the weights and history of an uninterrupted 4-epoch run', async () => {
    const full = await uninterrupted(4);
    const file = path.join(dir, 'epoch1.ckpt');
    seedEverything(0);
    const first = new Net();
    await new Trainer({ ...quiet, maxEpochs: 4, callbacks: [new SaveAndStop(file, { epoch: 1 })] }).fit(first, ...loaders());
    seedEverything(12345); // a new process: other initial weights and RNG state
    const resumed = new Net();
    const trainer = new Trainer({ ...quiet, maxEpochs: 4 });
    await expectNoLeak(() => trainer.fit(resumed, ...loaders(), { ckptPath: file }), 'resumed fit');
    expect(weights(resumed)).toEqual(weights(full.module));
    expect(trainer.globalStep).toBe(full.trainer.globalStep);
    expect(trainer.history).toEqual(full.trainer.history);
  });

  it('resuming from a mid-epoch checkpoint continues with the same batches', async () => {
    const full = await uninterrupted(3);
    const file = path.join(dir, 'mid.ckpt');
    seedEverything(0);
    await new Trainer({ ...quiet, maxEpochs: 3, callbacks: [new SaveAndStop(file, { epoch: 1, batch: 2 })] }).fit(new Net(), ...loaders());
    seedEverything(777);
    const resumed = new Net();
    const trainer = new Trainer({ ...quiet, maxEpochs: 3 });
    await trainer.fit(resumed, ...loaders(), { ckptPath: file });
    expect(weights(resumed)).toEqual(weights(full.module));
    expect(trainer.globalStep).toBe(18);
    expect(trainer.history.map((r) => r.metrics.train_loss)).toEqual(full.trainer.history.map((r) => r.metrics.train_loss));
  });

  it("a checkpoint on an epoch's last batch resumes with that epoch's validation and end", async () => {
    const full = await uninterrupted(3);
    const file = path.join(dir, 'last-batch.ckpt');
    seedEverything(0);
    await new Trainer({ ...quiet, maxEpochs: 3, callbacks: [new SaveAndStop(file, { epoch: 1, batch: 5 })] }).fit(new Net(), ...loaders());
    seedEverything(99);
    const resumed = new Net();
    const trainer = new Trainer({ ...quiet, maxEpochs: 3 });
    await trainer.fit(resumed, ...loaders(), { ckptPath: file });
    expect(weights(resumed)).toEqual(weights(full.module));
    expect(trainer.history).toEqual(full.trainer.history);
  });

  it('loadFromCheckpoint builds the module for inference, and test() can load weights', async () => {
    const file = path.join(dir, 'epoch0.ckpt');
    seedEverything(1);
    const trained = new Net({ lr: 0.05 });
    await new Trainer({ ...quiet, maxEpochs: 3, callbacks: [new SaveAndStop(file, { epoch: 0 })] }).fit(trained, ...loaders());
    const loaded = await Net.loadFromCheckpoint(file);
    expect(loaded.hparams).toEqual({ lr: 0.05 });
    expect(loaded.training).toBe(false);
    expect(weights(loaded)).toEqual(weights(trained));
    const fresh = new Net();
    const metrics = await new Trainer({ ...quiet }).test(
      Object.assign(fresh, {
        testStep: (b: BoringBatch) => fresh.log('test_loss', tf.losses.softmaxCrossEntropy(tf.oneHot(b[1], 2), fresh.forward(b[0]))),
      }),
      loaders()[1],
      { ckptPath: file },
    );
    expect(weights(fresh)).toEqual(weights(trained));
    expect(Number.isFinite(metrics.test_loss)).toBe(true);
  });

  it('a damaged, truncated or foreign file is a CheckpointError that says what is wrong, and the module is untouched', async () => {
    const file = path.join(dir, 'good.ckpt');
    seedEverything(2);
    await new Trainer({ ...quiet, maxEpochs: 2, callbacks: [new SaveAndStop(file, { epoch: 0 })] }).fit(new Net(), ...loaders());
    const bytes = await fs.readFile(file);
    const cases: Array<[string, Buffer, RegExp]> = [
      ['foreign.ckpt', Buffer.from('PK\u0003\u0004 a zip file'), /is not a Flint checkpoint: it should start with "FLINTCKPT"/],
      ['empty.ckpt', Buffer.alloc(0), /is empty \(0 bytes\): a Flint checkpoint starts with 14 bytes \(magic and header length\) and its header\./],
      ['cut-in-magic.ckpt', bytes.subarray(0, 6), /is truncated: it has 6 bytes, fewer than the 14 of a Flint checkpoint's magic and header length\./],
      ['cut-in-length.ckpt', bytes.subarray(0, 12), /is truncated: it has 12 bytes, fewer than the 14 of a Flint checkpoint's magic and header length\./],
      ['cut-in-header.ckpt', bytes.subarray(0, 100), /is truncated: its header should have \d+ bytes but the file has 86 after the magic and header length \(100 bytes in all\)\./],
      ['truncated.ckpt', bytes.subarray(0, bytes.length - 10), /is truncated: it holds \d+ bytes of tensor data, its index says \d+ \(10 missing\)/],
      ['flipped.ckpt', Buffer.from(bytes.map((b, i) => (i === bytes.length - 3 ? b ^ 0xff : b))), /is damaged: the SHA-256 of its tensor data does not match its header/],
    ];
    for (const [name, content, message] of cases) {
      const bad = path.join(dir, name);
      await fs.writeFile(bad, content);
      const module = new Net();
      const before = weights(module);
      await expect(new Trainer({ ...quiet, maxEpochs: 3 }).fit(module, ...loaders(), { ckptPath: bad })).rejects.toThrow(CheckpointError);
      await expect(new Trainer({ ...quiet, maxEpochs: 3 }).fit(module, ...loaders(), { ckptPath: bad })).rejects.toThrow(message);
      expect(weights(module)).toEqual(before);
    }
    class Wider extends Net {
      override net = new Sequential(new Linear(4, 32, { activation: 'relu' }), new Dropout(0.3), new Linear(32, 2));
    }
    const wider = new Wider();
    const before = weights(wider);
    await expect(new Trainer({ ...quiet, maxEpochs: 3 }).fit(wider, ...loaders(), { ckptPath: file })).rejects.toThrow(
      /parameter 'net\.layers\.0\.weight' has shape \[4, 16\] in the weights but \[4, 32\] in the module/,
    );
    expect(weights(wider)).toEqual(before);
    await expect(new Trainer({ ...quiet }).fit(new Net(), ...loaders(), { ckptPath: 'best' })).rejects.toThrow(
      "ckptPath 'best': no best checkpoint found: no callback knows one. Add a ModelCheckpoint with a monitor to this trainer's callbacks, or pass a file path.",
    );
    await expect(new Trainer({ ...quiet }).fit(new Net(), ...loaders(), { ckptPath: path.join(dir, 'missing.ckpt') })).rejects.toThrow(/missing\.ckpt does not exist/);
  });
});
