import type * as tf from '@tensorflow/tfjs';
import { checkTfOptimizer, getLearningRate, getMomentum, MisconfigurationError, parseOptions, positiveInt, setLearningRate, setMomentum, wholeNumber, type LRScheduler } from '@flint/core';
import { z } from 'zod';

const nonNegative = z.number({ error: 'must be a number >= 0' }).nonnegative({ error: 'must be a number >= 0' });
const positive = z.number({ error: 'must be a number > 0' }).positive({ error: 'must be a number > 0' });
const factor = z.number({ error: 'must be a factor in (0, 1]' }).gt(0, { error: 'must be a factor in (0, 1]' }).max(1, { error: 'must be a factor in (0, 1]' });
const closedFactor = z.number({ error: 'must be a factor in [0, 1]' }).min(0, { error: 'must be a factor in [0, 1]' }).max(1, { error: 'must be a factor in [0, 1]' });
const momentum = z.number({ error: 'must be a momentum in [0, 1)' }).min(0, { error: 'must be a momentum in [0, 1)' }).lt(1, { error: 'must be a momentum in [0, 1)' });
const epochFunction = z.custom<(epoch: number) => number>((v) => typeof v === 'function', { error: 'must be a function (epoch: number) => number' });

function checkOptimizer(owner: string, optimizer: unknown): tf.Optimizer {
  return checkTfOptimizer(`${owner}(optimizer, options)`, optimizer);
}

/** PyTorch's `param_group['initial_lr']`: the optimizer's rate when the first scheduler on it was built. */
const initialLrs = new WeakMap<tf.Optimizer, number>();

function initialLr(optimizer: tf.Optimizer): number {
  if (!initialLrs.has(optimizer)) initialLrs.set(optimizer, getLearningRate(optimizer));
  return initialLrs.get(optimizer)!;
}

/** Python's `bisect.bisect_right` on a sorted list. */
function bisectRight(sorted: readonly number[], x: number): number {
  let i = 0;
  while (i < sorted.length && sorted[i]! <= x) i++;
  return i;
}

/** With `cycleMomentum`, the optimizer must have a momentum (or Adam's beta1) to cycle. */
function checkMomentum(owner: string, optimizer: tf.Optimizer): void {
  if (getMomentum(optimizer) === undefined) {
    throw new MisconfigurationError(
      `${owner} option 'cycleMomentum': the optimizer ${optimizer.getClassName()} has no momentum or beta1 to cycle (received true): use tf.train.momentum(lr, 0.9), adam() from @flint/core or tf.train.adam(lr), or set cycleMomentum: false.`,
    );
  }
}

/**
 * The base of Flint's schedulers, with PyTorch's `LRScheduler` semantics: `lastEpoch` counts
 * `step()` calls (an epoch or an optimizer step depending on the config's `interval`), the rate of
 * interval 0 is set on construction, and each `step()` computes the next rate (`computeLr`, PyTorch's
 * `get_lr`) and sets it on the optimizer with `setLearningRate`, so the optimizer really uses it (SGD
 * and Momentum cache it in a tensor, refreshed there). Most schedulers are chainable as in PyTorch:
 * they multiply the optimizer's current rate, so that `ChainedScheduler` composes them and
 * `SequentialLR` hands the rate from one to the next. `baseLr` is PyTorch's `initial_lr`: the
 * optimizer's rate when the first scheduler on it was built.
 */
export abstract class ChainableLRScheduler implements LRScheduler {
  readonly optimizer: tf.Optimizer;
  /** The optimizer's learning rate when the first scheduler on it was built. */
  baseLr: number;
  /** `step()` calls so far (-1 while the scheduler is being built). */
  lastEpoch = -1;
  /** PyTorch's `_step_count`. */
  protected stepCount = 0;
  /** True during the step made on construction (PyTorch's `_is_initial`). */
  protected isInitial = false;
  private lastLr: number;

  /** `startLr`: a rate to set on the optimizer before its initial rate is read (CyclicLR's baseLr). */
  protected constructor(owner: string, optimizer: tf.Optimizer, startLr?: number) {
    this.optimizer = checkOptimizer(owner, optimizer);
    if (startLr !== undefined) setLearningRate(this.optimizer, startLr);
    this.baseLr = initialLr(this.optimizer);
    this.lastLr = getLearningRate(this.optimizer);
  }

  /** Sets the rate of interval 0; subclasses call it at the end of their constructor. */
  protected start(): void {
    this.initialStep();
  }

