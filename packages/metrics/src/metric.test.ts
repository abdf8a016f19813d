import * as tf from '@tensorflow/tfjs';
import { CheckpointError, DataError, MisconfigurationError } from '@flint/core';
import { expectNoLeak } from '@flint/core/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Accuracy, AUROC, ConfusionMatrix, F1Score, MeanSquaredError, MetricCollection, Precision, R2Score, type Metric } from './index.js';

// Behaviour of the metric base shared by every metric: state across batches and tidy scopes,
// checkpoints, merging, forward, resets and errors. Values are checked against torchmetrics and
// scikit-learn in oracle.test.ts; here they are compared with the same metric fed differently.

const preds = tf.tensor2d([
  [0.1, 0.7, 0.2],
  [0.8, 0.1, 0.1],
  [0.3, 0.3, 0.4],
  [0.2, 0.5, 0.3],
  [0.6, 0.2, 0.2],
  [0.1, 0.1, 0.8],
]);
const target = tf.tensor1d([1, 0, 1, 1, 2, 2], 'int32');
const rows = (from: number, to: number): [tf.Tensor, tf.Tensor] => [preds.slice([from, 0], [to - from, -1]), target.slice([from], [to - from])];
const value = (t: tf.Tensor): number[] => {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
};

const makers: Array<[string, () => Metric]> = [
  ['Accuracy macro', () => new Accuracy({ task: 'multiclass', numClasses: 3, average: 'macro' })],
  ['F1Score none', () => new F1Score({ task: 'multiclass', numClasses: 3, average: 'none' })],
  ['ConfusionMatrix', () => new ConfusionMatrix({ task: 'multiclass', numClasses: 3 })],
  ['AUROC', () => new AUROC({ task: 'multiclass', numClasses: 3 })],
];

afterEach(() => vi.restoreAllMocks());

