import * as tf from '@tensorflow/tfjs';
import { DataLoader, getLearningRate, LightningModule, Linear, MisconfigurationError, type Activation, type LRScheduler, type OptimizersReturn } from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { StepLR } from '@flint/callbacks';
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, type TrainerOptions } from './index.js';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' };
const data = randomClassificationDataset({ n: 20, features: 4, classes: 2, seed: 2 });
const loader = () => new DataLoader(data, { batchSize: 4 });

/** A classifier whose configureOptimizers returns `schedule(optimizer)` as its lrScheduler. */
class Net extends LightningModule<BoringBatch> {
  layer = new Linear(4, 2);
  constructor(private readonly schedule: (optimizer: tf.Optimizer) => unknown) {
    super();
  }
  override forward(x: tf.Tensor) {
    return this.layer.forward(x);
  }
  trainingStep([x, y]: BoringBatch) {
    return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.forward(x)) as tf.Scalar;
  }
  optimizer: tf.Optimizer | undefined;
  configureOptimizers(): OptimizersReturn {
    const optimizer = (this.optimizer = tf.train.sgd(0.1));
    return { optimizer, lrScheduler: this.schedule(optimizer) as LRScheduler };
  }
}

afterAll(async () => {
  data.dispose();
  await tf.setBackend(process.env.FLINT_BACKEND ?? 'wasm');
});

describe('Linear options', () => {
  it('an unknown activation is an error naming the option and the valid values, not a silent linear layer', () => {
    expect(() => new Linear(4, 2, { activation: 'gelu' as Activation })).toThrow(MisconfigurationError);
    expect(() => new Linear(4, 2, { activation: 'gelu' as Activation })).toThrow(
      `Linear option 'activation': Invalid option: expected one of "linear"|"relu"|"sigmoid"|"tanh"|"elu"|"relu6"|"leakyrelu" (received "gelu")`,
    );
    expect(() => new Linear(4, 2, { bias: 'no' as unknown as boolean })).toThrow(/Linear option 'bias'/);
    expect(() => new Linear(4, 2, { actvation: 'relu' } as never)).toThrow(/Linear: .*actvation|Unrecognized key.*actvation/);
  });

  it('the defaults (linear, with a bias) and the named activations compute what they say', () => {
    const x = tf.tensor2d([[-1, 2]]);
    const plain = new Linear(2, 3);
    expect(plain.activation).toBe('linear');
    expect(plain.bias?.shape).toEqual([3]);
    const relu = new Linear(2, 3, { activation: 'relu', bias: false });
    expect(relu.bias).toBeUndefined();
    const out = relu.forward(x);
    const expected = tf.relu(tf.matMul(x, relu.weight));
    expect(Array.from(out.dataSync())).toEqual(Array.from(expected.dataSync()));
    tf.dispose([x, out, expected, plain.weight, plain.bias!, relu.weight]);
  });
});

describe('the LR scheduler config of configureOptimizers', () => {
  it('an invalid interval or frequency fails the fit with an error naming the option and the valid values', async () => {
    await expect(new Trainer({ ...quiet, maxEpochs: 1 }).fit(new Net((o) => ({ scheduler: new StepLR(o, { stepSize: 1 }), interval: 'batch' })), loader())).rejects.toThrow(
      `configureOptimizers() item 0: lrScheduler option 'interval': Invalid option: expected one of "epoch"|"step" (received "batch")`,
    );
    await expect(new Trainer({ ...quiet, maxEpochs: 1 }).fit(new Net((o) => ({ scheduler: new StepLR(o, { stepSize: 1 }), frequency: 0 })), loader())).rejects.toThrow(
      `configureOptimizers() item 0: lrScheduler option 'frequency': must be a whole number >= 1 (received 0)`,
    );
    await expect(new Trainer({ ...quiet, maxEpochs: 1 }).fit(new Net(() => ({ scheduler: {} })), loader())).rejects.toThrow(
      `configureOptimizers() item 0: lrScheduler option 'scheduler': must be an LR scheduler (an object with a step() method)`,
    );
  });

  it("the defaults step the scheduler once per epoch (interval 'epoch', frequency 1); interval 'step' every batch", async () => {
    for (const [config, lr] of [
      [(o: tf.Optimizer) => new StepLR(o, { stepSize: 1, gamma: 0.5 }), 0.1 * 0.5 ** 2],
      [(o: tf.Optimizer) => ({ scheduler: new StepLR(o, { stepSize: 1, gamma: 0.5 }), interval: 'step' }), 0.1 * 0.5 ** 10],
      [(o: tf.Optimizer) => ({ scheduler: new StepLR(o, { stepSize: 1, gamma: 0.5 }), frequency: 2 }), 0.1 * 0.5],
    ] as const) {
      const trainer = new Trainer({ ...quiet, maxEpochs: 2 });
      const module = new Net(config);
      await expectNoLeak(() => trainer.fit(module, loader()), 'fit');
      expect(getLearningRate(module.optimizer!)).toBeCloseTo(lr, 12);
    }
  });
});