  /** PyTorch's `_initial_step`: the step made on construction (SequentialLR makes it again). */
  initialStep(): void {
    this.stepCount = 0;
    this.isInitial = true;
    try {
      this.step();
    } finally {
      this.isInitial = false;
    }
  }

  /** The optimizer's current learning rate (what chainable schedulers multiply). */
  protected get currentLr(): number {
    return getLearningRate(this.optimizer);
  }

  /** The learning rate for interval `lastEpoch` (PyTorch's `get_lr`). */
  protected abstract computeLr(): number;

  /** PyTorch's `_get_closed_form_lr`, where it has one: the rate at `lastEpoch` from `baseLr` alone. */
  protected closedFormLr(): number | undefined {
    return undefined;
  }

  step(_metric?: number): void {
    this.stepCount += 1;
    this.lastEpoch += 1;
    this.apply(this.computeLr());
  }

  /** Sets the rate of interval `epoch` (the closed form where there is one), as SequentialLR does at its milestones. */
  jumpTo(epoch: number): void {
    this.lastEpoch = epoch;
    this.apply(this.closedFormLr() ?? this.computeLr());
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
    this.stepCount = this.lastEpoch + 1;
    this.apply(Number(state.lastLr ?? this.closedFormLr() ?? this.lastLr));
  }

  protected apply(lr: number): void {
    setLearningRate(this.optimizer, lr);
    this.lastLr = lr;
  }
}

/**
 * A scheduler whose rate is a function of the interval alone: implement `lrAt(t)` (for your own
 * schedules; it ignores what other schedulers did to the rate).
 */
export abstract class ClosedFormLRScheduler extends ChainableLRScheduler {
  /** The learning rate for interval `t`. */
  abstract lrAt(t: number): number;
  protected computeLr(): number {
    return this.lrAt(this.lastEpoch);
  }
  protected override closedFormLr(): number {
    return this.lrAt(this.lastEpoch);
  }
}

export const stepLROptionsSchema = z.strictObject({
  /** Multiply the rate by `gamma` every `stepSize` intervals. */
  stepSize: positiveInt,
  gamma: positive.default(0.1),
});
export type StepLROptions = z.input<typeof stepLROptionsSchema>;

/** `lr = baseLr * gamma^floor(t / stepSize)` (PyTorch's StepLR). */
export class StepLR extends ChainableLRScheduler {
  readonly options: z.output<typeof stepLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: StepLROptions) {
    super('StepLR', optimizer);
    this.options = parseOptions('StepLR', stepLROptionsSchema, options);
    this.start();
  }
  protected computeLr(): number {
    const t = this.lastEpoch;
    return t === 0 || t % this.options.stepSize !== 0 ? this.currentLr : this.currentLr * this.options.gamma;
  }
  protected override closedFormLr(): number {
    return this.baseLr * this.options.gamma ** Math.floor(this.lastEpoch / this.options.stepSize);
  }
}

export const multiStepLROptionsSchema = z.strictObject({
  /** The intervals at which the rate is multiplied by `gamma` (a milestone listed twice multiplies by gamma^2). */
  milestones: z.array(wholeNumber, { error: 'must be a list of whole numbers >= 0' }),
  gamma: positive.default(0.1),
});
export type MultiStepLROptions = z.input<typeof multiStepLROptionsSchema>;

/** `lr = baseLr * gamma^(milestones reached)` (PyTorch's MultiStepLR). */
export class MultiStepLR extends ChainableLRScheduler {
  readonly options: z.output<typeof multiStepLROptionsSchema>;
  private readonly sorted: number[];
  constructor(optimizer: tf.Optimizer, options: MultiStepLROptions) {
    super('MultiStepLR', optimizer);
    this.options = parseOptions('MultiStepLR', multiStepLROptionsSchema, options);
    this.sorted = [...this.options.milestones].sort((a, b) => a - b);
    this.start();
  }
  protected computeLr(): number {
    const count = this.sorted.filter((m) => m === this.lastEpoch).length;
    return count === 0 ? this.currentLr : this.currentLr * this.options.gamma ** count;
  }
  protected override closedFormLr(): number {
    return this.baseLr * this.options.gamma ** bisectRight(this.sorted, this.lastEpoch);
  }
}

export const constantLROptionsSchema = z.strictObject({
  /** The rate is multiplied by this until `totalIters`. */
  factor: closedFactor.default(1 / 3),
  totalIters: wholeNumber.default(5),
});
export type ConstantLROptions = z.input<typeof constantLROptionsSchema>;

