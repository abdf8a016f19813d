import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, type LightningModule, type TrainerContext } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { BasePredictionWriter, JsonPredictionWriter, type Prediction } from '@flint/callbacks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer } from '../index.js';

const data = randomClassificationDataset({ n: 20, features: 4, classes: 2, seed: 9 });
let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-pred-writer-'));
});
afterAll(async () => {
  data.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});
const quiet = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false } as const;

describe('BasePredictionWriter', () => {
  it('JsonPredictionWriter writes each batch and the whole epoch of trainer.predict, equal to what predict returns; no leaks, no temporary files left', async () => {
    const module = new BoringModule(4, 2);
    const outputDir = path.join(dir, 'both');
    const trainer = new Trainer({ ...quiet, callbacks: [new JsonPredictionWriter({ outputDir, writeInterval: 'batch_and_epoch' })] });
    const outputs = await expectNoLeak(async () => {
      const out = await trainer.predict(module, new DataLoader(data, { batchSize: 8 }));
      const host = await Promise.all(out.map(async (t) => Array.from(await (t as tf.Tensor).data())));
      tf.dispose(out);
      return host;
    }, 'predict');
    expect((await fs.readdir(outputDir)).sort()).toEqual(['batch-0.json', 'batch-1.json', 'batch-2.json', 'predictions.json']);
    const b2 = JSON.parse(await fs.readFile(path.join(outputDir, 'batch-2.json'), 'utf8'));
    expect(b2.shape).toEqual([4, 2]);
    expect(b2.dtype).toBe('float32');
    b2.data.forEach((v: number, i: number) => expect(v).toBeCloseTo(outputs[2]![i]!, 6));
    const all = JSON.parse(await fs.readFile(path.join(outputDir, 'predictions.json'), 'utf8'));
    expect(all.batchIndices).toEqual([0, 1, 2]);
    expect(all.predictions.map((p: { shape: number[] }) => p.shape)).toEqual([[8, 2], [8, 2], [4, 2]]);
  });

  it("writeInterval 'epoch' writes once at the end with every batch; a subclass gets host arrays, also for array outputs", async () => {
    const seen: Array<{ batch?: number; epoch?: number[] }> = [];
    class Recorder extends BasePredictionWriter {
      override writeOnBatchEnd(_t: TrainerContext, _m: LightningModule, _p: Prediction, batchIdx: number) {
        seen.push({ batch: batchIdx });
      }
      override async writeOnEpochEnd(_t: TrainerContext, _m: LightningModule, predictions: readonly Prediction[], indices: readonly number[]) {
        seen.push({ epoch: [...indices] });
        expect(Array.isArray(predictions[0])).toBe(true);
        await this.writeFile(path.join(dir, 'epoch', 'n.txt'), String(predictions.length));
      }
    }
    class Two extends BoringModule {
      override predictStep([x]: [tf.Tensor2D, tf.Tensor1D]) {
        const logits = this.forward(x);
        return [logits, tf.argMax(logits, 1)];
      }
    }
    const trainer = new Trainer({ ...quiet, callbacks: [new Recorder({ writeInterval: 'epoch' })] });
    tf.dispose(await trainer.predict(new Two(4, 2), new DataLoader(data, { batchSize: 8 })));
    expect(seen).toEqual([{ epoch: [0, 1, 2] }]);
    expect(await fs.readFile(path.join(dir, 'epoch', 'n.txt'), 'utf8')).toBe('3');
    expect(() => new JsonPredictionWriter({ outputDir: dir, writeInterval: 'step' as never })).toThrow(
      "JsonPredictionWriter option 'writeInterval': must be 'batch', 'epoch' or 'batch_and_epoch' (received \"step\")",
    );
  });
});
