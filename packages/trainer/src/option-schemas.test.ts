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
