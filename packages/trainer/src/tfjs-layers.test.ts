import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ModelCheckpoint } from '@flint/callbacks';
import { CheckpointError, DataLoader, LightningModule, Linear, Sequential, seedEverything, type OptimizersReturn } from '@flint/core';
import { type BoringBatch, randomClassificationDataset } from '@flint/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer, type TrainerOptions } from './index.js';

// Modules built from tfjs layers (tf.sequential, tf.layers inside Flint's Sequential, layers built on
// their first call): trained by a real fit, saved by ModelCheckpoint, loaded into a fresh instance.

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, maxEpochs: 2 };
const data = randomClassificationDataset({ n: 48, features: 3, classes: 2, seed: 11 });
const probe = tf.tensor2d([[0.5, -1, 2], [1, 0, -0.5], [-2, 1, 0.25]]);
let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-tfjs-layers-'));
});
afterAll(async () => {
  data.dispose();
  probe.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

/** A classifier over 3 features whose network `net` is made by `makeNet` (called in the constructor). */
abstract class Classifier extends LightningModule<BoringBatch> {
  abstract readonly net: { apply(x: tf.Tensor, kwargs?: unknown): unknown } | Sequential;
  trainingSteps = 0;

  override forward(x: tf.Tensor): tf.Tensor {
    return this.net instanceof Sequential ? this.net.forward(x) : (this.net.apply(x, { training: this.training }) as tf.Tensor);
  }

  trainingStep([x, y]: BoringBatch): tf.Scalar {
    this.trainingSteps += 1;
    const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(tf.cast(y, 'int32'), 2), this.forward(x)) as tf.Scalar;
    this.log('train_loss', loss);
    return loss;
  }

  configureOptimizers(): OptimizersReturn {
    return tf.train.adam(0.05);
  }
}

/** Trains `module` for 2 epochs with a ModelCheckpoint writing last.ckpt into a fresh folder; returns its path. */
async function trainAndSave(module: Classifier, name: string): Promise<string> {
  const checkpoint = new ModelCheckpoint({ dirpath: path.join(dir, name), saveLast: true, saveTopK: 0 });
  // No leak: the only new tensors are the weights of the layers the fit built.
  const before = tf.memory().numTensors - module.namedParameters().length;
  await new Trainer({ ...quiet, callbacks: [checkpoint] }).fit(module, new DataLoader(data, { batchSize: 8 }));
  expect(tf.memory().numTensors - module.namedParameters().length).toBe(before);
  const file = checkpoint.checkpointPath('last');
  expect(file).toBeDefined();
  return file!;
}

function predictions(module: Classifier): number[] {
  module.eval();
  return tf.tidy(() => Array.from(module.forward(probe).dataSync()));
}

describe('tfjs layers inside modules: trained, saved by ModelCheckpoint, loaded with loadFromCheckpoint', () => {
  it('tf.sequential whose first layer has an inputShape (tfjs says built: false, yet every weight exists)', async () => {
    class SeqNet extends Classifier {
      readonly net = tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [3], activation: 'relu' }), tf.layers.dense({ units: 2 })] });
    }
    seedEverything(3);
    const trained = new SeqNet();
    expect(trained.net.built).toBe(false);
    expect(trained.unbuiltLayers()).toEqual([]);
    const file = await trainAndSave(trained, 'sequential');
    expect(trained.trainingSteps).toBe(12); // no dry run was needed
    const loaded = await SeqNet.loadFromCheckpoint(file);
    expect(loaded.namedParameters().map((p) => p.name)).toEqual(['net.0.kernel', 'net.0.bias', 'net.1.kernel', 'net.1.bias']);
    expect(predictions(loaded)).toEqual(predictions(trained));
  });

  it("tfjs layers inside Flint's Sequential, after a tfjs layer with an inputShape or after a Linear", async () => {
    class TfInSequential extends Classifier {
      readonly net = new Sequential(tf.layers.dense({ units: 4, inputShape: [3], activation: 'relu' }), tf.layers.dense({ units: 2 }));
    }
    class AfterLinear extends Classifier {
      readonly net = new Sequential(new Linear(3, 4, { activation: 'tanh' }), tf.layers.batchNormalization(), tf.layers.dense({ units: 2 }));
    }
    for (const Net of [TfInSequential, AfterLinear]) {
      seedEverything(4);
      const trained = new Net();
      expect(trained.unbuiltLayers().length).toBeGreaterThan(0);
      const file = await trainAndSave(trained, Net.name);
      const loaded = await Net.loadFromCheckpoint(file);
      expect(loaded.unbuiltLayers()).toEqual([]);
      expect(predictions(loaded)).toEqual(predictions(trained));
    }
  });

  it('layers built on their first call: exampleInputArray builds them, for fit (no dry run) and for loading', async () => {
    class Lazy extends Classifier {
      readonly net = new Sequential(tf.layers.dense({ units: 5, activation: 'relu' }), tf.layers.dense({ units: 2 }));
      override exampleInputArray = tf.zeros([1, 3]);
    }
    seedEverything(5);
    const trained = new Lazy();
    expect(trained.unbuiltLayers()).toEqual(['net.layers.0', 'net.layers.1']);
    const file = await trainAndSave(trained, 'lazy');
    expect(trained.trainingSteps).toBe(12); // built from exampleInputArray, not by a dry run of trainingStep
    const loaded = await Lazy.loadFromCheckpoint(file);
    expect(predictions(loaded)).toEqual(predictions(trained));
    tf.dispose([trained.exampleInputArray, loaded.exampleInputArray]);
  });

  it('a module whose layers cannot be built without data: the error names them and suggests exampleInputArray', async () => {
    class Unknown extends Classifier {
      readonly net = new Sequential(tf.layers.dense({ units: 5, activation: 'relu' }), tf.layers.dense({ units: 2 }));
    }
    seedEverything(6);
    const trained = new Unknown();
    const file = await trainAndSave(trained, 'unknown');
    expect(trained.trainingSteps).toBe(13); // one muted dry run built the layers before training
    const error = await Unknown.loadFromCheckpoint(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as Error).message).toBe(
      "loadFromCheckpoint: Unknown's layers net.layers.0, net.layers.1 have no weights until their first call, and their input shape is unknown: " +
        'set exampleInputArray in Unknown (an input for forward, e.g. this.exampleInputArray = tf.zeros([1, 3])) so that they are built before the weights are loaded.',
    );
  });
});
