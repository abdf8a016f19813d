import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import {
  DataLoader,
  Dropout,
  ExportError,
  LightningModule,
  Linear,
  Sequential,
  crossEntropy,
  exportModule,
  exportSafetensors,
  FileIOHandler,
  fileHandler,
  importSafetensors,
  seedEverything,
  type OptimizersReturn,
} from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer } from './index.js';

// Export after a real fit: TensorFlow.js Layers format (loaded back with tf.loadLayersModel through
// Flint's file:// handler on this backend) and safetensors (loaded by PyTorch in a venv made by
// scripts/safetensors-venv.sh; skipped with the reason where pip cannot install torch).

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const run = promisify(execFile);
const data = randomClassificationDataset({ n: 64, features: 6, classes: 3, seed: 5 });
const probe = tf.tidy(() => tf.randomNormal([20, 6], 0, 1.5, 'float32', 9));
let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-export-'));
});
afterAll(async () => {
  data.dispose();
  probe.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

class Classifier extends LightningModule<BoringBatch> {
  constructor(readonly net: Sequential) {
    super();
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(x);
  }

  trainingStep([x, y]: BoringBatch): tf.Scalar {
    return crossEntropy(this.forward(x), tf.cast(y, 'int32')) as tf.Scalar;
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(0.05);
  }
}

async function fitted(net: () => Sequential): Promise<Classifier> {
  seedEverything(3);
  const module = new Classifier(net());
  module.buildLayers(); // tfjs layers get their weights here, before the leak check
  const trainer = new Trainer({ maxEpochs: 2, logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false });
  await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16, shuffle: true, seed: 1 })), 'fit');
  module.eval();
  return module;
}

function predictions(module: Classifier): number[][] {
  return tf.tidy(() => module.forward(probe).arraySync() as number[][]);
}

function maxDiff(a: number[][], b: number[][]): number {
  expect([a.length, a[0]!.length]).toEqual([b.length, b[0]!.length]);
  return Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i]![j]!))));
}

async function loadAndPredict(modelJson: string): Promise<number[][]> {
  const model = await tf.loadLayersModel(`file://${modelJson}`);
  try {
    return tf.tidy(() => (model.predict(probe) as tf.Tensor).arraySync() as number[][]);
  } finally {
    model.dispose();
  }
}

const flintNet = () => new Sequential(new Linear(6, 16, { activation: 'relu' }), new Dropout(0.25), new Linear(16, 8, { activation: 'tanh' }), new Linear(8, 3));
const mixedNet = () =>
  new Sequential(new Linear(6, 12, { activation: 'leakyrelu' }), tf.layers.dense({ units: 8, activation: 'sigmoid' }), new Dropout(0.1), tf.relu, tf.layers.dense({ units: 3 }));
const tfjsNet = () =>
  new Sequential(
    tf.sequential({ layers: [tf.layers.dense({ inputShape: [6], units: 10, activation: 'relu' }), tf.layers.dropout({ rate: 0.2 }), tf.layers.dense({ units: 3 })] }),
  );

