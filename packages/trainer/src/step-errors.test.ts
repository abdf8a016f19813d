import * as tf from '@tensorflow/tfjs';
import { DataLoader, FlintError, LightningModule, Linear, MisconfigurationError, stepErrorContext, type OptimizersReturn } from '@flint/core';
import { BoringModule, expectNoLeak, type BoringBatch, randomClassificationDataset } from '@flint/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, type TrainerOptions } from './index.js';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, maxEpochs: 2 };
const data = randomClassificationDataset({ n: 32, features: 4, classes: 2, seed: 3 });
afterAll(() => data.dispose());
const loader = (batchSize = 8) => new DataLoader(data, { batchSize });

/** Runs `run`, which must reject, and returns what it rejected with; checks that nothing leaked. */
async function rejection(run: () => Promise<unknown>): Promise<unknown> {
  let caught: unknown;
  await expectNoLeak(async () => {
    caught = await run().then(
      () => {
        throw new Error('expected a rejection');
      },
      (error: unknown) => error,
    );
  }, 'the failed run');
  return caught;
}

class UserError extends Error {
  override readonly name = 'UserError';
}

const PARAMS = 'layer.weight, layer.bias';

/** BoringModule whose trainingStep runs the forward pass (loss and log), then does what `step` says. */
class Failing extends BoringModule {
  constructor(private readonly step: (self: Failing, batch: BoringBatch) => unknown) {
    super();
  }
  trainingStepOf(batch: BoringBatch): tf.Scalar {
    return super.trainingStep(batch);
  }
  override trainingStep(batch: BoringBatch): tf.Scalar {
    return this.step(this, batch) as tf.Scalar;
  }
}

describe('a failing trainingStep: a clear error and no tensor left behind', () => {
  // Each step runs its forward pass (BoringModule's loss and log) before it fails.
  const failing: Array<[string, (self: Failing, batch: BoringBatch) => unknown, string]> = [
    [
      'throws',
      (self, batch) => {
        self.trainingStepOf(batch);
        throw new UserError('the labels are off');
      },
      'the labels are off\n[Flint] in Failing.trainingStep on batch 0 of epoch 0 (batch: [float32[8,4], int32[8]])',
    ],
    [
      'returns undefined',
      (self, batch) => void self.trainingStepOf(batch),
      'Failing.trainingStep must return the loss as a scalar tensor, or { loss, ... }, under automatic optimization (batch 0: received undefined).',
    ],
    [
      'returns a number',
      (self, batch) => self.trainingStepOf(batch).dataSync()[0],
      'Failing.trainingStep must return the loss as a scalar tensor, or { loss, ... }, under automatic optimization (batch 0: received number).',
    ],
    [
      'is async',
      async (self, batch) => self.trainingStepOf(batch),
      'Failing.trainingStep returned a Promise (is it declared async?): steps must be synchronous, because they run inside tf.tidy and the gradient tape ' +
        '(tf.variableGrads), which cannot span an await. Remove async/await from trainingStep; load data in the DataLoader and do asynchronous work in hooks.',
    ],
    [
      'returns a vector',
      (self, batch) => tf.add(self.trainingStepOf(batch), tf.ones([3])),
      'Failing.trainingStep returned a loss of shape [3] on batch 0 ([float32[8,4], int32[8]]): reduce it to a scalar (e.g. tf.mean).',
    ],
    [
      'returns a constant',
      (self, batch) => tf.add(tf.scalar(1), tf.scalar(self.trainingStepOf(batch).dataSync()[0]!)),
      `Failing.trainingStep returned a loss that does not depend on the trainable float parameters (batch 0: no gradient reaches any of ${PARAMS}): ` +
        "compute the loss inside trainingStep from the module's outputs (not from a constant, or from numbers read back with dataSync()).",
    ],
    [
      'returns an int32 loss',
      (self, batch) => tf.cast(tf.mul(self.trainingStepOf(batch), 100), 'int32'),
      `Failing.trainingStep returned an int32 loss on batch 0: a loss must be float32 and depend on the trainable float parameters (${PARAMS}); ` +
        'no gradient flows through int32 values (argMax, tf.cast to int32, comparisons). Compute it with float ops, e.g. tf.losses.* or crossEntropy.',
    ],
  ];

  for (const [what, step, message] of failing) {
    it(`a trainingStep that ${what}`, async () => {
      const module = new Failing(step);
      const before = module.namedParameters().map((p) => Array.from(p.variable.dataSync()));
      const error = await rejection(() => new Trainer(quiet).fit(module, loader(), loader(16)));
      expect((error as Error).message).toBe(message);
      if (what === 'throws') expect(error).toBeInstanceOf(UserError);
      else expect(error).toBeInstanceOf(MisconfigurationError);
      // Nothing was applied: the failing step was the first.
      expect(module.namedParameters().map((p) => Array.from(p.variable.dataSync()))).toEqual(before);
    });
  }
});

