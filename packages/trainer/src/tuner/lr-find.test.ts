import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, LightningModule, MisconfigurationError, seedEverything, type OptimizersReturn } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { TensorBoardLogger } from '@flint/loggers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLogDir } from '../../../loggers/src/testing/event-reader.js';
import { gradientAlong, LRFinderResult, lrFind, rangeTestLr, Trainer, type TrainerOptions } from '../index.js';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false };
const data = randomClassificationDataset({ n: 512, features: 4, classes: 2, seed: 3 });
let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-lr-find-'));
});
afterAll(async () => {
  data.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

const weights = (m: LightningModule) => Object.fromEntries(m.namedParameters().map((p) => [p.name, Array.from(p.variable.dataSync())]));

/** PNG width and height from its IHDR chunk. */
function pngSize(png: Uint8Array): [number, number] {
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return [v.getUint32(16), v.getUint32(20)];
}

describe('lrFind', () => {
  it("runs Lightning's range test through fit, restores the weights exactly, leaves the trainer untouched, sets module.lr, no leaks", async () => {
    seedEverything(5);
    const module = new BoringModule(4, 2, 0.123);
    const before = weights(module);
    const trainer = new Trainer({ ...quiet, maxEpochs: 3 });
    const result = (await expectNoLeak(() => lrFind(trainer, module, new DataLoader(data, { batchSize: 8, shuffle: true }), { numTraining: 50, earlyStopThreshold: null }), 'lrFind'))!;
    expect(result).toBeInstanceOf(LRFinderResult);
    expect(weights(module)).toEqual(before);
    expect(trainer.globalStep).toBe(0);
    expect(trainer.history).toEqual([]);
    // Every step's learning rate, as Lightning's _ExponentialLR schedules it (50 steps over 64 batches).
    expect(result.results.lr).toHaveLength(50);
    result.results.lr.forEach((lr, k) => expect(lr).toBeCloseTo(rangeTestLr(k, 'exponential', 1e-8, 1, 50), 15));
    expect(result.results.lr[0]).toBe(1e-8);
    expect(result.results.lr[49]).toBeCloseTo(1, 12);
    expect(result.results.loss.every(Number.isFinite)).toBe(true);
    // The suggestion lies where the loss falls and became the module's learning rate.
    const lr = result.suggestion()!;
    expect(lr).toBeGreaterThan(1e-6);
    expect(lr).toBeLessThan(1);
    expect(module.lr).toBe(lr);
    const i = result.optimalIndex!;
    expect(result.results.loss[i + 1]!).toBeLessThan(result.results.loss[i - 1]!);
    // A fit after lrFind starts from the restored weights and trains with the new rate.
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 32 })), 'fit after lrFind');
    expect(trainer.globalStep).toBe(48);
  });

  it('stops early once the smoothed loss exceeds earlyStopThreshold x the best, linear mode, updateAttr: false keeps the field', async () => {
    seedEverything(6);
    const module = new BoringModule(4, 2, 0.5);
    const trainer = new Trainer(quiet);
    const result = (await lrFind(trainer, module, new DataLoader(data, { batchSize: 8 }), { mode: 'linear', minLr: 1e-3, maxLr: 1e4, numTraining: 60, updateAttr: false }))!;
    expect(result.results.lr.length).toBeLessThan(60);
    const losses = result.results.loss;
    const best = Math.min(...losses.slice(0, -1));
    expect(losses.at(-1)!).toBeGreaterThan(4 * best);
    result.results.lr.forEach((lr, k) => expect(lr).toBeCloseTo(rangeTestLr(k, 'linear', 1e-3, 1e4, 60), 9));
    expect(result.results.lr[1]! - result.results.lr[0]!).toBeCloseTo((2 / 60) * (1e4 - 1e-3), 6);
    expect(module.lr).toBe(0.5);
  });

  it('plots the curve as a PNG through Chart.js (written atomically) and logs it to the TensorBoard logger of the trainer', async () => {
    seedEverything(7);
    const module = new BoringModule(4, 2, 0.1);
    const saveDir = path.join(dir, 'tb');
    const trainer = new Trainer({ ...quiet, logger: new TensorBoardLogger({ saveDir }) });
    const result = (await lrFind(trainer, module, new DataLoader(data, { batchSize: 16 }), { numTraining: 30, updateAttr: false }))!;
    const file = path.join(dir, 'plot', 'lr.png');
    const png = await result.plot({ path: file, width: 500, height: 300 });
    expect(Array.from(png.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(pngSize(png)).toEqual([500, 300]);
    expect(new Uint8Array(await fs.readFile(file))).toEqual(png);
    // The marker of the suggestion changes the image.
    const plain = await result.plot({ suggest: false, width: 500, height: 300 });
    expect(Buffer.from(plain).equals(Buffer.from(png))).toBe(false);
    const run = readLogDir(path.join(saveDir, 'flint_logs')).runs['version_0']!;
    expect(run.scalars['lr_find/lr']!.points.map((p) => p[0])).toEqual(result.results.lr.map((_, i) => i));
    run.scalars['lr_find/loss']!.points.forEach((p, k) => expect(p[1]).toBeCloseTo(result.results.loss[k]!, 5));
  });

  it('suggestion: steepest descent by torch.gradient on uneven spacing, skipping ends and non-finite points', () => {
    // torch.gradient(tensor([1., 4., 9., 25.]), spacing=[tensor([1., 2., 3., 5.])]) = [3., 4., 6., 8.] (torch 2.13)
    const g = gradientAlong([1, 4, 9, 25], [1, 2, 3, 5]);
    expect(g[0]).toBeCloseTo(3, 12);
    expect(g[1]).toBeCloseTo(4, 12);
    expect(g[2]).toBeCloseTo(6, 12);
    expect(g[3]).toBeCloseTo(8, 12);
    const lr = Array.from({ length: 20 }, (_, i) => 10 ** (-6 + i * 0.3));
    const loss = lr.map((x) => 2 - Math.tanh(Math.log10(x) + 3));
    loss[15] = Number.NaN;
    const r = new LRFinderResult('exponential', lr[0]!, lr[19]!, 20, { lr, loss });
    const s = r.suggestion({ skipBegin: 2, skipEnd: 1 })!;
    expect(r.optimalIndex).not.toBe(15);
    expect(s).toBe(lr[r.optimalIndex!]);
    expect(new LRFinderResult('linear', 1, 2, 3, { lr: [1, 2, 3], loss: [1, 2, 3] }).suggestion()).toBeUndefined();
  });

  it('rejects bad options and modules without a learning-rate field, naming what is valid', async () => {
    const trainer = new Trainer(quiet);
    const module = new BoringModule();
    const loader = new DataLoader(data, { batchSize: 8 });
    await expect(lrFind(trainer, module, loader, { minLr: 1, maxLr: 0.1 })).rejects.toThrow("lrFind option 'maxLr': maxLr must be greater than minLr");
    await expect(lrFind(trainer, module, loader, { mode: 'cosine' as never })).rejects.toThrow(/lrFind option 'mode'.*exponential.*linear/s);
    class NoLr extends LightningModule<[tf.Tensor2D, tf.Tensor1D]> {
      w = tf.variable(tf.zeros([4, 1]));
      trainingStep([x]: [tf.Tensor2D, tf.Tensor1D]) {
        return tf.mean(tf.matMul(x, this.w)) as tf.Scalar;
      }
      configureOptimizers(): OptimizersReturn {
        return tf.train.sgd(0.1);
      }
    }
    const noLr = new NoLr();
    await expect(lrFind(trainer, noLr, loader)).rejects.toThrow(MisconfigurationError);
    await expect(lrFind(trainer, noLr, loader)).rejects.toThrow(/no field 'lr' or 'learningRate'.*attrName.*updateAttr: false/);
    await expect(lrFind(trainer, noLr, loader, { attrName: 'rate' })).rejects.toThrow("lrFind option 'attrName': 'rate' is neither a field of NoLr nor of its hparams.");
    noLr.w.dispose();
    expect(await lrFind(new Trainer({ ...quiet, fastDevRun: true }), module, loader)).toBeUndefined();
  });
});
