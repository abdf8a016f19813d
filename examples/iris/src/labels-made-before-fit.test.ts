import * as tf from '@tensorflow/tfjs';
import { EarlyStopping } from '@flint/callbacks';
import { DataLoader, LightningModule, Linear, TensorDataset, seedEverything, type OptimizersReturn } from '@flint/core';
import { expectNoLeak } from '@flint/core/testing';
import { Trainer, type BackendName } from '@flint/trainer';
import { afterAll, expect, it } from 'vitest';
import { IRIS_CSV, featureStats, readLabelledCsv, standardizeRows, stratifiedSplit } from './index.js';

// The flow the docs show: import tfjs, build the data (tfjs puts it on its cpu backend, Flint's
// backend is not chosen yet), then fit, where Flint switches to wasm or tensorflow. One-hot labels
// made by a cast on cpu used to arrive there as [1.4e-45, 0, 0]: val_loss 1.4e-45, accuracy at chance.

type OneHotBatch = [tf.Tensor2D, tf.Tensor2D];

class OneHotIris extends LightningModule<OneHotBatch> {
  readonly layer = new Linear(4, 3);

  override forward(x: tf.Tensor): tf.Tensor {
    return this.layer.forward(x);
  }

  private evaluate([x, y]: OneHotBatch): { loss: tf.Scalar; acc: tf.Scalar } {
    const logits = this.forward(x);
    const loss = tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
    const acc = tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1)), 'float32')) as tf.Scalar;
    return { loss, acc };
  }

  trainingStep(batch: OneHotBatch): tf.Scalar {
    const { loss } = this.evaluate(batch);
    this.log('train_loss', loss, { onStep: false, onEpoch: true });
    return loss;
  }

  override validationStep(batch: OneHotBatch): void {
    const { loss, acc } = this.evaluate(batch);
    this.log('val_loss', loss);
    this.log('val_acc', acc);
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(0.05);
  }
}

const suiteBackend = (process.env.FLINT_BACKEND ?? 'wasm') as BackendName;
// Where the data is made and where Flint trains: different backends, as in a user's program.
const trainOn: BackendName = suiteBackend === 'cpu' ? 'wasm' : suiteBackend;

afterAll(async () => {
  await tf.setBackend(suiteBackend);
});

it(`one-hot labels cast to float32 on cpu before the Trainer exists train right on ${trainOn}`, async () => {
  await tf.setBackend('cpu');
  seedEverything(7);
  const table = await readLabelledCsv(IRIS_CSV);
  const [trainRows, valRows] = stratifiedSplit(table.labels, [0.8, 0.2], 7) as [Int32Array, Int32Array];
  const stats = featureStats(table, trainRows);
  const made: tf.Tensor[] = [];
  const dataset = (rows: Int32Array): TensorDataset<OneHotBatch> => {
    const { x, y } = standardizeRows(table, rows, stats);
    const features = tf.tensor2d(x, [rows.length, 4]);
    const oneHot = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(y, 'int32'), 3), 'float32'));
    made.push(features, oneHot);
    return TensorDataset.from([features, oneHot]) as TensorDataset<OneHotBatch>;
  };
  const trainSet = dataset(trainRows);
  const valSet = dataset(valRows);
  const valLabels = made[3]!;
  const earlyStopping = new EarlyStopping({ monitor: 'val_loss', patience: 5 });
  const trainer = new Trainer({
    backend: trainOn,
    maxEpochs: 25,
    callbacks: [earlyStopping],
    logger: false,
    enableProgressBar: false,
    enableModelSummary: false,
    enableCheckpointing: false,
  });
  const module = new OneHotIris();
  try {
    await expectNoLeak(
      () => trainer.fit(module, new DataLoader(trainSet, { batchSize: 30, shuffle: true, seed: 7 }), new DataLoader(valSet, { batchSize: 30 })),
      'fit on labels made on cpu',
    );
    expect(trainer.backend?.backend).toBe(trainOn);
    const first = trainer.history[0]!.metrics;
    const last = trainer.history.at(-1)!.metrics;
    // A first val_loss near ln 3 (three classes, small random weights), falling; flowers classified well.
    expect(first.val_loss).toBeGreaterThan(0.2);
    expect(first.val_loss).toBeLessThan(3);
    expect(last.val_loss).toBeLessThan(first.val_loss!);
    expect(last.val_loss).toBeGreaterThan(0.01);
    expect(last.val_acc).toBeGreaterThanOrEqual(0.85);
    expect(earlyStopping.bestScore).toBeGreaterThan(0.01);
    // The labels themselves still read as one-hot rows.
    const rowSums = tf.tidy(() => Array.from(valLabels.sum(1).dataSync()));
    expect(rowSums).toEqual(new Array(valRows.length).fill(1));
  } finally {
    trainSet.dispose();
    valSet.dispose();
    tf.dispose([...made, ...module.parameters()]);
  }
});
