import { parseOptions, type EpochRecord, type LightningModule, type TrainerContext } from '@flint/core';
import { z } from 'zod';
import { isImprovement, type MonitorMode } from './internal/monitor-logic.js';
import { fmt, logToLoggers } from './internal/util.js';
import { MonitorCallback, metricNameSchema, minDeltaSchema, modeSchema } from './monitor-callback.js';

export const overfittingMonitorOptionsSchema = z.strictObject({
  /** The training side of the pair: an epoch-level training metric (log it with onEpoch: true). */
  trainMetric: metricNameSchema.default('train_loss'),
  /** The validation side of the pair. */
  valMetric: metricNameSchema.default('val_loss'),
  /** 'min' (default) for losses, 'max' for accuracies and the like. Never guessed from the names. */
  mode: modeSchema.default('min'),
  /** Changes up to this size do not count as improvements. */
  minDelta: minDeltaSchema.default(0),
  /** Validated epochs after the best validation epoch before overfitting is declared; also the window for "still improving". */
  patience: z.number({ error: 'must be a whole number >= 1' }).int({ error: 'must be a whole number >= 1' }).min(1, { error: 'must be a whole number >= 1' }).default(5),
  /** The training metric is "still improving" when it gets better by more than this fraction per epoch over the last `patience` epochs. */
  improvementTolerance: z.number({ error: 'must be a number >= 0' }).nonnegative({ error: 'must be a number >= 0' }).default(0.005),
  /** The training metric a well-fitted model reaches; a run that ends worse than this underfits. */
  target: z.number({ error: 'must be a finite number' }).refine(Number.isFinite, { error: 'must be a finite number' }).optional(),
  /** Name under which the gap is logged each epoch. */
  gapName: metricNameSchema.default('generalization_gap'),
  /** A missing metric throws, listing the metrics that exist (true), or is reported once and those epochs left out (false). */
  strict: z.boolean({ error: 'must be true or false' }).default(true),
  /** Print the onset of overfitting when it is seen, and the verdict at the end of fit. */
  verbose: z.boolean({ error: 'must be true or false' }).default(true),
});

export type OverfittingMonitorOptions = z.input<typeof overfittingMonitorOptionsSchema>;

/** One validated epoch: both metrics and the generalization gap (positive: validation is worse). */
export interface EpochFit {
  readonly epoch: number;
  readonly train: number;
  readonly val: number;
  readonly gap: number;
}

/** What OverfittingMonitor concludes. */
export interface FitVerdict {
  readonly kind: 'underfitting' | 'good_fit' | 'overfitting' | 'unknown';
  /** Why: the rule that decided. */
  readonly reason: 'val_stopped_improving' | 'still_improving' | 'target_not_reached' | 'levelled_off' | 'too_few_epochs';
  /** Epoch with the best validation value. */
  readonly bestEpoch: number | undefined;
  /** First epoch after the best one, when overfitting. */
  readonly onsetEpoch: number | undefined;
  readonly best: EpochFit | undefined;
  readonly last: EpochFit | undefined;
  /** Relative improvement per epoch of the training metric over the last `patience` epochs. */
  readonly trainImprovementPerEpoch: number | undefined;
  /** The verdict in words, with the numbers. */
  readonly message: string;
}

/** The settings `judgeFit` uses. */
export interface JudgeSettings {
  readonly trainMetric: string;
  readonly valMetric: string;
  readonly mode: MonitorMode;
  readonly minDelta: number;
  readonly patience: number;
  readonly improvementTolerance: number;
  readonly target?: number | undefined;
}

/** The gap between the pair, positive when validation is worse than training. */
export function generalizationGap(mode: MonitorMode, train: number, val: number): number {
  return mode === 'min' ? val - train : train - val;
}

