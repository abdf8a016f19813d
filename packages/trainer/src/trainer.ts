import * as tf from '@tensorflow/tfjs';
import {
  isDataModule,
  MetricCollector,
  MisconfigurationError,
  parseOptions,
  saveCheckpointFile,
  type Callback,
  type Checkpoint,
  type DataLoader,
  type DataModule,
  type EpochRecord,
  type FitProgress,
  type LightningModule,
  type Logger,
  type LRSchedulerConfig,
  type Metrics,
  type OptimizerWrapper,
  type RunningStage,
  type Stage,
  type StopReason,
  type TrainerContext,
} from '@flint/core';
import { ModelCheckpoint, ModelSummary } from '@flint/callbacks';
import { TensorBoardLogger } from '@flint/loggers';
import { EventEmitter } from 'eventemitter3';
import type { BackendChoice } from './accelerator.js';
import type { TrainerEvents } from './events.js';
import { dumpCheckpoint, loggerStateKey, restoreCheckpoint } from './internal/checkpoint-io.js';
import { connectEvalData, connectFitData, materializeLayers, setupStage, type DataInput } from './internal/data-connect.js';
import { evaluationLoop } from './internal/evaluation-loop.js';
import { fitLoop } from './internal/fit-loop.js';
import { runCallbacks, type HookTiming } from './internal/hook-dispatcher.js';
import { predictLoop } from './internal/predict-loop.js';
import { RunState, type StopRequest } from './internal/run-state.js';
import { StageRunner } from './internal/stage-runner.js';
import { observerEmitter } from './internal/observer-events.js';
import { configureOptimizers } from './internal/training-step.js';
import { ProgressBar } from './progress-bar.js';
import { resolveLimits, runLimits, trainerOptionsSchema, type Limits, type ResolvedTrainerOptions, type TrainerOptions } from './trainer-options.js';

export type { DataInput } from './internal/data-connect.js';

export interface FitOptions {
  /** Resume from a checkpoint: a path, 'last' or 'best' (from the ModelCheckpoint callback). */
  ckptPath?: string;
}

export interface EvalOptions {
  /** Load these weights first: a path, 'last' or 'best' (from the ModelCheckpoint callback). */
  ckptPath?: string;
}

/**
 * Lightning's Trainer for tfjs: give it a LightningModule and data, and it runs the loops
 * (sanity check, training epochs with validation, test, predict), the optimization (gradients,
 * accumulation, clipping, optimizer and scheduler steps), the hooks of callbacks, loggers and the
 * module in a fixed order, logging, and stopping rules. This class is the facade: options, the
 * default callbacks and loggers, the four entry points and what callbacks read; the loops live in
 * `internal/` (`fit-loop.ts` first).
 */
export class Trainer implements TrainerContext {
  readonly options: ResolvedTrainerOptions;
  /** For observers only (progress bars, UIs): emitters do not await listeners. */
  readonly events = new EventEmitter<TrainerEvents>();
  readonly callbacks: Callback[];
  readonly loggers: Logger[];

  private readonly limits: Limits;
  private readonly state: RunState;
  private readonly collector = new MetricCollector();
  /** Tells the observers of `events`; a listener that throws does not stop the run. */
  private readonly emit = observerEmitter(this.events, (line) => this.print(line));
  /** Runs each stage in the common frame (backend, hooks, teardown, interrupts). */
  private readonly runner: StageRunner;

