import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { adam, Callback, crossEntropy, DataLoader, Dropout, LightningModule, Linear, seedEverything, Sequential, type TrainerContext } from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer, type BackendName, type TrainerOptions } from './index.js';
import { probeNativeBackend } from './native/index.js';

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

/** Largest difference relative to the reference's magnitude (RMS of each tensor, at least 1e-3). */
function maxRelativeDiff(a: number[][], b: number[][]): number {
  let worst = 0;
  a.forEach((ta, i) => {
    const tb = b[i]!;
    const rms = Math.max(1e-3, Math.sqrt(ta.reduce((s, v) => s + v * v, 0) / ta.length));
    ta.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - tb[j]!) / rms)));
  });
  return worst;
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
      const diff = maxRelativeDiff(reference.weights, other.weights);
      expect(diff, `weights on ${backend} vs cpu`).toBeLessThan(1e-4);
      expect(diff, `weights on ${backend} vs cpu are computed, not copied`).toBeGreaterThan(0);
      other.history.forEach((r, i) => expect(r.metrics.train_loss_epoch!).toBeCloseTo(reference.history[i]!.metrics.train_loss_epoch!, 4));
    }
  });

  it('a checkpoint written on one backend loads and continues on another', async () => {
    const reference = await train('cpu', 2);
    for (const [from, to] of backends.flatMap((a) => backends.filter((b) => b !== a).map((b) => [a, b] as const))) {
      const file = path.join(dir, `${from}-to-${to}.ckpt`);
      await train(from, 2, { callbacks: [new SaveAt(file)] });
      const resumed = await train(to, 2, {}, file);
      expect(resumed.history.map((r) => r.epoch)).toEqual([0, 1]);
      expect(maxRelativeDiff(reference.weights, resumed.weights), `${from} -> ${to}`).toBeLessThan(1e-4);
    }
  });
});
