import * as tf from '@tensorflow/tfjs';
import { DataLoader, seedEverything, TensorDataset, type LightningModule } from '@flint/core';
import { Trainer, type BackendName } from '@flint/trainer';
import { derivativeAt3, fitByHand, type FitResult } from './hand-written.js';
import { leastSquares, makeLineData, type LineData } from './line-data.js';
import { lineOf, ManualLineRegression, MixedLineRegression, type LineBatch } from './modules.js';

export { derivativeAt3, fitByHand } from './hand-written.js';
export type { FitResult } from './hand-written.js';
export { leastSquares, makeLineData } from './line-data.js';
export type { LineData } from './line-data.js';
export { lineOf, ManualLineRegression, MixedLineRegression, ScaleShift } from './modules.js';
export type { LineBatch } from './modules.js';

export interface LowLevelOptions {
  /** Seed of the noise, the weights and the shuffles. Default 42. */
  seed?: number;
  /** Points on the line. Default 120. */
  points?: number;
  /** Gradient-descent steps of part 1. Default 300. */
  steps?: number;
  /** Epochs of parts 2 and 3 (mini-batches of 20 points: 6 steps per epoch). Default 50. */
  maxEpochs?: number;
  /** @deprecated Use `maxEpochs` (the Trainer's name). */
  epochs?: number;
  backend?: BackendName;
  /** Write lines here (default console.log). */
  print?: (line: string) => void;
}

export interface Line {
  readonly slope: number;
  readonly intercept: number;
}

export interface LowLevelResult {
  readonly data: LineData;
  /** d/dx (x^2 + 2x) at x = 3, by tf.grad. */
  readonly derivative: number;
  /** The closed-form least-squares line: the best any of the three can do. */
  readonly leastSquares: Line;
  /** Part 1: hand-written gradient descent. */
  readonly handWritten: FitResult;
  /** Part 2: LightningModule with manual optimization. */
  readonly manual: Line & { readonly loss: number };
  /** Part 3: tfjs layers and a raw-variable layer in one module. */
  readonly mixed: Line & { readonly loss: number; readonly parameterNames: string[] };
}

/**
 * Tensors and autograd first, then the framework: fits y = 2x + 0.9 (plus noise) three ways and
 * prints the slope and intercept each one learned.
 */
export async function main(options: LowLevelOptions = {}): Promise<LowLevelResult> {
  const print = options.print ?? ((line: string) => console.log(line));
  const seed = options.seed ?? 42;
  const epochs = options.maxEpochs ?? options.epochs ?? 50;
  seedEverything(seed);
  const data = makeLineData(seed, options.points ?? 120);
  const best = leastSquares(data);
  const show = (l: Line) => `slope ${l.slope.toFixed(3)}, intercept ${l.intercept.toFixed(3)}`;
  print(`${data.x.length} points of y = 2x + 0.9 plus noise (seed ${seed}); least squares in closed form: ${show(best)}.`);

  const derivative = derivativeAt3();
  print(`\nAutograd: tf.grad(x => x^2 + 2x) at x = 3 is ${derivative} (2x + 2).`);

  print('\n1. By hand: tf.variable, tf.variableGrads, and our own update w <- w - lr * dL/dw');
  const handWritten = fitByHand(data, { steps: options.steps ?? 300, learningRate: 0.1 });
  for (const [step, loss] of handWritten.curve) print(`  step ${String(step).padStart(4)}: loss ${loss.toFixed(4)}`);
  print(`  learned ${show(handWritten)} (loss ${handWritten.loss.toFixed(4)})`);

  const dataset = TensorDataset.from([
    { data: data.x, shape: [data.x.length, 1] },
    { data: data.y, shape: [data.y.length, 1] },
  ]) as TensorDataset<LineBatch>;
  const fit = async (module: LightningModule<LineBatch>): Promise<number> => {
    const trainer = new Trainer({
      maxEpochs: epochs,
      logger: false,
      enableCheckpointing: false,
      enableModelSummary: false,
      enableProgressBar: false,
      ...(options.backend === undefined ? {} : { backend: options.backend }),
    });
    await trainer.fit(module, new DataLoader(dataset, { batchSize: 20, shuffle: true, seed }));
    return trainer.history.at(-1)?.metrics.train_loss ?? Number.NaN;
  };

  try {
    print('\n2. A LightningModule with manual optimization: automaticOptimization = false, this.optimizers(), this.manualBackward(), optimizer.step()');
    const manualModule = new ManualLineRegression(0.05);
    const manualLoss = await fit(manualModule);
    const manual = { ...lineOf(manualModule), loss: manualLoss };
    tf.dispose(manualModule.parameters());
    print(`  learned ${show(manual)} (last epoch's mean loss ${manualLoss.toFixed(4)})`);

    print('\n3. Both APIs together: tf.layers.dense, a custom layer of raw tf.Variables, tf.layers.dense, in one Sequential');
    const mixedModule = new MixedLineRegression(0.02);
    const mixedLoss = await fit(mixedModule);
    const parameterNames = mixedModule.namedParameters().map((p) => `${p.name} [${p.variable.shape.join('x')}]`);
    const mixed = { ...lineOf(mixedModule), loss: mixedLoss, parameterNames };
    tf.dispose(mixedModule.parameters());
    print(`  parameters: ${parameterNames.join(', ')}`);
    print(`  learned ${show(mixed)} (last epoch's mean loss ${mixedLoss.toFixed(4)}), read off the net as f(0) and f(1) - f(0)`);
    return { data, derivative, leastSquares: best, handWritten, manual, mixed };
  } finally {
    dataset.dispose();
  }
}
