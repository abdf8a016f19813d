import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { main } from './index.js';

describe('examples/mnist main (small)', () => {
  it('trains both nets on real MNIST for one epoch and reports finite figures, without leaking tensors', async () => {
    const lines: string[] = [];
    const before = tf.memory().numTensors;
    const logDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-mnist-'));
    const results = await main({ maxEpochs: 1, trainLimit: 3000, testLimit: 1000, enableProgressBar: false, logDir, print: (l) => lines.push(l) });
    expect(tf.memory().numTensors).toBe(before);
    expect(results.map((r) => r.model)).toEqual(['single', 'multi']);
    for (const r of results) {
      expect(Number.isFinite(r.history[0]!.metrics.train_loss)).toBe(true);
      expect(r.test.test_acc).toBeGreaterThan(0.5); // chance is 0.1
      expect(r.epochs).toBe(1);
    }
    expect(results[0]!.params).toBe(7850);
    expect(results[1]!.params).toBe(784 * 256 + 256 + 256 * 10 + 10);
    expect(lines[0]).toBe('MNIST: 2700 training, 300 validation, 1000 test images; batch size 128.');
    expect(lines.some((l) => /^single: test accuracy \d+\.\d\d%/.test(l))).toBe(true);
    // one TensorBoard run per net, and the command that opens them
    expect(results.map((r) => path.relative(logDir, r.runDir!))).toEqual([path.join('mnist', 'version_0'), path.join('mnist', 'version_1')]);
    for (const r of results) {
      const files = await fs.readdir(r.runDir!);
      const events = files.filter((f) => f.includes('tfevents'));
      expect(events.length).toBeGreaterThanOrEqual(1); // fit and test each write a session
      expect((await fs.stat(path.join(r.runDir!, events[0]!))).size).toBeGreaterThan(200);
    }
    expect(lines.at(-1)).toBe(`\nOpen the runs in TensorBoard:\n  tensorboard --logdir ${path.join(logDir, 'mnist')}`);
    await fs.rm(logDir, { recursive: true, force: true });
  });
});
