import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { BatchNorm1d, Callback, DataLoader, getLearningRate, LightningModule, Linear, seedEverything, type OptimizersReturn, type TrainerContext } from '@flint/core';
import { expectNoLeak, type OraclePython } from '@flint/core/testing';
import { StochasticWeightAveraging } from '@flint/callbacks';
import { beforeAll, describe, expect, it } from 'vitest';
import { lightningPython, runPython } from '../testing/lightning-oracle.js';
import { Trainer, type TrainerOptions } from '../index.js';
import { regressionData, regressionProblem, Regressor, weightsOf } from '../testing/regression.js';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' };
const oracle = fileURLToPath(new URL('./lightning-callbacks-oracle.py', import.meta.url));

class EpochLrs extends Callback {
  readonly lrs: number[] = [];
  readonly weights: Array<Record<string, number[]>> = [];
  override onTrainEpochStart(trainer: TrainerContext, module: LightningModule): void {
    this.lrs.push(getLearningRate(trainer.optimizers[0]!.optimizer));
    this.weights.push(weightsOf(module));
  }
}

let venv: OraclePython = { skipReason: 'not looked for yet' };
beforeAll(async () => {
  venv = await lightningPython('StochasticWeightAveraging oracle test');
}, 20 * 60_000);

describe('StochasticWeightAveraging', () => {
  it('averages the weights at the start of epochs swaStart..last, anneals the lr to swaLrs, ends with the average; no leaks', async () => {
    seedEverything(4);
    const module = new Regressor(0.05);
    const seen = new EpochLrs();
    const ds = regressionData(regressionProblem());
    const trainer = new Trainer({ ...quiet, maxEpochs: 6, callbacks: [new StochasticWeightAveraging({ swaLrs: 0.01, swaEpochStart: 3, annealingEpochs: 2, annealingStrategy: 'linear' }), seen] });
    await expectNoLeak(() => trainer.fit(module, new DataLoader(ds, { batchSize: 4 })), 'fit');
    ds.dispose();
    // Epochs 0-2 at 0.05; the schedule starts at epoch 2 (swaEpochStart 3 is 1-based): 0.05, then linear to 0.01 over 2 epochs.
    seen.lrs.forEach((lr, i) => expect(lr).toBeCloseTo([0.05, 0.05, 0.05, 0.03, 0.01, 0.01][i]!, 7));
    // The final weights are the mean of the weights at the start of epochs 2..5.
    const final = weightsOf(module);
    for (const name of Object.keys(final)) {
      final[name]!.forEach((v, j) => expect(v).toBeCloseTo(seen.weights.slice(2).reduce((a, w) => a + w[name]![j]!, 0) / 4, 5));
    }
  });

  for (const strategy of ['cos', 'linear'] as const) {
    it(`${strategy}: gives Lightning's learning rates per epoch and averaged weights on the same problem`, async (ctx) => {
      if (venv.python === undefined) {
        ctx.skip(venv.skipReason);
        return;
      }
      const p = regressionProblem();
      seedEverything(5);
      const module = new Regressor(0.05);
      const swa = { swaLrs: 0.01, swaEpochStart: 0.5, annealingEpochs: 3, annealingStrategy: strategy };
      const spec = { features: 3, outputs: 2, ...p, weights: weightsOf(module), lr: 0.05, batchSize: 4, maxEpochs: 8, callback: { name: 'StochasticWeightAveraging', ...swa } };
      const lightning = await runPython<{ lrs: number[]; weights: Record<string, number[]> }>(venv.python, oracle, spec);
      const seen = new EpochLrs();
      const ds = regressionData(p);
      await new Trainer({ ...quiet, maxEpochs: 8, callbacks: [new StochasticWeightAveraging(swa), seen] }).fit(module, new DataLoader(ds, { batchSize: 4 }));
      ds.dispose();
      expect(seen.lrs).toHaveLength(lightning.lrs.length);
      seen.lrs.forEach((lr, i) => expect(lr).toBeCloseTo(lightning.lrs[i]!, 7));
      const ours = weightsOf(module);
      for (const [name, values] of Object.entries(lightning.weights)) values.forEach((v, i) => expect(ours[name]![i]!).toBeCloseTo(v, 5));
    }, 300_000);
  }

  it('recomputes BatchNorm running statistics for the averaged weights over one pass of the training data', async () => {
    type Batch = [tf.Tensor2D, tf.Tensor2D];
    class WithBn extends LightningModule<Batch> {
      readonly fc = new Linear(3, 4);
      readonly bn = new BatchNorm1d(4);
      readonly out = new Linear(4, 2);
      trainingStep([x, y]: Batch): tf.Scalar {
        return tf.losses.meanSquaredError(y, this.out.forward(this.bn.forward(this.fc.forward(x)))) as tf.Scalar;
      }
      configureOptimizers(): OptimizersReturn {
        return tf.train.sgd(0.05);
      }
    }
    seedEverything(6);
    const module = new WithBn();
    const p = regressionProblem();
    const ds = regressionData(p);
    await expectNoLeak(
      () => new Trainer({ ...quiet, maxEpochs: 4, callbacks: [new StochasticWeightAveraging({ swaLrs: 0.01, swaEpochStart: 2 })] }).fit(module, new DataLoader(ds, { batchSize: 11 })),
      'fit',
    );
    // Two batches of 11 rows: the running mean is the average of the two batch means of fc(x) with the final weights.
    const [m0, m1, v0, v1] = tf.tidy(() => {
      const h = module.fc.forward(tf.tensor2d(p.x, [22, 3]));
      const a = tf.moments(h.slice([0, 0], [11, 4]), 0);
      const b = tf.moments(h.slice([11, 0], [11, 4]), 0);
      return [a.mean, b.mean, a.variance, b.variance].map((t) => Array.from(t.dataSync()));
    });
    const mean = Array.from(module.bn.runningMean!.dataSync());
    const variance = Array.from(module.bn.runningVar!.dataSync());
    mean.forEach((v, j) => expect(v).toBeCloseTo((m0![j]! + m1![j]!) / 2, 4));
    variance.forEach((v, j) => expect(v).toBeCloseTo(((v0![j]! + v1![j]!) / 2) * (11 / 10), 4));
    expect(module.bn.momentum).toBe(0.1);
    ds.dispose();
  });

  it('rejects bad options with what would be valid', () => {
    expect(() => new StochasticWeightAveraging({ swaLrs: 0 })).toThrow("StochasticWeightAveraging option 'swaLrs'");
    expect(() => new StochasticWeightAveraging({ swaLrs: 0.1, swaEpochStart: 2.5 })).toThrow(
      "StochasticWeightAveraging option 'swaEpochStart': must be a whole number >= 1 or a fraction in [0, 1) (received 2.5)",
    );
  });
});
