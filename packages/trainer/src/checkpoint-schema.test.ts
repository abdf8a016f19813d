import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import {
  Callback,
  checkpointV1Schema,
  CheckpointError,
  DataLoader,
  decodeCheckpoint,
  encodeCheckpoint,
  HostTensor,
  LightningModule,
  Linear,
  loadCheckpointFile,
  readCheckpointHeader,
  readCheckpointHeaderSync,
  seedEverything,
  type OptimizersReturn,
  type TrainerContext,
} from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { StepLR } from '@flint/callbacks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer, type TrainerOptions } from './index.js';

class Net extends LightningModule<BoringBatch> {
  layer = new Linear(4, 2);
  constructor() {
    super();
    this.saveHyperparameters({ lr: 0.05 });
  }
  override forward(x: tf.Tensor) {
    return this.layer.forward(x);
  }
  trainingStep([x, y]: BoringBatch) {
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)) as tf.Scalar;
    this.log('train_loss', loss, { onStep: true, onEpoch: true });
    return loss;
  }
  configureOptimizers(): OptimizersReturn {
    const optimizer = tf.train.adam(0.05);
    return { optimizer, lrScheduler: new StepLR(optimizer, { stepSize: 1 }) };
  }
}

/** Saves a checkpoint in the middle of epoch 1 (history, collector, scheduler and RNG all hold something). */
class SaveMidEpoch extends Callback {
  constructor(private readonly file: string) {
    super();
  }
  override async onTrainBatchEnd(trainer: TrainerContext, _m: LightningModule, _o: unknown, _b: unknown, batchIdx: number) {
    if (trainer.currentEpoch === 1 && batchIdx === 2) await trainer.saveCheckpoint(this.file);
  }
}

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' };
const data = randomClassificationDataset({ n: 40, features: 4, classes: 2, seed: 3 });
const loader = () => new DataLoader(data, { batchSize: 8, shuffle: true, seed: 1 });
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
let dir: string;
let good: Buffer;

/** The header's JSON of a checkpoint file. */
function headerOf(bytes: Buffer): Record<string, unknown> {
  return JSON.parse(bytes.subarray(14, 14 + bytes.readUInt32LE(10)).toString('utf8')) as Record<string, unknown>;
}

/** The same file with its header replaced (tensor data and its SHA-256 unchanged). */
function withHeader(bytes: Buffer, header: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length, 0);
  return Buffer.concat([bytes.subarray(0, 10), length, json, bytes.subarray(14 + bytes.readUInt32LE(10))]);
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-ckpt-schema-'));
  const file = path.join(dir, 'good.ckpt');
  seedEverything(7);
  const trainer = new Trainer({ ...quiet, maxEpochs: 2, callbacks: [new SaveMidEpoch(file)] });
  const module = new Net();
  await expectNoLeak(() => trainer.fit(module, loader()), 'fit that saves');
  good = await fs.readFile(file);
});

afterAll(async () => {
  data.dispose();
  await fs.rm(dir, { recursive: true, force: true });
  await tf.setBackend(process.env.FLINT_BACKEND ?? 'wasm');
});

