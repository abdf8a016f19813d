import { Callback, MisconfigurationError, type TrainerContext } from '@flint/core';
import { z } from 'zod';
import { isImprovement, worstValue, type MonitorMode } from './internal/monitor-logic.js';
import { listKeys } from './internal/util.js';

export type { MonitorMode } from './internal/monitor-logic.js';

/** `mode`: which direction is better. Defaults to 'min' as in Lightning; never guessed from the name. */
export const modeSchema = z.enum(['min', 'max'], { error: "must be 'min' (lower is better) or 'max' (higher is better)" });

/** `minDelta`: the smallest change that counts as an improvement, >= 0. */
export const minDeltaSchema = z.number({ error: 'must be a number >= 0' }).nonnegative({ error: 'must be a number >= 0' });

/** A metric name as logged with `this.log(name, ...)`. */
export const metricNameSchema = z.string({ error: 'must be the name of a logged metric' }).min(1, { error: 'must be the name of a logged metric' });

/** What MonitorCallback needs, after defaults. */
export interface MonitorSettings {
  readonly monitor: string | undefined;
  readonly mode: MonitorMode;
  readonly minDelta: number;
  readonly strict: boolean;
}

/**
 * The base of callbacks that follow one logged metric (EarlyStopping, ModelCheckpoint; the
 * ReduceLROnPlateau scheduler shares its comparison): `monitor`, `mode`, `minDelta`,
 * `isImprovement`, and one behaviour for a metric that is not there: a MisconfigurationError
 * that lists the metrics that are (`strict: true`), or one printed warning and a skipped check
 * (`strict: false`). They read epoch metrics, so their epoch-end hooks run after the module's.
 */
export abstract class MonitorCallback extends Callback {
  override readonly readsEpochMetrics: boolean = true;
  readonly monitor: string | undefined;
  readonly mode: MonitorMode;
  readonly minDelta: number;
  readonly strict: boolean;
  private warnedMissing = false;

  protected constructor(settings: MonitorSettings) {
    super();
    this.monitor = settings.monitor;
    this.mode = settings.mode;
    this.minDelta = settings.minDelta;
    this.strict = settings.strict;
  }

  /** True when `current` is better than `reference` by more than `minDelta`. */
  isImprovement(current: number, reference: number): boolean {
    return isImprovement(this.mode, this.minDelta, current, reference);
  }

  /** The starting best score: every real value improves on it. */
  get worstScore(): number {
    return worstValue(this.mode);
  }

  /**
   * The monitored value from `trainer.callbackMetrics`. A missing metric throws (strict) or is
   * reported once and gives undefined (not strict).
   */
  protected readMonitor(trainer: TrainerContext): number | undefined {
    const monitor = this.monitor;
    if (monitor === undefined) return undefined;
    const value = trainer.callbackMetrics[monitor];
    if (value !== undefined) return value;
    const owner = this.constructor.name;
    const where = `the monitored metric '${monitor}' is not among the metrics logged so far: ${listKeys(trainer.callbackMetrics)}`;
    if (this.strict) {
      throw new MisconfigurationError(
        `${owner}: ${where}. Log it with this.log('${monitor}', value) (validation metrics in validationStep), fix the name, or pass strict: false to skip the check while it is missing.`,
      );
    }
    if (!this.warnedMissing) {
      this.warnedMissing = true;
      trainer.print(`${owner}: ${where}; skipping the check while it is missing (strict: false). This warning is printed once.`);
    }
    return undefined;
  }

  /**
   * At an epoch end: true when the monitored metric was logged in an earlier epoch but not in this
   * one (a validation metric on an epoch without validation), so that its old value is not counted
   * again.
   */
  protected isStale(trainer: TrainerContext): boolean {
    const monitor = this.monitor;
    if (monitor === undefined) return false;
    const history = trainer.history;
    const current = history.find((r) => r.epoch === trainer.currentEpoch);
    if (current !== undefined && monitor in current.metrics) return false;
    return history.some((r) => r.epoch !== trainer.currentEpoch && monitor in r.metrics);
  }
}
