import { Callback, durationSchema, durationSeconds, parseOptions, type LightningModule, type Phase, type TrainerContext } from '@flint/core';
import { z } from 'zod';

export const timerOptionsSchema = z.strictObject({
  /** Stop training after this much training time (validation inside fit included): seconds, "DD:HH:MM:SS" or { days, hours, minutes, seconds }. Without it the Timer only measures. */
  duration: durationSchema.optional(),
  /** Check after every training batch ('step', default) or at every epoch end. */
  interval: z.enum(['step', 'epoch'], { error: "must be 'step' or 'epoch'" }).default('step'),
  /** Print a line when the time is up. */
  verbose: z.boolean({ error: 'must be true or false' }).default(true),
});

export type TimerOptions = z.input<typeof timerOptionsSchema>;

/** The phases the Timer measures (the sanity check is not timed). */
export type TimedStage = Exclude<Phase, 'sanity_check'>;

/**
 * Measures the time of each stage and stops training after `duration` (Lightning's Timer and the
 * `maxTime` option, as a callback): `trainer.requestStop` with rule 'max_time'. The elapsed
 * training time is saved in checkpoints, so a resumed run gets only the time that is left.
 */
export class Timer extends Callback {
  readonly options: z.output<typeof timerOptionsSchema>;
  private readonly starts: Partial<Record<TimedStage, number>> = {};
  private readonly ends: Partial<Record<TimedStage, number>> = {};
  private offset: Partial<Record<TimedStage, number>> = {};

  constructor(options: TimerOptions = {}) {
    super();
    this.options = parseOptions('Timer', timerOptionsSchema, options);
  }

  /** The budget in seconds (Infinity without duration). */
  get durationSeconds(): number {
    return this.options.duration === undefined ? Number.POSITIVE_INFINITY : durationSeconds(this.options.duration);
  }

  /** When the stage started (performance.now() milliseconds), if it did. */
  startTime(stage: TimedStage = 'train'): number | undefined {
    return this.starts[stage];
  }

  endTime(stage: TimedStage = 'train'): number | undefined {
    return this.ends[stage];
  }

  /** Seconds spent in the stage, including the time restored from a checkpoint. */
  timeElapsed(stage: TimedStage = 'train'): number {
    const start = this.starts[stage];
    const offset = this.offset[stage] ?? 0;
    if (start === undefined) return offset;
    return offset + ((this.ends[stage] ?? performance.now()) - start) / 1000;
  }

  /** Seconds of the budget left (Infinity without duration). */
  timeRemaining(stage: TimedStage = 'train'): number {
    return this.durationSeconds - this.timeElapsed(stage);
  }

  override onTrainStart(): void {
    this.begin('train');
  }
  override onTrainEnd(): void {
    this.finish('train');
  }
  override onValidationStart(trainer: TrainerContext): void {
    if (!trainer.sanityChecking) this.begin('validate');
  }
  override onValidationEnd(trainer: TrainerContext): void {
    if (!trainer.sanityChecking) this.finish('validate');
  }
  override onTestStart(): void {
    this.begin('test');
  }
  override onTestEnd(): void {
    this.finish('test');
  }
  override onPredictStart(): void {
    this.begin('predict');
  }
  override onPredictEnd(): void {
    this.finish('predict');
  }

  override onTrainBatchEnd(trainer: TrainerContext): void {
    if (this.options.interval === 'step') this.check(trainer);
  }

  override onTrainEpochEnd(trainer: TrainerContext, _module: LightningModule): void {
    if (this.options.interval === 'epoch') this.check(trainer);
  }

  override stateDict(): Record<string, unknown> {
    return { timeElapsed: { train: this.timeElapsed('train'), validate: this.timeElapsed('validate'), test: this.timeElapsed('test') } };
  }

  override loadStateDict(state: Readonly<Record<string, unknown>>): void {
    const elapsed = (state.timeElapsed ?? {}) as Partial<Record<TimedStage, number>>;
    this.offset = { ...elapsed };
    delete this.starts.train;
    delete this.ends.train;
  }

  private begin(stage: TimedStage): void {
    // Validation runs many times in a fit: its time adds up.
    if (this.starts[stage] !== undefined && this.ends[stage] !== undefined) this.offset[stage] = this.timeElapsed(stage);
    this.starts[stage] = performance.now();
    delete this.ends[stage];
  }

  private finish(stage: TimedStage): void {
    if (this.starts[stage] !== undefined) this.ends[stage] = performance.now();
  }

  private check(trainer: TrainerContext): void {
    if (trainer.sanityChecking || trainer.shouldStop) return;
    const elapsed = this.timeElapsed('train');
    const budget = this.durationSeconds;
    if (elapsed < budget) return;
    const message = `Timer: time is up after ${elapsed.toFixed(1)} s of training (duration ${budget} s) at epoch ${trainer.currentEpoch}, step ${trainer.globalStep}.`;
    trainer.requestStop({ rule: 'max_time', message, source: this.stateKey, values: { elapsedSeconds: elapsed, durationSeconds: budget } });
    if (this.options.verbose) trainer.print(message);
  }
}