  constructor(options: TrainerOptions = {}) {
    this.options = parseOptions('Trainer', trainerOptionsSchema, options);
    this.limits = runLimits(this.options);
    const fast = this.limits.fastDevRunBatches;
    this.callbacks = runCallbacks(this.options.callbacks);
    // Lightning's default checkpointing: one last.ckpt under <logDir>/checkpoints, replaced each
    // epoch, so that fit(..., { ckptPath: 'last' }) works; no monitor is guessed.
    if (this.options.enableCheckpointing && fast === 0 && !this.callbacks.some((cb) => typeof cb.checkpointPath === 'function')) {
      this.callbacks.push(new ModelCheckpoint({ saveLast: true, saveTopK: 0 }));
    }
    // One owner of the summary, as Lightning's: enableModelSummary adds the ModelSummary callback unless one is there.
    if (this.options.enableModelSummary && !this.callbacks.some((cb) => cb instanceof ModelSummary)) this.callbacks.push(new ModelSummary());
    const logger = this.options.logger;
    // Lightning's default: a TensorBoard run under defaultRootDir (flint_logs/version_N).
    this.loggers =
      fast > 0 || logger === false
        ? []
        : logger === true
          ? [new TensorBoardLogger({ saveDir: this.options.defaultRootDir })]
          : Array.isArray(logger)
            ? [...logger]
            : [logger];
    const keys = new Map<string, Logger>();
    for (const l of this.loggers) {
      if (typeof l.stateDict !== 'function') continue;
      const key = loggerStateKey(l);
      if (keys.has(key)) {
        throw new MisconfigurationError(
          `Trainer option 'logger': two loggers share the stateKey '${key}', so their states would overwrite each other in checkpoints (and they would write the same experiment folder): give them a different saveDir or name.`,
        );
      }
      keys.set(key, l);
    }
    this.state = new RunState(this.loggers);
    const { options: o, limits, state, collector, callbacks, loggers, emit } = this;
    this.runner = new StageRunner({ trainer: this, options: o, limits, state, collector, callbacks, loggers, emit, print: (line) => this.print(line) });
    if (this.options.enableProgressBar) new ProgressBar().attach(this.events);
  }

  // ---- what callbacks, loggers and users read ------------------------------------------------