/** `lr = baseLr * factor` for `t < totalIters`, then `baseLr` (PyTorch's ConstantLR). */
export class ConstantLR extends ChainableLRScheduler {
  readonly options: z.output<typeof constantLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: ConstantLROptions = {}) {
    super('ConstantLR', optimizer);
    this.options = parseOptions('ConstantLR', constantLROptionsSchema, options);
    this.start();
  }
  protected computeLr(): number {
    const { factor: f, totalIters } = this.options;
    if (this.lastEpoch === 0) return this.currentLr * f;
    if (this.lastEpoch !== totalIters) return this.currentLr;
    return this.currentLr * (1 / f);
  }
  protected override closedFormLr(): number {
    const { factor: f, totalIters } = this.options;
    return this.baseLr * (f + (this.lastEpoch >= totalIters ? 1 : 0) * (1 - f));
  }
}

export const linearLROptionsSchema = z.strictObject({
  /** The rate at interval 0 is `baseLr * startFactor` (never 0). */
  startFactor: factor.default(1 / 3),
  /** The rate from `totalIters` on is `baseLr * endFactor`. */
  endFactor: closedFactor.default(1),
  totalIters: positiveInt.default(5),
});
export type LinearLROptions = z.input<typeof linearLROptionsSchema>;

/**
 * `lr = baseLr * (startFactor + (endFactor - startFactor) * min(t, totalIters) / totalIters)`
 * (PyTorch's LinearLR): the warm-up to put before another schedule in a `SequentialLR`.
 */
export class LinearLR extends ChainableLRScheduler {
  readonly options: z.output<typeof linearLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: LinearLROptions = {}) {
    super('LinearLR', optimizer);
    this.options = parseOptions('LinearLR', linearLROptionsSchema, options);
    this.start();
  }
  protected computeLr(): number {
    const { startFactor: s, endFactor: e, totalIters } = this.options;
    const t = this.lastEpoch;
    if (t === 0) return this.currentLr * s;
    if (this.isInitial || t > totalIters) return this.currentLr;
    return this.currentLr * (1 + (e - s) / (totalIters * s + (t - 1) * (e - s)));
  }
  protected override closedFormLr(): number {
    const { startFactor: s, endFactor: e, totalIters } = this.options;
    return this.baseLr * (s + ((e - s) * Math.min(totalIters, this.lastEpoch)) / totalIters);
  }
}

export const exponentialLROptionsSchema = z.strictObject({
  /** Multiply the rate by `gamma` every interval. */
  gamma: positive,
});
export type ExponentialLROptions = z.input<typeof exponentialLROptionsSchema>;

/** `lr = baseLr * gamma^t` (PyTorch's ExponentialLR). */
export class ExponentialLR extends ChainableLRScheduler {
  readonly options: z.output<typeof exponentialLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: ExponentialLROptions) {
    super('ExponentialLR', optimizer);
    this.options = parseOptions('ExponentialLR', exponentialLROptionsSchema, options);
    this.start();
  }
  protected computeLr(): number {
    return this.isInitial ? this.currentLr : this.currentLr * this.options.gamma;
  }
  protected override closedFormLr(): number {
    return this.baseLr * this.options.gamma ** this.lastEpoch;
  }
}

export const polynomialLROptionsSchema = z.strictObject({
  /** Intervals until the rate reaches 0 (and stays there). */
  totalIters: positiveInt.default(5),
  power: nonNegative.default(1),
});
export type PolynomialLROptions = z.input<typeof polynomialLROptionsSchema>;

/** `lr = baseLr * (1 - min(t, totalIters) / totalIters)^power` (PyTorch's PolynomialLR). */
export class PolynomialLR extends ChainableLRScheduler {
  readonly options: z.output<typeof polynomialLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: PolynomialLROptions = {}) {
    super('PolynomialLR', optimizer);
    this.options = parseOptions('PolynomialLR', polynomialLROptionsSchema, options);
    this.start();
  }
  protected computeLr(): number {
    const { totalIters, power } = this.options;
    const t = this.lastEpoch;
    if (this.isInitial || t > totalIters) return this.currentLr;
    return this.currentLr * ((1 - t / totalIters) / (1 - (t - 1) / totalIters)) ** power;
  }
  protected override closedFormLr(): number {
    const { totalIters, power } = this.options;
    return this.baseLr * (1 - Math.min(totalIters, this.lastEpoch) / totalIters) ** power;
  }
}

