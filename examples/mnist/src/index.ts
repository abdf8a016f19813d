import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, randomSplit, seedEverything, TensorDataset, type Logger, type Metrics } from '@flint/core';
import { TensorBoardLogger } from '@flint/loggers';
import { Trainer, type BackendName } from '@flint/trainer';
import { loadMnist, type MnistData } from './mnist-data.js';
import { MnistClassifier, type MnistBatch, type MnistModule } from './model.js';
import { confusionMatrix, confusionMatrixImage, misclassifiedGrid } from './pictures.js';

export { loadMnist } from './mnist-data.js';
export type { LoadMnistOptions, MnistData, MnistSplit } from './mnist-data.js';
export { MnistClassifier, MnistModule } from './model.js';
export type { MnistBatch, MnistClassifierOptions } from './model.js';
export { confusionMatrix, confusionMatrixImage, misclassifiedGrid } from './pictures.js';

export interface MnistDemoOptions {
  /** Which nets to train. Default both. */
  models?: Array<'single' | 'multi'>;
  /** Epochs per net. Default 5. */
  maxEpochs?: number;
  /** @deprecated Use `maxEpochs` (the Trainer's name). */
  epochs?: number;
  /** Hidden units of the multi-layer net. Default 256. */
  hidden?: number;
  /** Dropout of the multi-layer net. Default 0.2. */
  dropout?: number;
  batchSize?: number;
  learningRate?: number;
  /** Use only the first N training images (before the validation split). Default all 60,000. */
  trainLimit?: number;
  /** Use only the first N test images. Default all 10,000. */
  testLimit?: number;
  /** Training images held out for validation. Default 5,000 (or a tenth of a smaller set). */
  valSize?: number;
  seed?: number;
  backend?: BackendName;
  /**
   * Where the TensorBoard runs go: `<logDir>/mnist/<net>`, one run per net named after it
   * (`single-layer`, `multi-layer-256`; `-2`, `-3`, ... when run again), so both show in one
   * TensorBoard (and in one HParams table). Default `flint_logs`; false writes nothing.
   */
  logDir?: string | false;
  enableProgressBar?: boolean;
  /** Write lines here (default console.log). */
  print?: (line: string) => void;
}

export interface MnistRunResult {
  /** The run's folder (undefined without logging). */
  readonly runDir: string | undefined;
  readonly model: 'single' | 'multi';
  readonly hidden: number[];
  readonly params: number;
  readonly epochs: number;
  readonly seconds: number;
  readonly samplesPerSecond: number;
  readonly val: Metrics;
  readonly test: Metrics;
  readonly history: Trainer['history'];
}

/** A run folder name under `root` not used yet: `name`, else `name-2`, `name-3`, ... */
export function freeRunName(root: string, name: string): string {
  if (!fs.existsSync(path.join(root, name))) return name;
  for (let i = 2; ; i++) if (!fs.existsSync(path.join(root, `${name}-${i}`))) return `${name}-${i}`;
}

/** The predicted class of every test image, in batches. */
async function predictClasses(module: MnistModule, set: TensorDataset<MnistBatch>, count: number): Promise<Int32Array> {
  const out = new Int32Array(count);
  module.eval();
  for (let start = 0; start < count; start += 1000) {
    const pred = tf.tidy(() => {
      const [x] = set.getBatch({ start, end: Math.min(count, start + 1000) });
      return module.forward(x).argMax(-1);
    });
    out.set(await pred.data(), start);
    pred.dispose();
  }
  return out;
}

export interface MnistDatasets {
  /** The training images left after the validation split. */
  readonly trainSet: TensorDataset<MnistBatch>;
  readonly valSet: TensorDataset<MnistBatch>;
  readonly testSet: TensorDataset<MnistBatch>;
  /** The test split as loaded (pixels in [0, 1]). */
  readonly test: MnistData;
  /** Disposes the datasets' tensors. */
  dispose(): void;
}

/**
 * The main job's data: the training images (the first `trainLimit`) split by `seed` into training and
 * validation (`valSize`, default 5,000 or a tenth of a smaller set), and the test images.
 */
export async function mnistDatasets(options: { seed: number; trainLimit?: number; testLimit?: number; valSize?: number }): Promise<MnistDatasets> {
  const train = await loadMnist({ split: 'train', ...(options.trainLimit === undefined ? {} : { limit: options.trainLimit }) });
  const test = await loadMnist({ split: 'test', ...(options.testLimit === undefined ? {} : { limit: options.testLimit }) });
  const valSize = options.valSize ?? Math.min(5000, Math.floor(train.count / 10));
  const full = TensorDataset.from([
    { data: train.images, shape: [train.count, 784] },
    { data: train.labels, shape: [train.count], dtype: 'int32' },
  ]) as TensorDataset<MnistBatch>;
  const testSet = TensorDataset.from([
    { data: test.images, shape: [test.count, 784] },
    { data: test.labels, shape: [test.count], dtype: 'int32' },
  ]) as TensorDataset<MnistBatch>;
  const [trainSet, valSet] = randomSplit(full, [train.count - valSize, valSize], options.seed) as [TensorDataset<MnistBatch>, TensorDataset<MnistBatch>];
  return {
    trainSet,
    valSet,
    testSet,
    test,
    dispose: () => [trainSet, valSet, full, testSet].forEach((d) => d.dispose()),
  };
}

