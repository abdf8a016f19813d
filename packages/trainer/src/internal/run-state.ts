import type * as tf from '@tensorflow/tfjs';
import type {
  DataLoader,
  Callback,
  CollectedMetrics,
  EpochRecord,
  FitProgress,
  LightningModule,
  Logger,
  LRSchedulerConfig,
  Metrics,
  MetricCollector,
  OptimizerWrapper,
  Phase,
  Stage,
  StopReason,
} from '@flint/core';
import type { TrainerEvents } from '../events.js';
import type { Limits, ResolvedTrainerOptions } from '../trainer-options.js';
import type { HookDispatcher } from './hook-dispatcher.js';

/** A fit's compiled training step (`internal/compiled-step.ts`). */
export interface CompiledTrainingStep {
  /** Runs one automatic-optimization batch compiled and returns true, or returns false: run it the usual way. */
  step(batch: unknown, batchIdx: number, params: readonly tf.Variable[]): boolean;
  dispose(): void;
}

/** What `requestStop` takes: the reason, with epoch and step filled in from the progress when omitted. */
export type StopRequest = Omit<StopReason, 'epoch' | 'globalStep'> & Partial<Pick<StopReason, 'epoch' | 'globalStep'>>;

/** The loops' share of a checkpoint (`checkpoint.loops`, format v1), without the collector's part. */
export interface RunStateDict {
  history: EpochRecord[];
  callbackMetrics: Record<string, number>;
}

/**
 * The state of a trainer's runs that the loops share and `TrainerContext` shows: where the run is
 * (stage, phase, progress), the metric views, the history, the stop request, and the step metrics
 * waiting to go to the loggers. One per trainer; progress, metrics and history carry over from one
 * run to the next, as Lightning's do.
 */
export class RunState {
  readonly progress: FitProgress = { epoch: 0, globalStep: 0, batchInEpoch: 0, totalBatches: 0 };
  stage: Stage | undefined;
  phase: Phase | undefined;
  numTrainingBatches = Number.POSITIVE_INFINITY;
  callbackMetrics: Record<string, number> = {};
  readonly loggedMetrics: Record<string, number> = {};
  readonly progressBarMetrics: Record<string, number> = {};
  readonly history: EpochRecord[] = [];
  /** What configureOptimizers returned, for the fit that called it. */
  optimizers: OptimizerWrapper[] = [];
  lrSchedulers: LRSchedulerConfig[] = [];
  /** The fit's compiled training step (`compile: true`), made at its first step and disposed when the fit ends. */
  compiledStep: CompiledTrainingStep | undefined;
  shouldStop = false;
  /** Gradient accumulation set during the run (GradientAccumulationScheduler); undefined: the option. */
  accumulateGradBatches: number | undefined;
  /** fit's training loader while fit runs. */
  trainDataloader: DataLoader<unknown> | undefined;
  stopReason: StopReason | undefined;
  /** Validation runs of the current fit (not the sanity check), and whether one ran in this epoch. */
  validationRuns = 0;
  validatedThisEpoch = false;
  /** The monitored metrics the LR schedulers' warnings were printed for (once each). */
  readonly warnedMonitors = new Set<string>();
  /**
   * True from the end of an epoch's end phase (validation, epoch metrics, schedulers) until the epoch
   * counter moves on: a checkpoint taken then resumes at the next epoch.
   */
  epochEndDone = false;
  /** The step of the next validation/test step-level logger call: the evaluation batches of this run so far (Lightning's counter). */
  evalLogStep = 0;
  /**
   * The step of fit's logger calls while its loop runs, as Lightning's (`_batches_that_stepped`): during
   * a batch and the validation after it, the optimizer steps taken before that batch; at an epoch's end,
   * one less than the global step. Undefined outside fit's loop: calls go at the global step (a
   * validate or test after fit logs at the step the next training step will use).
   */
  fitLogStep: number | undefined;
  /** The step metrics the loop logs after onTrainBatchEnd (or a checkpoint taken there, first). */
  private pendingStepLog: { metrics: Metrics; step: number } | undefined;

  constructor(private readonly loggers: readonly Logger[]) {}

  /** A new run of `stage`: no stop request yet. */
  begin(stage: Stage): void {
    this.stage = stage;
    this.shouldStop = false;
    this.accumulateGradBatches = undefined;
    this.trainDataloader = undefined;
    this.stopReason = undefined;
    this.evalLogStep = 0;
    this.fitLogStep = undefined;
    this.validationRuns = 0;
    this.validatedThisEpoch = false;
    // Each run starts with empty metric views, as Lightning's: a validate() after fit reports its own metrics only.
    this.resetMetrics();
  }

  /** Empties callbackMetrics, loggedMetrics and progressBarMetrics. */
  resetMetrics(): void {
    this.callbackMetrics = {};
    for (const view of [this.loggedMetrics, this.progressBarMetrics]) for (const k of Object.keys(view)) delete view[k];
  }

  /** A validation run of the fit (not the sanity check) has computed its epoch metrics. */
  countValidation(): void {
    this.validationRuns += 1;
    this.validatedThisEpoch = true;
  }

  /** The end of a run (whatever its outcome). */
  end(): void {
    this.phase = undefined;
    this.trainDataloader = undefined;
    this.pendingStepLog = undefined;
    this.fitLogStep = undefined;
  }

  // ---- stopping -------------------------------------------------------------------------------

