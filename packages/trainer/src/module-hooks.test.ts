// The module-only hooks Lightning has (issue 13), through real fits: what a user who overrides them
// notices. Their order against Lightning's is in hooks-order.test.ts and parity/parity.test.ts.
import * as tf from '@tensorflow/tfjs';
import { Callback, DataLoader, MisconfigurationError, seedEverything, type OptimizerWrapper } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { EarlyStopping } from '@flint/callbacks';
import { describe, expect, it } from 'vitest';
import { Trainer } from './index.js';

const quiet = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, numSanityValSteps: 0 } as const;

function data() {
  const ds = randomClassificationDataset({ n: 16, features: 4, classes: 2, seed: 3 });
  return { ds, loader: new DataLoader(ds, { batchSize: 4 }) };
}

const weightsOf = (m: BoringModule): number[] => Array.from(m.layer.weight.dataSync());

describe('module hooks', () => {
  it('optimizerStep can skip updates (the closure still runs trainingStep) and warm the rate up', async () => {
    const { ds, loader } = data();
    const seen: Array<{ batchIdx: number; changed: boolean; lr: number }> = [];
    class Skipping extends BoringModule {
      override async optimizerStep(epoch: number, batchIdx: number, optimizer: OptimizerWrapper, closure: () => Promise<void>) {
        const before = weightsOf(this);
        if (batchIdx % 2 === 1) await closure();
        else {
          optimizer.lr = 0.1 * Math.min(1, (this.trainer!.globalStep + 1) / 4);
          await optimizer.step(closure);
        }
        seen.push({ batchIdx, changed: weightsOf(this).some((w, i) => w !== before[i]), lr: optimizer.lr });
      }
    }
    const module = new Skipping();
    const trainer = new Trainer({ ...quiet, maxEpochs: 1 });
    await expectNoLeak(() => trainer.fit(module, loader), 'fit');
    expect(seen.map((s) => s.changed)).toEqual([true, false, true, false]);
    const lrs = seen.filter((s) => s.batchIdx % 2 === 0).map((s) => s.lr);
    expect(lrs[0]).toBeCloseTo(0.025, 10);
    expect(lrs[1]).toBeCloseTo(0.075, 10);
    // Every batch counts as a step (Lightning's global step), and trainingStep ran on each.
    expect(trainer.globalStep).toBe(4);
    expect(trainer.callbackMetrics.train_loss_epoch).toBeGreaterThan(0);
    ds.dispose();
  });

  it('optimizerZeroGrad overridden to keep gradients makes each update the sum of all gradients so far', async () => {
    const { ds, loader } = data();
    const deltas = async (keep: boolean): Promise<number[]> => {
      const module = new (class extends BoringModule {
        override optimizerZeroGrad(epoch: number, batchIdx: number, optimizer: OptimizerWrapper) {
          if (!keep || batchIdx === 0) super.optimizerZeroGrad(epoch, batchIdx, optimizer);
        }
      })();
      tf.tidy(() => module.layer.weight.assign(tf.ones(module.layer.weight.shape)));
      tf.tidy(() => module.layer.bias!.assign(tf.zeros(module.layer.bias!.shape)));
      await new Trainer({ ...quiet, maxEpochs: 1, limitTrainBatches: 2 }).fit(module, loader);
      const w = weightsOf(module);
      module.parameters().forEach((p) => p.dispose());
      return w;
    };
    const zeroed = await deltas(false);
    const kept = await deltas(true);
    // Same first step; on the second, the kept run also applies batch 0's gradient again.
    expect(kept).not.toEqual(zeroed);
    ds.dispose();
  });

  it('configureGradientClipping and backward are used for every optimizer step', async () => {
    const { ds, loader } = data();
    const calls: string[] = [];
    class Clipping extends BoringModule {
      override backward(loss: tf.Scalar): tf.Scalar {
        calls.push('backward');
        return tf.mul(loss, 0) as tf.Scalar; // no gradient signal: the weights must not move
      }
      override configureGradientClipping(optimizer: OptimizerWrapper, val: number | undefined, algorithm: 'norm' | 'value' | undefined) {
        calls.push(`clip ${String(val)} ${String(algorithm)}`);
        this.clipGradients(optimizer, val, algorithm);
      }
    }
    const module = new Clipping();
    const before = weightsOf(module);
    await expectNoLeak(() => new Trainer({ ...quiet, maxEpochs: 1, gradientClipVal: 0.5 }).fit(module, loader), 'fit');
    expect(calls).toEqual(Array.from({ length: 4 }, () => ['backward', 'clip 0.5 norm']).flat());
    expect(weightsOf(module)).toEqual(before);
    ds.dispose();
  });

  it('onBeforeBatchTransfer augments every batch of every loop, and what it makes is disposed', async () => {
    const { ds, loader } = data();
    const shapes: number[][] = [];
    class Augment extends BoringModule {
      override onBeforeBatchTransfer([x, y]: BoringBatch): BoringBatch {
        return [tf.concat([x, x]) as tf.Tensor2D, tf.concat([y, y]) as tf.Tensor1D];
      }
      override onAfterBatchTransfer(batch: BoringBatch): BoringBatch {
        shapes.push(batch[0].shape);
        return batch;
      }
    }
    const module = new Augment();
    const trainer = new Trainer({ ...quiet, maxEpochs: 1 });
    await expectNoLeak(async () => {
      await trainer.fit(module, loader, loader);
      await trainer.validate(module, loader);
      tf.dispose(await trainer.predict(module, loader));
    }, 'fit, validate and predict');
    // 4 training, 4 validation, 4 validate() and 4 predict batches, each doubled.
    expect(shapes).toEqual(Array.from({ length: 16 }, () => [8, 4]));
    ds.dispose();
  });

  it('a prediction that is a tensor onBeforeBatchTransfer made stays alive for the caller', async () => {
    const { ds, loader } = data();
    class Passing extends BoringModule {
      override onBeforeBatchTransfer([x, y]: BoringBatch): BoringBatch {
        return [tf.mul(x, 2) as tf.Tensor2D, y];
      }
      override predictStep(batch: BoringBatch): tf.Tensor {
        return batch[0];
      }
    }
    const module = new Passing();
    const before = tf.memory().numTensors;
    const predictions = (await new Trainer({ ...quiet }).predict(module, loader)) as tf.Tensor[];
    expect(predictions.map((p) => p.isDisposed)).toEqual([false, false, false, false]);
    expect(predictions[0]!.shape).toEqual([4, 4]);
    tf.dispose(predictions);
    expect(tf.memory().numTensors).toBe(before);
    ds.dispose();
  });

  it('prepareData, configureModel and configureCallbacks run at the start of every run; the module\'s callback replaces the trainer\'s of its class', async () => {
    // Seeded: from some unseeded initial weights (about 1 in 40 on wasm and cpu) the validation loss
    // rises in the second epoch and the 'max' stopper lets a third run.
    seedEverything(7);
    const { ds, loader } = data();
    const calls: string[] = [];
    const moduleStopper = new EarlyStopping({ monitor: 'val_loss', patience: 0, mode: 'max' });
    class Configured extends BoringModule {
      override prepareData() {
        calls.push('prepareData');
      }
      override setup = (stage: string) => {
        calls.push(`setup:${stage}`);
      };
      override configureModel() {
        calls.push('configureModel');
      }
      override configureCallbacks() {
        calls.push('configureCallbacks');
        return moduleStopper;
      }
    }
    const trainerStopper = new EarlyStopping({ monitor: 'val_loss', patience: 50 });
    const trainer = new Trainer({ ...quiet, maxEpochs: 10, callbacks: [trainerStopper] });
    const module = new Configured();
    await expectNoLeak(() => trainer.fit(module, loader, loader), 'fit');
    expect(calls).toEqual(['configureCallbacks', 'prepareData', 'setup:fit', 'configureModel']);
    expect(trainer.callbacks).toContain(moduleStopper);
    expect(trainer.callbacks).not.toContain(trainerStopper);
    // mode 'max' on a falling loss with patience 0: the module's callback stops after 2 epochs.
    expect(trainer.currentEpoch).toBe(2);
    ds.dispose();
  });

  it('checkpointing callbacks run after the other callbacks at every hook, whatever the list order', async () => {
    const { ds, loader } = data();
    const order: string[] = [];
    class Saver extends Callback {
      override checkpointPath(): string | undefined {
        return undefined;
      }
      override onTrainBatchEnd() {
        order.push('checkpoint');
      }
    }
    class Other extends Callback {
      override onTrainBatchEnd() {
        order.push('other');
      }
    }
    const trainer = new Trainer({ ...quiet, maxEpochs: 1, limitTrainBatches: 1, callbacks: [new Saver(), new Other()] });
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, loader), 'fit');
    expect(order).toEqual(['other', 'checkpoint']);
    ds.dispose();
  });
});

