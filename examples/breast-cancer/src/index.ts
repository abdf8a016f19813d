import * as tf from '@tensorflow/tfjs';
import { DataLoader, seedEverything, TensorDataset, type EpochRecord, type Logger, type Metrics } from '@flint/core';
import { TensorBoardLogger } from '@flint/loggers';
import { Trainer, type BackendName } from '@flint/trainer';
import { BinaryClassifier, type TumourBatch } from './model.js';
import { featureStats, readLabelledCsv, standardizeRows, stratifiedSplit, type FeatureStats } from '@flint/example-iris/tabular';

export { BinaryClassifier } from './model.js';
export type { BinaryClassifierOptions, TumourBatch } from './model.js';
export { featureStats, readLabelledCsv, standardizeRows, stratifiedSplit } from '@flint/example-iris/tabular';
export type { FeatureStats, LabelledTable } from '@flint/example-iris/tabular';

/** The bundled copy of the Breast Cancer Wisconsin (Diagnostic) data (see data/README.md). */
export const BREAST_CANCER_CSV = new URL('../data/breast_cancer.csv', import.meta.url);

export type BreastCancerModel = 'single' | 'multi';

export interface BreastCancerOptions {
  /** Which nets to train. Default both: 'single' (logistic regression, 30 -> 1) and 'multi' (30 -> hidden -> 1). */
  models?: BreastCancerModel[];
  /** Epochs per net. Default 50. */
  maxEpochs?: number;
  /** @deprecated Use `maxEpochs` (the Trainer's name). */
  epochs?: number;
  /** Hidden units of the multi-layer net. Default 16. */
  hidden?: number;
  /** Default 32. */
  batchSize?: number;
  /** Adam's learning rate. Default 0.005. */
  learningRate?: number;
  /** Seed of the split, the weights and the shuffles. Default 42. */
  seed?: number;
  /** Train / validation / test fractions, split class by class. Default [0.6, 0.2, 0.2]. */
  split?: [number, number, number];
  backend?: BackendName;
  /** Where the TensorBoard runs go: `<logDir>/breast-cancer/version_N`, one per net. Default `flint_logs`; false writes nothing. */
  logDir?: string | false;
  enableProgressBar?: boolean;
  /** Write lines here (default console.log). */
  print?: (line: string) => void;
  /** The CSV to read. Default the bundled copy. */
  csvPath?: string | URL;
}

/** Test rows by true class (rows) and predicted class (columns): [[TN, FP], [FN, TP]] for classes 0, 1. */
export type ConfusionMatrix = [[number, number], [number, number]];

export interface BreastCancerRunResult {
  readonly model: BreastCancerModel;
  readonly hidden: number[];
  readonly params: number;
  readonly epochs: number;
  readonly runDir: string | undefined;
  /** Per epoch: train_loss, train_acc, val_loss, val_acc. */
  readonly history: readonly EpochRecord[];
  /** test_loss (binary cross-entropy) and test_acc (binary accuracy). */
  readonly test: Metrics;
  /** confusion[true][predicted], 0 malignant, 1 benign. */
  readonly confusion: ConfusionMatrix;
}

export interface BreastCancerResult {
  readonly sizes: { train: number; val: number; test: number };
  readonly classNames: readonly string[];
  /** The statistics the features were standardized with (training rows only). */
  readonly stats: FeatureStats;
  readonly runs: BreastCancerRunResult[];
  readonly tensorboardCommand: string | undefined;
}

/**
 * Binary classification of 569 breast tumours (30 features each) as malignant or benign: a seeded
 * split by class, features standardized with the training rows' statistics, a sigmoid output
 * trained with binary cross-entropy, binary accuracy on validation and test rows, and the test
 * confusion matrix.
 */