  get currentEpoch(): number {
    return this.state.progress.epoch;
  }
  get globalStep(): number {
    return this.state.progress.globalStep;
  }
  get maxEpochs(): number {
    return this.limits.maxEpochs;
  }
  get maxSteps(): number {
    return this.limits.maxSteps;
  }
  get numTrainingBatches(): number {
    return this.state.numTrainingBatches;
  }
  get stage(): Stage | undefined {
    return this.state.stage;
  }
  get runningStage(): RunningStage | undefined {
    return this.state.phase;
  }
  get sanityChecking(): boolean {
    return this.state.phase === 'sanity_check';
  }
  get fastDevRun(): boolean {
    return this.limits.fastDevRunBatches > 0;
  }
  /** Every metric logged so far, latest values (epoch-level once the epoch ends). */
  get callbackMetrics(): Metrics {
    return this.state.callbackMetrics;
  }
  /** What was sent to the loggers, latest values. */
  get loggedMetrics(): Metrics {
    return this.state.loggedMetrics;
  }
  get progressBarMetrics(): Metrics {
    return this.state.progressBarMetrics;
  }
  /**
   * One record per finished epoch with every epoch-level metric (train and validation side by side),
   * each once, under the name it was logged with (`train_loss`, not also `train_loss_epoch`).
   */
  get history(): readonly EpochRecord[] {
    return this.state.history;
  }
  get validationRuns(): number {
    return this.state.validationRuns;
  }
  get validatedThisEpoch(): boolean {
    return this.state.validatedThisEpoch;
  }
  get progress(): Readonly<FitProgress> {
    return this.state.progress;
  }
  /** Whether a stop was requested (see `requestStop`). */
  get shouldStop(): boolean {
    return this.state.shouldStop;
  }
  /** @deprecated Use `requestStop({ rule, message })`, the one way to stop; `true` requests a stop with the rule 'user'. */
  set shouldStop(value: boolean) {
    if (value) this.requestStop({ rule: 'user', message: 'trainer.shouldStop was set', source: 'user' });
    else this.state.cancelStop();
  }
  get stopReason(): StopReason | undefined {
    return this.state.stopReason;
  }
  /**
   * Whether a SIGINT (Ctrl-C) or SIGTERM interrupted the last run; `stopReason` then has the rule
   * 'interrupted' and the signal in `values.signal`. See the option `exitOnInterrupt`.
   */
  get interrupted(): boolean {
    return this.state.stopReason?.rule === 'interrupted';
  }
  get optimizers(): readonly OptimizerWrapper[] {
    return this.state.optimizers;
  }
  get lrSchedulers(): readonly LRSchedulerConfig[] {
    return this.state.lrSchedulers;
  }
  /** fit's training loader while fit runs (undefined otherwise). */
  get trainDataloader(): DataLoader<unknown> | undefined {
    return this.state.trainDataloader;
  }
  /** Batches per optimizer step: the option, or what a callback set for this run (GradientAccumulationScheduler, per epoch). */
  get accumulateGradBatches(): number {
    return this.state.accumulateGradBatches ?? this.options.accumulateGradBatches;
  }
  set accumulateGradBatches(value: number) {
    if (!Number.isInteger(value) || value < 1) throw new MisconfigurationError(`trainer.accumulateGradBatches must be a whole number >= 1 (received ${value}).`);
    this.state.accumulateGradBatches = value;
  }
  get defaultRootDir(): string {
    return this.options.defaultRootDir;
  }
  get logDir(): string {
    return this.loggers.find((l) => l.logDir !== undefined)?.logDir ?? this.defaultRootDir;
  }
  /** The first ModelCheckpoint among the callbacks (Lightning's `trainer.checkpoint_callback`), e.g. for its `bestModelPath`. */
  get checkpointCallback(): ModelCheckpoint | undefined {
    return this.callbacks.find((cb): cb is ModelCheckpoint => cb instanceof ModelCheckpoint);
  }
  /** The backend chosen at the start of the last run. */
  get backend(): BackendChoice | undefined {
    return this.runner.backend;
  }
  /** Time spent in each hook (`Owner.hookName`), summed over the last run. */
  get hookTimings(): ReadonlyMap<string, HookTiming> {
    return this.runner.dispatcher?.timings ?? new Map();
  }

  /** Stops training after the current batch and epoch end (never before minEpochs), with a reason (`stopReason`). */
  requestStop(reason: StopRequest): void {
    this.state.requestStop(reason);
  }

  print(message: string): void {
    if (this.events.listenerCount('message') > 0) this.emit('message', message);
    else process.stdout.write(`${message}\n`);
  }

  /** Sends metrics to every logger at `step`, with the `epoch` key (the current epoch) in every call, as Lightning does. */
  async logMetrics(metrics: Metrics, step: number = this.globalStep): Promise<void> {
    await this.state.logMetrics(metrics, step);
  }

  /**
   * Everything needed to continue this run exactly (see docs/checkpoints.md): weights by parameter
   * name, optimizer states, progress with the place to resume, scheduler, callback and logger
   * states, hyper-parameters, the RNG state, the history and the epoch's partial metrics.
   */
  async dumpCheckpoint(weightsOnly = false): Promise<Checkpoint> {
    const run = this.runner.run;
    if (run === undefined) throw new MisconfigurationError('dumpCheckpoint() works while the trainer runs a module (inside fit/validate/test).');
    return dumpCheckpoint(run, weightsOnly);
  }

  /** Writes the current state to `path` atomically (a temporary file, flushed, then renamed). */
  async saveCheckpoint(path: string, weightsOnly = false): Promise<void> {
    const checkpoint = await this.dumpCheckpoint(weightsOnly);
    await saveCheckpointFile(path, checkpoint);
    this.runner.lastSaved = { path, weightsOnly };
  }

  // ---- the four entry points -----------------------------------------------------------------

