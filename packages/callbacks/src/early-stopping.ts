import * as tf from '@tensorflow/tfjs';
import { HostTensor, parseOptions, wholeNumber, type LightningModule, type Stage, type TrainerContext } from '@flint/core';
import { z } from 'zod';
import { better } from './internal/monitor-logic.js';
import { isFitCheck, MonitorCallback, metricNameSchema, minDeltaSchema, modeSchema } from './monitor-callback.js';
import { fmt, stateKeyOf } from './internal/util.js';

const finite = z.number({ error: 'must be a finite number' }).refine(Number.isFinite, { error: 'must be a finite number' });

export const earlyStoppingOptionsSchema = z.strictObject({
  /** The metric to follow, e.g. 'val_loss'. */
  monitor: metricNameSchema,
  /** 'min' (default, as in Lightning): lower is better; 'max': higher is better (accuracies). Never guessed from the name. */
  mode: modeSchema.default('min'),
  /** An improvement must beat the best value by more than this (absolute). */
  minDelta: minDeltaSchema.default(0),
  /** Stop after this many checks in a row without improvement. A check is one validation run (see docs). */
  patience: wholeNumber.default(3),
  /** Stop at once when the monitored value is NaN or infinite. */
  checkFinite: z.boolean({ error: 'must be true or false' }).default(true),
  /** Stop as soon as the value is better than this (e.g. val_loss < 0.01). */
  stoppingThreshold: finite.optional(),
  /** Stop as soon as the value is worse than this (e.g. val_loss > 10): training diverged. */
  divergenceThreshold: finite.optional(),
  /** Ignore the checks of epochs before this one (a warm-up). */
  startFromEpoch: wholeNumber.default(0),
  /** Check at the end of each training epoch instead of after each validation run. */
  checkOnTrainEpochEnd: z.boolean({ error: 'must be true or false' }).default(false),
  /** Keep a copy of the best weights and put them back into the module at the end of fit, whatever stopped it. */
  restoreBestWeights: z.boolean({ error: 'must be true or false' }).default(false),
  /** A missing metric throws, listing the metrics that exist (true), or is reported once and skipped (false). */
  strict: z.boolean({ error: 'must be true or false' }).default(true),
  /** Print a line at each check. */
  verbose: z.boolean({ error: 'must be true or false' }).default(false),
});

export type EarlyStoppingOptions = z.input<typeof earlyStoppingOptionsSchema>;

/** Which rule stopped training (`trainer.stopReason.values.trigger`). */
export type EarlyStoppingTrigger = 'patience' | 'stopping_threshold' | 'divergence_threshold' | 'non_finite';

/**
 * Stops training when a monitored metric stops improving: after `patience` checks without an
 * improvement larger than `minDelta`, when it crosses `stoppingThreshold` or
 * `divergenceThreshold`, or when it is not finite. The stop is `trainer.requestStop` with rule
 * 'early_stopping' and a message naming the trigger, the epoch and the values. With
 * `restoreBestWeights`, the module ends fit with the weights of its best check, whether this
 * callback, maxEpochs, maxSteps or anything else ended the run.
 *
 * A check happens after each validation run (not during the sanity check or fastDevRun), or at the
 * end of each training epoch with `checkOnTrainEpochEnd`: with `checkValEveryNEpoch: 2`, patience 3
 * means 3 validation runs, i.e. 6 epochs.
 */
export class EarlyStopping extends MonitorCallback {
  readonly options: z.output<typeof earlyStoppingOptionsSchema>;
  declare readonly monitor: string;
  /** Checks in a row without improvement. */
  wait = 0;
  /** The best value seen (Infinity / -Infinity before the first check). */
  bestScore: number;
  /** Epoch of the best value, -1 before the first check. */
  bestEpoch = -1;
  /** Epoch at which this callback stopped training, -1 if it did not. */
  stoppedEpoch = -1;
  /** Which rule stopped training, if this callback did. */
  trigger: EarlyStoppingTrigger | undefined;
  /** Checks made so far (skipped ones not counted). */
  checks = 0;
  private bestWeights: Map<string, tf.Tensor> | undefined;

