import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readLogDir } from '../../../packages/loggers/src/testing/event-reader.js';
import { describe, expect, it } from 'vitest';
import { main, makeToyData, orthonormalBasis, polynomialFeatures, PolynomialRegression, powerBasis } from './index.js';

describe('examples/overfitting main (small)', () => {
  it('the 7-parameter polynomial reaches ~0 training error and a much larger validation error than the line; both runs logged', async () => {
    const lines: string[] = [];
    const logDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-overfitting-'));
    try {
      const before = tf.memory().numTensors;
      const result = await main({ seed: 13, maxEpochs: 200, logDir, print: (l) => lines.push(l) });
      expect(tf.memory().numTensors).toBe(before);

      const [line, poly] = result.runs;
      expect([line.model, line.params, poly.model, poly.params]).toEqual(['linear', 2, 'polynomial', 7]);
      for (const run of result.runs) {
        expect(run.history).toHaveLength(200);
        for (const { metrics } of run.history) expect(Number.isFinite(metrics.train_mse) && Number.isFinite(metrics.val_mse)).toBe(true);
      }
      // the lesson: ~0 training error for the polynomial, far below the line's ...
      expect(poly.trainMse).toBeLessThan(0.01);
      expect(poly.trainMse).toBeLessThan(line.trainMse / 10);
      // ... and a much larger validation error: it fitted the noise
      expect(poly.valMse).toBeGreaterThan(3 * line.valMse);
      // the line generalizes: its validation error is near the noise variance (0.5^2)
      expect(line.valMse).toBeLessThan(0.5);

      // two versions under one TensorBoard name
      expect(result.runs.map((r) => path.relative(logDir, r.runDir!))).toEqual([path.join('overfitting', 'version_0'), path.join('overfitting', 'version_1')]);
      for (const run of result.runs) {
        // TensorBoard: train and validation curves of each quantity on one chart (sub-runs sharing a tag),
        // ending at the figures of the history
        const runs = readLogDir(path.dirname(run.runDir!)).runs;
        const version = path.basename(run.runDir!);
        for (const [sub, prefix] of [['train', 'train_'], ['validation', 'val_']] as const) {
          const scalars = runs[`${version}/${sub}`]!.scalars;
          expect(Object.keys(scalars).sort()).toEqual(['epoch_mse']);
          for (const tag of Object.keys(scalars)) {
            const points = scalars[tag]!.points;
            expect(points).toHaveLength(run.history.length);
            expect(points.at(-1)![1]).toBe(Math.fround(run.history.at(-1)!.metrics[`${prefix}${tag.slice('epoch_'.length)}`]!));
          }
        }
        const events = (await fs.readdir(run.runDir!)).filter((f) => f.includes('tfevents') && !f.endsWith('.flint-hparams'));
        expect(events).toHaveLength(1);
        expect((await fs.stat(path.join(run.runDir!, events[0]!))).size).toBeGreaterThan(1000);
      }
      expect(lines.some((l) => /^ {2}polynomial {8}7 /.test(l))).toBe(true);
      expect(lines.slice(-2)).toEqual([
        '\nBoth runs (train_mse, val_mse per epoch) in TensorBoard: linear in version_0, polynomial in version_1',
        `  tensorboard --logdir ${path.join(logDir, 'overfitting')}`,
      ]);
      expect(lines).toContain('The polynomial goes through the training points (error ~0) but its validation error is 10.4x the line\'s: it fitted the noise, not the line (overfitting).');
    } finally {
      await fs.rm(logDir, { recursive: true, force: true });
    }
  });
});

describe('the toy and the models', () => {
  it('makes the same points for the same seed, training x at least minGap apart', () => {
    const a = makeToyData({ seed: 3 });
    expect(makeToyData({ seed: 3 })).toEqual(a);
    expect(a.xTrain).toHaveLength(7);
    expect(a.xVal).toHaveLength(50);
    for (let i = 1; i < 7; i++) expect(a.xTrain[i]! - a.xTrain[i - 1]!).toBeGreaterThanOrEqual(0.15 - 1e-6);
  });

  it('has 2 and 7 parameters; orthonormal features are standardized x for degree 1, and span the same polynomials as the powers', () => {
    const { xTrain } = makeToyData({ seed: 3 });
    const line = new PolynomialRegression({ basis: orthonormalBasis(xTrain, 1), learningRate: 0.1 });
    const poly = new PolynomialRegression({ basis: orthonormalBasis(xTrain, 6), learningRate: 0.1 });
    expect(line.summaryData().totalParams).toBe(2);
    expect(poly.summaryData().totalParams).toBe(7);
    tf.dispose([...line.parameters(), ...poly.parameters()]);

    tf.tidy(() => {
      const x = tf.tensor2d(xTrain, [7, 1]);
      const n = xTrain.length;
      const mean = xTrain.reduce((a, b) => a + b, 0) / n;
      const std = Math.sqrt(xTrain.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
      const standardized = polynomialFeatures(x, orthonormalBasis(xTrain, 1)).dataSync();
      standardized.forEach((v, i) => expect(v).toBeCloseTo((xTrain[i]! - mean) / std, 4));
      // on the training points: mean 0, mean square 1, uncorrelated (F^T F / n = I)
      const f = polynomialFeatures(x, orthonormalBasis(xTrain, 6));
      const gram = (tf.div(tf.matMul(f, f, true, false), n) as tf.Tensor2D).arraySync();
      gram.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(i === j ? 1 : 0, 3)));
      (tf.mean(f, 0) as tf.Tensor1D).arraySync().forEach((m) => expect(m).toBeCloseTo(0, 4));
      expect(polynomialFeatures(tf.tensor2d([-0.5], [1, 1]), powerBasis(6)).arraySync()).toEqual([[-0.5, 0.25, -0.125, 0.0625, -0.03125, 0.015625]]);
    });
  });
});
