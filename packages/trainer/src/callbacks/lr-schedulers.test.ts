import * as tf from '@tensorflow/tfjs';
import { Callback, DataLoader, getLearningRate, LightningModule, Linear, seedEverything, type OptimizersReturn, type TrainerContext } from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { Trainer, type TrainerOptions } from '../index.js';
import { afterAll, describe, expect, it } from 'vitest';
import { CosineAnnealingLR, ExponentialLR, LearningRateMonitor, OneCycleLR, ReduceLROnPlateau, StepLR } from '@flint/callbacks';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false };
const data = randomClassificationDataset({ n: 64, features: 4, classes: 2, seed: 21 });
afterAll(() => data.dispose());

/** The learning rates of `steps` scheduler steps, starting with the one set on construction. */
function trace(s: { step(): void; getLastLr(): number[] }, steps: number): number[] {
  const out = [s.getLastLr()[0]!];
  for (let i = 0; i < steps; i++) {
    s.step();
    out.push(s.getLastLr()[0]!);
  }
  return out;
}

describe('closed-form schedulers', () => {
  it('StepLR: baseLr * gamma^floor(t / stepSize), set on the optimizer', () => {
    const opt = tf.train.sgd(0.1);
    const s = new StepLR(opt, { stepSize: 2, gamma: 0.5 });
    expect(trace(s, 5)).toEqual([0.1, 0.1, 0.05, 0.05, 0.025, 0.025]);
    expect(getLearningRate(opt)).toBe(0.025);
    opt.dispose();
  });

  it('ExponentialLR: baseLr * gamma^t', () => {
    const opt = tf.train.adam(1);
    expect(trace(new ExponentialLR(opt, { gamma: 0.5 }), 3)).toEqual([1, 0.5, 0.25, 0.125]);
    opt.dispose();
  });

  it('CosineAnnealingLR: PyTorch closed form, held at etaMin after tMax; linear warm-up first', () => {
    const opt = tf.train.adam(0.1);
    const plain = trace(new CosineAnnealingLR(opt, { tMax: 4, etaMin: 0.01 }), 5);
    const cos = (t: number) => 0.01 + ((0.1 - 0.01) * (1 + Math.cos((Math.PI * t) / 4))) / 2;
    [cos(0), cos(1), cos(2), cos(3), cos(4), 0.01].forEach((v, t) => expect(plain[t]).toBeCloseTo(v, 15));
    const opt2 = tf.train.adam(0.1);
    const warm = trace(new CosineAnnealingLR(opt2, { tMax: 2, warmup: 2, warmupStartFactor: 0.2 }), 4);
    [0.02, 0.06, 0.1, 0.05, 0].forEach((v, t) => expect(warm[t]).toBeCloseTo(v, 15));
    opt.dispose();
    opt2.dispose();
  });

  it("OneCycleLR: PyTorch's phases (cos and linear, two and three phases); stepping past totalSteps is an error", () => {
    const opt = tf.train.sgd(123);
    const s = new OneCycleLR(opt, { maxLr: 0.1, totalSteps: 10, cycleMomentum: false });
    const lrs = trace(s, 10);
    const initial = 0.1 / 25;
    const min = initial / 1e4;
    const anneal = (from: number, to: number, pct: number) => to + ((from - to) / 2) * (Math.cos(Math.PI * pct) + 1);
    const expected = Array.from({ length: 11 }, (_, t) => (t <= 2 ? anneal(initial, 0.1, t / 2) : anneal(0.1, min, Math.min(1, (t - 2) / 7))));
    lrs.forEach((lr, t) => expect(lr).toBeCloseTo(expected[t]!, 12));
    expect(lrs[0]).toBeCloseTo(0.004, 12);
    expect(lrs[2]).toBeCloseTo(0.1, 12);
    expect(() => s.step()).toThrow(
      "OneCycleLR was stepped 11 times, more than totalSteps=10: set totalSteps to the number of scheduler steps of the run (epochs * batches per epoch for interval 'step').",
    );
    const three = trace(new OneCycleLR(opt, { maxLr: 1, totalSteps: 10, cycleMomentum: false, pctStart: 0.25, annealStrategy: 'linear', divFactor: 10, finalDivFactor: 10, threePhase: true }), 9);
    // Phases end at steps 1.5, 3 and 9: 0.1 -> 1 -> 0.1 -> 0.01, linearly.
    [0.1, 0.7, 0.7, 0.1, 0.085, 0.07, 0.055, 0.04, 0.025, 0.01].forEach((v, t) => expect(three[t]).toBeCloseTo(v, 12));
    opt.dispose();
  });

  it('options are checked with pinned messages; the first argument must be an optimizer', () => {
    const opt = tf.train.sgd(0.1);
    expect(() => new StepLR(opt, { stepSize: 0 })).toThrow("StepLR option 'stepSize': must be a whole number >= 1 (received 0)");
    expect(() => new StepLR(opt, { stepSize: 1, gamma: -1 })).toThrow("StepLR option 'gamma': must be a number > 0 (received -1)");
    expect(() => new CosineAnnealingLR(opt, { tMax: 10, warmupSteps: 2 } as never)).toThrow(`CosineAnnealingLR option '(options)': Unrecognized key: "warmupSteps"`);
    expect(() => new OneCycleLR(opt, { maxLr: 0.1, totalSteps: 2, pctStart: 0.3 })).toThrow("OneCycleLR option 'pctStart': pctStart * totalSteps must be at least 1 step of warm-up");
    expect(() => new StepLR({} as never, { stepSize: 1 })).toThrow(
      'StepLR(optimizer, options): the first argument must be the tfjs optimizer to schedule, e.g. tf.train.adam(1e-3) (received object).',
    );
    expect(() => new ReduceLROnPlateau(opt, { factor: 1 })).toThrow("ReduceLROnPlateau option 'factor': must be a factor in (0, 1) (received 1)");
    opt.dispose();
  });

  it('state round-trips and sets the saved rate on a new optimizer (a resumed fit builds a fresh one)', () => {
    const opt = tf.train.momentum(0.1, 0.9);
    const s = new ExponentialLR(opt, { gamma: 0.5 });
    s.step();
    s.step();
    const fresh = tf.train.momentum(0.1, 0.9);
    const copy = new ExponentialLR(fresh, { gamma: 0.5 });
    copy.loadStateDict(s.stateDict());
    expect(copy.stateDict()).toEqual({ lastEpoch: 2, baseLr: 0.1, lastLr: 0.025 });
    expect(getLearningRate(fresh)).toBe(0.025);
    copy.step();
    expect(getLearningRate(fresh)).toBe(0.0125);
    opt.dispose();
    fresh.dispose();
  });
});

