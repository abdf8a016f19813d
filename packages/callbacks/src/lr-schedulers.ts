import type * as tf from '@tensorflow/tfjs';
import { getLearningRate, MisconfigurationError, parseOptions, setLearningRate, type LRScheduler } from '@flint/core';
import { z } from 'zod';

const positiveInt = z.number({ error: 'must be a whole number >= 1' }).int({ error: 'must be a whole number >= 1' }).min(1, { error: 'must be a whole number >= 1' });
const wholeNumber = z.number({ error: 'must be a whole number >= 0' }).int({ error: 'must be a whole number >= 0' }).min(0, { error: 'must be a whole number >= 0' });
const nonNegative = z.number({ error: 'must be a number >= 0' }).nonnegative({ error: 'must be a number >= 0' });
const positive = z.number({ error: 'must be a number > 0' }).positive({ error: 'must be a number > 0' });
const factor = z.number({ error: 'must be a factor in (0, 1]' }).gt(0, { error: 'must be a factor in (0, 1]' }).max(1, { error: 'must be a factor in (0, 1]' });

function checkOptimizer(owner: string, optimizer: unknown): tf.Optimizer {
  if (optimizer === null || typeof optimizer !== 'object' || typeof (optimizer as tf.Optimizer).applyGradients !== 'function') {
    throw new MisconfigurationError(`${owner}(optimizer, options): the first argument must be the tfjs optimizer to schedule, e.g. tf.train.adam(1e-3) (received ${optimizer === null ? 'null' : typeof optimizer}).`);
  }
  return optimizer as tf.Optimizer;
}

/**
 * The base of the closed-form schedulers: the rate is a function of the number of `step()` calls
 * (`lastEpoch`, an epoch or an optimizer step depending on the scheduler config's `interval`) and the
 * optimizer's learning rate when the scheduler was built (`baseLr`). The rate for interval 0 is set
 * on construction, each `step()` sets the next one on the optimizer with `setLearningRate`, so the
 * optimizer really uses it (SGD and Momentum cache it in a tensor, refreshed there).
 */
export abstract class ClosedFormLRScheduler implements LRScheduler {
  readonly optimizer: tf.Optimizer;
  /** The optimizer's learning rate when the scheduler was built. */
  baseLr: number;
  /** `step()` calls so far. */
  lastEpoch = 0;
  private lastLr: number;

  protected constructor(owner: string, optimizer: tf.Optimizer) {
    this.optimizer = checkOptimizer(owner, optimizer);
    this.baseLr = getLearningRate(this.optimizer);
    this.lastLr = this.baseLr;
  }

  /** Sets the rate of interval 0; subclasses call it at the end of their constructor. */
  protected start(): void {
    this.apply(this.lrAt(0));
  }

  /** The learning rate for interval `t`. */
  abstract lrAt(t: number): number;

  step(_metric?: number): void {
    this.lastEpoch += 1;
    this.apply(this.lrAt(this.lastEpoch));
  }

  getLastLr(): number[] {
    return [this.lastLr];
  }

  stateDict(): Record<string, unknown> {
    return { lastEpoch: this.lastEpoch, baseLr: this.baseLr, lastLr: this.lastLr };
  }

  /** Restores the counters and sets the saved rate on the (new) optimizer. */
  loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.lastEpoch = Number(state.lastEpoch ?? 0);
    this.baseLr = Number(state.baseLr ?? this.baseLr);
    this.apply(Number(state.lastLr ?? this.lrAt(this.lastEpoch)));
  }

  protected apply(lr: number): void {
    setLearningRate(this.optimizer, lr);
    this.lastLr = lr;
  }
}

/** Schema of `StepLROptions`. */
export const stepLROptionsSchema = z.strictObject({
  /** Multiply the rate by `gamma` every `stepSize` intervals. */
  stepSize: positiveInt,
  gamma: positive.default(0.1),
});
export type StepLROptions = z.input<typeof stepLROptionsSchema>;

/** `lr = baseLr * gamma^floor(t / stepSize)` (PyTorch's StepLR). */
export class StepLR extends ClosedFormLRScheduler {
  readonly options: z.output<typeof stepLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: StepLROptions) {
    super('StepLR', optimizer);
    this.options = parseOptions('StepLR', stepLROptionsSchema, options);
    this.start();
  }
  lrAt(t: number): number {
    return this.baseLr * this.options.gamma ** Math.floor(t / this.options.stepSize);
  }
}

/** Schema of `ExponentialLROptions`. */
export const exponentialLROptionsSchema = z.strictObject({
  /** Multiply the rate by `gamma` every interval. */
  gamma: positive,
});
export type ExponentialLROptions = z.input<typeof exponentialLROptionsSchema>;

/** `lr = baseLr * gamma^t` (PyTorch's ExponentialLR). */
export class ExponentialLR extends ClosedFormLRScheduler {
  readonly options: z.output<typeof exponentialLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: ExponentialLROptions) {
    super('ExponentialLR', optimizer);
    this.options = parseOptions('ExponentialLR', exponentialLROptionsSchema, options);
    this.start();
  }
  lrAt(t: number): number {
    return this.baseLr * this.options.gamma ** t;
  }
}

