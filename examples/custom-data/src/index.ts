import * as tf from '@tensorflow/tfjs';
import { seedEverything, type EpochRecord, type Logger, type Metrics } from '@flint/core';
import { TensorBoardLogger } from '@flint/loggers';
import { Trainer, type BackendName } from '@flint/trainer';
import { TwoClassClassifier } from './model.js';
import { SyntheticClassificationData } from './synthetic-data-module.js';

export { makeClassification } from './make-classification.js';
export type { ClassificationData, MakeClassificationOptions } from './make-classification.js';
export { SyntheticClassificationData } from './synthetic-data-module.js';
export type { ClassificationBatch, SyntheticDataOptions } from './synthetic-data-module.js';
export { TwoClassClassifier } from './model.js';

export interface CustomDataOptions {
  /** One run per class separation: larger is easier. Default [2, 1, 0.5]. */
  classSeps?: number[];
  /** Rows of each data set. Default 1000. */
  samples?: number;
  /** Default 2 informative, 2 redundant, 1 useless feature. */
  informative?: number;
  redundant?: number;
  useless?: number;
  /** Label noise. Default 0.01. */
  flipY?: number;
  /** Epochs per run. Default 20. */
  maxEpochs?: number;
  /** @deprecated Use `maxEpochs` (the Trainer's name). */
  epochs?: number;
  batchSize?: number;
  /** Adam's learning rate. Default 0.01. */
  learningRate?: number;
  /** Seed of the data, the weights and the shuffles. Default 7. */
  seed?: number;
  backend?: BackendName;
  /** Where the TensorBoard runs go: `<logDir>/custom-data/version_N`, one per class separation. Default `flint_logs`; false writes nothing. */
  logDir?: string | false;
  enableProgressBar?: boolean;
  /** Write lines here (default console.log). */
  print?: (line: string) => void;
}

export interface CustomDataRunResult {
  readonly classSep: number;
  readonly sizes: { train: number; val: number; test: number };
  readonly history: readonly EpochRecord[];
  readonly test: Metrics;
  readonly runDir: string | undefined;
}

export interface CustomDataResult {
  readonly runs: CustomDataRunResult[];
  readonly tensorboardCommand: string | undefined;
}

/**
 * Trains the same small classifier on synthetic two-class data (like scikit-learn's
 * make_classification) served by a DataModule, once per class separation, and prints the test
 * accuracy of each: the closer the classes, the harder the task.
 */
export async function main(options: CustomDataOptions = {}): Promise<CustomDataResult> {
  const print = options.print ?? ((line: string) => console.log(line));
  const seed = options.seed ?? 7;
  const epochs = options.maxEpochs ?? options.epochs ?? 20;
  const logDir = options.logDir ?? 'flint_logs';
  let tensorboardCommand: string | undefined;
  const runs: CustomDataRunResult[] = [];

  for (const classSep of options.classSeps ?? [2, 1, 0.5]) {
    seedEverything(seed);
    const data = new SyntheticClassificationData({
      samples: options.samples ?? 1000,
      informative: options.informative ?? 2,
      redundant: options.redundant ?? 2,
      useless: options.useless ?? 1,
      flipY: options.flipY ?? 0.01,
      classSep,
      seed,
      batchSize: options.batchSize ?? 32,
    });
    // The model needs the number of features: set the data up first (setup builds once, so the
    // trainer's own setup('fit') call reuses it), as in Lightning: dm.setup('fit'); Model(dm.numFeatures).
    data.prepareData();
    data.setup('fit');
    try {
      const module = new TwoClassClassifier(data.numFeatures, options.learningRate ?? 0.01);
      module.saveHyperparameters({ classSep }); // shown beside the metrics in TensorBoard's HParams tab
      const loggers: Logger[] = [];
      if (logDir !== false) {
        const tb = new TensorBoardLogger({ saveDir: logDir, name: 'custom-data' });
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
      // The trainer calls setup(stage) before and teardown(stage) after each of fit and test:
      // the data sets are built for each and freed after it.
      await trainer.fit(module, data);
      const test = await trainer.test(module, data);
      const last = trainer.history.at(-1)?.metrics ?? {};
      data.setup('test');
      const sizes = data.sizes;
      runs.push({ classSep, sizes, history: trainer.history, test, runDir: loggers[0]?.logDir });
      print(
        `classSep ${classSep.toFixed(2)}: ${sizes.train}/${sizes.val}/${sizes.test} rows, ${data.numFeatures} features; after ${trainer.currentEpoch} epochs ` +
          `train loss ${(last.train_loss ?? Number.NaN).toFixed(4)}, val accuracy ${pct(last.val_acc)}, test accuracy ${pct(test.test_acc)}`,
      );
      tf.dispose(module.parameters());
    } finally {
      // Frees what the sizes read above built again (and the data sets, if fit failed).
      data.teardown('fit');
    }
  }
  if (tensorboardCommand !== undefined) print(`\nOpen the runs in TensorBoard:\n  ${tensorboardCommand}`);
  return { runs, tensorboardCommand };
}

function pct(v: number | undefined): string {
  return `${(100 * (v ?? Number.NaN)).toFixed(1)}%`;
}