export async function main(options: BreastCancerOptions = {}): Promise<BreastCancerResult> {
  const print = options.print ?? ((line: string) => console.log(line));
  const seed = options.seed ?? 42;
  const epochs = options.maxEpochs ?? options.epochs ?? 50;
  const batchSize = options.batchSize ?? 32;
  seedEverything(seed);

  const table = await readLabelledCsv(options.csvPath ?? BREAST_CANCER_CSV);
  const [trainRows, valRows, testRows] = stratifiedSplit(table.labels, options.split ?? [0.6, 0.2, 0.2], seed) as [Int32Array, Int32Array, Int32Array];
  const stats = featureStats(table, trainRows); // training rows only
  const dataset = (rows: Int32Array): TensorDataset<TumourBatch> => {
    const { x, y } = standardizeRows(table, rows, stats);
    return TensorDataset.from([
      { data: x, shape: [rows.length, table.numFeatures] },
      { data: Float32Array.from(y), shape: [rows.length, 1] }, // binary targets as floats, one column
    ]) as TensorDataset<TumourBatch>;
  };
  const trainSet = dataset(trainRows);
  const valSet = dataset(valRows);
  const testSet = dataset(testRows);
  const counts = (rows: Int32Array) => table.classNames.map((_, c) => rows.filter((r) => table.labels[r] === c).length).join('/');
  print(
    `Breast cancer: ${table.rows} tumours, ${table.numFeatures} features, classes ${table.classNames.map((n, c) => `${c} ${n}`).join(', ')}; ` +
      `split by class with seed ${seed}: ${trainRows.length} training (${counts(trainRows)}), ${valRows.length} validation (${counts(valRows)}), ` +
      `${testRows.length} test rows (${counts(testRows)}). Features standardized with the training rows' mean and std.`,
  );

  const runs: BreastCancerRunResult[] = [];
  const logDir = options.logDir ?? 'flint_logs';
  let tensorboardCommand: string | undefined;
  try {
    for (const model of options.models ?? ['single', 'multi']) {
      const hidden = model === 'single' ? [] : [options.hidden ?? 16];
      const module = new BinaryClassifier({ numFeatures: table.numFeatures, hidden, learningRate: options.learningRate ?? 0.005 });
      const loggers: Logger[] = [];
      if (logDir !== false) {
        const tb = new TensorBoardLogger({ saveDir: logDir, name: 'breast-cancer' });
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
      const name = model === 'single' ? 'Logistic regression' : 'Multi-layer net';
      print(`\n${name} ${[table.numFeatures, ...hidden, 1].join(' -> ')} sigmoid (${params} parameters), ${epochs} epochs`);
      await trainer.fit(module, new DataLoader(trainSet, { batchSize, shuffle: true, seed }), new DataLoader(valSet, { batchSize: valSet.length }));
      const every = Math.max(1, Math.round(epochs / 5));
      for (const { epoch, metrics: m } of trainer.history) {
        if ((epoch + 1) % every !== 0 && epoch !== 0) continue;
        print(`  epoch ${String(epoch + 1).padStart(3)}: train loss ${fmt(m.train_loss)} acc ${pct(m.train_acc)} | val loss ${fmt(m.val_loss)} acc ${pct(m.val_acc)}`);
      }
      const testLoader = new DataLoader(testSet, { batchSize: testSet.length });
      const test = await trainer.test(module, testLoader);
      const confusion = await confusionMatrix(trainer, module, testLoader);
      const [[tn, fp], [fn, tp]] = confusion;
      print(`  test accuracy ${pct(test.test_acc)} (${tn + tp}/${testSet.length}), test loss ${fmt(test.test_loss)}`);
      print(
        `  test confusion (rows: true class, columns: predicted): ${table.classNames[0]} [${tn}, ${fp}], ${table.classNames[1]} [${fn}, ${tp}] ` +
          `(${fp} ${table.classNames[0]} ${fp === 1 ? 'tumour' : 'tumours'} called ${table.classNames[1]})`,
      );
      runs.push({ model, hidden, params, epochs: trainer.currentEpoch, runDir: loggers[0]?.logDir, history: trainer.history, test, confusion });
      tf.dispose(module.parameters());
    }
    if (tensorboardCommand !== undefined) print(`\nOpen the runs in TensorBoard:\n  ${tensorboardCommand}`);
  } finally {
    trainSet.dispose();
    valSet.dispose();
    testSet.dispose();
  }
  return {
    sizes: { train: trainRows.length, val: valRows.length, test: testRows.length },
    classNames: table.classNames,
    stats,
    runs,
    tensorboardCommand,
  };
}

/** Runs `trainer.predict` and counts rows by true class and predicted class (probability >= 0.5). */
async function confusionMatrix(trainer: Trainer, module: BinaryClassifier, loader: DataLoader<TumourBatch>): Promise<ConfusionMatrix> {
  const outputs = await trainer.predict(module, loader);
  const predicted: number[] = [];
  try {
    for (const out of outputs) predicted.push(...(await (out as tf.Tensor).data()));
  } finally {
    tf.dispose(outputs);
  }
  const truth: number[] = [];
  for await (const [x, y] of loader) {
    truth.push(...(await y.data()));
    tf.dispose([x, y]);
  }
  const m: ConfusionMatrix = [
    [0, 0],
    [0, 0],
  ];
  truth.forEach((t, i) => {
    m[t === 1 ? 1 : 0][predicted[i]! >= 0.5 ? 1 : 0] += 1;
  });
  return m;
}

function fmt(v: number | undefined): string {
  return (v ?? Number.NaN).toFixed(4);
}

function pct(v: number | undefined): string {
  return `${(100 * (v ?? Number.NaN)).toFixed(1)}%`;
}