describe('exportModule after a real fit', () => {
  it.each([
    ['Flint layers (Linear, Dropout, Sequential)', flintNet, ['Dense(6 -> 16, relu)', 'Dropout(0.25)', 'Dense(16 -> 8, tanh)', 'Dense(8 -> 3, linear)']],
    ['Flint and tfjs layers mixed, with tf.relu', mixedNet, ['Dense(6 -> 12, linear)', 'LeakyReLU', 'Dense(12 -> 8, sigmoid)', 'Dropout(0.1)', 'Activation(relu)', 'Dense(8 -> 3, linear)']],
    ['a tfjs Sequential model', tfjsNet, ['Dense(6 -> 10, relu)', 'Dropout(0.2)', 'Dense(10 -> 3, linear)']],
  ])('%s: tf.loadLayersModel gives the trained predictions to 1e-5', async (name, net, layers) => {
    const module = await fitted(net);
    const target = path.join(dir, name.replace(/\W+/g, '-'));
    const result = await expectNoLeak(() => exportModule(module, target), 'exportModule');
    expect(result.layers).toEqual(layers);
    expect(result.inputShape).toEqual([6]);
    expect((await fs.readdir(target)).sort()).toEqual(['model.json', 'weights.bin']);
    expect((await fs.readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const json = JSON.parse(await fs.readFile(result.modelJson, 'utf8')) as { format: string; modelTopology: { class_name: string } };
    expect(json.format).toBe('layers-model');
    expect(json.modelTopology.class_name).toBe('Sequential');
    expect(maxDiff(await loadAndPredict(result.modelJson), predictions(module))).toBeLessThanOrEqual(1e-5);
  });

  it("model.save('file://...') and tf.loadLayersModel work on this backend", async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [6], units: 3 })] });
    await model.save(`file://${path.join(dir, 'saved')}`);
    const loaded = await tf.loadLayersModel(`file://${path.join(dir, 'saved', 'model.json')}`);
    const [a, b] = [model, loaded].map((m) => tf.tidy(() => (m.predict(probe) as tf.Tensor).arraySync() as number[][]));
    expect(maxDiff(a!, b!)).toBe(0);
    model.dispose();
    loaded.dispose();
  });

  it('a second export replaces the first; a failed one leaves the first whole', async () => {
    const target = path.join(dir, 'replace');
    const first = await fitted(flintNet);
    await exportModule(first, target);
    const second = await fitted(() => new Sequential(new Linear(6, 3)));
    await exportModule(second, target);
    expect(maxDiff(await loadAndPredict(path.join(target, 'model.json')), predictions(second))).toBeLessThanOrEqual(1e-5);
    const before = await fs.readFile(path.join(target, 'weights.bin'));
    await expect(exportModule(new TwoHeads(), target)).rejects.toBeInstanceOf(ExportError);
    expect(await fs.readFile(path.join(target, 'weights.bin'))).toEqual(before);
    expect((await fs.readdir(target)).sort()).toEqual(['model.json', 'weights.bin']);
  });
});

/** A module whose forward adds what two chains compute: no chain of layers expresses it. */
class TwoHeads extends LightningModule<BoringBatch> {
  readonly a = new Linear(6, 3);
  readonly b = new Linear(6, 3);
  override forward(x: tf.Tensor): tf.Tensor {
    return tf.add(this.a.forward(x), this.b.forward(x));
  }
  trainingStep([x, y]: BoringBatch): tf.Scalar {
    return crossEntropy(this.forward(x), tf.cast(y, 'int32')) as tf.Scalar;
  }
  configureOptimizers(): OptimizersReturn {
    return tf.train.sgd(0.1);
  }
}

/** A module whose forward scales its chain's output: the layers alone would give other predictions. */
class Scaled extends Classifier {
  override forward(x: tf.Tensor): tf.Tensor {
    return tf.mul(this.net.forward(x), 2);
  }
}