  constructor(options: EarlyStoppingOptions) {
    const parsed = parseOptions('EarlyStopping', earlyStoppingOptionsSchema, options);
    super({ monitor: parsed.monitor, mode: parsed.mode, minDelta: parsed.minDelta, strict: parsed.strict });
    this.options = parsed;
    this.bestScore = this.worstScore;
  }

  override get stateKey(): string {
    return stateKeyOf('EarlyStopping', { monitor: this.monitor, mode: this.mode });
  }

  override onValidationEnd(trainer: TrainerContext, module: LightningModule): void {
    if (this.options.checkOnTrainEpochEnd || !this.checksNow(trainer)) return;
    this.check(trainer, module, false);
  }

  override onTrainEpochEnd(trainer: TrainerContext, module: LightningModule): void {
    if (!this.options.checkOnTrainEpochEnd || !this.checksNow(trainer)) return;
    this.check(trainer, module, true);
  }

  override onTrainEnd(trainer: TrainerContext, module: LightningModule): void {
    if (trainer.fastDevRun) return;
    if (this.checks === 0) trainer.print(`EarlyStopping made no check of '${this.monitor}' in this fit: ${this.whyNoCheck(trainer)}.`);
    if (this.bestWeights === undefined) return;
    const params = new Map(module.namedParameters().map((p) => [p.name, p.variable]));
    for (const [name, value] of this.bestWeights) params.get(name)?.assign(value);
    trainer.print(
      `EarlyStopping: restored the weights of epoch ${this.bestEpoch}, the best ${this.monitor} (${fmt(this.bestScore)}) in ${this.checks} check(s); training stopped by ${trainer.stopReason?.rule ?? 'the end of fit'}.`,
    );
  }

  override teardown(_trainer: TrainerContext, _module: LightningModule, _stage: Stage): void {
    this.disposeBestWeights();
  }

  override stateDict(): Record<string, unknown> {
    const state: Record<string, unknown> = {
      wait: this.wait,
      bestScore: this.bestScore,
      bestEpoch: this.bestEpoch,
      stoppedEpoch: this.stoppedEpoch,
      checks: this.checks,
      patience: this.options.patience,
    };
    if (this.bestWeights !== undefined) {
      state.bestWeights = Object.fromEntries([...this.bestWeights].map(([name, t]) => [name, HostTensor.fromTensor(t)]));
    }
    return state;
  }

