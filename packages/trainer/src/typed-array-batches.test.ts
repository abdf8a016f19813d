import * as tf from '@tensorflow/tfjs';
import { adam, crossEntropy, DataLoader, LightningModule, Linear } from '@flint/core';
import { expectNoLeak } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeNativeBackend } from '@flint/backends';
import { Trainer, type BackendName } from './index.js';

/**
 * Batches of typed-array rows reach trainingStep without a fresh array of their own on wasm and on
 * native (a view of the caller's array, or a staging array reused from batch to batch): through a
 * real fit, every batch holds the rows the loader chose, and a batch the module keeps (a clone)
 * holds its values after later batches and after the caller changes the array. That a batch never
 * shares memory with the arrays is tested on the data set itself (tensor-dataset.test.ts).
 */
const ROWS = 40;

type Batch = [tf.Tensor2D, tf.Tensor1D];

class Recorder extends LightningModule<Batch> {
  readonly fc = new Linear(3, 2);
  /** Per step, the first feature of each row, and the labels. */
  readonly seen: { ids: number[]; labels: number[] }[] = [];
  kept: { x: tf.Tensor; values: number[] } | undefined;
  trainingStep([x, y]: Batch) {
    const rows = x.arraySync();
    this.seen.push({ ids: rows.map((r) => r[0]!), labels: Array.from(y.dataSync()) });
    for (const r of rows) expect(r).toEqual([r[0], r[0]! + 0.5, -r[0]!]);
    if (this.kept === undefined) this.kept = { x: tf.keep(x.clone()), values: Array.from(x.dataSync()) };
    return crossEntropy(this.fc.forward(x), y) as tf.Scalar;
  }
  configureOptimizers() {
    return adam({ learningRate: 0.01 });
  }
}

const suiteBackend = process.env.FLINT_BACKEND ?? 'wasm';
let backends: BackendName[] = ['cpu', 'wasm'];
beforeAll(async () => {
  if ((await probeNativeBackend()).ok) backends = [...backends, 'tensorflow'];
});
afterAll(async () => {
  await tf.setBackend(suiteBackend);
});

describe('batches of typed-array rows through fit', () => {
  it('hold the rows the loader chose, shuffled or in order, on every backend; a kept batch keeps its values', async () => {
    for (const backend of backends) {
      for (const shuffle of [false, true]) {
        const x = new Float32Array(ROWS * 3);
        for (let i = 0; i < ROWS; i++) x.set([i, i + 0.5, -i], i * 3);
        // Labels as bytes converted to int32: the rows go through the column's staging array.
        const y = Uint8Array.from({ length: ROWS }, (_, i) => i % 2);
        const loader = new DataLoader([{ data: x, shape: [ROWS, 3] }, { data: y, shape: [ROWS], dtype: 'int32' }], { batchSize: 8, shuffle, seed: 7 });
        const module = new Recorder();
        const trainer = new Trainer({ logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend, maxEpochs: 2 });
        await expectNoLeak(async () => {
          await trainer.fit(module, loader);
          const what = `${backend}, shuffle ${shuffle}`;
          expect(module.seen, what).toHaveLength(10);
          for (let epoch = 0; epoch < 2; epoch++) {
            const ids = module.seen.slice(epoch * 5, epoch * 5 + 5).flatMap((s) => s.ids);
            expect([...ids].sort((a, b) => a - b), what).toEqual(Array.from({ length: ROWS }, (_, i) => i));
            if (!shuffle) expect(ids, what).toEqual(Array.from({ length: ROWS }, (_, i) => i));
          }
          for (const s of module.seen) expect(s.labels, what).toEqual(s.ids.map((i) => i % 2));
          // The first batch, kept by the module: later batches and a change to the caller's array do not reach it.
          x.fill(-1);
          const kept = module.kept!;
          expect(Array.from(kept.x.dataSync()), what).toEqual(kept.values);
          kept.x.dispose();
        }, `fit on ${backend}`);
        expect(trainer.backend?.backend).toBe(backend);
      }
    }
  });
});
