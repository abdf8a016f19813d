import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { main } from './index.js';

describe('examples/mnist main (small)', () => {
  it('trains both nets on real MNIST for one epoch and reports finite figures, without leaking tensors', async () => {
    const lines: string[] = [];
    const before = tf.memory().numTensors;
    const results = await main({ epochs: 1, trainLimit: 3000, testLimit: 1000, enableProgressBar: false, print: (l) => lines.push(l) });
    expect(tf.memory().numTensors).toBe(before);
    expect(results.map((r) => r.model)).toEqual(['single', 'multi']);
    for (const r of results) {
      expect(Number.isFinite(r.history[0]!.metrics.train_loss_epoch)).toBe(true);
      expect(r.test.test_acc).toBeGreaterThan(0.5); // chance is 0.1
      expect(r.epochs).toBe(1);
    }
    expect(results[0]!.params).toBe(7850);
    expect(results[1]!.params).toBe(784 * 256 + 256 + 256 * 10 + 10);
    expect(lines[0]).toBe('MNIST: 2700 training, 300 validation, 1000 test images; batch size 128.');
    expect(lines.some((l) => /^single: test accuracy \d+\.\d\d%/.test(l))).toBe(true);
  });
});
