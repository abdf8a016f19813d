import * as tf from '@tensorflow/tfjs';
import { DataLoader, seedEverything, TensorDataset, type EpochRecord, type Logger, type Metrics } from '@flint/core';
import { TensorBoardLogger } from '@flint/loggers';
import { Trainer, type BackendName } from '@flint/trainer';
import { IrisClassifier, type IrisBatch } from './model.js';
import { featureStats, readLabelledCsv, standardizeRows, stratifiedSplit, type FeatureStats } from './tabular.js';

export { IrisClassifier } from './model.js';
export type { IrisBatch, IrisClassifierOptions } from './model.js';
export { featureStats, readLabelledCsv, standardizeRows, stratifiedSplit } from './tabular.js';
export type { FeatureStats, LabelledTable } from './tabular.js';

/** The bundled copy of the Iris data (see data/README.md). */
export const IRIS_CSV = new URL('../data/iris.csv', import.meta.url);

export type IrisModel = 'single' | 'multi';

export interface IrisOptions {
  /** Which nets to train. Default both: 'single' (4 -> 3 softmax) and 'multi' (4 -> hidden -> 3). */
  models?: IrisModel[];
  /** Epochs per net. Default 100. */
  maxEpochs?: number;
  /** @deprecated Use `maxEpochs` (the Trainer's name). */
  epochs?: number;
  /** Hidden units of the multi-layer net. Default 16. */
  hidden?: number;
  /** Default 16 (the training split has 90 rows: 6 batches per epoch). */
  batchSize?: number;
  /** Adam's learning rate. Default 0.02. */
  learningRate?: number;
  /** Seed of the split, the weights and the shuffles. Default 42. */
  seed?: number;
  /** Train / validation / test fractions, split class by class. Default [0.6, 0.2, 0.2]: 90 / 30 / 30 rows. */
  split?: [number, number, number];
  backend?: BackendName;
  /**
   * Where the TensorBoard runs go: `<logDir>/iris/version_N`, one run per net, so that both show in
   * one TensorBoard. Default `flint_logs`; false writes nothing.
   */
  logDir?: string | false;
  /** Print the learning curves every N epochs. Default: 10 lines per run. */
  printEvery?: number;
  enableProgressBar?: boolean;
  /** Write lines here (default console.log). */
  print?: (line: string) => void;
  /** The CSV to read. Default the bundled copy. */
  csvPath?: string | URL;
}

export interface IrisRunResult {
  readonly model: IrisModel;
  readonly hidden: number[];
  readonly params: number;
  readonly epochs: number;
  /** The run's TensorBoard folder (undefined without logging). */
  readonly runDir: string | undefined;
  /** Per epoch: train_loss, train_acc, val_loss, val_acc. */
  readonly history: readonly EpochRecord[];
  readonly test: Metrics;
}

export interface IrisResult {
  readonly sizes: { train: number; val: number; test: number };
  /** The statistics the features were standardized with (training rows only). */
  readonly stats: FeatureStats;
  readonly runs: IrisRunResult[];
  /** The command that opens the runs (undefined without logging). */
  readonly tensorboardCommand: string | undefined;
}

/**
 * Trains a single-layer (4 -> 3 softmax) and a multi-layer net on the 150 Iris flowers: a seeded
 * split by class into training, validation and test rows, features standardized with the training
 * rows' mean and standard deviation, train and validation curves logged to TensorBoard, then each
 * net tested once on the held-out test rows.
 */