export const lambdaLROptionsSchema = z.strictObject({
  /** The rate at interval t is `baseLr * lrLambda(t)`. */
  lrLambda: epochFunction,
});
export type LambdaLROptions = z.input<typeof lambdaLROptionsSchema>;

/** `lr = baseLr * lrLambda(t)` (PyTorch's LambdaLR). The function is not saved in checkpoints. */
export class LambdaLR extends ChainableLRScheduler {
  readonly options: z.output<typeof lambdaLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: LambdaLROptions) {
    super('LambdaLR', optimizer);
    this.options = parseOptions('LambdaLR', lambdaLROptionsSchema, options);
    this.start();
  }
  protected computeLr(): number {
    return this.baseLr * this.options.lrLambda(this.lastEpoch);
  }
}

export const multiplicativeLROptionsSchema = z.strictObject({
  /** At every step the rate is multiplied by `lrLambda(t)`. */
  lrLambda: epochFunction,
});
export type MultiplicativeLROptions = z.input<typeof multiplicativeLROptionsSchema>;

/** `lr(t) = lr(t - 1) * lrLambda(t)` (PyTorch's MultiplicativeLR). The function is not saved in checkpoints. */
export class MultiplicativeLR extends ChainableLRScheduler {
  readonly options: z.output<typeof multiplicativeLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: MultiplicativeLROptions) {
    super('MultiplicativeLR', optimizer);
    this.options = parseOptions('MultiplicativeLR', multiplicativeLROptionsSchema, options);
    this.start();
  }
  protected computeLr(): number {
    return this.isInitial ? this.currentLr : this.currentLr * this.options.lrLambda(this.lastEpoch);
  }
}

export const cosineAnnealingLROptionsSchema = z.strictObject({
  /** Intervals of the cosine phase (after the warm-up), from baseLr down to etaMin. */
  tMax: positiveInt,
  /** The rate at the end of the cosine phase, and after it. */
  etaMin: nonNegative.default(0),
  /** Intervals of linear warm-up before the cosine phase. */
  warmup: wholeNumber.default(0),
  /** The warm-up starts at `baseLr * warmupStartFactor` (as PyTorch's LinearLR's `startFactor`; never 0). */
  warmupStartFactor: factor.default(1 / 3),
});
export type CosineAnnealingLROptions = z.input<typeof cosineAnnealingLROptionsSchema>;

/**
 * PyTorch's CosineAnnealingLR, `etaMin + (baseLr - etaMin) * (1 + cos(pi * t / tMax)) / 2` (in its
 * chainable form), held at `etaMin` after `tMax` intervals (PyTorch's would climb back up). With
 * `warmup`, the rate first rises linearly from `baseLr * warmupStartFactor` to `baseLr` over
 * `warmup` intervals: the schedule of PyTorch's
 * `SequentialLR([LinearLR(startFactor, totalIters: warmup), CosineAnnealingLR], milestones: [warmup])`.
 */
export class CosineAnnealingLR extends ChainableLRScheduler {
  readonly options: z.output<typeof cosineAnnealingLROptionsSchema>;
  constructor(optimizer: tf.Optimizer, options: CosineAnnealingLROptions) {
    super('CosineAnnealingLR', optimizer);
    this.options = parseOptions('CosineAnnealingLR', cosineAnnealingLROptionsSchema, options);
    this.start();
  }
  protected computeLr(): number {
    const { tMax, etaMin, warmup, warmupStartFactor: f } = this.options;
    const t = this.lastEpoch - warmup;
    if (t < 0) return this.baseLr * (f + ((1 - f) * this.lastEpoch) / warmup);
    if (t === 0) return this.isInitial ? this.currentLr : this.baseLr;
    // PyTorch's recursive form; past tMax it would climb back up.
    if (t >= tMax) return etaMin;
    return ((1 + Math.cos((Math.PI * t) / tMax)) / (1 + Math.cos((Math.PI * (t - 1)) / tMax))) * (this.currentLr - etaMin) + etaMin;
  }
  protected override closedFormLr(): number {
    const { tMax, etaMin, warmup, warmupStartFactor: f } = this.options;
    const t = this.lastEpoch - warmup;
    if (t < 0) return this.baseLr * (f + ((1 - f) * this.lastEpoch) / warmup);
    return etaMin + ((this.baseLr - etaMin) * (1 + Math.cos(Math.PI * Math.min(1, t / tMax)))) / 2;
  }
}