describe.each(makers)('%s', (_name, make) => {
  it('gives the same value fed in one batch, in uneven batches inside tf.tidy, and merged from two metrics', async () => {
    await expectNoLeak(() => {
      const whole = make();
      whole.update(preds, target);
      const batched = make();
      for (const [a, b] of [[0, 1], [1, 4], [4, 6]] as const) tf.tidy(() => batched.update(...rows(a, b)));
      const left = make();
      const right = make();
      tf.tidy(() => left.update(...rows(0, 2)));
      tf.tidy(() => right.update(...rows(2, 6)));
      left.mergeState(right);
      const expected = value(whole.compute());
      expect(value(batched.compute())).toEqual(expected);
      expect(value(left.compute())).toEqual(expected);
      for (const m of [whole, batched, left, right]) m.dispose();
    });
  });

  it('goes through a checkpoint as plain numbers: stateDict, JSON, loadStateDict, and mergeState of a stateDict', async () => {
    await expectNoLeak(() => {
      const a = make();
      tf.tidy(() => a.update(...rows(0, 4)));
      const saved = JSON.parse(JSON.stringify(a.stateDict())) as Record<string, unknown>;
      const b = make();
      b.loadStateDict(saved);
      expect(value(b.compute())).toEqual(value(a.compute()));
      // A resumed metric: the saved batches merged into a fresh one that saw the rest.
      const resumed = make();
      tf.tidy(() => resumed.update(...rows(4, 6)));
      resumed.mergeState(saved);
      tf.tidy(() => a.update(...rows(4, 6)));
      expect(value(resumed.compute())).toEqual(value(a.compute()));
      for (const m of [a, b, resumed]) m.dispose();
    });
  });

  it('holds no tensors after reset, and update reads nothing back from the device', () => {
    const m = make();
    const before = tf.memory().numTensors;
    const reads = [vi.spyOn(tf.Tensor.prototype, 'dataSync'), vi.spyOn(tf.Tensor.prototype, 'data'), vi.spyOn(tf.Tensor.prototype, 'arraySync')];
    for (let i = 0; i < 3; i++) tf.tidy(() => m.update(...rows(2 * i, 2 * i + 2)));
    expect(reads.map((r) => r.mock.calls.length)).toEqual([0, 0, 0]);
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    m.reset();
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});

describe('forward', () => {
  it('returns the value of the batch alone and adds the batch to the state', () => {
    const m = new Accuracy({ task: 'multiclass', numClasses: 3 });
    const batchOnly = new Accuracy({ task: 'multiclass', numClasses: 3 });
    tf.tidy(() => m.update(...rows(0, 3)));
    tf.tidy(() => batchOnly.update(...rows(3, 6)));
    const step = tf.tidy(() => m.forward(...rows(3, 6)));
    expect(value(step)).toEqual(value(batchOnly.compute()));
    const all = new Accuracy({ task: 'multiclass', numClasses: 3 });
    all.update(preds, target);
    expect(value(m.compute())).toEqual(value(all.compute()));
    expect(m.updateCount).toBe(2);
    for (const x of [m, batchOnly, all]) x.dispose();
  });
});

describe('MetricCollection', () => {
  it('updates, computes by prefixed name, resets and round-trips its state', async () => {
    await expectNoLeak(() => {
      const make = () =>
        new MetricCollection(
          { acc: new Accuracy({ task: 'multiclass', numClasses: 3 }), precision: new Precision({ task: 'multiclass', numClasses: 3, average: 'macro' }) },
          { prefix: 'val_' },
        );
      const c = make();
      tf.tidy(() => c.update(...rows(0, 3)));
      tf.tidy(() => c.update(...rows(3, 6)));
      const single = new Accuracy({ task: 'multiclass', numClasses: 3 });
      single.update(preds, target);
      const out = c.compute();
      expect(Object.keys(out)).toEqual(['val_acc', 'val_precision']);
      expect(value(out['val_acc']!)).toEqual(value(single.compute()));
      const copy = make();
      copy.loadStateDict(JSON.parse(JSON.stringify(c.stateDict())) as Record<string, unknown>);
      const copied = copy.compute();
      expect(value(copied['val_precision']!)).toEqual(value(out['val_precision']!));
      tf.dispose(copied);
      c.reset();
      const empty = c.compute();
      expect(value(empty['val_acc']!)).toEqual([0]);
      tf.dispose(empty);
      for (const x of [c, copy, single]) x.dispose();
    });
  });
});

describe('errors', () => {
  it('names the option, the value received and what is valid', () => {
    expect(() => new Accuracy({ task: 'multiclass' })).toThrow(new MisconfigurationError("Accuracy option 'numClasses': required for task 'multiclass' (a whole number >= 2)."));
    expect(() => new Precision({ task: 'binary', average: 'samples' as never })).toThrow(MisconfigurationError);
    expect(() => new Precision({ task: 'binary', average: 'samples' as never })).toThrow(
      `Precision option 'average': Invalid option: expected one of "micro"|"macro"|"weighted"|"none" (received "samples")`,
    );
    expect(() => new Accuracy({ task: 'binary', topK: 2 })).toThrow("Accuracy option 'topK': only task 'multiclass' has a topK (received topK=2 with task 'binary').");
    expect(() => new Accuracy({ task: 'multiclass', numClasses: 3, topK: 4 })).toThrow("Accuracy option 'topK': must be <= numClasses=3 (received 4).");
    expect(() => new R2Score({ numOutput: 2 } as never)).toThrow(MisconfigurationError);
  });

  it('rejects inputs of the wrong shape and states of another metric', () => {
    const acc = new Accuracy({ task: 'multiclass', numClasses: 4 });
    expect(() => acc.update(preds, target)).toThrow(
      new DataError('Accuracy.update: preds [6, 3] must be [N, numClasses=4, ...] with target [6] as [N, ...].'),
    );
    const mse = new MeanSquaredError();
    expect(() => mse.update(tf.zeros([3]), tf.zeros([4]))).toThrow('MeanSquaredError.update: preds [3] and target [4] must have the same shape (regression).');
    const three = new Accuracy({ task: 'multiclass', numClasses: 3 });
    three.update(preds, target);
    expect(() => acc.loadStateDict(three.stateDict())).toThrow(
      new CheckpointError('Accuracy.loadStateDict: state \'confmat\' must be a int32 of shape [4, 4] with as many values (received {"shape":[3,3],"dtype":"int32","values":9}).'),
    );
    expect(() => mse.mergeState(three)).toThrow('MeanSquaredError.mergeState: cannot merge a Accuracy (expected another MeanSquaredError).');
    expect(() => mse.loadStateDict({ confmat: {} })).toThrow("MeanSquaredError.loadStateDict: the state has keys [confmat]; a MeanSquaredError with these options has [sumSquaredError, total].");
    for (const m of [acc, mse, three]) m.dispose();
    expect(() => acc.compute()).toThrow('Accuracy.compute(): the metric was disposed.');
  });
});