describe('validation schedule options', () => {
  it('checkValEveryNEpoch: null validates every valCheckInterval batches counted across epochs', async () => {
    const { ds, loader } = data();
    const at: number[] = [];
    const trainer = new Trainer({
      ...quiet,
      maxEpochs: 3,
      checkValEveryNEpoch: null,
      valCheckInterval: 3,
      callbacks: [new (class extends Callback {
        override onValidationEnd(t: { globalStep: number }) {
          at.push(t.globalStep);
        }
      })()],
    });
    const module = new BoringModule();
    await expectNoLeak(() => trainer.fit(module, loader, loader), 'fit');
    expect(at).toEqual([3, 6, 9, 12]);
    ds.dispose();
  });

  it('refuses checkValEveryNEpoch: null without a whole valCheckInterval, and a valCheckInterval longer than the epoch', async () => {
    expect(() => new Trainer({ checkValEveryNEpoch: null })).toThrow(/valCheckInterval.*must be a whole number of batches with checkValEveryNEpoch: null/);
    expect(() => new Trainer({ checkValEveryNEpoch: null, valCheckInterval: 0.5 })).toThrow(MisconfigurationError);
    const { ds, loader } = data();
    await expect(new Trainer({ ...quiet, maxEpochs: 1, valCheckInterval: 5 }).fit(new BoringModule(), loader, loader)).rejects.toThrow(
      'Trainer option valCheckInterval (5) must not exceed the number of training batches per epoch (4)',
    );
    ds.dispose();
  });
});
