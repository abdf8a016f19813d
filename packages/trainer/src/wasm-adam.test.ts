import * as tf from '@tensorflow/tfjs';
import { installWasmImprovements, uninstallWasmImprovements } from '@flint/backends';
import { adam, crossEntropy, DataLoader, LightningModule, Linear, seedEverything, Sequential } from '@flint/core';
import { expectNoLeak, randomClassificationDataset, worstRelativeDifference, type BoringBatch } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer } from './trainer.js';

// FlintAdam's fused update on wasm (APPLY_ADAM_KERNEL) through a real fit: the same training as core's tfjs-ops Adam.
// The kernel's own tests (100 steps, moments, checkpoints, shape errors): packages/backends/src/wasm/adam-kernel.test.ts.

beforeAll(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  await installWasmImprovements({ threads: false });
  await tf.setBackend('wasm');
});
afterAll(async () => {
  await uninstallWasmImprovements();
});

class Mlp extends LightningModule<BoringBatch> {
  net = new Sequential(new Linear(6, 32, { activation: 'relu' }), new Linear(32, 3));
  constructor(private readonly native: boolean) {
    super();
  }
  override forward(x: tf.Tensor) {
    return this.net.forward(x);
  }
  trainingStep([x, y]: BoringBatch) {
    const loss = crossEntropy(this.forward(x), y) as tf.Scalar;
    this.log('train_loss', loss, { onEpoch: true });
    return loss;
  }
  configureOptimizers() {
    return adam({ learningRate: 0.01, native: this.native });
  }
}

describe('FlintAdam on wasm through a Trainer fit', () => {
  it('3 epochs with the fused update give the weights and losses of the tfjs-ops update, and leak nothing', async () => {
    const data = randomClassificationDataset({ n: 96, features: 6, classes: 3, seed: 21 });
    const fit = async (native: boolean) => {
      seedEverything(5);
      const module = new Mlp(native);
      const trainer = new Trainer({ logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'wasm', maxEpochs: 3 });
      await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16, shuffle: true, seed: 3 })), `fit (native: ${native})`);
      const weights = module.namedParameters().map((p) => p.variable.dataSync() as Float32Array);
      const losses = trainer.history.map((r) => r.metrics['train_loss']!);
      module.parameters().forEach((p) => p.dispose());
      return { weights, losses };
    };
    const fused = await fit(true);
    const ops = await fit(false);
    data.dispose();
    expect(worstRelativeDifference(ops.weights, fused.weights)).toBeLessThan(1e-5);
    expect(fused.losses).toHaveLength(3);
    fused.losses.forEach((l, i) => expect(l).toBeCloseTo(ops.losses[i]!, 5));
    expect(fused.losses[2]!).toBeLessThan(fused.losses[0]!);
  });
});
