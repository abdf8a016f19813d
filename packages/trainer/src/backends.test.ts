import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { adam, Callback, crossEntropy, DataLoader, Dropout, LightningModule, Linear, seedEverything, Sequential, type TrainerContext } from '@flint/core';
import { expectNoLeak, randomClassificationDataset, worstRelativeDifference, type BoringBatch } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer, type BackendName, type TrainerOptions } from './index.js';
import { probeNativeBackend } from '@flint/backends';

/**
 * What differs between backends: the same seeded training agrees between cpu (pure JS, the
 * reference), wasm and native TensorFlow within float32 tolerances, and a checkpoint written on one
 * backend loads and continues on another.
 */
class Net extends LightningModule<BoringBatch> {
  net = new Sequential(new Linear(6, 32, { activation: 'relu' }), new Dropout(0.2), new Linear(32, 3));
  override forward(x: tf.Tensor) {
    return this.net.forward(x);
  }
  trainingStep([x, y]: BoringBatch) {
    const loss = crossEntropy(this.forward(x), y) as tf.Scalar;
    this.log('train_loss', loss, { onEpoch: true });
    return loss;
  }
  configureOptimizers() {
    return adam({ learningRate: 0.01 });
  }
}

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false };
const data = randomClassificationDataset({ n: 96, features: 6, classes: 3, seed: 21 });
const loader = () => new DataLoader(data, { batchSize: 16, shuffle: true, seed: 3 });
const suiteBackend = process.env.FLINT_BACKEND ?? 'wasm';
let backends: BackendName[] = ['cpu', 'wasm'];
let dir: string;

beforeAll(async () => {
  if ((await probeNativeBackend()).ok) backends = [...backends, 'tensorflow'];
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-backends-'));
});
afterAll(async () => {
  data.dispose();
  await fs.rm(dir, { recursive: true, force: true });
  await tf.setBackend(suiteBackend);
});

async function train(backend: BackendName, epochs: number, extra: Partial<TrainerOptions> = {}, ckptPath?: string) {
  seedEverything(5);
  const module = new Net();
  const trainer = new Trainer({ ...quiet, backend, maxEpochs: epochs, ...extra });
  await expectNoLeak(() => trainer.fit(module, loader(), undefined, ckptPath === undefined ? {} : { ckptPath }), `fit on ${backend}`);
  expect(trainer.backend?.backend).toBe(backend);
  const weights = module.namedParameters().map((p) => Array.from(p.variable.dataSync()));
  return { weights, history: trainer.history };
}

class SaveAt extends Callback {
  override readonly readsEpochMetrics = true;
  constructor(private readonly file: string) {
    super();
  }
  override async onTrainEpochEnd(trainer: TrainerContext) {
    if (trainer.currentEpoch === 0) {
      await trainer.saveCheckpoint(this.file);
      trainer.requestStop({ rule: 'test', message: 'moving to another backend' });
    }
  }
}

describe('backends agree', () => {
  it('two epochs of seeded training (dropout, Adam, 12 steps) agree with cpu to 1e-4 relative on wasm and native', async () => {
    const reference = await train('cpu', 2);
    for (const backend of backends.filter((b) => b !== 'cpu')) {
      const other = await train(backend, 2);
      const diff = worstRelativeDifference(reference.weights, other.weights);
      expect(diff, `weights on ${backend} vs cpu`).toBeLessThan(1e-4);
      expect(diff, `weights on ${backend} vs cpu are computed, not copied`).toBeGreaterThan(0);
      other.history.forEach((r, i) => expect(r.metrics.train_loss!).toBeCloseTo(reference.history[i]!.metrics.train_loss!, 4));
    }
  });

  it('a checkpoint written on one backend loads and continues on another', async () => {
    const reference = await train('cpu', 2);
    for (const [from, to] of backends.flatMap((a) => backends.filter((b) => b !== a).map((b) => [a, b] as const))) {
      const file = path.join(dir, `${from}-to-${to}.ckpt`);
      await train(from, 2, { callbacks: [new SaveAt(file)] });
      const resumed = await train(to, 2, {}, file);
      expect(resumed.history.map((r) => r.epoch)).toEqual([0, 1]);
      expect(worstRelativeDifference(reference.weights, resumed.weights), `${from} -> ${to}`).toBeLessThan(1e-4);
    }
  });
});

