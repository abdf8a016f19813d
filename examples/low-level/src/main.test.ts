import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { leastSquares, main, makeLineData, ManualLineRegression } from './index.js';

describe('examples/low-level main (small)', () => {
  it('fits y = 2x + 0.9 by hand, as a manually optimized LightningModule and with mixed APIs, without leaking tensors', async () => {
    const lines: string[] = [];
    const before = tf.memory().numTensors;
    const result = await main({ seed: 42, steps: 200, maxEpochs: 15, print: (l) => lines.push(l) });
    expect(tf.memory().numTensors).toBe(before);

    expect(result.derivative).toBe(8);
    // gradient descent by hand lands on the closed-form least-squares line
    expect(result.handWritten.slope).toBeCloseTo(result.leastSquares.slope, 3);
    expect(result.handWritten.intercept).toBeCloseTo(result.leastSquares.intercept, 3);
    expect(result.handWritten.curve[0]![1]).toBeGreaterThan(10 * result.handWritten.loss); // the loss fell
    for (const fit of [result.handWritten, result.manual, result.mixed]) {
      expect(Number.isFinite(fit.loss)).toBe(true);
      expect(Math.abs(fit.slope - 2)).toBeLessThan(0.15);
      expect(Math.abs(fit.intercept - 0.9)).toBeLessThan(0.2);
      expect(Math.abs(fit.slope - result.leastSquares.slope)).toBeLessThan(0.1);
      expect(Math.abs(fit.intercept - result.leastSquares.intercept)).toBeLessThan(0.1);
    }
    // tfjs layers and the raw variables of the custom layer, found in one module
    expect(result.mixed.parameterNames).toEqual([
      'net.layers.0.kernel [1x4]',
      'net.layers.0.bias [4]',
      'net.layers.1.scale [4]',
      'net.layers.1.shift [4]',
      'net.layers.2.kernel [4x1]',
      'net.layers.2.bias [1]',
    ]);
    expect(lines.filter((l) => l.startsWith('  learned slope'))).toHaveLength(3);
  });

  it('makes the same noisy line for the same seed', () => {
    const a = makeLineData(1);
    expect(makeLineData(1)).toEqual(a);
    expect(makeLineData(2).y).not.toEqual(a.y);
    expect(a.x[0]).toBe(0);
    expect(a.x[119]).toBe(3);
    const { slope, intercept } = leastSquares(a);
    expect(Math.abs(slope - 2)).toBeLessThan(0.2);
    expect(Math.abs(intercept - 0.9)).toBeLessThan(0.3);
  });

  it('optimizes manually: the trainer does not step the optimizer for it', () => {
    const module = new ManualLineRegression(0.1);
    expect(module.automaticOptimization).toBe(false);
    expect(module.parameters()).toHaveLength(2);
    tf.dispose(module.parameters());
  });
});