describe('ReduceLROnPlateau', () => {
  it("PyTorch's rule: the rate drops after patience + 1 bad steps, then cools down; never below minLr", () => {
    const opt = tf.train.adam(1);
    const s = new ReduceLROnPlateau(opt, { patience: 1, factor: 0.5, cooldown: 1, minLr: 0.2 });
    const lrs = [1, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95].map((v) => {
      s.step(v);
      return getLearningRate(opt);
    });
    expect(lrs).toEqual([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]);
    for (let i = 0; i < 10; i++) s.step(1);
    expect(getLearningRate(opt)).toBe(0.2);
    expect(s.getLastLr()).toEqual([0.2]);
    opt.dispose();
  });

  it("shares isImprovement with the monitor callbacks: mode, minDelta, and thresholdMode 'rel'", () => {
    const opt = tf.train.sgd(1);
    const abs = new ReduceLROnPlateau(opt, { minDelta: 0.1 });
    expect(abs.isImprovement(0.85, 1)).toBe(true);
    expect(abs.isImprovement(0.95, 1)).toBe(false);
    const rel = new ReduceLROnPlateau(opt, { minDelta: 0.1, thresholdMode: 'rel', mode: 'max' });
    expect(rel.isImprovement(11.5, 10)).toBe(true);
    expect(rel.isImprovement(10.5, 10)).toBe(false);
    expect(() => abs.step()).toThrow(
      "ReduceLROnPlateau.step() needs the monitored value: return { optimizer, lrScheduler: { scheduler, monitor: 'val_loss' } } from configureOptimizers so that the trainer passes it.",
    );
    const copy = new ReduceLROnPlateau(tf.train.sgd(1), { minDelta: 0.1 });
    abs.step(0.5);
    copy.loadStateDict(abs.stateDict());
    expect(copy.stateDict()).toEqual(abs.stateDict());
    opt.dispose();
    copy.optimizer.dispose();
  });

  it("in a fit, driven by the config's monitor: a flat validation metric halves the rate every epoch", async () => {
    class Flat extends LightningModule<BoringBatch> {
      layer = new Linear(4, 2);
      trainingStep([x, y]: BoringBatch) {
        return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.layer.forward(x)) as tf.Scalar;
      }
      override validationStep() {
        this.log('val_flat', 1);
      }
      configureOptimizers(): OptimizersReturn {
        const optimizer = tf.train.sgd(0.8);
        return { optimizer, lrScheduler: { scheduler: new ReduceLROnPlateau(optimizer, { patience: 0, factor: 0.5 }), monitor: 'val_flat' } };
      }
    }
    const monitor = new LearningRateMonitor();
    const trainer = new Trainer({ ...quiet, maxEpochs: 4, callbacks: [monitor] });
    const module = new Flat();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 32 }), new DataLoader(data, { batchSize: 64 })), 'fit');
    expect(monitor.lrs['lr-SGD']).toEqual([0.8, 0.8, 0.4, 0.2]);
  });
});