/**
 * The verdict for a learning curve, the rules the lesson teaches (see docs/callbacks/overfitting-monitor.md):
 * 1. overfitting since epoch N when the validation metric has not improved for `patience`
 *    validated epochs after its best (epoch N - 1) while the training metric kept improving;
 * 2. otherwise underfitting when the training metric is still improving (by more than
 *    `improvementTolerance` per epoch over the last `patience` epochs: the model has not learned
 *    what it can yet) or ends worse than `target`;
 * 3. otherwise a good fit: training has levelled off and validation is at or near its best.
 */
export function judgeFit(rows: readonly EpochFit[], s: JudgeSettings): FitVerdict {
  const last = rows[rows.length - 1];
  if (rows.length < 2 || last === undefined) {
    return {
      kind: 'unknown',
      reason: 'too_few_epochs',
      bestEpoch: undefined,
      onsetEpoch: undefined,
      best: undefined,
      last,
      trainImprovementPerEpoch: undefined,
      message: `not enough data: ${rows.length} epoch(s) with both ${s.trainMetric} and ${s.valMetric}, at least 2 are needed.`,
    };
  }
  const improves = (a: number, b: number) => isImprovement(s.mode, s.minDelta, a, b);
  let bestIndex = 0;
  rows.forEach((r, i) => {
    if (improves(r.val, rows[bestIndex]!.val)) bestIndex = i;
  });
  const best = rows[bestIndex]!;
  const after = rows.length - 1 - bestIndex;
  const sign = s.mode === 'min' ? 1 : -1;
  const window = Math.min(s.patience, rows.length - 1);
  const ref = rows[rows.length - 1 - window]!;
  const epochs = Math.max(1, last.epoch - ref.epoch);
  const scale = Math.abs(ref.train) > 0 ? Math.abs(ref.train) : 1;
  const rate = (sign * (ref.train - last.train)) / scale / epochs;
  const base = { bestEpoch: best.epoch, best, last, trainImprovementPerEpoch: rate };
  const pair = `${s.trainMetric} ${fmt(last.train)}, ${s.valMetric} ${fmt(last.val)}, gap ${fmt(last.gap)} at epoch ${last.epoch}`;
  if (after >= s.patience && improves(last.train, best.train)) {
    const onset = rows[bestIndex + 1]!.epoch;
    return {
      ...base,
      kind: 'overfitting',
      reason: 'val_stopped_improving',
      onsetEpoch: onset,
      message:
        `overfitting since epoch ${onset}: ${s.valMetric} was best at epoch ${best.epoch} (${fmt(best.val)}) and has not improved in the ${after} validated epoch(s) since, ` +
        `while ${s.trainMetric} kept improving (${fmt(best.train)} -> ${fmt(last.train)}); the gap grew from ${fmt(best.gap)} to ${fmt(last.gap)}. ` +
        `Keep the weights of epoch ${best.epoch} (EarlyStopping with restoreBestWeights, or ModelCheckpoint's best), add regularization (dropout, weight decay), more data, or use a smaller model.`,
    };
  }
  if (s.target !== undefined && sign * (last.train - s.target) > 0) {
    return {
      ...base,
      kind: 'underfitting',
      reason: 'target_not_reached',
      onsetEpoch: undefined,
      message: `underfitting: ${s.trainMetric} ended at ${fmt(last.train)}, worse than the target ${s.target} (${pair}; best ${s.valMetric} ${fmt(best.val)} at epoch ${best.epoch}). The model cannot fit even its training data: use a larger model, train longer or raise the learning rate.`,
    };
  }
  if (rate > s.improvementTolerance) {
    return {
      ...base,
      kind: 'underfitting',
      reason: 'still_improving',
      onsetEpoch: undefined,
      message:
        `underfitting: ${s.trainMetric} is still improving (${fmt(ref.train)} -> ${fmt(last.train)} over the last ${epochs} epoch(s), ${(rate * 100).toFixed(1)}% per epoch) ` +
        `and ${s.valMetric} is best at epoch ${best.epoch} (${fmt(best.val)}); ${pair}. The model has not learned what it can yet: train longer, raise the learning rate, or use a larger model.`,
    };
  }
  return {
    ...base,
    kind: 'good_fit',
    reason: 'levelled_off',
    onsetEpoch: undefined,
    message: `good fit: ${s.trainMetric} has levelled off (${(rate * 100).toFixed(1)}% per epoch over the last ${epochs} epoch(s)) and ${s.valMetric} is best at epoch ${best.epoch} (${fmt(best.val)}); ${pair}.`,
  };
}