describe('exportModule: bad input', () => {
  const entries = async () => (await fs.readdir(dir)).sort();

  it('a module whose forward cannot be traced into layers: an error naming it, and nothing written', async () => {
    const before = await entries();
    await expect(exportModule(new TwoHeads(), path.join(dir, 'two-heads'))).rejects.toThrow(
      new ExportError(
        "Cannot export TwoHeads: its forward cannot be traced into TensorFlow.js layers: its parameters are spread over 'a', 'b'. Flint exports a chain: a Sequential of Linear, Dropout, activation functions and tfjs layers, a tfjs Sequential model, or a module whose forward is one such chain held in one property.",
      ),
    );
    const scaled = new Scaled(new Sequential(new Linear(6, 3, { activation: 'sigmoid' })));
    const error = await exportModule(scaled, path.join(dir, 'scaled')).catch((e: unknown) => e as ExportError);
    expect(error).toBeInstanceOf(ExportError);
    expect((error as Error).message).toMatch(
      /^Cannot export Scaled: its forward cannot be traced into TensorFlow.js layers: forward differs from its property 'net' by up to 0\.\d+ on a random input of shape \[3, 6\], so forward computes more than the chain net\.layers\.0\. Export the part that is a chain \(exportModule\(module\.net, \.\.\.\)\) and do the rest after loading\.$/,
    );
    const custom = new Sequential(new Linear(6, 3), { apply: (x: tf.Tensor) => x });
    await expect(exportModule(custom, path.join(dir, 'custom'))).rejects.toThrow(
      /^Cannot export Sequential: its forward cannot be traced into TensorFlow.js layers: layers\.1 is object, which no layer exporter takes \(registered: tfjs layer, tfjs Dense, Linear, Dropout, activation function\)/,
    );
    expect(await entries()).toEqual(before);
  });

  it('an unwritable target: an error naming the folder, and no temporary folder left', async () => {
    const file = path.join(dir, 'a-file');
    await fs.writeFile(file, 'not a folder');
    const net = new Sequential(new Linear(6, 3));
    await expect(exportModule(net, file)).rejects.toThrow(
      new ExportError(`Cannot write the model folder ${file}: it is a file; give a folder path (it is created if missing).`),
    );
    const inside = path.join(file, 'model');
    await expect(exportModule(net, inside)).rejects.toThrow(
      new ExportError(`Cannot write the model folder ${inside} (EEXIST: file already exists, mkdir '${file}'); nothing was written there.`),
    );
    expect((await entries()).filter((f) => f.includes('.tmp'))).toEqual([]);
    expect(await fs.readFile(file, 'utf8')).toBe('not a folder');
    net.namedParameters().forEach((p) => p.variable.dispose());
  });

  it('missing or malformed model.json, and weights that do not fit it: errors naming the file and the shapes', async () => {
    // With tfjs-node loaded (the native backend) its handler serves file:// URLs, with its own
    // messages; Flint's handler, given by fileHandler, checks the same on every backend.
    const flintServesUrls = tf.io.getLoadHandlers('file:///x/model.json')[0] instanceof FileIOHandler;
    expect(flintServesUrls).toBe(process.env.FLINT_BACKEND !== 'tensorflow');
    const load = async (file: string) => {
      const error = await tf.loadLayersModel(fileHandler(file)).then(() => undefined, (e: unknown) => e as Error);
      if (flintServesUrls) {
        const viaFileUrl = await tf.loadLayersModel(`file://${file}`).then(() => undefined, (e: unknown) => e as Error);
        expect(viaFileUrl?.message).toBe(error?.message);
      }
      if (error !== undefined) throw error;
    };
    const net = new Sequential(new Linear(6, 4, { activation: 'relu' }), new Linear(4, 3));
    const good = await exportModule(net, path.join(dir, 'good'));
    const missing = path.join(dir, 'nowhere', 'model.json');
    await expect(load(missing)).rejects.toThrow(
      new ExportError(`Cannot load a model from ${missing}: the file does not exist (expected the model.json that exportModule or model.save('file://...') writes).`),
    );
    const broken = path.join(dir, 'broken');
    await fs.mkdir(broken);
    await fs.writeFile(path.join(broken, 'model.json'), '{"modelTopology": {');
    await expect(load(path.join(broken, 'model.json'))).rejects.toThrow(`The model file ${path.join(broken, 'model.json')} is not valid JSON (`);
    await fs.writeFile(path.join(broken, 'model.json'), '{"weights": []}');
    await expect(load(path.join(broken, 'model.json'))).rejects.toThrow(
      `The model file ${path.join(broken, 'model.json')} has no "modelTopology": it is not a TensorFlow.js model.json (found keys: weights).`,
    );
    // weights of another architecture beside the model.json
    const other = await exportModule(new Sequential(new Linear(6, 5), new Linear(5, 3)), path.join(dir, 'other'));
    await fs.copyFile(other.weightsBin, good.weightsBin);
    await expect(load(good.modelJson)).rejects.toThrow(
      new ExportError(
        `The weights file ${good.weightsBin} holds 212 bytes, but ${good.modelJson} describes 172 bytes of weights (layers_0/kernel float32[6, 4], layers_0/bias float32[4], layers_1/kernel float32[4, 3], layers_1/bias float32[3]): the weights do not belong to this model.json.`,
      ),
    );
    await fs.rm(good.weightsBin);
    await expect(load(good.modelJson)).rejects.toThrow(`The weights file ${good.weightsBin} that ${good.modelJson} lists does not exist or cannot be read (ENOENT).`);
    net.namedParameters().forEach((p) => p.variable.dispose());
  });
});

