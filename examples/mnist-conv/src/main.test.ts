import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { main } from './index.js';

describe('examples/mnist-conv main (small)', () => {
  it('trains the conv net on real MNIST for one epoch and reports finite figures, without leaking tensors', async () => {
    const lines: string[] = [];
    const before = tf.memory().numTensors;
    const logDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-mnist-conv-'));
    const r = await main({ maxEpochs: 1, trainLimit: 1500, testLimit: 500, enableProgressBar: false, logDir, print: (l) => lines.push(l) });
    expect(tf.memory().numTensors).toBe(before);
    expect(Number.isFinite(r.history[0]!.metrics.train_loss)).toBe(true);
    expect(r.test.test_acc).toBeGreaterThan(0.25); // chance is 0.1
    expect(r.epochs).toBe(1);
    // Adam follows the one-cycle schedule over the run's 11 steps: from 0.01 / 25 up to about 0.01 (the warm-up ends
    // at step 0.3 · 11 - 1 = 2.3, as PyTorch counts, so step 3 trains nearest the peak), then down towards 0.01 / 25 / 1e4
    expect(r.learningRates).toHaveLength(11);
    expect(r.learningRates[0]).toBeCloseTo(0.01 / 25, 8);
    expect(Math.max(...r.learningRates)).toBeCloseTo(0.01, 3);
    expect(r.learningRates.indexOf(Math.max(...r.learningRates))).toBe(3);
    expect(r.learningRates.at(-1)).toBeLessThan(1e-5);
    // conv 1->16 and 16->32 (3x3, bias), two BatchNorm2d (weight, bias; running mean, var and count), 1568->128->10
    expect(r.params).toBe(160 + 2 * 16 + (2 * 16 + 1) + 4640 + 2 * 32 + (2 * 32 + 1) + 1568 * 128 + 128 + 1290);
    expect(lines[0]).toBe('MNIST: 1350 training, 150 validation, 500 test images; batch size 128; 207,116 parameters.');
    expect(lines.at(-1)).toMatch(/^conv net: test accuracy \d+\.\d\d%, validation accuracy \d+\.\d\d% after 1 epochs in /);
    const files = await fs.readdir(r.runDir!);
    const events = files.find((f) => f.includes('tfevents'));
    expect(events).toBeDefined();
    expect((await fs.readFile(path.join(r.runDir!, events!))).includes('lr-FlintAdam')).toBe(true); // the rate is a TensorBoard scalar
    await fs.rm(logDir, { recursive: true, force: true });
  });
});