export const cosineAnnealingWarmRestartsOptionsSchema = z.strictObject({
  /** Intervals until the first restart. */
  t0: positiveInt,
  /** Each period is `tMult` times the previous one. */
  tMult: positiveInt.default(1),
  /** The lowest rate. */
  etaMin: nonNegative.default(0),
});
export type CosineAnnealingWarmRestartsOptions = z.input<typeof cosineAnnealingWarmRestartsOptionsSchema>;

/**
 * SGDR (PyTorch's CosineAnnealingWarmRestarts): `etaMin + (baseLr - etaMin) * (1 + cos(pi * tCur / tI)) / 2`,
 * where `tCur` counts the intervals since the last restart and the period `tI` starts at `t0` and
 * is multiplied by `tMult` at each restart.
 */
export class CosineAnnealingWarmRestarts extends ChainableLRScheduler {
  readonly options: z.output<typeof cosineAnnealingWarmRestartsOptionsSchema>;
  /** The current period. */
  tI: number;
  /** Intervals since the last restart. */
  tCur = -1;
  constructor(optimizer: tf.Optimizer, options: CosineAnnealingWarmRestartsOptions) {
    super('CosineAnnealingWarmRestarts', optimizer);
    this.options = parseOptions('CosineAnnealingWarmRestarts', cosineAnnealingWarmRestartsOptionsSchema, options);
    this.tI = this.options.t0;
    this.start();
  }
  override step(_metric?: number): void {
    this.stepCount += 1;
    if (this.lastEpoch < 0) {
      this.tI = this.options.t0;
      this.tCur = 0;
    } else {
      this.tCur += 1;
      if (this.tCur >= this.tI) {
        this.tCur %= this.tI;
        this.tI *= this.options.tMult;
      }
    }
    this.lastEpoch += 1;
    this.apply(this.computeLr());
  }
  protected computeLr(): number {
    const { etaMin } = this.options;
    return etaMin + ((this.baseLr - etaMin) * (1 + Math.cos((Math.PI * this.tCur) / this.tI))) / 2;
  }
  override stateDict(): Record<string, unknown> {
    return { ...super.stateDict(), tI: this.tI, tCur: this.tCur };
  }
  override loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.tI = Number(state.tI ?? this.options.t0);
    this.tCur = Number(state.tCur ?? 0);
    super.loadStateDict(state);
  }
}

/** Sets the momentum the cycling schedulers compute, when they cycle it. */
function cycleTo(optimizer: tf.Optimizer, on: boolean, value: number): void {
  if (on) setMomentum(optimizer, value);
}

export const cyclicLROptionsSchema = z.strictObject({
  /** The lower bound of the cycle (set on the optimizer on construction). */
  baseLr: nonNegative,
  /** The upper bound of the cycle. */
  maxLr: nonNegative,
  /** Intervals from baseLr up to maxLr. */
  stepSizeUp: positiveInt.default(2000),
  /** Intervals from maxLr back down (default: stepSizeUp). */
  stepSizeDown: positiveInt.optional(),
  /** 'triangular': constant amplitude; 'triangular2': halved every cycle; 'exp_range': scaled by gamma^interval. */
  mode: z.enum(['triangular', 'triangular2', 'exp_range'], { error: "must be 'triangular', 'triangular2' or 'exp_range'" }).default('triangular'),
  /** The base of 'exp_range'. */
  gamma: positive.default(1),
  /** A custom amplitude scale (replaces `mode`), called with the cycle number or the interval (`scaleMode`). */
  scaleFn: epochFunction.optional(),
  /** What `scaleFn` is called with: 'cycle' (1, 2, ...) or 'iterations' (the interval). */
  scaleMode: z.enum(['cycle', 'iterations'], { error: "must be 'cycle' or 'iterations'" }).default('cycle'),
  /** Cycle the momentum (SGD's momentum, Adam's beta1) inversely to the rate, as PyTorch does by default. */
  cycleMomentum: z.boolean({ error: 'must be true or false' }).default(true),
  baseMomentum: momentum.default(0.8),
  maxMomentum: momentum.default(0.9),
});
export type CyclicLROptions = z.input<typeof cyclicLROptionsSchema>;