describe('the checkpoint schema', () => {
  it('a checkpoint saved in a fit round-trips through the schema, to the byte, and keeps the v1 fixtures\' layout', async () => {
    const ckpt = decodeCheckpoint(good, 'good');
    expect(checkpointV1Schema.safeParse(ckpt).success).toBe(true);
    if (ckpt.weightsOnly) throw new Error('expected a full checkpoint');
    expect(ckpt.resume).toEqual({ epoch: 1, batch: 3 });
    expect(ckpt.progress).toMatchObject({ epoch: 1, batchInEpoch: 3, globalStep: 8 });
    expect(ckpt.hparams).toEqual({ lr: 0.05 });
    expect(ckpt.optimizers[0]!.className).toBe('Adam');
    expect(ckpt.lrSchedulers).toHaveLength(1);
    expect(ckpt.rng?.algorithm).toBe('sfc32');
    expect(ckpt.loops.history.map((r) => r.epoch)).toEqual([0]);
    expect(Object.values(ckpt.stateDict).every((t) => t instanceof HostTensor)).toBe(true);
    expect(encodeCheckpoint(ckpt).equals(good)).toBe(true);
    // The format-v1 fixtures written before the schema existed decode and encode back to their bytes,
    // and a checkpoint written now has their keys in their order.
    for (const name of ['v1-epoch-end.ckpt', 'v1-mid-epoch.ckpt', 'v1-weights-only.ckpt']) {
      const bytes = await fs.readFile(path.join(fixtures, name));
      expect(encodeCheckpoint(decodeCheckpoint(bytes, name)).equals(bytes), name).toBe(true);
      if (name === 'v1-mid-epoch.ckpt') expect(Object.keys(headerOf(good))).toEqual(Object.keys(headerOf(bytes)));
    }
  });

  it('readCheckpointHeader reads a header without the tensors, and names what is wrong with a bad one', async () => {
    const file = path.join(dir, 'header.ckpt');
    await fs.writeFile(file, good);
    const header = await readCheckpointHeader(file);
    expect(header).toEqual(readCheckpointHeaderSync(file));
    expect(header.format).toBe('flint-checkpoint');
    expect(header.tensors.length).toBeGreaterThan(0);
    expect(header.stateDict).toEqual({ 'layer.weight': { $tensor: 0 }, 'layer.bias': { $tensor: 1 } });
    const bad = path.join(dir, 'bad-header.ckpt');
    await fs.writeFile(bad, withHeader(good, { ...headerOf(good), callbacks: { Timer: 3 } }));
    expect(() => readCheckpointHeaderSync(bad)).toThrow(CheckpointError);
    await expect(readCheckpointHeader(bad)).rejects.toThrow(`checkpoint ${bad} is damaged: field 'callbacks.Timer' is invalid: expected record, received number (received 3).`);
    expect(() => readCheckpointHeaderSync(path.join(dir, 'nothing.ckpt'))).toThrow(/nothing\.ckpt does not exist/);
  });

  type Header = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const cases: Array<[string, (h: Header) => void]> = [
    ['resume', (h) => delete h.resume],
    ['resume.epoch', (h) => (h.resume.epoch = -1)],
    ['resume.batch', (h) => (h.resume.batch = 1.5)],
    ['progress', (h) => delete h.progress],
    ['progress.globalStep', (h) => (h.progress.globalStep = '8')],
    ['weightsOnly', (h) => delete h.weightsOnly],
    ['weightsOnly', (h) => (h.weightsOnly = 'no')],
    ['stateDict', (h) => delete h.stateDict],
    ['stateDict.layer.bias', (h) => (h.stateDict['layer.bias'] = [0, 0])],
    ['optimizers', (h) => (h.optimizers = {})],
    ['optimizers[0].className', (h) => delete h.optimizers[0].className],
    ['optimizers[0].weights[0].tensor', (h) => (h.optimizers[0].weights[0].tensor = { $tensor: 'one' })],
    ['lrSchedulers', (h) => delete h.lrSchedulers],
    ['callbacks.SomeCallback', (h) => (h.callbacks = { SomeCallback: 5 })],
    ['loggers', (h) => delete h.loggers],
    ['rng.algorithm', (h) => (h.rng.algorithm = 'mt19937')],
    ['rng.state', (h) => (h.rng.state = [1, 2, 3])],
    ['loops', (h) => delete h.loops],
    ['loops.history[0].metrics.train_loss', (h) => (h.loops.history[0].metrics.train_loss = 'low')],
    ['loops.callbackMetrics', (h) => (h.loops.callbackMetrics = [])],
    ['hparams', (h) => (h.hparams = null)],
    ['flintVersion', (h) => (h.flintVersion = 3)],
    ['formatVersion', (h) => (h.formatVersion = 0)],
    ['createdAt', (h) => delete h.createdAt],
    ['epoch', (h) => (h.epoch = -2)],
    ['tensors[0].dtype', (h) => (h.tensors[0].dtype = 'float64')],
    ['tensors', (h) => delete h.tensors],
    ['blobSha256', (h) => delete h.blobSha256],
  ];
  it.each(cases)("a checkpoint with a bad '%s' is a CheckpointError naming that field", async (field, damage) => {
    const header = headerOf(good);
    damage(header);
    const file = path.join(dir, `bad-${field.replace(/\W/g, '_')}.ckpt`);
    await fs.writeFile(file, withHeader(good, header));
    const error = await loadCheckpointFile(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as Error).message).toContain(`checkpoint ${file} is damaged: field '${field}' `);
  });

  it('a weights-only checkpoint needs its weights but no resume state', async () => {
    const { optimizers: _o, lrSchedulers: _l, callbacks: _c, loggers: _g, rng: _r, loops: _p, ...rest } = headerOf(good);
    const file = path.join(dir, 'weights.ckpt');
    await fs.writeFile(file, withHeader(good, { ...rest, weightsOnly: true }));
    expect((await loadCheckpointFile(file)).weightsOnly).toBe(true);
    const { stateDict: _s, ...noWeights } = rest;
    await fs.writeFile(file, withHeader(good, { ...noWeights, weightsOnly: true }));
    await expect(loadCheckpointFile(file)).rejects.toThrow(`checkpoint ${file} is damaged: field 'stateDict' is missing.`);
  });

  it('through fit: a checkpoint without resume is a CheckpointError naming it, not a TypeError, and the module is untouched', async () => {
    const { resume: _r, ...header } = headerOf(good);
    const file = path.join(dir, 'no-resume.ckpt');
    await fs.writeFile(file, withHeader(good, header));
    const module = new Net();
    const before = Array.from(module.layer.weight.dataSync());
    const fit = new Trainer({ ...quiet, maxEpochs: 3 }).fit(module, loader(), undefined, { ckptPath: file });
    await expect(fit).rejects.toThrow(CheckpointError);
    await expect(new Trainer({ ...quiet, maxEpochs: 3 }).fit(module, loader(), undefined, { ckptPath: file })).rejects.toThrow(
      `checkpoint ${file} is damaged: field 'resume' is missing.`,
    );
    expect(Array.from(module.layer.weight.dataSync())).toEqual(before);
  });
});