export async function main(options: IrisOptions = {}): Promise<IrisResult> {
  const print = options.print ?? ((line: string) => console.log(line));
  const seed = options.seed ?? 42;
  const epochs = options.maxEpochs ?? options.epochs ?? 100;
  const batchSize = options.batchSize ?? 16;
  seedEverything(seed);

  const table = await readLabelledCsv(options.csvPath ?? IRIS_CSV);
  const [trainRows, valRows, testRows] = stratifiedSplit(table.labels, options.split ?? [0.6, 0.2, 0.2], seed) as [Int32Array, Int32Array, Int32Array];
  // The statistics come from the training rows only: validation and test rows stay unseen.
  const stats = featureStats(table, trainRows);
  const dataset = (rows: Int32Array): TensorDataset<IrisBatch> => {
    const { x, y } = standardizeRows(table, rows, stats);
    return TensorDataset.from([
      { data: x, shape: [rows.length, table.numFeatures] },
      { data: y, shape: [rows.length], dtype: 'int32' },
    ]) as TensorDataset<IrisBatch>;
  };
  const trainSet = dataset(trainRows);
  const valSet = dataset(valRows);
  const testSet = dataset(testRows);
  print(
    `Iris: ${table.rows} flowers, ${table.numFeatures} features, classes ${table.classNames.join(', ')}; ` +
      `split by class with seed ${seed}: ${trainRows.length} training, ${valRows.length} validation, ${testRows.length} test rows.`,
  );
  print(
    `Standardized with the training rows' mean [${[...stats.mean].map((v) => v.toFixed(2)).join(', ')}] ` +
      `and std [${[...stats.std].map((v) => v.toFixed(2)).join(', ')}] (cm).`,
  );

  const runs: IrisRunResult[] = [];
  const logDir = options.logDir ?? 'flint_logs';
  let tensorboardCommand: string | undefined;
  try {
    for (const model of options.models ?? ['single', 'multi']) {
      const hidden = model === 'single' ? [] : [options.hidden ?? 16];
      const module = new IrisClassifier({ hidden, learningRate: options.learningRate ?? 0.02 });
      const loggers: Logger[] = [];
      if (logDir !== false) {
        const tb = new TensorBoardLogger({ saveDir: logDir, name: 'iris' });
        tensorboardCommand = tb.tensorboardCommand;
        loggers.push(tb);
      }
      const trainer = new Trainer({
        maxEpochs: epochs,
        logger: loggers,
        enableCheckpointing: false,
        enableModelSummary: false,
        enableProgressBar: options.enableProgressBar ?? false,
        ...(options.backend === undefined ? {} : { backend: options.backend }),
      });
      const params = module.summaryData().totalParams;
      print(`\n${model === 'single' ? 'Single-layer' : 'Multi-layer'} net ${[4, ...hidden, 3].join(' -> ')} (${params} parameters), ${epochs} epochs`);
      await trainer.fit(module, new DataLoader(trainSet, { batchSize, shuffle: true, seed }), new DataLoader(valSet, { batchSize: valSet.length }));
      const every = options.printEvery ?? Math.max(1, Math.round(epochs / 10));
      for (const record of trainer.history) {
        if ((record.epoch + 1) % every !== 0 && record.epoch !== 0) continue;
        const m = record.metrics;
        print(
          `  epoch ${String(record.epoch + 1).padStart(3)}: train loss ${fmt(m.train_loss)} acc ${pct(m.train_acc)} | ` +
            `val loss ${fmt(m.val_loss)} acc ${pct(m.val_acc)}`,
        );
      }
      const test = await trainer.test(module, new DataLoader(testSet, { batchSize: testSet.length }));
      print(`  test accuracy ${pct(test.test_acc)} (${Math.round((test.test_acc ?? Number.NaN) * testSet.length)}/${testSet.length}), test loss ${fmt(test.test_loss)}`);
      runs.push({ model, hidden, params, epochs: trainer.currentEpoch, runDir: loggers[0]?.logDir, history: trainer.history, test });
      tf.dispose(module.parameters());
    }
    if (tensorboardCommand !== undefined) print(`\nTrain and validation curves in TensorBoard:\n  ${tensorboardCommand}`);
  } finally {
    trainSet.dispose();
    valSet.dispose();
    testSet.dispose();
  }
  return { sizes: { train: trainRows.length, val: valRows.length, test: testRows.length }, stats, runs, tensorboardCommand };
}

function fmt(v: number | undefined): string {
  return (v ?? Number.NaN).toFixed(4);
}

function pct(v: number | undefined): string {
  return `${(100 * (v ?? Number.NaN)).toFixed(1)}%`;
}
