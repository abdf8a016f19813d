import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { LambdaCallback, ModelCheckpoint } from '@flint/callbacks';
import { DataLoader, LightningModule, Linear, loadCheckpointFile, seedEverything, type OptimizersReturn } from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { Trainer, type TrainerOptions } from '@flint/trainer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Accuracy, AUROC, F1Score, MetricCollection } from '@flint/metrics';

// Metric objects through a real trainer.fit: `this.log(name, metric)` gives compute() of the whole
// epoch, the metric is reset between epochs, and a mid-epoch checkpoint carries its state.

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' };
const data = randomClassificationDataset({ n: 60, features: 4, classes: 3, seed: 7 });
// 60 rows in batches of 8: 7 full batches and one of 4, so batch sizes are uneven.
const loaders = () => [new DataLoader(data, { batchSize: 8, shuffle: true, seed: 3 }), new DataLoader(data, { batchSize: 25 })] as const;

class Net extends LightningModule<BoringBatch> {
  layer = new Linear(4, 3);
  trainAcc = new Accuracy({ task: 'multiclass', numClasses: 3 });
  valMetrics = new MetricCollection(
    {
      acc: new Accuracy({ task: 'multiclass', numClasses: 3 }),
      f1: new F1Score({ task: 'multiclass', numClasses: 3, average: 'macro' }),
      auroc: new AUROC({ task: 'multiclass', numClasses: 3 }),
    },
    { prefix: 'val_' },
  );

  constructor(private readonly stepOptions: { onStep?: boolean } = {}) {
    super();
  }
  override forward(x: tf.Tensor) {
    return this.layer.forward(x);
  }
  /** The hand-written accuracy of a batch, logged beside the metric: its epoch mean (weighted by batch size) is the epoch accuracy. */
  private batchAccuracy(logits: tf.Tensor, y: tf.Tensor): tf.Scalar {
    return tf.mean(tf.equal(tf.argMax(logits, 1), y.toInt()).toFloat());
  }
  trainingStep([x, y]: BoringBatch) {
    const logits = this.forward(x);
    this.trainAcc.update(logits, y);
    this.log('train_acc', this.trainAcc, this.stepOptions);
    this.log('train_acc_by_hand', this.batchAccuracy(logits, y), { onStep: false, onEpoch: true });
    return tf.losses.softmaxCrossEntropy(tf.oneHot(y.toInt(), 3), logits) as tf.Scalar;
  }
  override validationStep([x, y]: BoringBatch) {
    const logits = this.forward(x);
    this.valMetrics.update(logits, y);
    this.logDict(this.valMetrics);
    this.log('val_acc_by_hand', this.batchAccuracy(logits, y));
  }
  configureOptimizers(): OptimizersReturn {
    return tf.train.sgd(0.3);
  }
}

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-metrics-fit-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThan(1e-6);

describe('metric objects in trainer.fit', () => {
  it('log the epoch value (compute() over every batch of the epoch), reset between epochs, and leak nothing', async () => {
    seedEverything(1);
    const module = new Net();
    const trainer = new Trainer({ ...quiet, maxEpochs: 3 });
    await expectNoLeak(() => trainer.fit(module, ...loaders()), 'fit with metrics');
    expect(trainer.history).toHaveLength(3);
    const accs = trainer.history.map((r) => r.metrics['train_acc']!);
    for (const r of trainer.history) {
      close(r.metrics['train_acc']!, r.metrics['train_acc_by_hand']!);
      close(r.metrics['val_acc']!, r.metrics['val_acc_by_hand']!);
      expect(r.metrics['val_f1']).toBeGreaterThan(0);
      expect(r.metrics['val_auroc']).toBeGreaterThan(0.5);
    }
    expect(new Set(accs).size).toBeGreaterThan(1); // the model learns: each epoch has its own value
    expect(Object.keys(trainer.callbackMetrics)).toEqual(expect.arrayContaining(['train_acc', 'val_acc', 'val_f1', 'val_auroc']));
    expect(module.trainAcc.updateCount).toBe(0); // reset after the last epoch
  });

  it('a mid-epoch checkpoint holds the metric state: the resumed run logs the epoch values of an uninterrupted run', async () => {
    seedEverything(2);
    const full = new Net();
    const fullTrainer = new Trainer({ ...quiet, maxEpochs: 3 });
    await expectNoLeak(() => fullTrainer.fit(full, ...loaders()), 'uninterrupted fit');

    // 8 batches per epoch: step 12 is batch 3 of epoch 1.
    const dir = await fs.mkdtemp(path.join(root, 'resume-'));
    seedEverything(2);
    const kill = new LambdaCallback({ onTrainBatchEnd: (t) => (t.globalStep === 12 ? t.requestStop({ rule: 'test', message: 'killed' }) : undefined) });
    const killed = new Net();
    const mc = () => new ModelCheckpoint({ dirpath: dir, everyNTrainSteps: 4, saveLast: true, filename: '{step}' });
    await expectNoLeak(() => new Trainer({ ...quiet, maxEpochs: 3, callbacks: [mc(), kill] }).fit(killed, ...loaders()), 'killed fit');
    const last = await loadCheckpointFile(path.join(dir, 'last.ckpt'));
    expect(last.resume).toEqual({ epoch: 1, batch: 4 });
    const saved = (last.loops as { collector: { train: Record<string, { metricState?: { confmat: { values: number[] } } }> } }).collector.train;
    expect(saved['train_acc']!.metricState!.confmat.values.reduce((a, b) => a + b, 0)).toBe(4 * 8); // the 4 batches seen in epoch 1

    seedEverything(99);
    const resumed = new Net();
    const trainer = new Trainer({ ...quiet, maxEpochs: 3, callbacks: [mc()] });
    trainer.events.on('message', () => undefined);
    await expectNoLeak(() => trainer.fit(resumed, ...loaders(), { ckptPath: 'last' }), 'fit resumed mid-epoch');
    expect(trainer.history).toEqual(fullTrainer.history);
  });

  it('a module with lazy layers: the dry run that builds them does not count in the metric', async () => {
    class Lazy extends Net {
      dense = tf.layers.dense({ units: 3 });
      override forward(x: tf.Tensor) {
        return this.dense.apply(x) as tf.Tensor;
      }
    }
    seedEverything(3);
    const trainer = new Trainer({ ...quiet, maxEpochs: 1, limitValBatches: 0 });
    const module = new Lazy();
    const before = tf.memory().numTensors;
    await trainer.fit(module, loaders()[0]);
    expect(tf.memory().numTensors - before).toBe(module.dense.getWeights().length); // the weights the dry run built, nothing else
    close(trainer.history[0]!.metrics['train_acc']!, trainer.history[0]!.metrics['train_acc_by_hand']!);
  });

  it('refuses onStep for a metric object, pointing at forward()', async () => {
    const trainer = new Trainer({ ...quiet, maxEpochs: 1 });
    await expect(trainer.fit(new Net({ onStep: true }), ...loaders())).rejects.toThrow(
      "log('train_acc', metric): a metric object is logged per epoch (compute() at epoch end, then reset()), so onStep must be false and onEpoch true (received onStep=true, onEpoch=undefined); for a value per step, log the tensor that metric.forward(preds, target) returns.",
    );
  });
});
