import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, seedEverything, TensorDataset, type EpochRecord, type Logger } from '@flint/core';
import { TensorBoardLogger } from '@flint/loggers';
import { Trainer, type BackendName } from '@flint/trainer';
import { orthonormalBasis, PolynomialRegression, powerBasis, type PointBatch } from './model.js';
import { makeToyData, type ToyData } from './toy-data.js';

export { orthonormalBasis, PolynomialRegression, polynomialFeatures, powerBasis } from './model.js';
export type { PointBatch, PolynomialBasis, PolynomialRegressionOptions } from './model.js';
export { makeToyData, truth } from './toy-data.js';
export type { ToyData, ToyDataOptions } from './toy-data.js';

export interface OverfittingOptions {
  /** Seed of the points, the weights and the run. Default 13. */
  seed?: number;
  /** Degree of the large model. Default 6: 7 parameters, as many as there are training points. */
  degree?: number;
  /** Training points. Default 7. */
  trainPoints?: number;
  /** Validation points. Default 50. */
  valPoints?: number;
  /** Noise on y (standard deviation). Default 0.5. */
  noise?: number;
  /** Full-batch Adam steps (one per epoch). Default 300. */
  maxEpochs?: number;
  /** @deprecated Use `maxEpochs` (the Trainer's name). */
  epochs?: number;
  /** Adam's learning rate. Default 0.05. */
  learningRate?: number;
  /**
   * The polynomials' features: 'orthonormal' (default), orthonormal on the training points, or
   * 'power', the textbook x, x^2, .., x^6 (same model, far slower to train: see model.ts).
   */
  basis?: 'orthonormal' | 'power';
  backend?: BackendName;
  /** Where the TensorBoard runs go: `<logDir>/overfitting/version_N`, one per model. Default `flint_logs`; false writes nothing. */
  logDir?: string | false;
  /** Write lines here (default console.log). */
  print?: (line: string) => void;
}

export interface OverfittingRunResult {
  readonly model: 'linear' | 'polynomial';
  readonly params: number;
  /** Mean squared error on the training points after training. */
  readonly trainMse: number;
  /** Mean squared error on the validation points after training. */
  readonly valMse: number;
  /** The run's TensorBoard folder (undefined without logging). */
  readonly runDir: string | undefined;
  /** Per epoch: train_mse, and val_mse. */
  readonly history: readonly EpochRecord[];
}

export interface OverfittingResult {
  readonly data: ToyData;
  readonly runs: [OverfittingRunResult, OverfittingRunResult];
  readonly tensorboardCommand: string | undefined;
}

/**
 * The lesson's overfitting toy: 7 noisy points of a line, fitted by a 2-parameter line and by a
 * 7-parameter polynomial (degree 6). The polynomial has as many parameters as there are points: it
 * goes through every one of them (training error ~0) and swings between them, so its error on new
 * points of the same line is much larger than the line's. Both runs are logged to one TensorBoard
 * experiment.
 */
export async function main(options: OverfittingOptions = {}): Promise<OverfittingResult> {
  const print = options.print ?? ((line: string) => console.log(line));
  const seed = options.seed ?? 13;
  const epochs = options.maxEpochs ?? options.epochs ?? 300;
  seedEverything(seed);
  const data = makeToyData({
    seed,
    ...(options.trainPoints === undefined ? {} : { trainPoints: options.trainPoints }),
    ...(options.valPoints === undefined ? {} : { valPoints: options.valPoints }),
    ...(options.noise === undefined ? {} : { noise: options.noise }),
  });
  const points = (x: Float32Array, y: Float32Array) =>
    TensorDataset.from([
      { data: x, shape: [x.length, 1] },
      { data: y, shape: [y.length, 1] },
    ]) as TensorDataset<PointBatch>;
  const trainSet = points(data.xTrain, data.yTrain);
  const valSet = points(data.xVal, data.yVal);
  print(`${data.xTrain.length} training and ${data.xVal.length} validation points of y = 2x + 1 plus noise (seed ${seed}); training points:`);
  print(`  ${[...data.xTrain].map((x, i) => `(${x.toFixed(2)}, ${data.yTrain[i]!.toFixed(2)})`).join(' ')}`);

  const logDir = options.logDir ?? 'flint_logs';
  let tensorboardCommand: string | undefined;
  const runs: OverfittingRunResult[] = [];
  try {
    for (const model of ['linear', 'polynomial'] as const) {
      const degree = model === 'linear' ? 1 : (options.degree ?? 6);
      const basis = options.basis === 'power' ? powerBasis(degree) : orthonormalBasis(data.xTrain, degree);
      const module = new PolynomialRegression({ basis, learningRate: options.learningRate ?? 0.05 });
      const loggers: Logger[] = [];
      if (logDir !== false) {
        const tb = new TensorBoardLogger({ saveDir: logDir, name: 'overfitting' });
        tensorboardCommand = tb.tensorboardCommand;
        loggers.push(tb);
      }
      const trainer = new Trainer({
        maxEpochs: epochs,
        logger: loggers,
        numSanityValSteps: 0,
        enableCheckpointing: false,
        enableModelSummary: false,
        enableProgressBar: false,
        ...(options.backend === undefined ? {} : { backend: options.backend }),
      });
      // Full batch: every epoch is one gradient step on all the training points.
      await trainer.fit(module, new DataLoader(trainSet, { batchSize: trainSet.length }), new DataLoader(valSet, { batchSize: valSet.length }));
      const trainMse = mse(module, trainSet);
      const valMse = mse(module, valSet);
      runs.push({ model, params: degree + 1, trainMse, valMse, runDir: loggers[0]?.logDir, history: trainer.history });
      tf.dispose(module.parameters());
    }
  } finally {
    trainSet.dispose();
    valSet.dispose();
  }

  print(`\nAfter ${epochs} full-batch Adam steps (mean squared errors):`);
  print(`  model        params   train error   validation error`);
  for (const r of runs) {
    print(`  ${r.model.padEnd(12)} ${String(r.params).padStart(6)}   ${r.trainMse.toFixed(4).padStart(11)}   ${r.valMse.toFixed(4).padStart(16)}`);
  }
  const [line, poly] = runs as [OverfittingRunResult, OverfittingRunResult];
  const valRatio = (poly.valMse / line.valMse).toFixed(1);
  if (poly.trainMse < line.trainMse / 10 && poly.valMse > 2 * line.valMse) {
    print(
      `The polynomial goes through the training points (error ~0) but its validation error is ${valRatio}x the line's: ` +
        'it fitted the noise, not the line (overfitting).',
    );
  } else {
    print(
      `Training error: the polynomial's is ${(poly.trainMse / line.trainMse).toFixed(3)}x the line's; validation error: ${valRatio}x. ` +
        'No clear overfitting with these options (too few steps for the polynomial, or points that leave it little room to swing).',
    );
  }
  if (tensorboardCommand !== undefined) {
    print(`\nBoth runs (train_mse, val_mse per epoch) in TensorBoard: ${runs.map((r) => `${r.model} in ${path.basename(r.runDir!)}`).join(', ')}`);
    print(`  ${tensorboardCommand}`);
  }
  return { data, runs: [line, poly], tensorboardCommand };
}

/** Mean squared error of the module's predictions on a whole data set, as a number. */
function mse(module: PolynomialRegression, dataset: TensorDataset<PointBatch>): number {
  const [x, y] = dataset.getBatch({ start: 0, end: dataset.length });
  try {
    return tf.tidy(() => tf.losses.meanSquaredError(y, module.forward(x)).dataSync()[0]!);
  } finally {
    tf.dispose([x, y]);
  }
}