describe('trainer options: defaults in the schema, limits resolved per stage', () => {
  it('maxEpochs and defaultRootDir get their defaults in the parsed options', () => {
    expect(new Trainer(quiet).options.maxEpochs).toBe(1000);
    expect(new Trainer({ ...quiet, maxSteps: 10 }).options.maxEpochs).toBe(-1);
    expect(new Trainer({ ...quiet, maxSteps: 10, maxEpochs: 3 }).options.maxEpochs).toBe(3);
    expect(new Trainer(quiet).maxEpochs).toBe(1000);
    expect(new Trainer(quiet).options.defaultRootDir).toBe(process.cwd());
    expect(new Trainer(quiet).defaultRootDir).toBe(process.cwd());
    expect(() => new Trainer({ ...quiet, minEpochs: 1001 })).toThrow("Trainer option 'minEpochs': must not exceed maxEpochs (1000, the default without maxSteps)");
    expect(() => new Trainer({ ...quiet, maxTime: { minutes: 0 } })).toThrow(/Trainer option 'maxTime': must be seconds/);
  });

  it('a fraction that leaves no batch of a non-empty loader fails the run, as in Lightning (0.1 of 5 batches)', async () => {
    const trainer = new Trainer({ ...quiet, maxEpochs: 1, limitTrainBatches: 0.1 });
    const module = new Net((o) => new StepLR(o, { stepSize: 1 }));
    await expect(trainer.fit(module, loader())).rejects.toThrow(
      "Trainer option 'limitTrainBatches': you requested 0.1 of the training loader's 5 batches, but 0.1 * 5 < 1 batch. Increase 'limitTrainBatches': try at least limitTrainBatches=0.2, or give a whole number of batches.",
    );
    await expect(new Trainer({ ...quiet, limitValBatches: 0.1 }).validate(module, loader())).rejects.toThrow(/Trainer option 'limitValBatches': you requested 0\.1 of the validation loader's 5 batches/);
    // 0.2 of 5 is one batch; a whole number is a count.
    const counted: number[] = [];
    const one = new Trainer({ ...quiet, maxEpochs: 1, limitTrainBatches: 0.2 });
    one.events.on('fitStart', (e) => counted.push(e.numTrainingBatches));
    await expectNoLeak(() => one.fit(module, loader()), 'fit');
    expect(counted).toEqual([1]);
    expect(one.globalStep).toBe(1);
  });

  it('FLINT_BACKEND is checked against the backends\' names', async () => {
    const saved = process.env.FLINT_BACKEND;
    process.env.FLINT_BACKEND = 'webgl';
    try {
      const { backend: _b, ...unpinned } = quiet;
      await expect(new Trainer(unpinned).fit(new Net((o) => new StepLR(o, { stepSize: 1 })), loader())).rejects.toThrow(
        "Environment variable FLINT_BACKEND must be 'tensorflow', 'wasm', 'cpu' or unset (received 'webgl').",
      );
    } finally {
      if (saved === undefined) delete process.env.FLINT_BACKEND;
      else process.env.FLINT_BACKEND = saved;
    }
  });
});
