import * as tf from '@tensorflow/tfjs';
import {
  adam,
  Callback,
  DataLoader,
  getLearningRate,
  getMomentum,
  LightningModule,
  Linear,
  seedEverything,
  type LRScheduler,
  type OptimizersReturn,
  type OptimizerWrapper,
  type TrainerContext,
} from '@flint/core';
import { expectNoLeak, randomClassificationDataset, type BoringBatch } from '@flint/core/testing';
import { Trainer, type TrainerOptions } from '../index.js';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ChainedScheduler,
  ConstantLR,
  CosineAnnealingLR,
  CosineAnnealingWarmRestarts,
  CyclicLR,
  ExponentialLR,
  LambdaLR,
  LearningRateMonitor,
  LinearLR,
  MultiplicativeLR,
  MultiStepLR,
  OneCycleLR,
  PolynomialLR,
  ReduceLROnPlateau,
  SequentialLR,
  StepLR,
} from '@flint/callbacks';

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

  it("interval 'step' on a step-logged metric: no error at step 1, and each reduction trains from the next step on, as Lightning's", async () => {
    class FlatStep extends LightningModule<BoringBatch> {
      layer = new Linear(4, 2);
      trainingStep([x, y]: BoringBatch) {
        this.log('ts', 1, { onStep: true, onEpoch: false });
        return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.layer.forward(x)) as tf.Scalar;
      }
      configureOptimizers(): OptimizersReturn {
        const optimizer = tf.train.sgd(0.1);
        return { optimizer, lrScheduler: { scheduler: new ReduceLROnPlateau(optimizer, { patience: 1, factor: 0.5 }), monitor: 'ts', interval: 'step' } };
      }
    }
    const monitor = new LearningRateMonitor({ loggingInterval: 'step' });
    const trainer = new Trainer({ ...quiet, maxEpochs: 2, callbacks: [monitor] });
    const module = new FlatStep();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16 })), 'fit');
    // Step 1 sets the best; steps 2 and 3 are bad: the reduction after step 3 (patience 1) trains step 4.
    // The same rates as Lightning 2.6 on this scenario (parity scenario lr-plateau-step).
    expect(monitor.lrs['lr-SGD']).toEqual([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]);
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

/** Records the learning rate and momentum the optimizer has at every optimizer step. */
class RateRecorder extends Callback {
  readonly lrs: number[] = [];
  readonly momentums: Array<number | undefined> = [];
  override onBeforeOptimizerStep(_t: TrainerContext, _m: LightningModule, o: OptimizerWrapper) {
    this.lrs.push(getLearningRate(o.optimizer));
    this.momentums.push(getMomentum(o.optimizer));
  }
}

interface FitCase {
  name: string;
  interval: 'epoch' | 'step';
  optimizer?: (lr: number) => tf.Optimizer;
  scheduler: (o: tf.Optimizer) => LRScheduler;
  /** The rate after `t` scheduler steps (t = epoch or optimizer step). */
  lr: (t: number) => number;
  momentum?: (t: number) => number;
}

const cosAnneal = (from: number, to: number, pct: number) => to + ((from - to) / 2) * (Math.cos(Math.PI * pct) + 1);
/** CyclicLR's triangle with stepSizeUp = stepSizeDown = 2: 0 at the ends of a cycle, 1 at its middle. */
const triangle = (t: number) => Math.max(0, 1 - Math.abs(t / 2 - 2 * Math.floor(1 + t / 4) + 1));
/** OneCycleLR over 8 steps, pctStart 0.25: up over steps 0..1, down over 1..7. */
const oneCycle = (t: number, a: number, peak: number, end: number) => (t <= 1 ? cosAnneal(a, peak, t) : cosAnneal(peak, end, (t - 1) / 6));