/**
 * The README's main job: trains a single-layer (784 -> 10) and a multi-layer net (784 -> hidden ->
 * 10, with dropout) on real MNIST, validating each epoch on a held-out part of the training set, then
 * tests each on the 10,000 test images and prints the figures.
 */
export async function main(options: MnistDemoOptions = {}): Promise<MnistRunResult[]> {
  const print = options.print ?? ((line: string) => console.log(line));
  const models = options.models ?? ['single', 'multi'];
  const epochs = options.maxEpochs ?? options.epochs ?? 5;
  const seed = options.seed ?? 42;
  seedEverything(seed);

  const { trainSet, valSet, testSet, test, dispose } = await mnistDatasets({
    seed,
    ...(options.trainLimit === undefined ? {} : { trainLimit: options.trainLimit }),
    ...(options.testLimit === undefined ? {} : { testLimit: options.testLimit }),
    ...(options.valSize === undefined ? {} : { valSize: options.valSize }),
  });
  const batchSize = options.batchSize ?? 128;
  print(`MNIST: ${trainSet.length} training, ${valSet.length} validation, ${testSet.length} test images; batch size ${batchSize}.`);

  const results: MnistRunResult[] = [];
  const logDir = options.logDir ?? 'flint_logs';
  let command: string | undefined;
  try {
    for (const model of models) {
      const hidden = model === 'single' ? [] : [options.hidden ?? 256];
      const module = new MnistClassifier({
        hidden,
        dropout: model === 'single' ? 0 : (options.dropout ?? 0.2),
        learningRate: options.learningRate ?? 1e-3,
      });
      const loggers: Logger[] = [];
      let tb: TensorBoardLogger | undefined;
      if (logDir !== false) {
        const runName = freeRunName(path.join(logDir, 'mnist'), model === 'single' ? 'single-layer' : `multi-layer-${hidden.join('-')}`);
        // Weight histograms every epoch: how the layers' weights spread out as the net learns.
        tb = new TensorBoardLogger({ saveDir: logDir, name: 'mnist', version: runName, histogramEveryNEpochs: 1 });
        command = `npx flint tensorboard ${tb.rootDir}`;
        loggers.push(tb);
      }
      const trainer = new Trainer({
        maxEpochs: epochs,
        logger: loggers,
        // The training loss every 10 optimizer steps (Lightning's default, 50, would leave a short run without a curve).
        logEveryNSteps: 10,
        enableCheckpointing: false,
        enableModelSummary: false,
        enableProgressBar: options.enableProgressBar ?? true,
        ...(options.backend === undefined ? {} : { backend: options.backend }),
      });
      const params = module.summaryData().totalParams;
      print(`\n${model === 'single' ? 'Single-layer' : 'Multi-layer'} net 784 -> ${[...hidden, 10].join(' -> ')} (${params.toLocaleString('en-US')} parameters)`);
      const started = performance.now();
      await trainer.fit(module, new DataLoader(trainSet, { batchSize, shuffle: true, seed }), new DataLoader(valSet, { batchSize: 1000 }));
      const seconds = (performance.now() - started) / 1000;
      const val = trainer.history[trainer.history.length - 1]?.metrics ?? {};
      const testMetrics = await trainer.test(module, new DataLoader(testSet, { batchSize: 1000 }));
      if (tb !== undefined) await logTestPictures(tb, module, testSet, test, trainer.globalStep);
      const result: MnistRunResult = {
        runDir: loggers[0]?.logDir,
        model,
        hidden,
        params,
        epochs: trainer.currentEpoch,
        seconds,
        samplesPerSecond: (trainSet.length * trainer.currentEpoch) / seconds,
        val: { val_loss: val.val_loss ?? Number.NaN, val_acc: val.val_acc ?? Number.NaN },
        test: testMetrics,
        history: trainer.history,
      };
      results.push(result);
      module.namedParameters().forEach((p) => p.variable.dispose());
      print(
        `${model}: test accuracy ${(100 * (testMetrics.test_acc ?? Number.NaN)).toFixed(2)}%, validation accuracy ${(100 * (val.val_acc ?? Number.NaN)).toFixed(2)}% ` +
          `after ${result.epochs} epochs in ${seconds.toFixed(1)} s (${Math.round(result.samplesPerSecond).toLocaleString('en-US')} samples/s, backend ${tf.getBackend()})`,
      );
    }
    if (command !== undefined) print(`\nOpen the runs in TensorBoard (train and validation on one chart, weights, misclassified digits):\n  ${command}`);
  } finally {
    dispose();
  }
  return results;
}

/**
 * The Images tab: the first misclassified test digits with their true and predicted classes, and the
 * confusion matrix of the whole test set (rows: true class, columns: predicted), at the last step.
 */
async function logTestPictures(tb: TensorBoardLogger, module: MnistModule, testSet: TensorDataset<MnistBatch>, test: MnistData, step: number): Promise<void> {
  const predicted = await predictClasses(module, testSet, test.count);
  const grid = misclassifiedGrid(test.images, test.labels, predicted);
  if (grid.shown > 0) tb.logImage('test/misclassified', grid.image, step);
  tb.logImage('test/confusion_matrix', confusionMatrixImage(confusionMatrix(test.labels, predicted)), step);
  tb.save();
}
