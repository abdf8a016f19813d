import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, RecordDataset, seedEverything, writeRecordFile } from '@flint/core';
import { BoringModule, expectNoLeak, type BoringBatch } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChild } from './testing/kill-child.js';
import { Trainer } from './index.js';

// A record file streamed from disk through a real fit: the same weights as the same data in memory,
// and a fit killed with SIGKILL mid-epoch and resumed in a new process ends with the weights of an
// uninterrupted run (the shuffle buffer's place in the epoch is restored from (epoch, batch)).

const packages = fileURLToPath(new URL('../../', import.meta.url));
const dist = (pkg: string, file = 'index.js'): string => pathToFileURL(path.join(packages, pkg, 'dist', file)).href;
const tfjs = pathToFileURL(createRequire(path.join(packages, 'trainer', 'package.json')).resolve('@tensorflow/tfjs')).href;

const N = 240;
const FEATURES = 4;

/** Sample i of a separable problem: x from a fixed formula, y = 1 when x0 + x1 > x2 + x3. */
function sample(i: number): { x: Float32Array; y: number } {
  const x = Float32Array.from({ length: FEATURES }, (_, f) => Math.sin(i * 1.7 + f * 2.3) + 0.1 * f);
  return { x, y: x[0]! + x[1]! > x[2]! + x[3]! ? 1 : 0 };
}

let tmp: string;
let file: string;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-record-fit-'));
  file = path.join(tmp, 'train.rec');
  function* samples() {
    for (let i = 0; i < N; i++) yield sample(i);
  }
  await writeRecordFile(file, [{ name: 'x', dtype: 'float32', shape: [FEATURES] }, { name: 'y', dtype: 'int32', shape: [] }], samples());
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function fitWeights(loader: DataLoader<BoringBatch>): Promise<number[]> {
  seedEverything(7);
  const module = new BoringModule(FEATURES, 2);
  const trainer = new Trainer({ backend: 'cpu', maxEpochs: 2, logger: false, enableCheckpointing: false, enableProgressBar: false, enableModelSummary: false });
  await expectNoLeak(() => trainer.fit(module, loader), 'fit on a record file');
  const weights = module.parameters().flatMap((p) => Array.from(p.dataSync()));
  tf.dispose(module.parameters());
  return weights;
}

describe('trainer.fit on a record file', () => {
  it('trains to the same weights as the same samples in memory (no shuffle), without leaking tensors', async () => {
    const x = new Float32Array(N * FEATURES);
    const y = new Int32Array(N);
    for (let i = 0; i < N; i++) {
      const s = sample(i);
      x.set(s.x, i * FEATURES);
      y[i] = s.y;
    }
    const memory = new DataLoader<BoringBatch>([{ data: x, shape: [N, FEATURES] }, { data: y, shape: [N] }], { batchSize: 16 });
    const streamed = new DataLoader<BoringBatch>(new RecordDataset(file, { structure: 'array', shardSize: 50 }), { batchSize: 16, readAhead: 20 });
    const a = await fitWeights(memory);
    const b = await fitWeights(streamed);
    memory.dispose();
    expect(b).toEqual(a);
    expect(a.every(Number.isFinite)).toBe(true);
  });
});

const CHILD = `
import * as core from ${JSON.stringify(dist('core'))};
import * as testing from ${JSON.stringify(dist('core', 'testing/index.js'))};
import * as tf from ${JSON.stringify(tfjs)};
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Trainer } from ${JSON.stringify(dist('trainer'))};
import { LambdaCallback, ModelCheckpoint } from ${JSON.stringify(dist('callbacks'))};

const [file, root, resume] = process.argv.slice(2);
core.seedEverything(7);
const data = new core.RecordDataset(file, { structure: 'array', shardSize: 32 });
const train = new core.DataLoader(data, { batchSize: 8, shuffle: true, seed: 5, shuffleBuffer: 50, readAhead: 16 });
const dirpath = path.join(root, 'ckpt');
const callbacks = [
  new LambdaCallback({ onTrainBatchEnd: (t) => process.stdout.write('step ' + t.globalStep + '\\n') }),
  new ModelCheckpoint({ dirpath, saveLast: true, saveTopK: 0, everyNTrainSteps: 3 }),
];
const trainer = new Trainer({ backend: 'cpu', maxEpochs: 2, logger: false, enableProgressBar: false, enableModelSummary: false, callbacks, defaultRootDir: root });
const module = new testing.BoringModule(${FEATURES}, 2);
const last = path.join(dirpath, 'last.ckpt');
await trainer.fit(module, train, undefined, resume === '1' && fs.existsSync(last) ? { ckptPath: last } : {});
process.stdout.write('weights ' + JSON.stringify(module.parameters().flatMap((p) => Array.from(p.dataSync()))) + '\\n');
`;


describe('kill -9 mid-epoch and resume on a record file', () => {
  it('two SIGKILLs inside epochs (shuffle buffer full, then draining), resumed from last.ckpt: the weights of an uninterrupted run', { timeout: 120_000 }, async () => {
    const script = path.join(tmp, 'child.mjs');
    fs.writeFileSync(script, CHILD);
    const full = await runChild(packages, script, [file, path.join(tmp, 'full'), '0']);
    expect(full.code, full.err).toBe(0);
    const killed = path.join(tmp, 'killed');
    // 30 batches per epoch: step 10 is early in epoch 0; step 55 is in epoch 1 where the buffer drains (its last 50 samples).
    for (const killAt of [10, 55]) {
      const end = await runChild(packages, script, [file, killed, '1'], killAt);
      expect(end.signal, `${end.out}\n${end.err}`).toBe('SIGKILL');
    }
    const end = await runChild(packages, script, [file, killed, '1']);
    expect(end.code, end.err).toBe(0);
    expect(end.out).toMatch(/Flint: resumed from .*last\.ckpt at epoch 1, batch \d+/);
    const weights = (out: string): number[] => JSON.parse(/^weights (.*)$/m.exec(out)![1]!) as number[];
    expect(weights(end.out)).toEqual(weights(full.out));
  });
});
