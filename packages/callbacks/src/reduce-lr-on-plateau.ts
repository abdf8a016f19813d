import type * as tf from '@tensorflow/tfjs';
import { checkTfOptimizer, getLearningRate, MisconfigurationError, parseOptions, setLearningRate, wholeNumber, type LRScheduler } from '@flint/core';
import { z } from 'zod';
import { isImprovement, worstValue } from './internal/monitor-logic.js';
import { minDeltaSchema, modeSchema } from './monitor-callback.js';

const nonNegative = z.number({ error: 'must be a number >= 0' }).nonnegative({ error: 'must be a number >= 0' });

export const reduceLROnPlateauOptionsSchema = z.strictObject({
  /** 'min' (default): lower is better; 'max': higher is better. Never guessed from the metric's name. */
  mode: modeSchema.default('min'),
  /** Multiply the rate by this when the metric has plateaued. */
  factor: z.number({ error: 'must be a factor in (0, 1)' }).gt(0, { error: 'must be a factor in (0, 1)' }).lt(1, { error: 'must be a factor in (0, 1)' }).default(0.1),
  /** Steps without improvement that are tolerated: the rate drops at the (patience + 1)-th, as in PyTorch. */
  patience: wholeNumber.default(10),
  /** PyTorch's `threshold`: an improvement must beat the best value by more than this, a fraction of the best ('rel', the default) or an amount ('abs'). */
  minDelta: minDeltaSchema.default(1e-4),
  /** How minDelta is read (PyTorch's `threshold_mode`). */
  thresholdMode: z.enum(['abs', 'rel'], { error: "must be 'abs' or 'rel'" }).default('rel'),
  /** Steps to wait after a reduction before counting again. */
  cooldown: wholeNumber.default(0),
  /** The rate never goes below this. */
  minLr: nonNegative.default(0),
  /** Reductions smaller than this are skipped. */
  eps: nonNegative.default(1e-8),
});
export type ReduceLROnPlateauOptions = z.input<typeof reduceLROnPlateauOptionsSchema>;

/**
 * Lowers the learning rate when a metric stops improving (PyTorch's ReduceLROnPlateau). It is an
 * LR scheduler driven by the config's `monitor`: `{ scheduler, monitor: 'val_loss' }`; the trainer
 * calls `step(value)` every `frequency` intervals. It shares `mode` / `minDelta` / isImprovement
 * with EarlyStopping and ModelCheckpoint.
 */
export class ReduceLROnPlateau implements LRScheduler {
  readonly optimizer: tf.Optimizer;
  readonly options: z.output<typeof reduceLROnPlateauOptionsSchema>;
  best: number;
  numBadEpochs = 0;
  cooldownCounter = 0;
  lastEpoch = 0;
  private lastLr: number;

  constructor(optimizer: tf.Optimizer, options: ReduceLROnPlateauOptions = {}) {
    this.optimizer = checkTfOptimizer('ReduceLROnPlateau(optimizer, options)', optimizer);
    this.options = parseOptions('ReduceLROnPlateau', reduceLROnPlateauOptionsSchema, options);
    this.best = worstValue(this.options.mode);
    this.lastLr = getLearningRate(optimizer);
  }

  /** True when `current` improves on `reference` by more than minDelta (abs or rel). */
  isImprovement(current: number, reference: number): boolean {
    return isImprovement(this.options.mode, this.options.minDelta, current, reference, this.options.thresholdMode);
  }

  step(metric?: number): void {
    if (metric === undefined) {
      throw new MisconfigurationError(
        "ReduceLROnPlateau.step() needs the monitored value: return { optimizer, lrScheduler: { scheduler, monitor: 'val_loss' } } from configureOptimizers so that the trainer passes it.",
      );
    }
    this.lastEpoch += 1;
    if (this.isImprovement(metric, this.best)) {
      this.best = metric;
      this.numBadEpochs = 0;
    } else this.numBadEpochs += 1;
    if (this.cooldownCounter > 0) {
      this.cooldownCounter -= 1;
      this.numBadEpochs = 0;
    }
    if (this.numBadEpochs > this.options.patience) {
      const old = getLearningRate(this.optimizer);
      const next = Math.max(old * this.options.factor, this.options.minLr);
      if (old - next > this.options.eps) setLearningRate(this.optimizer, next);
      this.cooldownCounter = this.options.cooldown;
      this.numBadEpochs = 0;
    }
    this.lastLr = getLearningRate(this.optimizer);
  }

  getLastLr(): number[] {
    return [this.lastLr];
  }

  /** Whether the scheduler is waiting after a reduction. */
  get inCooldown(): boolean {
    return this.cooldownCounter > 0;
  }

  stateDict(): Record<string, unknown> {
    return { best: this.best, numBadEpochs: this.numBadEpochs, cooldownCounter: this.cooldownCounter, lastEpoch: this.lastEpoch, lastLr: this.lastLr };
  }

  /** Restores the counters and sets the saved rate on the (new) optimizer. */
  loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.best = typeof state.best === 'number' ? state.best : worstValue(this.options.mode);
    this.numBadEpochs = Number(state.numBadEpochs ?? 0);
    this.cooldownCounter = Number(state.cooldownCounter ?? 0);
    this.lastEpoch = Number(state.lastEpoch ?? 0);
    if (typeof state.lastLr === 'number') {
      setLearningRate(this.optimizer, state.lastLr);
      this.lastLr = state.lastLr;
    }
  }
}