  override loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.wait = Number(state.wait ?? 0);
    this.bestScore = typeof state.bestScore === 'number' ? state.bestScore : this.worstScore;
    this.bestEpoch = Number(state.bestEpoch ?? -1);
    this.stoppedEpoch = Number(state.stoppedEpoch ?? -1);
    this.checks = Number(state.checks ?? 0);
    this.disposeBestWeights();
    const weights = state.bestWeights as Record<string, HostTensor> | undefined;
    if (weights !== undefined && this.options.restoreBestWeights) {
      this.bestWeights = new Map(Object.entries(weights).map(([name, h]) => [name, tf.keep(h.toTensor())]));
    }
  }

  private whyNoCheck(trainer: TrainerContext): string {
    const o = this.options;
    if (trainer.currentEpoch <= o.startFromEpoch) return `startFromEpoch=${o.startFromEpoch} was not reached (${trainer.currentEpoch} epoch(s) trained)`;
    if (!o.checkOnTrainEpochEnd && trainer.validationRuns === 0) {
      return 'it checks after each validation run and none ran (no validation data, or checkValEveryNEpoch larger than the epochs trained); pass checkOnTrainEpochEnd: true to check a training metric after every epoch';
    }
    return 'the metric was never logged (strict: false)';
  }

  private checksNow(trainer: TrainerContext): boolean {
    return isFitCheck(trainer) && trainer.currentEpoch >= this.options.startFromEpoch;
  }

  /**
   * One check, in Lightning's order: a non-finite value, then the thresholds stop at once (without
   * counting towards patience); otherwise an improvement resets `wait` and anything else grows it.
   * A value past `stoppingThreshold` that improves on the best is still recorded as the best.
   */
  private check(trainer: TrainerContext, module: LightningModule, epochEnd: boolean): void {
    const current = this.readMonitor(trainer, epochEnd);
    if (current === undefined) return;
    this.checks += 1;
    const o = this.options;
    const epoch = trainer.currentEpoch;
    const values = { monitor: this.monitor, current, best: this.bestScore, bestEpoch: this.bestEpoch, epoch };
    if (o.checkFinite && !Number.isFinite(current)) {
      this.stop(trainer, 'non_finite', `${this.monitor} = ${current} at epoch ${epoch} is not finite (checkFinite); the best was ${fmt(this.bestScore)} at epoch ${this.bestEpoch}`, values);
      return;
    }
    const improved = this.isImprovement(current, this.bestScore);
    if (o.stoppingThreshold !== undefined && better(this.mode, current, o.stoppingThreshold)) {
      if (improved) this.improve(module, current, epoch);
      this.stop(trainer, 'stopping_threshold', `${this.monitor} = ${fmt(current)} at epoch ${epoch} is ${this.mode === 'min' ? 'below' : 'above'} stoppingThreshold=${o.stoppingThreshold}`, {
        ...values,
        best: this.bestScore,
        threshold: o.stoppingThreshold,
      });
      return;
    }
    if (o.divergenceThreshold !== undefined && better(this.mode, o.divergenceThreshold, current)) {
      this.stop(trainer, 'divergence_threshold', `${this.monitor} = ${fmt(current)} at epoch ${epoch} is ${this.mode === 'min' ? 'above' : 'below'} divergenceThreshold=${o.divergenceThreshold}: training diverged`, {
        ...values,
        threshold: o.divergenceThreshold,
      });
      return;
    }
    if (improved) {
      if (o.verbose) trainer.print(`EarlyStopping: ${this.monitor} improved to ${fmt(current)} at epoch ${epoch} (was ${fmt(this.bestScore)}).`);
      this.improve(module, current, epoch);
      return;
    }
    this.wait += 1;
    if (o.verbose) {
      trainer.print(`EarlyStopping: ${this.monitor} = ${fmt(current)} at epoch ${epoch} did not improve on ${fmt(this.bestScore)} by more than ${o.minDelta}: ${this.wait}/${o.patience}.`);
    }
    if (this.wait >= o.patience) {
      this.stop(
        trainer,
        'patience',
        `${this.monitor} did not improve by more than minDelta=${o.minDelta} for ${this.wait} check(s) in a row (patience=${o.patience}); best ${fmt(this.bestScore)} at epoch ${this.bestEpoch}, now ${fmt(current)} at epoch ${epoch}`,
        { ...values, wait: this.wait, patience: o.patience },
      );
    }
  }

  private improve(module: LightningModule, current: number, epoch: number): void {
    this.bestScore = current;
    this.bestEpoch = epoch;
    this.wait = 0;
    if (this.options.restoreBestWeights) this.snapshot(module);
  }

  private stop(trainer: TrainerContext, trigger: EarlyStoppingTrigger, message: string, values: Record<string, number | string>): void {
    this.trigger = trigger;
    this.stoppedEpoch = trainer.currentEpoch;
    trainer.requestStop({
      rule: 'early_stopping',
      message: `EarlyStopping (${trigger}): ${message}.`,
      source: this.stateKey,
      values: { trigger, ...values },
    });
  }

  private snapshot(module: LightningModule): void {
    this.disposeBestWeights();
    this.bestWeights = new Map(module.namedParameters().map((p) => [p.name, tf.keep(p.variable.clone())]));
  }

  private disposeBestWeights(): void {
    if (this.bestWeights === undefined) return;
    for (const t of this.bestWeights.values()) t.dispose();
    this.bestWeights = undefined;
  }
}
