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

/** What a monitored-metric read looks at: a part of `TrainerContext`. */
export type MonitorSource = Pick<TrainerContext, 'callbackMetrics' | 'history' | 'currentEpoch' | 'validationRuns' | 'print'>;

/** How `readMonitoredMetric` treats a metric that is not there. */
export interface ReadMetricOptions {
  /** A missing metric throws a MisconfigurationError (true) or is reported once and skipped (false). */
  readonly strict: boolean;
  /** Who reads it: the first word of every message, e.g. 'EarlyStopping'. */
  readonly owner: string;
  /** The reader's record of what it has printed: every note and warning is printed once per reader and metric. */
  readonly warned: Set<string>;
  /**
   * A read at the end of a training epoch: a value logged in an earlier epoch but not in this one
   * (a validation metric on an epoch without validation) is stale, and reads as undefined.
   */
  readonly epochEnd?: boolean;
  /** The metrics to look in (default `trainer.callbackMetrics`) and what to call them in messages. */
  readonly metrics?: Readonly<Record<string, number>>;
  readonly metricsName?: string;
}

/**
 * The one rule for a monitored metric, shared by every monitoring callback (EarlyStopping,
 * ModelCheckpoint, OverfittingMonitor) and the trainer's monitored LR schedulers:
 *
 * - logged: its value (undefined when stale, see `epochEnd`);
 * - not logged yet (no validation has run in this fit, e.g. with `checkValEveryNEpoch: 2` at the
 *   end of epoch 0): undefined, and a note printed once; nothing is checked, saved or stepped;
 * - missing (a validation run has ended and it is still not there): a MisconfigurationError listing
 *   the metrics that are (`strict: true`), or undefined and one printed warning (`strict: false`).
 */
export function readMonitoredMetric(trainer: MonitorSource, name: string, options: ReadMetricOptions): number | undefined {
  const metrics = options.metrics ?? trainer.callbackMetrics;
  const value = metrics[name];
  if (value !== undefined) return options.epochEnd === true && isStaleMetric(trainer, name) ? undefined : value;
  const { owner, warned } = options;
  const among = `${options.metricsName ?? 'the metrics logged so far'}: ${listKeys(metrics)}`;
  if (trainer.validationRuns === 0) {
    if (!warned.has(`yet:${name}`)) {
      warned.add(`yet:${name}`);
      trainer.print(`${owner}: '${name}' is not logged yet (no validation has run in this fit; ${among}): it is not checked until it is. This note is printed once.`);
    }
    return undefined;
  }
  const where = `the monitored metric '${name}' is not among ${among}`;
  if (options.strict) {
    throw new MisconfigurationError(
      `${owner}: ${where}. Log it with this.log('${name}', value) (validation metrics in validationStep, a training metric per epoch with onEpoch: true), fix the name, or pass strict: false to skip the check while it is missing.`,
    );
  }
  if (!warned.has(`missing:${name}`)) {
    warned.add(`missing:${name}`);
    trainer.print(`${owner}: ${where}; skipping the check while it is missing (strict: false). This warning is printed once.`);
  }
  return undefined;
}

/**
 * True when `name` was logged in an earlier epoch but not in the current one (a validation metric
 * at the end of an epoch without validation), so that its old value is not counted again.
 */
export function isStaleMetric(trainer: Pick<TrainerContext, 'history' | 'currentEpoch'>, name: string): boolean {
  const current = trainer.history.find((r) => r.epoch === trainer.currentEpoch);
  if (current !== undefined && name in current.metrics) return false;
  return trainer.history.some((r) => r.epoch !== trainer.currentEpoch && name in r.metrics);
}

/** Whether monitoring callbacks check and save now: during fit, not in the sanity check or fastDevRun. */
export function isFitCheck(trainer: Pick<TrainerContext, 'stage' | 'sanityChecking' | 'fastDevRun'>): boolean {
  return trainer.stage === 'fit' && !trainer.sanityChecking && !trainer.fastDevRun;
}

/** What MonitorCallback needs, after defaults. */
export interface MonitorSettings {
  readonly monitor: string | undefined;
  readonly mode: MonitorMode;
  readonly minDelta: number;
  readonly strict: boolean;
}

/**
 * The base of callbacks that follow a logged metric (EarlyStopping, ModelCheckpoint,
 * OverfittingMonitor; the ReduceLROnPlateau scheduler shares its comparison): `monitor`, `mode`,
 * `minDelta`, `isImprovement`, and the one rule of `readMonitoredMetric` for a metric that is not
 * there. They read epoch metrics, so their epoch-end hooks run after the module's.
 */
export abstract class MonitorCallback extends Callback {
  override readonly readsEpochMetrics: boolean = true;
  readonly monitor: string | undefined;
  readonly mode: MonitorMode;
  readonly minDelta: number;
  readonly strict: boolean;
  private readonly warned = new Set<string>();

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
   * A metric's value by the rule of `readMonitoredMetric` (default: `monitor`); `epochEnd`: a read
   * at the end of a training epoch, where a value of an earlier epoch is stale.
   */
  protected readMonitor(trainer: TrainerContext, epochEnd = false, name: string | undefined = this.monitor, metrics?: Pick<ReadMetricOptions, 'metrics' | 'metricsName'>): number | undefined {
    if (name === undefined) return undefined;
    return readMonitoredMetric(trainer, name, { strict: this.strict, owner: this.constructor.name, warned: this.warned, epochEnd, ...metrics });
  }
}