/**
 * Follows a training / validation metric pair per epoch (train_loss and val_loss by default) and
 * says what a learning curve teaches to look for (no anchor framework has it): the generalization
 * gap of each epoch (logged as `generalization_gap`), the onset of overfitting (the epoch after
 * which validation stopped improving while training kept improving), and at the end of fit a
 * verdict, printed and available as `verdict`: underfitting, good fit, or overfitting since
 * epoch N, with the best epoch and the numbers.
 *
 * It reads `trainer.history`, which the trainer restores on resume, so it keeps no state of its own.
 * Its `monitor` is the validation metric; both metrics of the pair follow the one rule of
 * `readMonitoredMetric` for a metric that is not there, read from the epoch's history record.
 */
export class OverfittingMonitor extends MonitorCallback {
  readonly options: z.output<typeof overfittingMonitorOptionsSchema>;
  declare readonly monitor: string;
  /** The validated epochs seen so far. */
  epochs: EpochFit[] = [];
  private onsetPrinted = false;

  constructor(options: OverfittingMonitorOptions = {}) {
    const parsed = parseOptions('OverfittingMonitor', overfittingMonitorOptionsSchema, options);
    super({ monitor: parsed.valMetric, mode: parsed.mode, minDelta: parsed.minDelta, strict: parsed.strict });
    this.options = parsed;
  }

  /** The verdict for the epochs seen so far. */
  get verdict(): FitVerdict {
    return judgeFit(this.epochs, this.options);
  }

  override async onTrainEpochEnd(trainer: TrainerContext, _module: LightningModule): Promise<void> {
    if (trainer.stage !== 'fit') return;
    const record = trainer.history.find((r) => r.epoch === trainer.currentEpoch);
    this.check(trainer, record);
    this.epochs = this.rowsOf(trainer.history);
    const row = this.epochs[this.epochs.length - 1];
    if (row === undefined || row.epoch !== trainer.currentEpoch) return;
    await logToLoggers(trainer, { [this.options.gapName]: row.gap });
    const verdict = this.verdict;
    if (verdict.kind === 'overfitting' && !this.onsetPrinted && this.options.verbose) {
      this.onsetPrinted = true;
      trainer.print(`OverfittingMonitor: ${verdict.message}`);
    }
  }

  override onFitEnd(trainer: TrainerContext): void {
    this.epochs = this.rowsOf(trainer.history);
    if (this.options.verbose && !trainer.fastDevRun) trainer.print(`OverfittingMonitor: ${this.verdict.message}`);
  }

  private rowsOf(history: readonly EpochRecord[]): EpochFit[] {
    const { trainMetric, valMetric, mode } = this.options;
    const rows: EpochFit[] = [];
    for (const r of history) {
      const train = r.metrics[trainMetric];
      const val = r.metrics[valMetric];
      if (train === undefined || val === undefined) continue;
      rows.push({ epoch: r.epoch, train, val, gap: generalizationGap(mode, train, val) });
    }
    return rows;
  }

  /** Reads the pair from this epoch's record: a metric that should be there and is not follows `readMonitoredMetric`'s rule. */
  private check(trainer: TrainerContext, record: EpochRecord | undefined): void {
    const epochLevel = { metrics: record?.metrics ?? {}, metricsName: `the epoch-level metrics of epoch ${trainer.currentEpoch}` };
    this.readMonitor(trainer, false, this.options.trainMetric, epochLevel);
    if (trainer.validatedThisEpoch) this.readMonitor(trainer, false, this.options.valMetric, epochLevel);
  }
}
