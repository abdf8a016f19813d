import * as tf from '@tensorflow/tfjs';
import { DataLoader, GradStore, LightningModule, Linear, OptimizerWrapper, type LRSchedulerConfig, type OptimizersReturn } from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { Trainer } from '../index.js';
import { afterAll, describe, expect, it } from 'vitest';
import { LearningRateMonitor, OneCycleLR } from '@flint/callbacks';
import { FakeTrainer, MemoryLogger } from '../../../callbacks/src/test-utils/fake-trainer.js';

const data = randomClassificationDataset({ n: 64, features: 4, classes: 2, seed: 2 });
afterAll(() => data.dispose());

describe('LearningRateMonitor', () => {
  it("names: lr-<Optimizer>, -1 for a second of the same class, the scheduler config's name; momentum on request", async () => {
    const t = new FakeTrainer();
    const store = new GradStore();
    const adam = tf.train.adam(0.01);
    const adam2 = tf.train.adam(0.02);
    const sgd = tf.train.momentum(0.1, 0.8);
    t.optimizers = [adam, adam2, sgd].map((o, i) => new OptimizerWrapper(o, () => [], store, i));
    t.lrSchedulers = [{ scheduler: { step() {}, getLastLr: () => [0.1], stateDict: () => ({}), loadStateDict() {} }, interval: 'step', frequency: 1, monitor: undefined, strict: true, name: 'head', optimizer: t.optimizers[2]! } satisfies LRSchedulerConfig];
    const monitor = new LearningRateMonitor({ logMomentum: true });
    expect(monitor.names(t)).toEqual(['lr-Adam', 'lr-Adam-1', 'head']);
    await monitor.onTrainEpochStart(t, undefined as never);
    await monitor.onTrainBatchStart(t);
    expect(t.logged).toEqual([
      { metrics: { 'lr-Adam': 0.01, 'momentum-Adam': 0.9, 'lr-Adam-1': 0.02, 'momentum-Adam-1': 0.9 }, step: 0 },
      { metrics: { head: 0.1, 'head-momentum': 0.8 }, step: 0 },
    ]);
    const byEpoch = new LearningRateMonitor({ loggingInterval: 'epoch' });
    await byEpoch.onTrainBatchStart(t);
    expect(byEpoch.lrs).toEqual({});
    [adam, adam2, sgd].forEach((o) => o.dispose());
  });


  it("logs each step's rate of a one-cycle schedule in a fit, and leaks nothing", async () => {
    class Model extends LightningModule<BoringBatch> {
      layer = new Linear(4, 2);
      trainingStep([x, y]: BoringBatch) {
        return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.layer.forward(x)) as tf.Scalar;
      }
      configureOptimizers(): OptimizersReturn {
        const optimizer = tf.train.adam(1);
        return { optimizer, lrScheduler: { scheduler: new OneCycleLR(optimizer, { maxLr: 0.1, totalSteps: 8 }), interval: 'step' } };
      }
    }
    const logger = new MemoryLogger();
    const monitor = new LearningRateMonitor();
    const trainer = new Trainer({ logger, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 2, callbacks: [monitor] });
    const module = new Model();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16 })), 'fit');
    const probe = new OneCycleLR(tf.train.adam(1), { maxLr: 0.1, totalSteps: 8 });
    const expected = [probe.getLastLr()[0]!];
    for (let i = 0; i < 7; i++) {
      probe.step();
      expected.push(probe.getLastLr()[0]!);
    }
    probe.optimizer.dispose();
    expect(monitor.lrs['lr-Adam']).toEqual(expected);
    expect(logger.series('lr-Adam')).toEqual(expected.map((lr, step) => [step, lr]));
  });
});
