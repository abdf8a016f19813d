import * as tf from '@tensorflow/tfjs';
import { DataLoader, randomSplit, seedEverything, TensorDataset, type Logger, type Metrics } from '@flint/core';
import { LearningRateMonitor } from '@flint/callbacks';
import { loadMnist, type MnistBatch } from '@flint/example-mnist';
import { TensorBoardLogger } from '@flint/loggers';
import { Trainer, type BackendName } from '@flint/trainer';
import { MnistConvNet } from './model.js';

export { MnistConvNet } from './model.js';
export type { ConvNetOptions } from './model.js';

/** Epochs of the default run. */
const EPOCHS = 4;

export interface MnistConvOptions {
  /** Epochs. Default 4. */
  maxEpochs?: number;
  /** @deprecated Use `maxEpochs` (the Trainer's name). */
  epochs?: number;
  /** Channels of the two convolutions. Default [16, 32]. */
  channels?: [number, number];
  /** Units of the hidden dense layer. Default 128. */
  hidden?: number;
  /** Dropout before the last layer. Default 0.25. */
  dropout?: number;
  batchSize?: number;
  /** Adam's peak learning rate (the one-cycle schedule's maxLr). Default 0.01. */
  learningRate?: number;
  /** Follow the one-cycle schedule (PyTorch's OneCycleLR, stepped every batch; runs of 4 steps or more). Default true; false keeps the rate constant. */
  oneCycle?: boolean;
  /** Use only the first N training images (before the validation split). Default all 60,000. */
  trainLimit?: number;
  /** Use only the first N test images. Default all 10,000. */
  testLimit?: number;
  /** Training images held out for validation. Default 5,000 (or a tenth of a smaller set). */
  valSize?: number;
  seed?: number;
  backend?: BackendName;
  /** Where the TensorBoard run goes: `<logDir>/mnist-conv/version_N`. Default `flint_logs`; false writes nothing. */
  logDir?: string | false;
  enableProgressBar?: boolean;
  /** Write lines here (default console.log). */
  print?: (line: string) => void;
}

export interface MnistConvResult {
  readonly runDir: string | undefined;
  readonly params: number;
  readonly epochs: number;
  readonly seconds: number;
  readonly samplesPerSecond: number;
  readonly val: Metrics;
  readonly test: Metrics;
  /** Adam's learning rate at each training step (LearningRateMonitor's `lr-FlintAdam`, also in the TensorBoard run). */
  readonly learningRates: readonly number[];
  readonly history: Trainer['history'];
}

/**
 * Trains the two-convolution net on real MNIST (55,000 images; 5,000 held out for validation each
 * epoch), tests it on the 10,000 test images and prints the figures.
 */
export async function main(options: MnistConvOptions = {}): Promise<MnistConvResult> {
  const print = options.print ?? ((line: string) => console.log(line));
  const seed = options.seed ?? 42;
  seedEverything(seed);
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
  const [trainSet, valSet] = randomSplit(full, [train.count - valSize, valSize], seed) as [TensorDataset<MnistBatch>, TensorDataset<MnistBatch>];
  const batchSize = options.batchSize ?? 128;
  const maxEpochs = options.maxEpochs ?? options.epochs ?? EPOCHS;
  const trainLoader = new DataLoader(trainSet, { batchSize, shuffle: true, seed });
  const totalSteps = maxEpochs * trainLoader.length;
  // OneCycleLR needs a warm-up of at least one step (30% of the run): a run of fewer than 4 steps keeps the rate constant.
  const oneCycle = options.oneCycle !== false && totalSteps >= 4;
  const module = new MnistConvNet({
    channels: options.channels ?? [16, 32],
    hidden: options.hidden ?? 128,
    dropout: options.dropout ?? 0.25,
    learningRate: options.learningRate ?? 0.01,
    ...(oneCycle ? { totalSteps } : {}),
  });
  try {
    const logDir = options.logDir ?? 'flint_logs';
    const loggers: Logger[] = logDir === false ? [] : [new TensorBoardLogger({ saveDir: logDir, name: 'mnist-conv' })];
    const lrMonitor = new LearningRateMonitor({ loggingInterval: 'step' });
    const trainer = new Trainer({
      callbacks: [lrMonitor],
      maxEpochs,
      logger: loggers,
      enableCheckpointing: false,
      enableProgressBar: options.enableProgressBar ?? true,
      ...(options.backend === undefined ? {} : { backend: options.backend }),
    });
    const params = module.summaryData().totalParams;
    print(`MNIST: ${trainSet.length} training, ${valSet.length} validation, ${testSet.length} test images; batch size ${batchSize}; ${params.toLocaleString('en-US')} parameters.`);
    const started = performance.now();
    await trainer.fit(module, trainLoader, new DataLoader(valSet, { batchSize: 1000 }));
    const seconds = (performance.now() - started) / 1000;
    const val = trainer.history[trainer.history.length - 1]?.metrics ?? {};
    const testMetrics = await trainer.test(module, new DataLoader(testSet, { batchSize: 1000 }));
    const result: MnistConvResult = {
      runDir: loggers[0]?.logDir,
      params,
      epochs: trainer.currentEpoch,
      seconds,
      samplesPerSecond: (trainSet.length * trainer.currentEpoch) / seconds,
      val: { val_loss: val.val_loss ?? Number.NaN, val_acc: val.val_acc ?? Number.NaN },
      test: testMetrics,
      learningRates: lrMonitor.lrs['lr-FlintAdam'] ?? [],
      history: trainer.history,
    };
    print(
      `conv net: test accuracy ${(100 * (testMetrics.test_acc ?? Number.NaN)).toFixed(2)}%, validation accuracy ${(100 * (val.val_acc ?? Number.NaN)).toFixed(2)}% ` +
        `after ${result.epochs} epochs in ${seconds.toFixed(1)} s (${Math.round(result.samplesPerSecond).toLocaleString('en-US')} samples/s, backend ${tf.getBackend()})`,
    );
    return result;
  } finally {
    module.namedParameters().forEach((p) => p.variable.dispose());
    trainSet.dispose();
    valSet.dispose();
    full.dispose();
    testSet.dispose();
  }
}