  /**
   * Trains the module: sanity check, then epochs of training with validation, until maxEpochs,
   * maxSteps, maxTime or a callback stops it (never before minEpochs).
   */
  async fit<B>(module: LightningModule<B>, train: DataInput<B>, val?: DataLoader<B>, options: FitOptions = {}): Promise<void> {
    const m = module as LightningModule;
    await this.runner.runStage(m, 'fit', async (run) => {
      if (isDataModule(train)) this.runner.datamodule = train as DataModule<unknown>;
      const data = await connectFitData(train as DataInput<unknown>, val as DataLoader<unknown> | undefined, m);
      if (data.val !== undefined && typeof m.validationStep !== 'function') {
        throw new MisconfigurationError(
          `trainer.fit got validation data but ${m.constructor.name} has no validationStep: implement validationStep(batch, batchIdx) or do not pass validation data.`,
        );
      }
      await materializeLayers(run, data.loader);
      this.state.trainDataloader = data.loader;
      await setupStage(run, 'fit');
      const { optimizers, lrSchedulers } = configureOptimizers(m, this.options);
      this.state.optimizers = optimizers;
      this.state.lrSchedulers = lrSchedulers;
      m.attachTrainer({ optimizers, lrSchedulers });
      const batches = resolveLimits(this.options, { train: data.loader.length, val: data.val?.length });
      this.state.numTrainingBatches = batches.train;
      if (options.ckptPath !== undefined) await restoreCheckpoint(run, options.ckptPath, false);
      for (const logger of this.loggers) await logger.logHyperparams(m.hparams);
      await run.dispatcher.call('onFitStart', []);
      await fitLoop(run, data.loader, data.val, batches);
      await run.dispatcher.call('onFitEnd', []);
    });
  }

  /** Runs the validation loop once and returns the epoch-level validation metrics. */
  async validate<B>(module: LightningModule<B>, data: DataInput<B>, options: EvalOptions = {}): Promise<Metrics> {
    return this.evaluate(module as LightningModule, data, 'validate', options);
  }

  /** Runs the test loop once and returns the epoch-level test metrics. */
  async test<B>(module: LightningModule<B>, data: DataInput<B>, options: EvalOptions = {}): Promise<Metrics> {
    return this.evaluate(module as LightningModule, data, 'test', options);
  }

  private async evaluate<B>(m: LightningModule, data: DataInput<B>, stage: 'validate' | 'test', options: EvalOptions): Promise<Metrics> {
    let result: Metrics = {};
    await this.runner.runStage(m, stage, async (run) => {
      const { loader } = await this.connectEval(data, stage, m);
      await setupStage(run, stage);
      if (options.ckptPath !== undefined) await restoreCheckpoint(run, options.ckptPath, true);
      const loop = stage === 'validate' ? 'val' : 'test';
      result = await evaluationLoop(run, loader, stage, resolveLimits(this.options, { [loop]: loader.length })[loop]);
    });
    return result;
  }

  /**
   * Runs `predictStep` over the data and returns its outputs, one per batch. The returned tensors
   * belong to the caller (dispose them when done).
   */
  async predict<B>(module: LightningModule<B>, data: DataInput<B>): Promise<Array<tf.Tensor | tf.Tensor[]>> {
    const outputs: Array<tf.Tensor | tf.Tensor[]> = [];
    try {
      await this.runner.runStage(module as LightningModule, 'predict', async (run) => {
        const { loader } = await this.connectEval(data, 'predict', run.module);
        await setupStage(run, 'predict');
        await predictLoop(run, loader, resolveLimits(this.options, { predict: loader.length }).predict, outputs);
      });
    } catch (error) {
      tf.dispose(outputs);
      throw error;
    }
    return outputs;
  }

  private async connectEval<B>(data: DataInput<B>, stage: 'validate' | 'test' | 'predict', module: LightningModule) {
    if (isDataModule(data)) this.runner.datamodule = data as DataModule<unknown>;
    return connectEvalData(data as DataInput<unknown>, stage, module);
  }
}