/** The module the benchmark recommends (docs/performance.md): Linear layers, crossEntropy, adam(). */
class Mlp extends LightningModule<[tf.Tensor2D, tf.Tensor1D]> {
  net = new Sequential(new Linear(12, 16, { activation: 'relu' }), new Linear(16, 16, { activation: 'relu' }), new Linear(16, 3));
  override forward(x: tf.Tensor) {
    return this.net.forward(x);
  }
  trainingStep([x, y]: [tf.Tensor2D, tf.Tensor1D]) {
    const loss = crossEntropy(this.forward(x), y) as tf.Scalar;
    this.log('train_loss', loss, { onEpoch: true });
    return loss;
  }
  configureOptimizers() {
    return adam({ learningRate: 0.01 });
  }
}

class SaveAndStop extends Callback {
  constructor(private readonly file: string) {
    super();
  }
  override async onTrainBatchEnd(trainer: TrainerContext, _m: LightningModule, _o: unknown, _b: unknown, batchIdx: number) {
    if (trainer.currentEpoch === 1 && batchIdx === 2) {
      await trainer.saveCheckpoint(this.file);
      trainer.requestStop({ rule: 'test', message: 'saved' });
    }
  }
}

/** TensorFlow handles held by the native backend (tfjs tensors and Flint's raw resource handles). */
const nativeHandles = (): number => (tf.findBackend('tensorflow') as unknown as { binding: { getNumOfTensors(): number } }).binding.getNumOfTensors();

describe.runIf(process.env.FLINT_BACKEND === 'tensorflow')('training with Flint kernels on the native backend', () => {
  const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 3 };
  const n = 60;
  const features = tf.tidy(() => tf.keep(tf.randomNormal([n, 12], 0, 1, 'float32', 21)));
  const labels = tf.tensor1d(Array.from({ length: n }, (_, i) => (i * 7) % 3), 'int32');
  const loader = () => new DataLoader([features, labels], { batchSize: 8, shuffle: true, seed: 3 });
  const weights = (m: LightningModule) => m.namedParameters().map((p) => Array.from(p.variable.dataSync()));
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-native-kernels-'));
  });
  afterAll(async () => {
    tf.dispose([features, labels]);
    await fs.rm(dir, { recursive: true, force: true });
    await tf.setBackend('tensorflow');
  });

  async function fit(backend: 'cpu' | 'tensorflow', extra: TrainerOptions = {}, ckptPath?: string, seed = 0, module = newModule(seed)): Promise<{ module: Mlp; trainer: Trainer }> {
    const trainer = new Trainer({ ...quiet, backend, ...extra });
    await trainer.fit(module, loader(), undefined, ckptPath === undefined ? {} : { ckptPath });
    return { module, trainer };
  }
  function newModule(seed: number): Mlp {
    seedEverything(seed);
    return new Mlp();
  }

  it('fits like the cpu backend, leaks nothing, and resumes exactly from a mid-epoch checkpoint', async () => {
    const reference = await fit('cpu');
    const module = newModule(0);
    const full = await expectNoLeak(() => fit('tensorflow', {}, undefined, 0, module), 'native fit');
    expect(worstRelativeDifference(weights(reference.module), weights(full.module))).toBeLessThan(1e-4);

    // No TensorFlow handle is left behind either (the optimizer's resource variables included).
    const file = path.join(dir, 'mid.ckpt');
    const handles = nativeHandles();
    const stopped = await fit('tensorflow', { callbacks: [new SaveAndStop(file)] });
    tf.dispose(stopped.module.parameters());
    expect(nativeHandles()).toBe(handles);

    const resumed = await fit('tensorflow', {}, file, 99);
    expect(weights(resumed.module)).toEqual(weights(full.module));
    expect(resumed.trainer.history).toEqual(full.trainer.history);
  });
});
