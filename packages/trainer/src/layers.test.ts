import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ModelCheckpoint } from '@flint/callbacks';
import {
  BatchNorm2d,
  Conv2d,
  crossEntropy,
  DataLoader,
  Flatten,
  HostTensor,
  LightningModule,
  Linear,
  loadCheckpointFile,
  MaxPool2d,
  ReLU,
  seedEverything,
  Sequential,
  type OptimizersReturn,
} from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { Trainer, type TrainerOptions } from '@flint/trainer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Core's layers through a real trainer.fit: a small conv net with BatchNorm trains, validation runs
// it in eval mode (running statistics used, not moved), the running statistics go into the
// checkpoint, and a fresh module given that checkpoint through ckptPath validates to the same loss.

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false };
const data = randomClassificationDataset({ n: 48, features: 64, classes: 3, seed: 11 });
const loaders = () => [new DataLoader(data, { batchSize: 16, shuffle: true, seed: 2 }), new DataLoader(data, { batchSize: 24 })] as const;

class ConvNet extends LightningModule<BoringBatch> {
  readonly net = new Sequential(new Conv2d(1, 4, 3, { padding: 1 }), new BatchNorm2d(4), new ReLU(), new MaxPool2d(2), new Flatten(), new Linear(64, 3));
  /** BatchNorm's `training` flag seen by each step. */
  readonly modes: { train: boolean[]; val: boolean[] } = { train: [], val: [] };
  get bn(): BatchNorm2d {
    return this.net.layers[1] as BatchNorm2d;
  }
  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(tf.reshape(x, [-1, 1, 8, 8]));
  }
  trainingStep([x, y]: BoringBatch): tf.Scalar {
    this.modes.train.push(this.bn.training);
    const loss = crossEntropy(this.forward(x), y) as tf.Scalar;
    this.log('train_loss', loss, { onStep: false, onEpoch: true });
    return loss;
  }
  override validationStep([x, y]: BoringBatch): void {
    this.modes.val.push(this.bn.training);
    this.log('val_loss', crossEntropy(this.forward(x), y));
  }
  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(0.01);
  }
}

const values = (v: tf.Variable | undefined): number[] => Array.from(v!.dataSync());

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-layers-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('core layers in a real fit', () => {
  it('BatchNorm trains on batch statistics, validates in eval mode, and its running statistics survive a checkpoint and ckptPath', async () => {
    seedEverything(5);
    const module = new ConvNet();
    const dirpath = path.join(root, 'ckpts');
    const trainer = new Trainer({ ...quiet, maxEpochs: 4, numSanityValSteps: 0, callbacks: [new ModelCheckpoint({ dirpath, saveLast: true, saveTopK: 0 })] });
    await expectNoLeak(() => trainer.fit(module, ...loaders()), 'fit');

    const losses = trainer.history.map((h) => h.metrics.train_loss!);
    expect(losses.at(-1)).toBeLessThan(losses[0]!);
    expect(module.modes.train).toEqual(Array(12).fill(true)); // 3 batches x 4 epochs
    expect(module.modes.val).toEqual(Array(8).fill(false)); // 2 batches x 4 epochs
    expect(module.bn.num_batches_tracked!.dataSync()[0]).toBe(12); // validation moved nothing

    // the checkpoint holds the running statistics as they were after the last training step
    const ckpt = await loadCheckpointFile(path.join(dirpath, 'last.ckpt'));
    const state = ckpt.stateDict as Record<string, HostTensor>;
    expect(Object.keys(state).filter((k) => k.startsWith('net.layers.1.'))).toEqual([
      'net.layers.1.weight',
      'net.layers.1.bias',
      'net.layers.1.running_mean',
      'net.layers.1.running_var',
      'net.layers.1.num_batches_tracked',
    ]);
    expect(Array.from(state['net.layers.1.running_mean']!.data)).toEqual(values(module.bn.running_mean));
    expect(Array.from(state['net.layers.1.running_var']!.data)).toEqual(values(module.bn.running_var));
    expect(Array.from(state['net.layers.1.num_batches_tracked']!.data)).toEqual([12]);
    expect(values(module.bn.running_var).some((v) => v !== 1)).toBe(true);

    // a fresh module validated from the checkpoint: the same statistics, the same loss, nothing moved
    const before = await trainer.validate(module, loaders()[1]);
    const fresh = new ConvNet();
    const restored = await expectNoLeak(
      () => new Trainer({ ...quiet }).validate(fresh, loaders()[1], { ckptPath: path.join(dirpath, 'last.ckpt') }),
      'validate from ckptPath',
    );
    expect(values(fresh.bn.running_mean)).toEqual(values(module.bn.running_mean));
    expect(values(fresh.bn.running_var)).toEqual(values(module.bn.running_var));
    expect(fresh.bn.num_batches_tracked!.dataSync()[0]).toBe(12);
    expect(restored.val_loss).toBeCloseTo(before.val_loss!, 6);
    expect(fresh.modes.val).toEqual([false, false]);
    [module, fresh].forEach((m) => m.namedParameters().forEach((p) => p.variable.dispose()));
  });
});