describe("a user's error in a step keeps its class; Flint's context is added", () => {
  it('trainingStep: the same object, its message first, flintContext and a note naming module, step, batch and epoch', async () => {
    const thrown = new UserError('bad batch');
    class Throws extends BoringModule {
      override trainingStep(batch: BoringBatch, batchIdx?: number): tf.Scalar {
        const loss = super.trainingStep(batch);
        if (this.trainer!.currentEpoch === 1 && batchIdx === 2) throw thrown;
        return loss;
      }
    }
    const module = new Throws();
    const error = await rejection(() => new Trainer(quiet).fit(module, loader()));
    expect(error).toBe(thrown);
    expect(error).toBeInstanceOf(UserError);
    expect(thrown.name).toBe('UserError');
    expect(thrown.message).toBe('bad batch\n[Flint] in Throws.trainingStep on batch 2 of epoch 1 (batch: [float32[8,4], int32[8]])');
    expect(thrown.stack!.startsWith('UserError: bad batch\n[Flint] in Throws.trainingStep on batch 2 of epoch 1')).toBe(true);
    expect(stepErrorContext(thrown)).toEqual({ module: 'Throws', step: 'trainingStep', batchIdx: 2, epoch: 1, batch: '[float32[8,4], int32[8]]' });
  });

  it('validationStep, testStep and predictStep', async () => {
    class Throws extends BoringModule {
      override validationStep(batch: BoringBatch): void {
        super.validationStep(batch);
        throw new UserError('in validation');
      }
      override testStep(): void {
        throw new RangeError('in test');
      }
      override predictStep(batch: BoringBatch): tf.Tensor {
        this.forward(batch[0]);
        throw new TypeError('in predict');
      }
    }
    const trainer = new Trainer(quiet);
    const module = new Throws();
    const val = await rejection(() => trainer.fit(module, loader(), loader(16)));
    expect(val).toBeInstanceOf(UserError);
    expect((val as Error).message).toBe('in validation\n[Flint] in Throws.validationStep on batch 0 of epoch 0 (batch: [float32[16,4], int32[16]])');
    const test = await rejection(() => trainer.test(module, loader(16)));
    expect(test).toBeInstanceOf(RangeError);
    expect(stepErrorContext(test)).toMatchObject({ step: 'testStep', batchIdx: 0 });
    const predict = await rejection(() => trainer.predict(module, loader(16)));
    expect(predict).toBeInstanceOf(TypeError);
    expect((predict as Error).message).toBe('in predict\n[Flint] in Throws.predictStep on batch 0 of epoch 0 (batch: [float32[16,4], int32[16]])');
  });

  it('a thrown value that is not an Error becomes a FlintError holding it as cause', async () => {
    class ThrowsString extends BoringModule {
      override trainingStep(): tf.Scalar {
        throw 'no labels'; // eslint-disable-line @typescript-eslint/only-throw-error
      }
    }
    const module = new ThrowsString();
    const error = await rejection(() => new Trainer(quiet).fit(module, loader()));
    expect(error).toBeInstanceOf(FlintError);
    expect((error as Error).message).toBe(
      'ThrowsString.trainingStep threw "no labels", which is not an Error.\n[Flint] in ThrowsString.trainingStep on batch 0 of epoch 0 (batch: [float32[8,4], int32[8]])',
    );
    expect((error as Error).cause).toBe('no labels');
  });

  it('an async validationStep is told to be synchronous', async () => {
    class AsyncVal extends BoringModule {
      override async validationStep(batch: BoringBatch): Promise<void> {
        super.validationStep(batch);
      }
    }
    const module = new AsyncVal();
    const error = await rejection(() => new Trainer(quiet).fit(module, loader(), loader(16)));
    expect((error as Error).message).toMatch(/^AsyncVal\.validationStep returned a Promise \(is it declared async\?\): steps must be synchronous/);
  });

  it('manual optimization: a lossFn that throws inside manualBackward leaves the tape clean and keeps the error', async () => {
    class Manual extends LightningModule<BoringBatch> {
      override automaticOptimization = false;
      readonly layer = new Linear(4, 2);
      trainingStep([x, y]: BoringBatch): void {
        const opt = this.optimizers()[0]!;
        opt.zeroGrad();
        this.manualBackward(() => {
          const loss = tf.losses.softmaxCrossEntropy(tf.oneHot(tf.cast(y, 'int32'), 2), this.layer.forward(x)) as tf.Scalar;
          if (this.trainer!.globalStep === 2) throw new UserError('diverged');
          return loss;
        });
        opt.step();
      }
      configureOptimizers(): OptimizersReturn {
        return tf.train.sgd(0.1);
      }
    }
    const module = new Manual();
    const error = await rejection(() => new Trainer(quiet).fit(module, loader()));
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toBe('diverged\n[Flint] in Manual.trainingStep on batch 2 of epoch 0 (batch: [float32[8,4], int32[8]])');
  });
});

