import * as tf from '@tensorflow/tfjs';
import {
  getGlobalSeed,
  InterruptedError,
  isDataModule,
  MetricCollector,
  MisconfigurationError,
  parseOptions,
  saveCheckpointFile,
  type Callback,
  type CheckpointData,
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
  type RunStatus,
  type Stage,
  type StopReason,
  type TrainerContext,
} from '@flint/core';
import { ModelCheckpoint } from '@flint/callbacks';
import { TensorBoardLogger } from '@flint/loggers';
import { EventEmitter } from 'eventemitter3';
import { describeChoice, selectBackend, verboseFromEnv, type BackendChoice, type BackendName } from './accelerator.js';
import type { TrainerEvents } from './events.js';
import { dumpCheckpoint, loggerStateKey, restoreCheckpoint } from './internal/checkpoint-io.js';
import { connectEvalData, connectFitData, materializeLayers, type DataInput } from './internal/data-connect.js';
import { evaluationLoop } from './internal/evaluation-loop.js';
import { fitLoop } from './internal/fit-loop.js';
import { HookDispatcher, type HookTiming } from './internal/hook-dispatcher.js';
import { exitBySignal, InterruptListener, interruptReport } from './internal/interrupt.js';
import { predictLoop } from './internal/predict-loop.js';
import { RunState, type RunContext, type StopRequest } from './internal/run-state.js';
import { configureOptimizers, disposeOptimizers } from './internal/training-step.js';
import { ProgressBar } from './progress-bar.js';
import { applyLimit, resolveLimits, trainerOptionsSchema, type Limits, type ResolvedTrainerOptions, type TrainerOptions } from './trainer-options.js';

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
  /** The context of the running stage (undefined between runs). */
  private run: RunContext | undefined;
  private dispatcher: HookDispatcher | undefined;
  private _backend: BackendChoice | undefined;
  /** Events whose listener threw (reported once each). */
  private readonly failedEvents = new Set<keyof TrainerEvents>();
  /** The DataModule of the running stage, torn down when it ends. */
  private datamodule: DataModule<unknown> | undefined;
  /** SIGINT/SIGTERM listeners of the running stage. */
  private interruptListener: InterruptListener | undefined;
  /** The last checkpoint written through saveCheckpoint (the resume line after an interrupt names it). */
  private lastSaved: { path: string; weightsOnly: boolean } | undefined;

  constructor(options: TrainerOptions = {}) {
    this.options = parseOptions('Trainer', trainerOptionsSchema, options);
    this.limits = resolveLimits(this.options);
    const fast = this.limits.fastDevRunBatches;
    this.callbacks = [...this.options.callbacks];
    // Lightning's default checkpointing: one last.ckpt under <logDir>/checkpoints, replaced each
    // epoch, so that fit(..., { ckptPath: 'last' }) works; no monitor is guessed.
    if (this.options.enableCheckpointing && fast === 0 && !this.callbacks.some((cb) => typeof cb.checkpointPath === 'function')) {
      this.callbacks.push(new ModelCheckpoint({ saveLast: true, saveTopK: 0 }));
    }
    const logger = this.options.logger;
    // Lightning's default: a TensorBoard run under defaultRootDir (flint_logs/version_N).
    this.loggers =
      fast > 0 || logger === false
        ? []
        : logger === true
          ? [new TensorBoardLogger({ saveDir: this.options.defaultRootDir ?? process.cwd() })]
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
  get defaultRootDir(): string {
    return this.options.defaultRootDir ?? process.cwd();
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
    return this._backend;
  }
  /** Time spent in each hook (`Owner.hookName`), summed over the last run. */
  get hookTimings(): ReadonlyMap<string, HookTiming> {
    return this.dispatcher?.timings ?? new Map();
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
  async dumpCheckpoint(weightsOnly = false): Promise<CheckpointData> {
    if (this.run === undefined) throw new MisconfigurationError('dumpCheckpoint() works while the trainer runs a module (inside fit/validate/test).');
    return dumpCheckpoint(this.run, weightsOnly);
  }

  /** Writes the current state to `path` atomically (a temporary file, flushed, then renamed). */
  async saveCheckpoint(path: string, weightsOnly = false): Promise<void> {
    const checkpoint = await this.dumpCheckpoint(weightsOnly);
    await saveCheckpointFile(path, checkpoint);
    this.lastSaved = { path, weightsOnly };
  }

  // ---- the four entry points -----------------------------------------------------------------

  /**
   * Trains the module: sanity check, then epochs of training with validation, until maxEpochs,
   * maxSteps, maxTime or a callback stops it (never before minEpochs).
   */
  async fit<B>(module: LightningModule<B>, train: DataInput<B>, val?: DataLoader<B>, options: FitOptions = {}): Promise<void> {
    const m = module as LightningModule;
    await this.runStage(m, 'fit', async (run) => {
      if (isDataModule(train)) this.datamodule = train as DataModule<unknown>;
      const data = await connectFitData(train as DataInput<unknown>, val as DataLoader<unknown> | undefined);
      if (data.val !== undefined && typeof m.validationStep !== 'function') {
        throw new MisconfigurationError(
          `trainer.fit got validation data but ${m.constructor.name} has no validationStep: implement validationStep(batch, batchIdx) or do not pass validation data.`,
        );
      }
      await materializeLayers(run, data.loader);
      await run.dispatcher.call('setup', ['fit']);
      const { optimizers, lrSchedulers } = configureOptimizers(m, this.options);
      this.state.optimizers = optimizers;
      this.state.lrSchedulers = lrSchedulers;
      m.attachTrainer({ optimizers, lrSchedulers });
      this.state.numTrainingBatches = applyLimit(this.limits.batches.train, data.loader.length);
      if (options.ckptPath !== undefined) await restoreCheckpoint(run, options.ckptPath, false);
      for (const logger of this.loggers) await logger.logHyperparams(m.hparams);
      if (this.options.enableModelSummary) this.print(m.summary());
      await run.dispatcher.call('onFitStart', []);
      await fitLoop(run, data.loader, data.val);
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
    await this.runStage(m, stage, async (run) => {
      const { loader } = await this.connectEval(data, stage);
      await run.dispatcher.call('setup', [stage]);
      if (options.ckptPath !== undefined) await restoreCheckpoint(run, options.ckptPath, true);
      result = await evaluationLoop(run, loader, stage, applyLimit(this.limits.batches[stage], loader.length));
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
      await this.runStage(module as LightningModule, 'predict', async (run) => {
        const { loader } = await this.connectEval(data, 'predict');
        await run.dispatcher.call('setup', ['predict']);
        await predictLoop(run, loader, applyLimit(this.limits.batches.predict, loader.length), outputs);
      });
    } catch (error) {
      tf.dispose(outputs);
      throw error;
    }
    return outputs;
  }

  private async connectEval<B>(data: DataInput<B>, stage: 'validate' | 'test' | 'predict') {
    if (isDataModule(data)) this.datamodule = data as DataModule<unknown>;
    return connectEvalData(data as DataInput<unknown>, stage);
  }

  // ---- the run skeleton ----------------------------------------------------------------------

  /** Common frame of fit/validate/test/predict: backend, attach, exception and teardown hooks, loggers. */
  private async runStage(module: LightningModule, stage: Stage, body: (run: RunContext) => Promise<void>): Promise<void> {
    if (this.run !== undefined) {
      throw new MisconfigurationError(`trainer.${stage}() was called while this trainer is already running ${this.state.stage}(): await the first call.`);
    }
    await this.setupBackend();
    if (this.options.deterministic && getGlobalSeed() === undefined) {
      throw new MisconfigurationError('Trainer option deterministic: true needs a seed: call seedEverything(seed) before creating the module and the data.');
    }
    this.state.begin(stage);
    module.attachTrainer({ trainer: this, collector: this.collector });
    const dispatcher = new HookDispatcher(this, module, [...this.callbacks, ...this.loggers]);
    this.dispatcher = dispatcher;
    // A first SIGINT/SIGTERM requests a stop that the loops turn into an InterruptedError at the
    // next batch boundary; a second one ends the process at once.
    const interrupt = new InterruptListener((signal) => {
      this.requestStop({ rule: 'interrupted', message: `${signal} received`, source: 'signal', values: { signal } });
    });
    this.interruptListener = interrupt;
    const run: RunContext = {
      options: this.options,
      limits: this.limits,
      state: this.state,
      module,
      dispatcher,
      collector: this.collector,
      loggers: this.loggers,
      callbacks: this.callbacks,
      print: (message) => this.print(message),
      emit: (event, ...args) => this.emit(event, ...args),
      checkInterrupt: (batch) => this.checkInterrupt(batch),
      interruptReceived: () => interrupt.received !== undefined,
    };
    this.run = run;
    try {
      let status: RunStatus = 'success';
      try {
        await body(run);
        // A signal during the last hooks: the run ended, the process still stops.
        this.state.phase = undefined;
        await this.checkInterrupt(0);
      } catch (error) {
        status = error instanceof InterruptedError || (error instanceof Error && error.name === 'AbortError') ? 'interrupted' : 'failed';
        this.lastSaved = undefined;
        await dispatcher.call('onException', [error]).catch(() => undefined);
        throw error;
      } finally {
        try {
          await dispatcher.call('teardown', [stage]);
          const dm = this.datamodule;
          this.datamodule = undefined;
          await dm?.teardown?.(stage);
          if (stage === 'fit' || stage === 'validate' || stage === 'test') {
            for (const logger of this.loggers) await logger.finalize(status);
          }
        } finally {
          if (stage === 'fit') {
            disposeOptimizers(this.state.optimizers);
            this.state.optimizers = [];
            this.state.lrSchedulers = [];
            module.attachTrainer({ optimizers: [], lrSchedulers: [] });
          }
          this.collector.reset();
          this.state.end();
          module.detachTrainer();
          this.run = undefined;
          module.train();
        }
      }
    } catch (error) {
      if (error instanceof InterruptedError) {
        this.print(interruptReport(error, this.lastSaved));
        if (this.options.exitOnInterrupt) {
          interrupt.dispose();
          exitBySignal(error.signal);
        }
      }
      throw error;
    } finally {
      interrupt.dispose();
      this.interruptListener = undefined;
    }
  }

  /**
   * Emits an observer event. Listeners are observers: one that throws does not stop the run; the
   * first throw of each event is reported in one line (on stderr for 'message' listeners).
   */
  private emit<K extends keyof TrainerEvents>(event: K, ...args: TrainerEvents[K]): void {
    try {
      (this.events.emit as (event: K, ...args: TrainerEvents[K]) => boolean).call(this.events, event, ...args);
    } catch (error) {
      if (this.failedEvents.has(event)) return;
      this.failedEvents.add(event);
      const line = `Flint: a listener of trainer.events '${event}' threw (${error instanceof Error ? `${error.name}: ${error.message.split('\n')[0]}` : String(error)}); training goes on. Reported once per event.`;
      if (event === 'message') process.stderr.write(`${line}\n`);
      else this.print(line);
    }
  }

  /**
   * At a batch boundary: lets the event loop run now and then (so that signal listeners run at
   * all), and raises the InterruptedError once a signal was received. `batch` is the number of
   * batches the current loop has finished.
   */
  private async checkInterrupt(batch: number): Promise<void> {
    const interrupt = this.interruptListener;
    if (interrupt === undefined) return;
    await interrupt.yield();
    const signal = interrupt.received;
    if (signal === undefined) return;
    const { stage, phase, progress } = this.state;
    throw new InterruptedError(signal, { stage: stage ?? 'fit', runningStage: phase, epoch: progress.epoch, batch, globalStep: progress.globalStep });
  }

  private async setupBackend(): Promise<void> {
    const envBackend = process.env.FLINT_BACKEND;
    let backend: BackendName | undefined = this.options.backend;
    // FLINT_BACKEND pins the backend of trainers that do not pin one and do not ask for a GPU.
    if (backend === undefined && this.options.accelerator !== 'gpu' && envBackend !== undefined && envBackend !== '') {
      if (envBackend !== 'tensorflow' && envBackend !== 'wasm' && envBackend !== 'cpu') {
        throw new MisconfigurationError(`Environment variable FLINT_BACKEND must be 'tensorflow', 'wasm' or 'cpu' (received '${envBackend}').`);
      }
      backend = envBackend;
    }
    const { choice, fresh } = await selectBackend({ accelerator: this.options.accelerator, backend, wasm: this.options.wasm });
    this._backend = choice;
    if (fresh) this.print(describeChoice(choice, { verbose: this.options.verbose || verboseFromEnv() }));
  }
}