/** Records, for every optimizer step, the weights before, the gradients and the weights after. */
class StepRecorder extends Callback {
  readonly steps: Array<{ before: Float64Array[]; grads: Float64Array[]; after: Float64Array[] }> = [];
  private before: Float64Array[] = [];
  private grads: Float64Array[] = [];
  override onTrainBatchStart(_t: TrainerContext, m: LightningModule) {
    this.before = m.parameters().map((v) => Float64Array.from(v.dataSync()));
  }
  override onAfterBackward(_t: TrainerContext, m: LightningModule, grads: Readonly<Record<string, tf.Tensor>>) {
    this.grads = m.parameters().map((v) => Float64Array.from(grads[v.name]!.dataSync()));
  }
  override onTrainBatchEnd(_t: TrainerContext, m: LightningModule) {
    this.steps.push({ before: this.before, grads: this.grads, after: m.parameters().map((v) => Float64Array.from(v.dataSync())) });
  }
}

type OptName = 'sgd' | 'momentum' | 'adam' | 'rmsprop';
const makeOptimizer: Record<OptName, (lr: number) => tf.Optimizer> = {
  sgd: (lr) => tf.train.sgd(lr),
  momentum: (lr) => tf.train.momentum(lr, 0.9),
  adam: (lr) => tf.train.adam(lr),
  rmsprop: (lr) => tf.train.rmsprop(lr),
};

/**
 * Replays the tfjs update rules in float64 with the given rate per step, from the recorded
 * gradients: the weights the optimizer produces if, and only if, it used those rates.
 */
function replay(name: OptName, steps: StepRecorder['steps'], lrAt: (t: number) => number): Float64Array[][] {
  const eps = 1e-7;
  const shapes = steps[0]!.before;
  const w = shapes.map((a) => Float64Array.from(a));
  const s1 = shapes.map((a) => new Float64Array(a.length));
  const s2 = shapes.map((a) => new Float64Array(a.length));
  return steps.map(({ grads }, t) => {
    const lr = lrAt(t);
    grads.forEach((g, p) => {
      for (let i = 0; i < g.length; i++) {
        const gi = g[i]!;
        if (name === 'sgd') w[p]![i]! -= lr * gi;
        else if (name === 'momentum') {
          s1[p]![i] = 0.9 * s1[p]![i]! + gi;
          w[p]![i]! -= lr * s1[p]![i]!;
        } else if (name === 'adam') {
          s1[p]![i] = 0.9 * s1[p]![i]! + 0.1 * gi;
          s2[p]![i] = 0.999 * s2[p]![i]! + 0.001 * gi * gi;
          const mHat = s1[p]![i]! / (1 - 0.9 ** (t + 1));
          const vHat = s2[p]![i]! / (1 - 0.999 ** (t + 1));
          w[p]![i]! -= (lr * mHat) / (Math.sqrt(vHat) + eps);
        } else {
          s1[p]![i] = 0.9 * s1[p]![i]! + 0.1 * gi * gi;
          w[p]![i]! -= (lr * gi) / Math.sqrt(s1[p]![i]! + eps);
        }
      }
    });
    return w.map((a) => Float64Array.from(a));
  });
}

function maxDiff(a: Float64Array[], b: Float64Array[]): number {
  let m = 0;
  a.forEach((x, p) => x.forEach((v, i) => (m = Math.max(m, Math.abs(v - b[p]![i]!)))));
  return m;
}

describe('the scheduled rate is the rate the optimizer uses', () => {
  for (const name of ['sgd', 'momentum', 'adam', 'rmsprop'] as const) {
    it(`${name}: every step's update is the one of the scheduled rate (StepLR halving the rate every step)`, async () => {
      class Model extends LightningModule<BoringBatch> {
        layer = new Linear(4, 2);
        trainingStep([x, y]: BoringBatch) {
          return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.layer.forward(x)) as tf.Scalar;
        }
        configureOptimizers(): OptimizersReturn {
          const optimizer = makeOptimizer[name](0.2);
          return { optimizer, lrScheduler: { scheduler: new StepLR(optimizer, { stepSize: 1, gamma: 0.5 }), interval: 'step' } };
        }
      }
      seedEverything(7);
      const recorder = new StepRecorder();
      const trainer = new Trainer({ ...quiet, maxEpochs: 2, callbacks: [recorder] });
      const module = new Model();
      await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16 })), `fit with ${name}`);
      const steps = recorder.steps;
      expect(steps).toHaveLength(8);
      const scheduled = replay(name, steps, (t) => 0.2 * 0.5 ** t);
      const constant = replay(name, steps, () => 0.2);
      steps.forEach((s, t) => expect(maxDiff(s.after, scheduled[t]!), `step ${t}`).toBeLessThan(1e-5));
      expect(maxDiff(steps[7]!.after, constant[7]!)).toBeGreaterThan(1e-3);
      if (name === 'sgd') {
        // One SGD step's weight change is exactly -lr * grad.
        const { before, grads, after } = steps[3]!;
        after.forEach((a, p) => a.forEach((v, i) => expect(v - before[p]![i]!).toBeCloseTo(-0.2 * 0.5 ** 3 * grads[p]![i]!, 6)));
      }
    });
  }
});
