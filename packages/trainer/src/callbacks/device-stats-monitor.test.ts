import * as tf from '@tensorflow/tfjs';
import { DataLoader, LightningModule, Linear, type OptimizersReturn } from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { DeviceStatsMonitor } from '@flint/callbacks';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../callbacks/src/test-utils/fake-trainer.js';
import { Trainer } from '../index.js';

const data = randomClassificationDataset({ n: 64, features: 4, classes: 2, seed: 2 });
afterAll(() => data.dispose());

/** Keeps one more tensor alive after every step: the monitor must see the count grow. */
class Hoarder extends LightningModule<BoringBatch> {
  layer = new Linear(4, 2);
  kept: tf.Tensor[] = [];
  trainingStep([x, y]: BoringBatch) {
    return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.layer.forward(x)) as tf.Scalar;
  }
  hoard = true;
  override onTrainBatchEnd = (): void => {
    if (this.hoard) this.kept.push(tf.keep(tf.zeros([256])));
  };
  configureOptimizers(): OptimizersReturn {
    return tf.train.sgd(0.1);
  }
}

describe('DeviceStatsMonitor', () => {
  it('logs tensors, bytes, RSS (and the wasm heap on wasm) at the start and end of each N-th batch of a fit', async () => {
    const logger = new MemoryLogger();
    const module = new Hoarder();
    const trainer = new Trainer({ logger, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 1, callbacks: [new DeviceStatsMonitor({ everyNSteps: 2 })] });
    await trainer.fit(module, new DataLoader(data, { batchSize: 8 }));
    const start = logger.series('DeviceStatsMonitor.onTrainBatchStart/num_tensors');
    const end = logger.series('DeviceStatsMonitor.onTrainBatchEnd/num_tensors');
    expect(start.map(([s]) => s)).toEqual([0, 2, 4, 6]);
    expect(end.map(([s]) => s)).toEqual([1, 3, 5, 7]);
    // Each step keeps one tensor of 1 KiB more: two steps apart, 2 more tensors and 2 KiB more (from
    // the second reading on: after the first step the trainer also holds the gradients, as torch's .grad).
    for (let i = 2; i < start.length; i++) expect(start[i]![1] - start[i - 1]![1]).toBe(2);
    const bytes = logger.series('DeviceStatsMonitor.onTrainBatchStart/num_bytes');
    for (let i = 2; i < bytes.length; i++) expect(bytes[i]![1] - bytes[i - 1]![1]).toBe(2 * 1024);
    const rss = logger.series('DeviceStatsMonitor.onTrainBatchEnd/rss_bytes');
    expect(rss).toHaveLength(4);
    rss.forEach(([, v]) => expect(v).toBeGreaterThan(10 * 2 ** 20));
    const heap = logger.series('DeviceStatsMonitor.onTrainBatchStart/wasm_heap_bytes');
    if (tf.getBackend() === 'wasm') heap.forEach(([, v]) => expect(v).toBeGreaterThanOrEqual(tf.memory().numBytes));
    else expect(heap).toEqual([]);
    tf.dispose(module.kept);
  });

  it('leaks nothing and rejects a bad everyNSteps', async () => {
    const module = new Hoarder();
    module.hoard = false;
    const trainer = new Trainer({ logger: new MemoryLogger(), enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 1, callbacks: [new DeviceStatsMonitor()] });
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16 })), 'fit');
    expect(() => new DeviceStatsMonitor({ everyNSteps: 0 })).toThrow("DeviceStatsMonitor option 'everyNSteps': must be a whole number >= 1 (received 0)");
  });
});
