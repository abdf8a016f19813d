import * as tf from '@tensorflow/tfjs';
import { DataLoader, DataModule, LightningModule, Linear, MisconfigurationError, seedEverything, TensorDataset, type OptimizersReturn } from '@flint/core';
import { expectNoLeak } from '@flint/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { isOutOfMemoryError, lastBatchSizeTrials, scaleBatchSize, Trainer, type TrainerOptions } from '../index.js';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false };
type Batch = [tf.Tensor2D, tf.Tensor1D];
const FEATURES = 32;
const HIDDEN = 512;
const N = 2048;
const x = new Float32Array(N * FEATURES).map((_, i) => Math.sin(i * 0.37));
const y = new Int32Array(N).map((_, i) => i % 2);
const dataset = TensorDataset.from([
  { data: x, shape: [N, FEATURES] },
  { data: y, shape: [N], dtype: 'int32' },
]) as unknown as TensorDataset<Batch>;
afterAll(() => dataset.dispose());

class Data extends DataModule<Batch> {
  constructor(public batchSize = 4) {
    super();
  }
  override trainDataloader() {
    return new DataLoader(dataset, { batchSize: this.batchSize });
  }
}

class Mlp extends LightningModule<Batch> {
  readonly fc1 = new Linear(FEATURES, HIDDEN);
  readonly fc2 = new Linear(HIDDEN, 2);
  trainingStep([xb, yb]: Batch): tf.Scalar {
    return tf.losses.softmaxCrossEntropy(tf.oneHot(yb, 2), this.fc2.forward(tf.relu(this.fc1.forward(xb)))) as tf.Scalar;
  }
  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(1e-3);
  }
}

const weights = (m: LightningModule) => Object.fromEntries(m.namedParameters().map((p) => [p.name, Array.from(p.variable.dataSync())]));

/** Peak tensor bytes of 3 training steps at a batch size, measured outside scaleBatchSize. */
async function peakAt(batchSize: number): Promise<number> {
  seedEverything(1);
  const t = new Trainer({ ...quiet, maxSteps: 3 });
  const profile = await tf.profile(async () => {
    await t.fit(new Mlp(), new DataLoader(dataset, { batchSize }));
    return [] as tf.Tensor[];
  });
  return Math.max(...profile.kernels.map((k) => k.totalBytesSnapshot));
}

describe('scaleBatchSize', () => {
  it('binsearch: the largest batch whose training stays within maxMemoryBytes, minus the margin; weights and trainer untouched; no leaks', async () => {
    // A budget between the peaks of batch 200 and 400.
    const budget = Math.round(((await peakAt(200)) + (await peakAt(400))) / 2);
    seedEverything(2);
    const module = new Mlp();
    const before = weights(module);
    const dm = new Data(4);
    const trainer = new Trainer({ ...quiet, maxEpochs: 1 });
    const size = await expectNoLeak(() => scaleBatchSize(trainer, module, dm, { mode: 'binsearch', maxMemoryBytes: budget, margin: 0.1 }), 'scaleBatchSize');
    const trials = lastBatchSizeTrials();
    for (const t of trials) expect(t.ok).toBe(t.peakBytes! <= budget);
    const best = Math.max(...trials.filter((t) => t.ok).map((t) => t.batchSize));
    // Bisected to one: best trains, best + 1 does not (checked by a plain fit here too).
    expect(trials.some((t) => !t.ok && t.batchSize === best + 1)).toBe(true);
    expect(await peakAt(best)).toBeLessThanOrEqual(budget);
    expect(await peakAt(best + 1)).toBeGreaterThan(budget);
    expect(best).toBeGreaterThan(200);
    expect(best).toBeLessThan(400);
    expect(size).toBe(Math.floor(best * 0.9));
    expect(dm.batchSize).toBe(size);
    expect(trials.slice(0, 9).map((t) => t.batchSize)).toEqual([2, 4, 8, 16, 32, 64, 128, 256, 512]);
    expect(weights(module)).toEqual(before);
    expect(trainer.globalStep).toBe(0);
  });

  it('power: doubles until the budget is exceeded and keeps the last size that trained', async () => {
    const budget = Math.round(((await peakAt(64)) + (await peakAt(128))) / 2);
    const dm = new Data();
    const size = await scaleBatchSize(new Trainer(quiet), new Mlp(), dm, { initVal: 8, maxMemoryBytes: budget });
    expect(size).toBe(64);
    expect(dm.batchSize).toBe(64);
    expect(lastBatchSizeTrials().map((t) => [t.batchSize, t.ok])).toEqual([
      [8, true],
      [16, true],
      [32, true],
      [64, true],
      [128, false],
    ]);
  });

  it("stops at the data set's length and at maxVal, as Lightning", async () => {
    const dm = new Data();
    expect(await scaleBatchSize(new Trainer(quiet), new Mlp(), dm, { initVal: 1024, maxTrials: 5 })).toBe(2048);
    expect(lastBatchSizeTrials().map((t) => t.batchSize)).toEqual([1024, 2048]);
    expect(await scaleBatchSize(new Trainer(quiet), new Mlp(), new Data(), { initVal: 2, maxVal: 16 })).toBe(16);
    expect(lastBatchSizeTrials().map((t) => t.batchSize)).toEqual([2, 4, 8]);
  });

  it('recognises out-of-memory errors as the backends raise them, and rethrows other errors', async () => {
    let real: unknown;
    try {
      tf.zeros([2 ** 33]);
    } catch (error) {
      real = error;
    }
    expect(isOutOfMemoryError(real)).toBe(true);
    expect(isOutOfMemoryError(new Error('Aborted(OOM). Build with -sASSERTIONS for more info.'))).toBe(true);
    expect(isOutOfMemoryError(new Error('OOM when allocating tensor with shape[8192,8192]'))).toBe(true);
    expect(isOutOfMemoryError(new Error('step failed', { cause: new RangeError('Array buffer allocation failed') }))).toBe(true);
    expect(isOutOfMemoryError(new Error('shapes [2,3] and [4,5] do not match'))).toBe(false);
    class Broken extends Mlp {
      override trainingStep(): tf.Scalar {
        throw new Error('a bug, not memory');
      }
    }
    const module = new Broken();
    const before = weights(module);
    await expect(scaleBatchSize(new Trainer(quiet), module, new Data())).rejects.toThrow('a bug, not memory');
    expect(weights(module)).toEqual(before);
  });

  it('rejects a DataLoader, a missing field and bad options, saying what would do', async () => {
    const trainer = new Trainer(quiet);
    await expect(scaleBatchSize(trainer, new Mlp(), new DataLoader(dataset, { batchSize: 4 }) as never)).rejects.toThrow(/needs a DataModule/);
    await expect(scaleBatchSize(trainer, new Mlp(), new Data(), { batchArgName: 'bs' })).rejects.toThrow(
      "scaleBatchSize option 'batchArgName': 'bs' is a field of neither Mlp, its hparams nor Data",
    );
    await expect(scaleBatchSize(trainer, new Mlp(), new Data(), { mode: 'binarysearch' as never })).rejects.toThrow(MisconfigurationError);
    await expect(scaleBatchSize(trainer, new Mlp(), new Data(), { margin: 1 })).rejects.toThrow(/scaleBatchSize option 'margin'/);
  });
});