/** Schema of `CosineAnnealingLROptions`. */
export const cosineAnnealingLROptionsSchema = z.strictObject({
  /** Intervals of the cosine phase (after the warm-up), from baseLr down to etaMin. */
  tMax: positiveInt,
  /** The rate at the end of the cosine phase, and after it. */
  etaMin: nonNegative.default(0),
  /** Intervals of linear warm-up before the cosine phase. */
  warmup: wholeNumber.default(0),
  /** The rate at interval 0 of the warm-up. */
  warmupStartLr: nonNegative.default(0),
});
export type CosineAnnealingLROptions = z.input<typeof cosineAnnealingLROptionsSchema>;

/**
 * Optional linear warm-up from `warmupStartLr` to baseLr over `warmup` intervals, then
 * `etaMin + (baseLr - etaMin) * (1 + cos(pi * (t - warmup) / tMax)) / 2`, held at `etaMin` after
 * `warmup + tMax` intervals (PyTorch's closed form would climb back up).
 */
export class CosineAnnealingLR extends ClosedFormLRScheduler {
  readonly options: z.output<typeof cosineAnnealingLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: CosineAnnealingLROptions) {
    super('CosineAnnealingLR', optimizer);
    this.options = parseOptions('CosineAnnealingLR', cosineAnnealingLROptionsSchema, options);
    this.start();
  }
  lrAt(t: number): number {
    const { tMax, etaMin, warmup, warmupStartLr } = this.options;
    if (t < warmup) return warmupStartLr + ((this.baseLr - warmupStartLr) * t) / warmup;
    const progress = Math.min(1, (t - warmup) / tMax);
    return etaMin + ((this.baseLr - etaMin) * (1 + Math.cos(Math.PI * progress))) / 2;
  }
}

/** Schema of `OneCycleLROptions`. */
export const oneCycleLROptionsSchema = z
  .strictObject({
    /** The peak rate. */
    maxLr: positive,
    /** Steps in the cycle (usually epochs * batches per epoch, with interval 'step'). */
    totalSteps: positiveInt,
    /** Fraction of the cycle spent increasing the rate. */
    pctStart: z.number({ error: 'must be a fraction in (0, 1)' }).gt(0, { error: 'must be a fraction in (0, 1)' }).lt(1, { error: 'must be a fraction in (0, 1)' }).default(0.3),
    /** How the rate moves between its anchor points. */
    annealStrategy: z.enum(['cos', 'linear'], { error: "must be 'cos' or 'linear'" }).default('cos'),
    /** The initial rate is maxLr / divFactor. */
    divFactor: positive.default(25),
    /** The final rate is the initial rate / finalDivFactor. */
    finalDivFactor: positive.default(1e4),
    /** Up to maxLr, back down to the initial rate, then down to the final rate (fast.ai's variant) instead of two phases. */
    threePhase: z.boolean({ error: 'must be true or false' }).default(false),
  })
  .refine((o) => o.totalSteps * o.pctStart >= 1, { error: 'pctStart * totalSteps must be at least 1 step of warm-up', path: ['pctStart'] });
export type OneCycleLROptions = z.input<typeof oneCycleLROptionsSchema>;

/**
 * Leslie Smith's one-cycle policy as PyTorch's OneCycleLR: from maxLr/divFactor up to maxLr over
 * `pctStart` of `totalSteps`, then down to maxLr/divFactor/finalDivFactor. It sets the rate itself
 * (the optimizer's own rate is not used). Stepping past `totalSteps` is an error.
 */
export class OneCycleLR extends ClosedFormLRScheduler {
  readonly options: z.output<typeof oneCycleLROptionsSchema>;
  private readonly phases: ReadonlyArray<{ end: number; from: number; to: number }>;

  constructor(optimizer: tf.Optimizer, options: OneCycleLROptions) {
    super('OneCycleLR', optimizer);
    const o = parseOptions('OneCycleLR', oneCycleLROptionsSchema, options);
    this.options = o;
    const initial = o.maxLr / o.divFactor;
    const min = initial / o.finalDivFactor;
    const up = o.pctStart * o.totalSteps - 1;
    this.phases = o.threePhase
      ? [
          { end: up, from: initial, to: o.maxLr },
          { end: 2 * o.pctStart * o.totalSteps - 2, from: o.maxLr, to: initial },
          { end: o.totalSteps - 1, from: initial, to: min },
        ]
      : [
          { end: up, from: initial, to: o.maxLr },
          { end: o.totalSteps - 1, from: o.maxLr, to: min },
        ];
    this.baseLr = initial;
    this.start();
  }

  lrAt(t: number): number {
    if (t > this.options.totalSteps) {
      throw new MisconfigurationError(
        `OneCycleLR was stepped ${t} times, more than totalSteps=${this.options.totalSteps}: set totalSteps to the number of scheduler steps of the run (epochs * batches per epoch for interval 'step').`,
      );
    }
    let start = 0;
    for (let i = 0; i < this.phases.length; i++) {
      const phase = this.phases[i]!;
      if (t <= phase.end || i === this.phases.length - 1) {
        const pct = phase.end === start ? 1 : Math.min(1, (t - start) / (phase.end - start));
        return this.options.annealStrategy === 'cos'
          ? phase.to + ((phase.from - phase.to) / 2) * (Math.cos(Math.PI * pct) + 1)
          : (phase.to - phase.from) * pct + phase.from;
      }
      start = phase.end;
    }
    return this.phases[this.phases.length - 1]!.to;
  }
}