  requestStop(reason: StopRequest): void {
    this.shouldStop = true;
    this.stopReason = { epoch: this.progress.epoch, globalStep: this.progress.globalStep, ...reason };
  }

  /** The trainer's own stop rules: the first reason stays. */
  stopWith(rule: string, message: string): void {
    if (this.stopReason === undefined) this.requestStop({ rule, message, source: 'trainer' });
    else this.shouldStop = true;
  }

  /** A stop requested before minEpochs is dropped. */
  cancelStop(): void {
    this.shouldStop = false;
    this.stopReason = undefined;
  }

  // ---- metric views ---------------------------------------------------------------------------

  /** Folds collected numbers into the metric views. */
  absorb(collected: CollectedMetrics): void {
    Object.assign(this.callbackMetrics, collected.callback);
    Object.assign(this.progressBarMetrics, collected.progBar);
  }

  /** A validation/test step's numbers: the progress bar only (Lightning's callbackMetrics get evaluation values at the epoch end). */
  absorbEvalStep(collected: CollectedMetrics): void {
    Object.assign(this.progressBarMetrics, collected.progBar);
  }

  /**
   * Sends metrics to every logger at `step` (by default fit's logging step, or else the global step),
   * with the `epoch` key (the current epoch) in every call, as Lightning does: loggers may place
   * metrics on an epoch axis (TensorBoardLogger's `epochAxisMetrics`). Loggers write one `epoch`
   * point per step.
   */
  async logMetrics(metrics: Metrics, step: number = this.fitLogStep ?? this.progress.globalStep): Promise<void> {
    const logged = { ...metrics, epoch: this.progress.epoch };
    Object.assign(this.loggedMetrics, logged);
    for (const logger of this.loggers) await logger.logMetrics(logged, step);
  }

  /** Keeps a step's metrics until the loop (or a checkpoint taken in onTrainBatchEnd) logs them. */
  holdStepLog(metrics: Metrics, step: number): void {
    this.pendingStepLog = { metrics, step };
  }

  async logPendingStep(): Promise<void> {
    const pending = this.pendingStepLog;
    if (pending === undefined) return;
    this.pendingStepLog = undefined;
    await this.logMetrics(pending.metrics, pending.step);
  }

  /** Adds an epoch's values (train, then validation) to its history record. */
  recordHistory(epoch: number, metrics: Metrics): void {
    const last = this.history[this.history.length - 1];
    if (last !== undefined && last.epoch === epoch) {
      this.history[this.history.length - 1] = { epoch, globalStep: this.progress.globalStep, metrics: { ...last.metrics, ...metrics } };
    } else this.history.push({ epoch, globalStep: this.progress.globalStep, metrics: { ...metrics } });
  }

  // ---- checkpoints ----------------------------------------------------------------------------

  /** Where a checkpoint taken now resumes: the next epoch once this one's end phase ran, else the next batch. */
  resumePoint(): { epoch: number; batch: number } {
    return this.epochEndDone ? { epoch: this.progress.epoch + 1, batch: 0 } : { epoch: this.progress.epoch, batch: this.progress.batchInEpoch };
  }

  stateDict(): RunStateDict {
    return { history: structuredClone(this.history), callbackMetrics: { ...this.callbackMetrics } };
  }

  /** Restores a checkpoint's progress (at its resume point), history and metrics. */
  loadStateDict(resume: { epoch: number; batch: number }, progress: FitProgress, loops: Partial<RunStateDict>): void {
    this.progress.epoch = resume.epoch;
    this.progress.batchInEpoch = resume.batch;
    this.progress.globalStep = progress.globalStep;
    this.progress.totalBatches = progress.totalBatches;
    this.history.splice(0, this.history.length, ...(loops.history ?? []).map(withoutEpochForks));
    this.callbackMetrics = { ...(loops.callbackMetrics ?? {}) };
  }
}

/**
 * A history record of a checkpoint written before history kept one key per metric: it held both
 * `loss` and `loss_epoch` (the same value) for a metric logged with onStep and onEpoch.
 */
function withoutEpochForks(record: EpochRecord): EpochRecord {
  const m = record.metrics;
  const metrics = Object.fromEntries(Object.entries(m).filter(([k, v]) => !(k.endsWith('_epoch') && m[k.slice(0, -'_epoch'.length)] === v)));
  return { ...record, metrics };
}

/**
 * What the loops get from the trainer for one run: everything they read or drive, so that no loop
 * imports the trainer.
 */
export interface RunContext {
  readonly options: ResolvedTrainerOptions;
  readonly limits: Limits;
  readonly state: RunState;
  readonly module: LightningModule;
  readonly dispatcher: HookDispatcher;
  readonly collector: MetricCollector;
  readonly loggers: readonly Logger[];
  readonly callbacks: readonly Callback[];
  /** Prints a line for the user (above the progress bar). */
  print(message: string): void;
  /** Tells the observers of `trainer.events` (a listener that throws does not stop the run). */
  emit<K extends keyof TrainerEvents>(event: K, ...args: TrainerEvents[K]): void;
  /** Lets signal listeners run now and then; throws the InterruptedError once a signal arrived. `batch`: batches the loop finished. */
  checkInterrupt(batch: number): Promise<void>;
  /** Whether a SIGINT/SIGTERM arrived (the loops stop at the next batch boundary). */
  interruptReceived(): boolean;
}