describe('Trainer options and observers', () => {
  it('maxSteps: 0 takes no step and says why it stopped', async () => {
    let steps = 0;
    class Counting extends BoringModule {
      override trainingStep(batch: BoringBatch): tf.Scalar {
        steps += 1;
        return super.trainingStep(batch);
      }
    }
    const module = new Counting();
    const before = module.namedParameters().map((p) => Array.from(p.variable.dataSync()));
    const trainer = new Trainer({ ...quiet, maxEpochs: undefined, maxSteps: 0 });
    await expectNoLeak(() => trainer.fit(module, loader(), loader(16)));
    expect(steps).toBe(0);
    expect(trainer.globalStep).toBe(0);
    expect(trainer.currentEpoch).toBe(0);
    expect(trainer.stopReason).toMatchObject({ rule: 'max_steps', message: 'reached maxSteps=0' });
    expect(module.namedParameters().map((p) => Array.from(p.variable.dataSync()))).toEqual(before);
  });

  it('minEpochs above maxEpochs is rejected', () => {
    expect(() => new Trainer({ minEpochs: 5, maxEpochs: 3 })).toThrow(
      new MisconfigurationError("Trainer option 'minEpochs': must not exceed maxEpochs (3): training stops at maxEpochs (received 5)"),
    );
    expect(() => new Trainer({ minEpochs: 1001 })).toThrow(
      "Trainer option 'minEpochs': must not exceed maxEpochs (1000, the default without maxSteps): training stops at maxEpochs (received 1001)",
    );
    expect(() => new Trainer({ minEpochs: 5, maxEpochs: -1 })).not.toThrow();
    expect(() => new Trainer({ minEpochs: 5, maxSteps: 100 })).not.toThrow();
  });

  it('a trainer.events listener that throws is reported once and the fit goes on', async () => {
    const trainer = new Trainer({ ...quiet, maxEpochs: 2 });
    const messages: string[] = [];
    const seen: number[] = [];
    trainer.events.on('message', (text) => messages.push(text));
    trainer.events.on('trainBatchEnd', ({ globalStep }) => {
      seen.push(globalStep);
      throw new Error('the UI is gone');
    });
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, loader(), loader(16)));
    expect(trainer.globalStep).toBe(8);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(messages).toEqual([
      "Flint: a listener of trainer.events 'trainBatchEnd' threw (Error: the UI is gone); training goes on. Reported once per event.",
    ]);
  });
});