const FIT_CASES: FitCase[] = [
  { name: 'MultiStepLR', interval: 'step', scheduler: (o) => new MultiStepLR(o, { milestones: [2, 5], gamma: 0.5 }), lr: (t) => 0.1 * 0.5 ** [2, 5].filter((m) => m <= t).length },
  { name: 'ConstantLR', interval: 'step', scheduler: (o) => new ConstantLR(o, { factor: 0.5, totalIters: 3 }), lr: (t) => 0.1 * (t < 3 ? 0.5 : 1) },
  { name: 'LinearLR', interval: 'step', scheduler: (o) => new LinearLR(o, { totalIters: 4 }), lr: (t) => 0.1 * (1 / 3 + ((2 / 3) * Math.min(t, 4)) / 4) },
  { name: 'PolynomialLR', interval: 'step', scheduler: (o) => new PolynomialLR(o, { totalIters: 6, power: 2 }), lr: (t) => 0.1 * (1 - Math.min(t, 6) / 6) ** 2 },
  { name: 'LambdaLR', interval: 'epoch', scheduler: (o) => new LambdaLR(o, { lrLambda: (e) => 1 / (1 + e) }), lr: (t) => 0.1 / (1 + t) },
  { name: 'MultiplicativeLR', interval: 'step', scheduler: (o) => new MultiplicativeLR(o, { lrLambda: () => 0.9 }), lr: (t) => 0.1 * 0.9 ** t },
  {
    name: 'CosineAnnealingWarmRestarts',
    interval: 'step',
    scheduler: (o) => new CosineAnnealingWarmRestarts(o, { t0: 3 }),
    lr: (t) => (0.1 * (1 + Math.cos((Math.PI * (t % 3)) / 3))) / 2,
  },
  {
    name: 'CyclicLR cycling Adam beta1',
    interval: 'step',
    optimizer: (lr) => adam({ learningRate: lr }),
    scheduler: (o) => new CyclicLR(o, { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 2 }),
    lr: (t) => 0.01 + 0.09 * triangle(t),
    momentum: (t) => 0.9 - 0.1 * triangle(t),
  },
  {
    name: 'OneCycleLR cycling Momentum',
    interval: 'step',
    optimizer: (lr) => tf.train.momentum(lr, 0.5),
    scheduler: (o) => new OneCycleLR(o, { maxLr: 0.5, totalSteps: 8, pctStart: 0.25 }),
    lr: (t) => oneCycle(t, 0.02, 0.5, 0.02 / 1e4),
    momentum: (t) => oneCycle(t, 0.95, 0.85, 0.95),
  },
  {
    name: 'SequentialLR (LinearLR warm-up, then ExponentialLR)',
    interval: 'epoch',
    scheduler: (o) => new SequentialLR(o, { schedulers: [new LinearLR(o, { totalIters: 1 }), new ExponentialLR(o, { gamma: 0.5 })], milestones: [1] }),
    lr: (t) => (t < 1 ? 0.1 / 3 : 0.1 * 0.5 ** (t - 1)),
  },
  {
    name: 'ChainedScheduler (ConstantLR x ExponentialLR)',
    interval: 'step',
    scheduler: (o) => new ChainedScheduler(o, { schedulers: [new ConstantLR(o, { factor: 0.5, totalIters: 2 }), new ExponentialLR(o, { gamma: 0.9 })] }),
    lr: (t) => 0.1 * 0.9 ** t * (t < 2 ? 0.5 : 1),
  },
];

describe('every scheduler family in a fit: the rate (and momentum) the optimizer has at each step', () => {
  for (const k of FIT_CASES) {
    it(`${k.name}, interval '${k.interval}'`, async () => {
      class Model extends LightningModule<BoringBatch> {
        layer = new Linear(4, 2);
        trainingStep([x, y]: BoringBatch) {
          return tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), this.layer.forward(x)) as tf.Scalar;
        }
        configureOptimizers(): OptimizersReturn {
          const optimizer = (k.optimizer ?? ((lr: number) => tf.train.sgd(lr)))(0.1);
          return { optimizer, lrScheduler: { scheduler: k.scheduler(optimizer), interval: k.interval } };
        }
      }
      const recorder = new RateRecorder();
      const trainer = new Trainer({ ...quiet, maxEpochs: 2, callbacks: [recorder] });
      const module = new Model();
      await expectNoLeak(() => trainer.fit(module, new DataLoader(data, { batchSize: 16 })), `fit with ${k.name}`);
      tf.dispose(module.parameters());
      expect(recorder.lrs).toHaveLength(8);
      // 4 optimizer steps per epoch: an epoch scheduler has been stepped once per finished epoch.
      const t = (step: number) => (k.interval === 'step' ? step : Math.floor(step / 4));
      recorder.lrs.forEach((lr, step) => expect(lr, `lr at step ${step}`).toBeCloseTo(k.lr(t(step)), 12));
      if (k.momentum) recorder.momentums.forEach((m, step) => expect(m, `momentum at step ${step}`).toBeCloseTo(k.momentum!(t(step)), 12));
      expect(new Set(recorder.lrs.map((v) => v.toFixed(12))).size, 'the rate changes during the fit').toBeGreaterThan(1);
    });
  }
});