/**
 * PyTorch's CyclicLR: the rate goes from `baseLr` to `maxLr` over `stepSizeUp` intervals and back
 * over `stepSizeDown`, with the amplitude scaled by `mode` (or `scaleFn`); the momentum, when
 * `cycleMomentum`, goes the other way between `maxMomentum` and `baseMomentum`. Usually stepped per
 * batch (`interval: 'step'`).
 */
export class CyclicLR extends ChainableLRScheduler {
  readonly options: z.output<typeof cyclicLROptionsSchema>;
  private readonly totalSize: number;
  private readonly stepRatio: number;
  private readonly scale: (x: number) => number;
  private readonly scaleMode: 'cycle' | 'iterations';
  constructor(optimizer: tf.Optimizer, options: CyclicLROptions) {
    const o = parseOptions('CyclicLR', cyclicLROptionsSchema, options);
    // As PyTorch: the optimizer starts at baseLr, which becomes its initial rate unless a scheduler set one.
    super('CyclicLR', optimizer, o.baseLr);
    this.options = o;
    const down = o.stepSizeDown ?? o.stepSizeUp;
    this.totalSize = o.stepSizeUp + down;
    this.stepRatio = o.stepSizeUp / this.totalSize;
    if (o.scaleFn !== undefined) {
      this.scale = o.scaleFn;
      this.scaleMode = o.scaleMode;
    } else if (o.mode === 'exp_range') {
      this.scale = (x) => o.gamma ** x;
      this.scaleMode = 'iterations';
    } else {
      this.scale = o.mode === 'triangular' ? () => 1 : (x) => 1 / 2 ** (x - 1);
      this.scaleMode = 'cycle';
    }
    if (o.cycleMomentum) {
      checkMomentum('CyclicLR', this.optimizer);
      setMomentum(this.optimizer, o.maxMomentum);
    }
    this.start();
    this.baseLr = o.baseLr;
  }
  protected computeLr(): number {
    const o = this.options;
    const t = this.lastEpoch;
    const cycle = Math.floor(1 + t / this.totalSize);
    const x = 1 + t / this.totalSize - cycle;
    const scaleFactor = x <= this.stepRatio ? x / this.stepRatio : (x - 1) / (this.stepRatio - 1);
    const s = this.scale(this.scaleMode === 'cycle' ? cycle : t);
    cycleTo(this.optimizer, o.cycleMomentum, o.maxMomentum - (o.maxMomentum - o.baseMomentum) * scaleFactor * s);
    return this.baseLr + (o.maxLr - this.baseLr) * scaleFactor * s;
  }
}

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
    /** Cycle the momentum (SGD's momentum, Adam's beta1) inversely to the rate, as PyTorch does by default. */
    cycleMomentum: z.boolean({ error: 'must be true or false' }).default(true),
    /** The momentum at the peak rate. */
    baseMomentum: momentum.default(0.85),
    /** The momentum at the start and the end of the cycle. */
    maxMomentum: momentum.default(0.95),
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
 * `pctStart` of `totalSteps`, then down to maxLr/divFactor/finalDivFactor; with `cycleMomentum`
 * (the default) the momentum goes from `maxMomentum` down to `baseMomentum` and back. It sets the
 * rate itself (the optimizer's own rate is not used). Stepping past `totalSteps` is an error.
 */
export class OneCycleLR extends ChainableLRScheduler {
  readonly options: z.output<typeof oneCycleLROptionsSchema>;
  private readonly phases: ReadonlyArray<{ end: number; from: number; to: number; mFrom: number; mTo: number }>;

  constructor(optimizer: tf.Optimizer, options: OneCycleLROptions) {
    super('OneCycleLR', optimizer);
    const o = parseOptions('OneCycleLR', oneCycleLROptionsSchema, options);
    this.options = o;
    const initial = o.maxLr / o.divFactor;
    const min = initial / o.finalDivFactor;
    const up = o.pctStart * o.totalSteps - 1;
    const [lo, hi] = [o.baseMomentum, o.maxMomentum];
    this.phases = o.threePhase
      ? [
          { end: up, from: initial, to: o.maxLr, mFrom: hi, mTo: lo },
          { end: 2 * o.pctStart * o.totalSteps - 2, from: o.maxLr, to: initial, mFrom: lo, mTo: hi },
          { end: o.totalSteps - 1, from: initial, to: min, mFrom: hi, mTo: hi },
        ]
      : [
          { end: up, from: initial, to: o.maxLr, mFrom: hi, mTo: lo },
          { end: o.totalSteps - 1, from: o.maxLr, to: min, mFrom: lo, mTo: hi },
        ];
    // As PyTorch: the initial rate of the optimizer becomes maxLr / divFactor.
    initialLrs.set(this.optimizer, initial);
    this.baseLr = initial;
    if (o.cycleMomentum) {
      checkMomentum('OneCycleLR', this.optimizer);
      setMomentum(this.optimizer, hi);
    }
    this.start();
  }

  protected computeLr(): number {
    const t = this.lastEpoch;
    if (t > this.options.totalSteps) {
      throw new MisconfigurationError(
        `OneCycleLR was stepped ${t} times, more than totalSteps=${this.options.totalSteps}: set totalSteps to the number of scheduler steps of the run (epochs * batches per epoch for interval 'step').`,
      );
    }
    const anneal = (from: number, to: number, pct: number): number =>
      this.options.annealStrategy === 'cos' ? to + ((from - to) / 2) * (Math.cos(Math.PI * pct) + 1) : (to - from) * pct + from;
    let start = 0;
    for (let i = 0; i < this.phases.length; i++) {
      const phase = this.phases[i]!;
      if (t <= phase.end || i === this.phases.length - 1) {
        // Held at the end of the last phase: PyTorch extrapolates at t = totalSteps (the rate set after
        // the last step, never trained with), which goes below 0 with annealStrategy 'linear'.
        const pct = phase.end === start ? 1 : Math.min(1, (t - start) / (phase.end - start));
        cycleTo(this.optimizer, this.options.cycleMomentum, anneal(phase.mFrom, phase.mTo, pct));
        return anneal(phase.from, phase.to, pct);
      }
      start = phase.end;
    }
    return this.phases[this.phases.length - 1]!.to;
  }
}

/** Throws unless `s` is a scheduler of the optimizer that a composite can step without a metric. */
function checkChild(owner: string, s: unknown, index: number, optimizer: tf.Optimizer, chainableOnly: boolean): void {
  const name = (s as { constructor?: { name?: string } } | null)?.constructor?.name ?? typeof s;
  if (name === 'ReduceLROnPlateau') {
    throw new MisconfigurationError(
      `${owner} option 'schedulers': ReduceLROnPlateau (at index ${index}) cannot be part of it, because it steps with the monitored value; give it its own lrScheduler config with monitor.`,
    );
  }
  const ok = chainableOnly ? s instanceof ChainableLRScheduler : s instanceof ChainableLRScheduler || s instanceof SequentialLR || s instanceof ChainedScheduler;
  if (!ok) {
    throw new MisconfigurationError(
      `${owner} option 'schedulers': index ${index} must be one of Flint's schedulers (StepLR, LinearLR, CosineAnnealingLR, ...${chainableOnly ? '' : ', SequentialLR, ChainedScheduler'}) (received ${name}).`,
    );
  }
  if ((s as { optimizer: tf.Optimizer }).optimizer !== optimizer) {
    throw new MisconfigurationError(`${owner} option 'schedulers': the scheduler at index ${index} (${name}) schedules another optimizer; all must schedule the optimizer given to ${owner}.`);
  }
}

const schedulerList = z.array(z.custom<LRScheduler>((v) => typeof v === 'object' && v !== null, { error: 'must be a scheduler' }), { error: 'must be a list of schedulers' }).min(1, { error: 'must list at least one scheduler' });

export const sequentialLROptionsSchema = z.strictObject({
  /** The schedulers, built on the same optimizer, in the order they take over. */
  schedulers: schedulerList,
  /** The intervals at which the next scheduler takes over: one fewer than the schedulers, increasing. */
  milestones: z.array(positiveInt, { error: 'must be a list of whole numbers >= 1' }),
});
export type SequentialLROptions = z.input<typeof sequentialLROptionsSchema>;

/**
 * PyTorch's SequentialLR: `schedulers[i]` drives the rate from `milestones[i - 1]` on; at a
 * milestone the next one starts from its interval 0 (its closed form where it has one). The usual
 * warm-up: `new SequentialLR(opt, { schedulers: [new LinearLR(opt, { totalIters: 5 }), new CosineAnnealingLR(opt, { tMax: 95 })], milestones: [5] })`.
 */
export class SequentialLR implements LRScheduler {
  readonly optimizer: tf.Optimizer;
  readonly options: z.output<typeof sequentialLROptionsSchema>;
  readonly schedulers: readonly ChainableLRScheduler[];
  lastEpoch = 0;
  private lastLr: number;
  constructor(optimizer: tf.Optimizer, options: SequentialLROptions) {
    this.optimizer = checkOptimizer('SequentialLR', optimizer);
    this.options = parseOptions('SequentialLR', sequentialLROptionsSchema, options);
    const { schedulers, milestones } = this.options;
    schedulers.forEach((s, i) => checkChild('SequentialLR', s, i, this.optimizer, true));
    if (milestones.length !== schedulers.length - 1 || milestones.some((m, i) => i > 0 && m <= milestones[i - 1]!)) {
      throw new MisconfigurationError(
        `SequentialLR option 'milestones': must be ${schedulers.length - 1} increasing whole number(s), one fewer than the schedulers (received [${milestones.join(', ')}]).`,
      );
    }
    this.schedulers = schedulers as ChainableLRScheduler[];
    setLearningRate(this.optimizer, initialLr(this.optimizer));
    for (const s of this.schedulers) s.lastEpoch -= 1;
    const first = this.schedulers[bisectRight(milestones, 0)]!;
    first.initialStep();
    this.lastLr = first.getLastLr()[0]!;
  }
  step(_metric?: number): void {
    this.lastEpoch += 1;
    const { milestones } = this.options;
    const idx = bisectRight(milestones, this.lastEpoch);
    const s = this.schedulers[idx]!;
    if (idx > 0 && milestones[idx - 1] === this.lastEpoch) s.jumpTo(0);
    else s.step();
    this.lastLr = s.getLastLr()[0]!;
  }
  getLastLr(): number[] {
    return [this.lastLr];
  }
  stateDict(): Record<string, unknown> {
    return { lastEpoch: this.lastEpoch, lastLr: this.lastLr, schedulers: this.schedulers.map((s) => s.stateDict()) };
  }
  /** Restores every scheduler, then sets the saved rate on the (new) optimizer. */
  loadStateDict(state: Readonly<Record<string, unknown>>): void {
    const states = (state.schedulers ?? []) as Array<Record<string, unknown>>;
    this.schedulers.forEach((s, i) => {
      if (states[i] !== undefined) s.loadStateDict(states[i]);
    });
    this.lastEpoch = Number(state.lastEpoch ?? 0);
    if (typeof state.lastLr === 'number') {
      setLearningRate(this.optimizer, state.lastLr);
      this.lastLr = state.lastLr;
    }
  }
}

export const chainedSchedulerOptionsSchema = z.strictObject({
  /** The schedulers, built on the same optimizer, all stepped at every step in this order. */
  schedulers: schedulerList,
});
export type ChainedSchedulerOptions = z.input<typeof chainedSchedulerOptionsSchema>;

/**
 * PyTorch's ChainedScheduler: every `step()` steps each scheduler in turn, so their effects
 * multiply (e.g. ConstantLR's warm-up factor on top of ExponentialLR's decay).
 */
export class ChainedScheduler implements LRScheduler {
  readonly optimizer: tf.Optimizer;
  readonly options: z.output<typeof chainedSchedulerOptionsSchema>;
  private lastLr: number;
  constructor(optimizer: tf.Optimizer, options: ChainedSchedulerOptions) {
    this.optimizer = checkOptimizer('ChainedScheduler', optimizer);
    this.options = parseOptions('ChainedScheduler', chainedSchedulerOptionsSchema, options);
    this.options.schedulers.forEach((s, i) => checkChild('ChainedScheduler', s, i, this.optimizer, false));
    this.lastLr = getLearningRate(this.optimizer);
  }
  step(_metric?: number): void {
    for (const s of this.options.schedulers) s.step();
    this.lastLr = getLearningRate(this.optimizer);
  }
  getLastLr(): number[] {
    return [this.lastLr];
  }
  stateDict(): Record<string, unknown> {
    return { lastLr: this.lastLr, schedulers: this.options.schedulers.map((s) => s.stateDict()) };
  }
  /** Restores every scheduler, then sets the saved rate on the (new) optimizer. */
  loadStateDict(state: Readonly<Record<string, unknown>>): void {
    const states = (state.schedulers ?? []) as Array<Record<string, unknown>>;
    this.options.schedulers.forEach((s, i) => {
      if (states[i] !== undefined) s.loadStateDict(states[i]);
    });
    if (typeof state.lastLr === 'number') {
      setLearningRate(this.optimizer, state.lastLr);
      this.lastLr = state.lastLr;
    }
  }
}