describe('safetensors for PyTorch', () => {
  let python = '';
  let skipReason = '';
  beforeAll(async () => {
    try {
      const { stdout } = await run('bash', [path.join(repo, 'scripts/safetensors-venv.sh')], { cwd: repo, timeout: 20 * 60_000, maxBuffer: 1 << 20 });
      python = stdout.trim().split('\n').at(-1)!;
    } catch (error) {
      const e = error as { code?: number; stderr?: string; message: string };
      skipReason = `safetensors test skipped: scripts/safetensors-venv.sh could not make a venv with torch and safetensors (exit ${String(e.code)}): ${(e.stderr ?? e.message).trim()}`;
      console.warn(skipReason);
    }
  }, 25 * 60_000);

  async function peer(args: string[]): Promise<number[][]> {
    const child = spawn(python, [path.join(repo, 'scripts/safetensors-peer.py'), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdin.end(JSON.stringify({ inputs: probe.arraySync() }));
    expect(await exit).toBe(0);
    return (JSON.parse(stdout) as { outputs: number[][] }).outputs;
  }

  it('a trained module exported as safetensors gives the same predictions in the equivalent torch nn.Sequential', async (ctx) => {
    if (skipReason !== '') ctx.skip(skipReason);
    const module = await fitted(mixedNet);
    const file = path.join(dir, 'mixed.safetensors');
    const result = await expectNoLeak(() => exportSafetensors(module, file), 'exportSafetensors');
    expect(result.torch).toBe('nn.Sequential(nn.Linear(6, 12), nn.LeakyReLU(0.2), nn.Linear(12, 8), nn.Sigmoid(), nn.Dropout(0.1), nn.ReLU(), nn.Linear(8, 3))');
    expect(result.tensors.map((t) => `${t.name} [${t.shape.join(', ')}] from ${t.layer}`)).toEqual([
      '0.weight [12, 6] from net.layers.0',
      '0.bias [12] from net.layers.0',
      '2.weight [8, 12] from net.layers.1',
      '2.bias [8] from net.layers.1',
      '6.weight [3, 8] from net.layers.4',
      '6.bias [3] from net.layers.4',
    ]);
    expect(maxDiff(await peer(['predict', file]), predictions(module))).toBeLessThanOrEqual(1e-5);
    // and back into a fresh module of the same architecture
    const fresh = new Classifier(mixedNet());
    fresh.buildLayers();
    fresh.eval();
    await expectNoLeak(() => importSafetensors(fresh, file), 'importSafetensors');
    expect(maxDiff(predictions(fresh), predictions(module))).toBe(0);
  });

  it('weights written by torch import into a Flint module and give torch predictions; a wrong architecture is named', async (ctx) => {
    if (skipReason !== '') ctx.skip(skipReason);
    const file = path.join(dir, 'torch.safetensors');
    const torchOut = await peer(['write', file, 'nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))', '7']);
    const module = new Classifier(flintNet());
    module.eval();
    await importSafetensors(module, file);
    expect(maxDiff(predictions(module), torchOut)).toBeLessThanOrEqual(1e-5);

    const wrong = new Classifier(new Sequential(new Linear(6, 12, { activation: 'relu' }), new Linear(12, 3)));
    const before = wrong.net.namedParameters().map((p) => Array.from(p.variable.dataSync()));
    await expect(importSafetensors(wrong, file)).rejects.toThrow(
      new ExportError(
        `${file} does not fit the module (nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))): '0.weight' has shape [16, 6] but net.layers.0 (nn.Linear(6, 12)) expects [12, 6] ([out, in] as torch.nn.Linear: the transpose of the layer's [in, out] weight); '0.bias' has shape [16] but net.layers.0 (nn.Linear(6, 12)) expects [12]; '2.weight' is missing (net.layers.1, nn.Linear(12, 3), expects [3, 12]); '2.bias' is missing (net.layers.1, nn.Linear(12, 3), expects [3]); unexpected tensors '3.bias', '3.weight', '5.bias', '5.weight' (the module's are 0.weight, 0.bias, 2.weight, 2.bias). No weight was changed.`,
      ),
    );
    expect(wrong.net.namedParameters().map((p) => Array.from(p.variable.dataSync()))).toEqual(before);
  });
});
