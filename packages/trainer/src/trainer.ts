import * as tf from '@tensorflow/tfjs';
import {
  attachStepContext,
  captureOptimizerState,
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  CheckpointError,
  clipGradients,
  FLINT_VERSION,
  getRngState,
  HostTensor,
  loadCheckpointFile,
  restoreOptimizerState,
  saveCheckpointFile,
  setRngState,
  tapeGradients,
  type CheckpointObject,
  type TapeResult,
  type OptimizerState,
  type RngState,
  DataError,
  DataLoader,
  describeBatch,
  getGlobalSeed,
  inferBatchSize,
  InterruptedError,
  isDataModule,
  MetricCollector,
  MisconfigurationError,
  normalizeOptimizers,
  parseOptions,
  type Callback,
  type CheckpointData,
  type CollectedMetrics,
  type DataModule,
  type EpochRecord,
  type FitProgress,
  type InterruptSignal,
  type LightningModule,
  type Logger,
  type LRSchedulerConfig,
  type Metrics,
  type OptimizerWrapper,
  type ResultLoop,
  type RunningStage,
  type RunStatus,
  type Stage,
  type StepErrorContext,
  type StopReason,
  type TrainerContext,
} from '@flint/core';
import { ModelCheckpoint } from '@flint/callbacks';
import { TensorBoardLogger } from '@flint/loggers';
import { EventEmitter } from 'eventemitter3';
import { readdirSync, statSync } from 'node:fs';
import { join as joinPath, relative as relativePath, sep as pathSep } from 'node:path';
import { describeChoice, selectBackend, type BackendChoice, type BackendName } from './accelerator.js';
import type { TrainerEvents } from './events.js';
import { HookDispatcher, type HookTarget, type HookTiming } from './internal/hook-dispatcher.js';
import { exitBySignal, InterruptListener } from './internal/interrupt.js';
import { ProgressBar } from './progress-bar.js';
import { applyLimit, maxTimeMs, trainerOptionsSchema, type ResolvedTrainerOptions, type TrainerOptions } from './trainer-options.js';

/** Training data: a DataLoader, a DataModule, or anything a DataLoader accepts (with its default options). */
export type DataInput<B> = DataLoader<B> | DataModule<B>;

export interface FitOptions {
  /** Resume from a checkpoint: a path, 'last' or 'best' (from the ModelCheckpoint callback). */
  ckptPath?: string;
}

export interface EvalOptions {
  /** Load these weights first: a path, 'last' or 'best' (from the ModelCheckpoint callback). */
  ckptPath?: string;
}

type EvalStage = 'sanity_check' | 'validate' | 'test';

const EVAL_HOOKS = {
  sanity_check: {
    start: 'onValidationStart',
    epochStart: 'onValidationEpochStart',
    batchStart: 'onValidationBatchStart',
    batchEnd: 'onValidationBatchEnd',
    epochEnd: 'onValidationEpochEnd',
    end: 'onValidationEnd',
    step: 'validationStep',
    loop: 'validate',
  },
  validate: {
    start: 'onValidationStart',
    epochStart: 'onValidationEpochStart',
    batchStart: 'onValidationBatchStart',
    batchEnd: 'onValidationBatchEnd',
    epochEnd: 'onValidationEpochEnd',
    end: 'onValidationEnd',
    step: 'validationStep',
    loop: 'validate',
  },
  test: {
    start: 'onTestStart',
    epochStart: 'onTestEpochStart',
    batchStart: 'onTestBatchStart',
    batchEnd: 'onTestBatchEnd',
    epochEnd: 'onTestEpochEnd',
    end: 'onTestEnd',
    step: 'testStep',
    loop: 'test',
  },
} as const;

/** Errors the trainer raised itself inside a step: they already say everything and are not wrapped. */
const OWN_ERRORS = new WeakSet<Error>();
function own<E extends Error>(error: E): E {
  OWN_ERRORS.add(error);
  return error;
}

function disposeBatch(batch: unknown): void {
  tf.dispose(batch as tf.TensorContainer);
}

function isScalarLike(value: unknown): value is tf.Tensor {
  return value instanceof tf.Tensor;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

type StepName = StepErrorContext['step'];

/** The trainable parameters' names, for messages: the first few and how many more. */
function describeParams(module: LightningModule): string {
  const names = module.namedParameters({ trainableOnly: true }).map((p) => p.name);
  return names.length <= 4 ? names.join(', ') : `${names.slice(0, 4).join(', ')} and ${names.length - 4} more`;
}

/**
 * Lightning's Trainer for tfjs: give it a LightningModule and data, and it runs the loops
 * (sanity check, training epochs with validation, test, predict), the optimization (gradients,
 * accumulation, clipping, optimizer and scheduler steps), the hooks of callbacks, loggers and the
 * module in a fixed order, logging, and stopping rules. The loops are inlined here, top to bottom.
 */
export class Trainer implements TrainerContext {
  readonly options: ResolvedTrainerOptions;
  /** For observers only (progress bars, UIs): emitters do not await listeners. */
  readonly events = new EventEmitter<TrainerEvents>();
  readonly callbacks: Callback[];
  readonly loggers: Logger[];

  shouldStop = false;
  private _stopReason: StopReason | undefined;
  private _stage: Stage | undefined;
  private _runningStage: RunningStage | undefined;
  private readonly _progress: FitProgress = { epoch: 0, globalStep: 0, batchInEpoch: 0, totalBatches: 0 };
  private _callbackMetrics: Record<string, number> = {};
  private _loggedMetrics: Record<string, number> = {};
  private _progressBarMetrics: Record<string, number> = {};
  private readonly _history: EpochRecord[] = [];
  private _numTrainingBatches = Number.POSITIVE_INFINITY;
  private _optimizers: OptimizerWrapper[] = [];
  private _lrSchedulers: LRSchedulerConfig[] = [];
  private _backend: BackendChoice | undefined;
  private _dispatcher: HookDispatcher | undefined;
  private readonly collector = new MetricCollector();
  private module: LightningModule | undefined;
  private fitStarted = 0;
  /** True from the end of an epoch's end phase until the epoch counter moves on to the next one. */
  private epochEndDone = false;
  /** The step metrics the loop logs after onTrainBatchEnd (or a checkpoint taken there, first). */
  private pendingStepLog: { metrics: Metrics; step: number } | undefined;
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
    const fast = this.fastDevRunBatches;
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
    if (this.options.enableProgressBar) new ProgressBar().attach(this.events);
  }

  // ---- TrainerContext ------------------------------------------------------------------------

  get currentEpoch(): number {
    return this._progress.epoch;
  }
  get globalStep(): number {
    return this._progress.globalStep;
  }
  get maxEpochs(): number {
    if (this.fastDevRunBatches > 0) return 1;
    return this.options.maxEpochs ?? (this.options.maxSteps === -1 ? 1000 : -1);
  }
  get maxSteps(): number {
    return this.fastDevRunBatches > 0 ? this.fastDevRunBatches : this.options.maxSteps;
  }
  get numTrainingBatches(): number {
    return this._numTrainingBatches;
  }
  get stage(): Stage | undefined {
    return this._stage;
  }
  get runningStage(): RunningStage | undefined {
    return this._runningStage;
  }
  get sanityChecking(): boolean {
    return this._runningStage === 'sanity_check';
  }
  get fastDevRun(): boolean {
    return this.fastDevRunBatches > 0;
  }
  /** Every metric logged so far, latest values (epoch-level once the epoch ends). */
  get callbackMetrics(): Metrics {
    return this._callbackMetrics;
  }
  /** What was sent to the loggers, latest values. */
  get loggedMetrics(): Metrics {
    return this._loggedMetrics;
  }
  get progressBarMetrics(): Metrics {
    return this._progressBarMetrics;
  }
  /** One record per finished epoch with every epoch-level metric (train and validation side by side). */
  get history(): readonly EpochRecord[] {
    return this._history;
  }
  get progress(): Readonly<FitProgress> {
    return this._progress;
  }
  get stopReason(): StopReason | undefined {
    return this._stopReason;
  }
  /**
   * Whether a SIGINT (Ctrl-C) or SIGTERM interrupted the last run; `stopReason` then has the rule
   * 'interrupted' and the signal in `values.signal`. See the option `exitOnInterrupt`.
   */
  get interrupted(): boolean {
    return this._stopReason?.rule === 'interrupted';
  }
  get optimizers(): readonly OptimizerWrapper[] {
    return this._optimizers;
  }
  get lrSchedulers(): readonly LRSchedulerConfig[] {
    return this._lrSchedulers;
  }
  get defaultRootDir(): string {
    return this.options.defaultRootDir ?? process.cwd();
  }
  get logDir(): string {
    return this.loggers.find((l) => l.logDir !== undefined)?.logDir ?? this.defaultRootDir;
  }
  /** The backend chosen at the start of the last run. */
  get backend(): BackendChoice | undefined {
    return this._backend;
  }
  /** Time spent in each hook (`Owner.hookName`), summed over the last run. */
  get hookTimings(): ReadonlyMap<string, HookTiming> {
    return this._dispatcher?.timings ?? new Map();
  }

  requestStop(reason: Omit<StopReason, 'epoch' | 'globalStep'> & Partial<Pick<StopReason, 'epoch' | 'globalStep'>>): void {
    this.shouldStop = true;
    this._stopReason = { epoch: this.currentEpoch, globalStep: this.globalStep, ...reason };
  }

  print(message: string): void {
    if (this.events.listenerCount('message') > 0) this.emit('message', message);
    else process.stdout.write(`${message}\n`);
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
   * Everything needed to continue this run exactly (see docs/checkpoints.md): weights by parameter
   * name, optimizer states, progress with the place to resume, scheduler, callback and logger
   * states, hyper-parameters, the RNG state, the history and the epoch's partial metrics.
   */
  async dumpCheckpoint(weightsOnly = false): Promise<CheckpointData> {
    const module = this.module;
    if (module === undefined) throw new MisconfigurationError('dumpCheckpoint() works while the trainer runs a module (inside fit/validate/test).');
    // A save in onTrainBatchEnd comes before the loop logs the step's metrics: log them now, so that
    // the loggers' states in the checkpoint hold this step's row (a resume starts at the next step).
    await this.logPendingStep();
    const params = module.namedParameters();
    // An epoch is complete once its end phase has run (validation, epoch metrics, schedulers):
    // a checkpoint taken on the last batch resumes with that epoch's end.
    const complete = this.epochEndDone;
    const checkpoint: CheckpointObject = {
      format: CHECKPOINT_FORMAT,
      formatVersion: CHECKPOINT_FORMAT_VERSION,
      flintVersion: FLINT_VERSION,
      createdAt: new Date().toISOString(),
      module: module.constructor.name,
      backend: tf.getBackend(),
      weightsOnly,
      epoch: this._progress.epoch,
      globalStep: this._progress.globalStep,
      progress: { ...this._progress },
      resume: complete ? { epoch: this._progress.epoch + 1, batch: 0 } : { epoch: this._progress.epoch, batch: this._progress.batchInEpoch },
      hparams: structuredClone(module.hparams),
      stateDict: Object.fromEntries(params.map((p) => [p.name, HostTensor.fromTensor(p.variable)])),
    };
    if (!weightsOnly) {
      const varToParam = new Map(params.map((p) => [p.variable.name, p.name]));
      checkpoint.optimizers = await Promise.all(this._optimizers.map((o) => captureOptimizerState(o.optimizer, varToParam)));
      checkpoint.lrSchedulers = this._lrSchedulers.map((c) => c.scheduler.stateDict());
      const callbacks: Record<string, unknown> = {};
      for (const cb of this.callbacks) {
        const state = cb.stateDict();
        if (Object.keys(state).length === 0) continue; // stateless callbacks may share a key
        if (cb.stateKey in callbacks) {
          throw new MisconfigurationError(`Two callbacks share the stateKey '${cb.stateKey}': give each a distinct stateKey so that their states can be told apart in checkpoints.`);
        }
        callbacks[cb.stateKey] = state;
      }
      checkpoint.callbacks = callbacks;
      checkpoint.loggers = Object.fromEntries(this.loggers.filter((l) => typeof l.stateDict === 'function').map((l) => [loggerStateKey(l), l.stateDict!()]));
      checkpoint.rng = getRngState() ?? null;
      checkpoint.loops = {
        history: structuredClone(this._history),
        callbackMetrics: { ...this._callbackMetrics },
        collector: this.collector.stateDict(),
      };
    }
    await this.dispatcher.call('onSaveCheckpoint', [checkpoint]);
    return checkpoint;
  }

  /** Writes the current state to `path` atomically (a temporary file, flushed, then renamed). */
  async saveCheckpoint(path: string, weightsOnly = false): Promise<void> {
    const checkpoint = await this.dumpCheckpoint(weightsOnly);
    await saveCheckpointFile(path, checkpoint as CheckpointObject);
    this.lastSaved = { path, weightsOnly };
  }

  // ---- public entry points -------------------------------------------------------------------

  /**
   * Trains the module: sanity check, then epochs of training with validation, until maxEpochs,
   * maxSteps, maxTime or a callback stops it (never before minEpochs).
   */
  async fit<B>(module: LightningModule<B>, train: DataInput<B>, val?: DataLoader<B>, options: FitOptions = {}): Promise<void> {
    const m = module as LightningModule;
    await this.run(m, 'fit', async () => {
      const { train: trainLoader, val: valLoader } = await this.resolveFitData(train, val);
      if (valLoader !== undefined && typeof m.validationStep !== 'function') {
        throw new MisconfigurationError(
          `trainer.fit got validation data but ${m.constructor.name} has no validationStep: implement validationStep(batch, batchIdx) or do not pass validation data.`,
        );
      }
      await this.materializeLayers(m, trainLoader);
      await this.callSetup('fit');
      this.configureOptimizers(m);
      this._numTrainingBatches = applyLimit(this.trainLimit(), trainLoader.length);
      if (options.ckptPath !== undefined) await this.restoreCheckpoint(m, options.ckptPath, false);
      for (const logger of this.loggers) await logger.logHyperparams(m.hparams);
      if (this.options.enableModelSummary) this.print(m.summary());
      await this.dispatcher.call('onFitStart', []);
      await this.fitLoop(m, trainLoader, valLoader);
      await this.dispatcher.call('onFitEnd', []);
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
    await this.run(m, stage, async () => {
      const loader = await this.resolveEvalData(data, stage);
      await this.callSetup(stage);
      if (options.ckptPath !== undefined) await this.restoreCheckpoint(m, options.ckptPath, true);
      result = await this.evaluationLoop(m, loader as DataLoader<unknown>, stage);
    });
    return result;
  }

  /**
   * Runs `predictStep` over the data and returns its outputs, one per batch. The returned tensors
   * belong to the caller (dispose them when done).
   */
  async predict<B>(module: LightningModule<B>, data: DataInput<B>): Promise<Array<tf.Tensor | tf.Tensor[]>> {
    const m = module as LightningModule;
    const outputs: Array<tf.Tensor | tf.Tensor[]> = [];
    const running = this.run(m, 'predict', async () => {
      const loader = await this.resolveEvalData(data, 'predict');
      await this.callSetup('predict');
      const limit = applyLimit(this.fastDevRun ? this.fastDevRunBatches : this.options.limitPredictBatches, loader.length);
      m.eval();
      this._runningStage = 'predict';
      const d = this.dispatcher;
      await d.call('onPredictStart', []);
      await d.call('onPredictEpochStart', []);
      this.emit('evalStart', { stage: 'predict', numBatches: limit });
      let batchIdx = 0;
      for await (const batch of loader.batches(0, 0)) {
        if (batchIdx >= limit) {
          disposeBatch(batch);
          break;
        }
        try {
          await d.call('onPredictBatchStart', [batch, batchIdx]);
          let out: tf.Tensor | tf.Tensor[];
          try {
            out = tf.tidy(() => {
              const o = m.predictStep(batch as never, batchIdx);
              this.checkSync(m, 'predictStep', o);
              return o;
            });
          } catch (error) {
            throw this.stepError(m, 'predictStep', batch, batchIdx, error);
          }
          outputs.push(out);
          await d.call('onPredictBatchEnd', [out, batch, batchIdx]);
        } finally {
          disposeBatch(batch);
        }
        this.emit('evalBatchEnd', { stage: 'predict', batchIdx, numBatches: limit });
        batchIdx += 1;
        await this.checkInterrupt(batchIdx);
      }
      await d.call('onPredictEpochEnd', []);
      await d.call('onPredictEnd', []);
      this.emit('evalEnd', { stage: 'predict', metrics: {} });
    });
    try {
      await running;
    } catch (error) {
      tf.dispose(outputs);
      throw error;
    }
    return outputs;
  }

  // ---- the run skeleton ----------------------------------------------------------------------

  private get fastDevRunBatches(): number {
    const f = this.options.fastDevRun;
    return f === true ? 1 : f === false ? 0 : f;
  }

  private get dispatcher(): HookDispatcher {
    if (this._dispatcher === undefined) throw new MisconfigurationError('internal: no run in progress');
    return this._dispatcher;
  }

  /** Common frame of fit/validate/test/predict: backend, attach, exception and teardown hooks, loggers. */
  private async run(module: LightningModule, stage: Stage, body: () => Promise<void>): Promise<void> {
    if (this.module !== undefined) {
      throw new MisconfigurationError(`trainer.${stage}() was called while this trainer is already running ${this._stage}(): await the first call.`);
    }
    await this.setupBackend();
    if (this.options.deterministic && getGlobalSeed() === undefined) {
      throw new MisconfigurationError('Trainer option deterministic: true needs a seed: call seedEverything(seed) before creating the module and the data.');
    }
    this.module = module;
    this._stage = stage;
    this.shouldStop = false;
    this._stopReason = undefined;
    module.trainer = this;
    module._collector = this.collector;
    const targets: HookTarget[] = [...this.callbacks, ...this.loggers];
    this._dispatcher = new HookDispatcher(this, module, targets);
    // A first SIGINT/SIGTERM requests a stop that the loops turn into an InterruptedError at the
    // next batch boundary; a second one ends the process at once.
    const interrupt = new InterruptListener((signal) => {
      this.requestStop({ rule: 'interrupted', message: `${signal} received`, source: 'signal', values: { signal } });
    });
    this.interruptListener = interrupt;
    try {
      let status: RunStatus = 'success';
      try {
        await body();
        // A signal during the last hooks: the run ended, the process still stops.
        this._runningStage = undefined;
        await this.checkInterrupt(0);
      } catch (error) {
        status = error instanceof InterruptedError || (error instanceof Error && error.name === 'AbortError') ? 'interrupted' : 'failed';
        this.lastSaved = undefined;
        await this.dispatcher.call('onException', [error]).catch(() => undefined);
        throw error;
      } finally {
        try {
          await this.dispatcher.call('teardown', [stage]);
          const dm = this.datamodule;
          this.datamodule = undefined;
          await dm?.teardown?.(stage);
          if (stage === 'fit' || stage === 'validate' || stage === 'test') {
            for (const logger of this.loggers) await logger.finalize(status);
          }
        } finally {
          if (stage === 'fit') this.disposeOptimizers(module);
          this.collector.reset();
          this.pendingStepLog = undefined;
          module._gradStore.clear();
          module._collector = undefined;
          this._runningStage = undefined;
          this.module = undefined;
          module.train();
        }
      }
    } catch (error) {
      if (error instanceof InterruptedError) {
        this.reportInterrupt(error);
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
    throw new InterruptedError(signal, {
      stage: this._stage ?? 'fit',
      runningStage: this._runningStage,
      epoch: this._progress.epoch,
      batch,
      globalStep: this._progress.globalStep,
    });
  }

  /** The one line after an interrupt: where the run stopped and how to resume it. */
  private reportInterrupt(error: InterruptedError): void {
    const what = error.message.replace(/\.$/, '');
    if (error.position.stage !== 'fit') {
      this.print(`Flint: ${what}.`);
      return;
    }
    const saved = this.lastSaved;
    if (saved !== undefined && !saved.weightsOnly) {
      const quoted = `'${saved.path.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
      this.print(`Flint: ${what}; resume with trainer.fit(module, train, val, { ckptPath: ${quoted} })`);
    } else if (saved !== undefined) {
      this.print(`Flint: ${what}; ${saved.path} holds the weights only (ModelCheckpoint saveWeightsOnly) and cannot resume a fit.`);
    } else {
      this.print(
        `Flint: ${what}; no checkpoint was written, so the fit cannot resume from here (keep enableCheckpointing: true, or add a ModelCheckpoint with saveLast: true, to write last.ckpt when interrupted).`,
      );
    }
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
    if (fresh) this.print(describeChoice(choice));
  }

  /** Lightning's order: the DataModule's setup (in resolve*Data), then callbacks' and the module's. */
  private async callSetup(stage: Stage): Promise<void> {
    await this.dispatcher.call('setup', [stage]);
  }

  private async resolveFitData<B>(train: DataInput<B>, val: DataLoader<B> | undefined): Promise<{ train: DataLoader<B>; val: DataLoader<B> | undefined }> {
    if (isDataModule(train)) {
      const dm = train as DataModule<B>;
      this.datamodule = dm as DataModule<unknown>;
      await dm.prepareData?.();
      await dm.setup?.('fit');
      const t = dm.trainDataloader?.();
      if (t === undefined) throw new MisconfigurationError(`trainer.fit: the DataModule ${dm.constructor.name} has no trainDataloader().`);
      return { train: t, val: val ?? dm.valDataloader?.() };
    }
    if (!(train instanceof DataLoader)) {
      throw new MisconfigurationError(`trainer.fit: training data must be a DataLoader or a DataModule (received ${describeBatch(train)}).`);
    }
    if (val !== undefined && !(val instanceof DataLoader)) {
      throw new MisconfigurationError(`trainer.fit: validation data must be a DataLoader (received ${describeBatch(val)}).`);
    }
    return { train, val };
  }

  private async resolveEvalData<B>(data: DataInput<B>, stage: 'validate' | 'test' | 'predict'): Promise<DataLoader<B>> {
    if (isDataModule(data)) {
      const dm = data as DataModule<B>;
      this.datamodule = dm as DataModule<unknown>;
      await dm.prepareData?.();
      await dm.setup?.(stage);
      const loader = stage === 'validate' ? dm.valDataloader?.() : stage === 'test' ? dm.testDataloader?.() : dm.predictDataloader?.();
      if (loader === undefined) throw new MisconfigurationError(`trainer.${stage}: the DataModule ${dm.constructor.name} has no ${stage === 'validate' ? 'val' : stage}Dataloader().`);
      return loader;
    }
    if (!(data instanceof DataLoader)) {
      throw new MisconfigurationError(`trainer.${stage}: data must be a DataLoader or a DataModule (received ${describeBatch(data)}).`);
    }
    return data;
  }

  /**
   * tfjs layers created without an input shape get their weights on their first call. They are
   * built before the optimizer and the gradient tape see the module: from the input shapes the
   * module knows and its `exampleInputArray` (`module.buildLayers()`), else by one muted dry run of
   * `trainingStep` on the first batch.
   */
  private async materializeLayers(module: LightningModule, loader: DataLoader<unknown>): Promise<void> {
    if (module.unbuiltLayers().length === 0 || module.buildLayers().length === 0) return;
    for await (const batch of loader.batches(0, 0)) {
      this.collector.muted = true;
      try {
        tf.tidy(() => {
          this.checkSync(module, 'trainingStep', module.trainingStep(batch, 0));
        });
      } catch (error) {
        throw this.stepError(module, 'trainingStep', batch, 0, error);
      } finally {
        this.collector.muted = false;
        disposeBatch(batch);
      }
      break;
    }
    const unbuilt = module.unbuiltLayers();
    if (unbuilt.length > 0) {
      throw new MisconfigurationError(
        `${module.constructor.name}: the layers ${unbuilt.join(', ')} are not built after running trainingStep once: use them in trainingStep, ` +
          `or set exampleInputArray (an input for forward, e.g. tf.zeros([1, 3])) so that forward builds them.`,
      );
    }
  }

  private configureOptimizers(module: LightningModule): void {
    const { optimizers, schedulers } = normalizeOptimizers(module.configureOptimizers(), () => module.parameters(), module._gradStore);
    if (module.automaticOptimization && optimizers.length > 1) {
      throw new MisconfigurationError(
        `${module.constructor.name}.configureOptimizers returned ${optimizers.length} optimizers: automatic optimization uses one. Set automaticOptimization = false and step them yourself in trainingStep.`,
      );
    }
    if (!module.automaticOptimization && (this.options.accumulateGradBatches > 1 || this.options.gradientClipVal !== undefined)) {
      throw new MisconfigurationError(
        'Trainer options accumulateGradBatches and gradientClipVal apply to automatic optimization; with automaticOptimization = false, accumulate and clip in your trainingStep.',
      );
    }
    this._optimizers = optimizers;
    this._lrSchedulers = schedulers;
    module._optimizers = optimizers;
    module._lrSchedulers = schedulers;
  }

  /**
   * The optimizers configureOptimizers created belong to the fit that created them: they are
   * disposed when it ends (a later fit calls configureOptimizers again; a resume restores their
   * state from the checkpoint), so that a finished fit leaves no tensors behind.
   */
  private disposeOptimizers(module: LightningModule): void {
    for (const o of this._optimizers) {
      o.optimizer.dispose();
      // tfjs's MomentumOptimizer.dispose() does not free the learning-rate scalar `c` it inherits
      // from SGDOptimizer (SGD's own dispose does): free it here so that a fit leaks nothing.
      const c = (o.optimizer as unknown as { c?: unknown }).c;
      if (c instanceof tf.Tensor && !c.isDisposed) c.dispose();
    }
    this._optimizers = [];
    this._lrSchedulers = [];
    module._optimizers = [];
    module._lrSchedulers = [];
  }

  private trainLimit(): number | undefined {
    const fast = this.fastDevRunBatches;
    const overfit = this.options.overfitBatches;
    return fast > 0 ? fast : overfit > 0 ? overfit : this.options.limitTrainBatches;
  }

  /**
   * `'last'` / `'best'`: what this trainer's checkpoint callbacks know (their folder, in this process or
   * an earlier one). For `'last'`, failing that, the newest `last.ckpt` of the logger's experiment: a
   * new process's logger picks a new `version_<n>`, while the run to resume wrote
   * `<saveDir>/<name>/version_<k>/checkpoints/last.ckpt` (see docs/checkpoints.md).
   */
  private resolveCheckpointPath(which: string): string {
    if (which !== 'last' && which !== 'best') return which;
    for (const cb of this.callbacks) {
      const found = cb.checkpointPath?.(which);
      if (found !== undefined) return found;
    }
    const search = which === 'last' ? this.experimentCheckpoints() : undefined;
    if (search?.last !== undefined) return search.last;
    const where = search === undefined || search.roots.length === 0 ? '' : ` nor in the version folders of ${search.roots.join(', ')} (<version>/${search.sub}last.ckpt)`;
    const exists =
      search === undefined || search.roots.length === 0
        ? ''
        : search.found.length === 0
          ? ' No checkpoint exists there.'
          : ` Checkpoints there: ${search.found.slice(0, 5).join(', ')}${search.found.length > 5 ? `, ... (${search.found.length})` : ''}; pass one as ckptPath.`;
    throw new MisconfigurationError(
      `ckptPath '${which}': no ${which} checkpoint found: no callback knows one${where}.${exists} Add a ModelCheckpoint${which === 'best' ? ' with a monitor' : ' with saveLast'} to this trainer's callbacks, or pass a file path.`,
    );
  }

  /**
   * The checkpoints under every version folder of the loggers' experiments, at the place the default
   * ModelCheckpoint uses (`<version>[/<subDir>]/checkpoints`), and the newest last.ckpt among them.
   */
  private experimentCheckpoints(): { roots: string[]; sub: string; found: string[]; last: string | undefined } {
    const roots: string[] = [];
    const found: string[] = [];
    let sub = 'checkpoints/';
    let last: { file: string; mtime: number } | undefined;
    for (const logger of this.loggers) {
      const root = logger.rootDir;
      const logDir = logger.logDir;
      if (root === undefined || logDir === undefined || roots.includes(root)) continue;
      roots.push(root);
      // What lies between the version folder and the checkpoints (TensorBoardLogger's subDir).
      const rel = relativePath(root, logDir).split(pathSep).slice(1);
      sub = [...rel, 'checkpoints', ''].join('/');
      let versions: string[];
      try {
        versions = readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
      } catch {
        continue;
      }
      for (const v of versions.sort()) {
        const dir = joinPath(root, v, ...rel, 'checkpoints');
        let files: string[];
        try {
          files = readdirSync(dir).filter((f) => f.endsWith('.ckpt')).sort();
        } catch {
          continue;
        }
        for (const f of files) {
          const file = joinPath(dir, f);
          found.push(file);
          if (f !== 'last.ckpt') continue;
          const mtime = statSync(file).mtimeMs;
          if (last === undefined || mtime >= last.mtime) last = { file, mtime };
        }
      }
    }
    return { roots, sub, found, last: last?.file };
  }

  /**
   * Restores a checkpoint into the running module (and, for a resume, the optimizers, progress,
   * schedulers, callbacks, loggers, RNG and history). Everything is checked before anything is
   * changed, so a damaged or foreign checkpoint never leaves the module half-loaded.
   */
  private async restoreCheckpoint(module: LightningModule, ckptPath: string, weightsOnly: boolean): Promise<void> {
    const path = this.resolveCheckpointPath(ckptPath);
    const ckpt = await loadCheckpointFile(path);
    const source = `checkpoint ${path}`;
    const state = ckpt.stateDict as Record<string, HostTensor> | undefined;
    if (state === undefined || typeof state !== 'object') throw new CheckpointError(`${source} holds no weights (stateDict).`);
    if (!weightsOnly) {
      if (ckpt.weightsOnly === true) {
        throw new CheckpointError(`${source} holds weights only (saveWeightsOnly): it can initialize a module or be tested, not resume a fit.`);
      }
      const optimizers = (ckpt.optimizers ?? []) as OptimizerState[];
      if (optimizers.length !== this._optimizers.length) {
        throw new CheckpointError(`${source} holds ${optimizers.length} optimizer state(s); ${module.constructor.name}.configureOptimizers returned ${this._optimizers.length}.`);
      }
      optimizers.forEach((o, i) => {
        const mine = this._optimizers[i]!.optimizer.getClassName();
        if (o.className !== mine) throw new CheckpointError(`${source}: optimizer ${i} is a ${o.className} in the checkpoint and a ${mine} in the module.`);
      });
      const schedulers = (ckpt.lrSchedulers ?? []) as unknown[];
      if (schedulers.length !== this._lrSchedulers.length) {
        throw new CheckpointError(`${source} holds ${schedulers.length} LR scheduler state(s); the module configures ${this._lrSchedulers.length}.`);
      }
    }
    // Checks names and shapes of every weight before assigning any.
    try {
      module.loadStateDict(state);
    } catch (error) {
      if (error instanceof CheckpointError) throw new CheckpointError(`${source}: ${error.message}`, { cause: error });
      throw error;
    }
    if (weightsOnly) {
      await this.dispatcher.call('onLoadCheckpoint', [ckpt]);
      return;
    }
    const paramToVar = new Map(module.namedParameters().map((p) => [p.name, p.variable.name]));
    const optimizers = ckpt.optimizers as OptimizerState[];
    for (let i = 0; i < optimizers.length; i++) await restoreOptimizerState(this._optimizers[i]!.optimizer, optimizers[i]!, paramToVar, source);
    (ckpt.lrSchedulers as Array<Record<string, unknown>>).forEach((st, i) => this._lrSchedulers[i]!.scheduler.loadStateDict(st));
    // Loggers first: they move back to the checkpoint's version folder, which callbacks that write
    // under trainer.logDir (ModelCheckpoint's default dirpath) follow.
    const loggers = (ckpt.loggers ?? {}) as Record<string, Record<string, unknown>>;
    for (const logger of this.loggers) {
      if (typeof logger.loadStateDict !== 'function') continue;
      const key = loggerStateKey(logger);
      const st = loggers[key];
      if (st !== undefined) logger.loadStateDict(st);
      else {
        const saved = Object.keys(loggers);
        this.print(
          `Flint: ${source} holds no state for the logger '${key}' (${saved.length === 0 ? 'it holds no logger states' : `it holds: ${saved.map((k) => `'${k}'`).join(', ')}`}); that logger starts afresh in ${logger.logDir ?? 'its folder'}.`,
        );
      }
    }
    const callbacks = (ckpt.callbacks ?? {}) as Record<string, Record<string, unknown>>;
    for (const cb of this.callbacks) {
      const st = callbacks[cb.stateKey];
      if (st !== undefined) cb.loadStateDict(st);
    }
    if (ckpt.rng !== null && ckpt.rng !== undefined) setRngState(ckpt.rng as RngState);
    const resume = ckpt.resume as { epoch: number; batch: number };
    const progress = ckpt.progress as FitProgress;
    this._progress.epoch = resume.epoch;
    this._progress.batchInEpoch = resume.batch;
    this._progress.globalStep = progress.globalStep;
    this._progress.totalBatches = progress.totalBatches;
    const loops = (ckpt.loops ?? {}) as { history?: EpochRecord[]; callbackMetrics?: Record<string, number>; collector?: Record<string, unknown> };
    this._history.splice(0, this._history.length, ...(loops.history ?? []));
    this._callbackMetrics = { ...(loops.callbackMetrics ?? {}) };
    if (resume.batch > 0 && loops.collector !== undefined) this.collector.loadStateDict(loops.collector);
    await this.dispatcher.call('onLoadCheckpoint', [ckpt]);
    this.print(`Flint: resumed from ${path} at epoch ${resume.epoch}, batch ${resume.batch} (global step ${progress.globalStep}).`);
  }

  // ---- fit loop -------------------------------------------------------------------------------

  private async fitLoop(module: LightningModule, trainLoader: DataLoader<unknown>, valLoader: DataLoader<unknown> | undefined): Promise<void> {
    const o = this.options;
    const d = this.dispatcher;
    const fast = this.fastDevRunBatches;
    const overfit = o.overfitBatches;
    if (this._numTrainingBatches === 0) {
      throw new DataError(`trainer.fit: there are no training batches (the loader has ${trainLoader.length}, limitTrainBatches=${String(this.trainLimit())}).`);
    }
    const evalLoader = overfit > 0 ? trainLoader : valLoader;
    const valLimit = evalLoader === undefined ? 0 : applyLimit(fast > 0 ? fast : overfit > 0 ? overfit : o.limitValBatches, evalLoader.length);
    const maxTime = maxTimeMs(o.maxTime);
    this.fitStarted = performance.now();

    // Sanity check: a few validation batches before training, metrics discarded.
    if (evalLoader !== undefined && valLimit > 0 && fast === 0 && o.numSanityValSteps !== 0 && this._progress.globalStep === 0) {
      const sanityLimit = o.numSanityValSteps === -1 ? valLimit : Math.min(o.numSanityValSteps, valLimit);
      this._runningStage = 'sanity_check';
      await d.call('onSanityCheckStart', []);
      await this.evaluationLoop(module, evalLoader, 'sanity_check', sanityLimit);
      await d.call('onSanityCheckEnd', []);
    }

    this.emit('fitStart', { maxEpochs: this.maxEpochs, numTrainingBatches: this._numTrainingBatches, startEpoch: this.currentEpoch });
    await d.call('onTrainStart', []);
    const valInterval = this.valCheckBatches();
    // maxSteps already reached (maxSteps: 0, or a resume at or past it): no step is taken.
    const stepsDone = this.maxSteps !== -1 && this.globalStep >= this.maxSteps;
    if (stepsDone) this.stopWith('max_steps', `reached maxSteps=${this.maxSteps}`);
    while (!stepsDone && (this.maxEpochs === -1 || this._progress.epoch < this.maxEpochs)) {
      const epoch = this._progress.epoch;
      const valEpoch = evalLoader !== undefined && valLimit > 0 && (epoch + 1) % o.checkValEveryNEpoch === 0;
      this.epochEndDone = false;
      this._runningStage = 'train';
      module.train();
      this.collector.loop = 'train';
      await this.checkInterrupt(this._progress.batchInEpoch);
      await d.call('onTrainEpochStart', []);
      this.emit('trainEpochStart', { epoch, numBatches: this._numTrainingBatches });
      let batchIdx = this._progress.batchInEpoch;
      let validatedAt = -1;
      const loaderEpoch = overfit > 0 ? 0 : epoch;
      for await (const batch of trainLoader.batches(loaderEpoch, batchIdx)) {
        if (batchIdx >= this._numTrainingBatches) {
          disposeBatch(batch);
          break;
        }
        const isLast = batchIdx + 1 >= this._numTrainingBatches;
        let stepMetrics: CollectedMetrics;
        try {
          await d.call('onTrainBatchStart', [batch, batchIdx]);
          this.collector.hookKind = 'train_step';
          this.collector.hookName = 'trainingStep';
          this.collector.currentBatchSize = inferBatchSize(batch);
          if (module.automaticOptimization) await this.automaticStep(module, batch, batchIdx, isLast);
          else this.manualStep(module, batch, batchIdx);
          this.collector.hookKind = 'none';
          stepMetrics = this.collector.readStep();
          this.absorb(stepMetrics);
          this._progress.batchInEpoch = batchIdx + 1;
          this._progress.totalBatches += 1;
          if (Object.keys(stepMetrics.logged).length > 0 && (this.globalStep % o.logEveryNSteps === 0 || isLast)) {
            this.pendingStepLog = { metrics: stepMetrics.logged, step: this.globalStep };
          }
          await d.call('onTrainBatchEnd', [stepMetrics.callback, batch, batchIdx]);
        } finally {
          disposeBatch(batch);
          this.collector.hookKind = 'none';
        }
        this.emit('trainBatchEnd', {
          epoch,
          batchIdx,
          numBatches: this._numTrainingBatches,
          globalStep: this.globalStep,
          metrics: this._progressBarMetrics,
        });
        await this.logPendingStep();
        batchIdx += 1;
        this.checkStepLimits(maxTime);
        await this.checkInterrupt(batchIdx);
        if (valEpoch && valInterval > 0 && batchIdx % valInterval === 0 && !isLast && !this.shouldStop) {
          await this.evaluationLoop(module, evalLoader!, 'validate', valLimit);
          validatedAt = batchIdx;
          this._runningStage = 'train';
          module.train();
          this.collector.loop = 'train';
        }
        if (isLast || this.shouldStop) break;
      }
      if (valEpoch && validatedAt !== batchIdx) {
        await this.evaluationLoop(module, evalLoader!, 'validate', valLimit);
        this._runningStage = 'train';
        module.train();
      }
      // Epoch end: callbacks that do not read epoch metrics, the module, then the train epoch
      // metrics are computed, then the callbacks that read them.
      this.collector.hookKind = 'epoch';
      this.collector.hookName = 'onTrainEpochEnd';
      this.collector.loop = 'train';
      await d.call('onTrainEpochEnd', [], async () => {
        this.collector.readStep(); // values logged in the module's onTrainEpochEnd
        const collected = this.collector.takeEpoch('train');
        this.absorb(collected);
        if (Object.keys(collected.logged).length > 0) await this.logMetrics(collected.logged, this.globalStep);
        this.recordHistory(epoch, collected.callback);
        // Before the callbacks that read epoch metrics, so that an epoch-end checkpoint holds the
        // scheduler state after this epoch's step.
        await this.stepSchedulers('epoch');
        this.epochEndDone = true;
      });
      this.collector.hookKind = 'none';
      for (const logger of this.loggers) await logger.save();
      this._progress.epoch = epoch + 1;
      this._progress.batchInEpoch = 0;
      // From here a checkpoint resumes at the start of the next epoch.
      this.epochEndDone = false;
      this.emit('trainEpochEnd', { epoch, metrics: { ...this._progressBarMetrics } });
      await this.checkInterrupt(0);
      if (this.maxSteps !== -1 && this.globalStep >= this.maxSteps) this.stopWith('max_steps', `reached maxSteps=${this.maxSteps}`);
      if (this.shouldStop) {
        if (this._progress.epoch < o.minEpochs) {
          this.print(`Flint: a stop was requested (${this._stopReason?.message ?? 'no reason given'}) but minEpochs=${o.minEpochs} is not reached; training continues.`);
          this.shouldStop = false;
          this._stopReason = undefined;
        } else break;
      }
    }
    if (!this.shouldStop && this._stopReason === undefined) {
      this._stopReason = {
        rule: 'max_epochs',
        message: `reached maxEpochs=${this.maxEpochs}`,
        epoch: this._progress.epoch,
        globalStep: this.globalStep,
        source: 'trainer',
      };
    }
    this._runningStage = undefined;
    await d.call('onTrainEnd', []);
    this.emit('fitEnd', {
      stopReason: this._stopReason,
      epochs: this._progress.epoch,
      globalStep: this.globalStep,
      seconds: (performance.now() - this.fitStarted) / 1000,
    });
  }

  /** Batches between in-epoch validations (0: only at epoch end). */
  private valCheckBatches(): number {
    const v = this.options.valCheckInterval;
    if (v === undefined || this.fastDevRun) return 0;
    if (v > 0 && v < 1) return Number.isFinite(this._numTrainingBatches) ? Math.max(1, Math.floor(this._numTrainingBatches * v)) : 0;
    return v;
  }

  private stopWith(rule: string, message: string): void {
    if (this._stopReason === undefined) this.requestStop({ rule, message, source: 'trainer' });
    else this.shouldStop = true;
  }

  private checkStepLimits(maxTime: number): void {
    if (this.maxSteps !== -1 && this.globalStep >= this.maxSteps) this.stopWith('max_steps', `reached maxSteps=${this.maxSteps}`);
    if (performance.now() - this.fitStarted >= maxTime) {
      this.stopWith('max_time', `reached maxTime (${(maxTime / 1000).toFixed(1)} s) after ${((performance.now() - this.fitStarted) / 1000).toFixed(1)} s`);
    }
  }

  /**
   * One automatic optimization step: forward and backward in one gradient tape (trainingStep runs
   * inside it), then accumulation, onBeforeOptimizerStep, clipping, the optimizer and step schedulers.
   */
  private async automaticStep(module: LightningModule, batch: unknown, batchIdx: number, isLast: boolean): Promise<void> {
    const d = this.dispatcher;
    const opt = this._optimizers[0]!;
    const vars = opt.params;
    if (vars.length === 0) {
      throw new MisconfigurationError(`${module.constructor.name} has no trainable parameters: nothing to optimize.`);
    }
    const accumulate = this.options.accumulateGradBatches;
    const wantsBeforeBackward = d.has('onBeforeBackward');
    // The step runs inside the gradient tape; when it fails, tapeGradients frees what the tape kept.
    let failed = undefined as Exclude<TapeResult, { kind: 'ok' }> | undefined;
    let grads: tf.NamedTensorMap = tf.tidy((): tf.NamedTensorMap => {
      const r = tapeGradients(() => {
        const out = module.trainingStep(batch, batchIdx);
        let loss = this.extractLoss(module, out, batch, batchIdx);
        if (accumulate > 1) loss = tf.div(loss, accumulate);
        if (wantsBeforeBackward) d.callSync('onBeforeBackward', [loss]);
        return loss;
      }, vars);
      if (r.kind === 'ok') return r.grads;
      failed = r;
      return {};
    });
    if (failed?.kind === 'threw') throw this.stepError(module, 'trainingStep', batch, batchIdx, failed.error);
    if (failed?.kind === 'no-gradient') {
      throw own(new MisconfigurationError(
        `${module.constructor.name}.trainingStep returned a loss that does not depend on the trainable float parameters (batch ${batchIdx}: no gradient reaches any of ` +
          `${describeParams(module)}): compute the loss inside trainingStep from the module's outputs (not from a constant, or from numbers read back with dataSync()).`,
      ));
    }
    try {
      if (d.has('onAfterBackward')) await d.call('onAfterBackward', [grads]);
      if (accumulate > 1) {
        module._gradStore.accumulate(grads);
        tf.dispose(grads);
        grads = {};
        if ((batchIdx + 1) % accumulate !== 0 && !isLast) return;
        grads = module._gradStore.get();
      }
      if (d.has('onBeforeOptimizerStep')) await d.call('onBeforeOptimizerStep', [opt, grads]);
      const clip = this.options.gradientClipVal;
      tf.tidy(() => {
        opt.optimizer.applyGradients(clip === undefined ? grads : clipGradients(grads, clip, this.options.gradientClipAlgorithm));
      });
      if (accumulate > 1) module._gradStore.clear();
    } finally {
      if (accumulate === 1) tf.dispose(grads);
    }
    this._progress.globalStep += 1;
    await this.stepSchedulers('step');
  }

  /** Manual optimization: the step owns the optimizer loop; the trainer counts steps. */
  private manualStep(module: LightningModule, batch: unknown, batchIdx: number): void {
    try {
      tf.tidy(() => {
        this.checkSync(module, 'trainingStep', module.trainingStep(batch, batchIdx));
      });
    } catch (error) {
      throw this.stepError(module, 'trainingStep', batch, batchIdx, error);
    } finally {
      module._gradStore.clear();
    }
    this._progress.globalStep += 1;
  }

  private extractLoss(module: LightningModule, out: unknown, batch: unknown, batchIdx: number): tf.Scalar {
    this.checkSync(module, 'trainingStep', out);
    const loss = isScalarLike(out) ? out : out !== null && typeof out === 'object' && 'loss' in out ? (out as { loss: unknown }).loss : undefined;
    if (!isScalarLike(loss)) {
      throw own(new MisconfigurationError(
        `${module.constructor.name}.trainingStep must return the loss as a scalar tensor, or { loss, ... }, under automatic optimization (batch ${batchIdx}: received ${describeBatch(out)}).`,
      ));
    }
    if (loss.size !== 1) {
      throw own(new MisconfigurationError(
        `${module.constructor.name}.trainingStep returned a loss of shape [${loss.shape.join(', ')}] on batch ${batchIdx} (${describeBatch(batch)}): reduce it to a scalar (e.g. tf.mean).`,
      ));
    }
    if (loss.dtype !== 'float32') {
      throw own(new MisconfigurationError(
        `${module.constructor.name}.trainingStep returned ${loss.dtype === 'int32' ? 'an' : 'a'} ${loss.dtype} loss on batch ${batchIdx}: a loss must be float32 and depend on the trainable float parameters ` +
          `(${describeParams(module)}); no gradient flows through ${loss.dtype} values (argMax, tf.cast to int32, comparisons). Compute it with float ops, e.g. tf.losses.* or crossEntropy.`,
      ));
    }
    return (loss.rank === 0 ? loss : loss.reshape([])) as tf.Scalar;
  }

  /** A step that returned a promise was declared async: its work after an await runs outside the tape and tidy. */
  private checkSync(module: LightningModule, step: StepName, out: unknown): void {
    if (!isThenable(out)) return;
    // Its result is not used; a later rejection must not become an unhandled one.
    Promise.resolve(out).catch(() => undefined);
    throw own(new MisconfigurationError(
      `${module.constructor.name}.${step} returned a Promise (is it declared async?): steps must be synchronous, because they run inside tf.tidy and ` +
        `the gradient tape (tf.variableGrads), which cannot span an await. Remove async/await from ${step}; load data in the DataLoader and do asynchronous work in hooks.`,
    ));
  }

  /**
   * The error a step threw, kept as it is (same object and class, its message first) with where it
   * happened attached (`flintContext` and a note as the message's last line). Errors the trainer
   * raised itself inside the step already say everything.
   */
  private stepError(module: LightningModule, step: StepName, batch: unknown, batchIdx: number, error: unknown): Error {
    if (error instanceof Error && OWN_ERRORS.has(error)) return error;
    return attachStepContext(error, { module: module.constructor.name, step, batchIdx, epoch: this.currentEpoch, batch: describeBatch(batch) });
  }

  private async stepSchedulers(interval: 'epoch' | 'step'): Promise<void> {
    if (!this.module?.automaticOptimization) return;
    for (const config of this._lrSchedulers) {
      if (config.interval !== interval) continue;
      const count = interval === 'step' ? this.globalStep : this._progress.epoch + 1;
      if (count % config.frequency !== 0) continue;
      if (config.monitor !== undefined) {
        const value = this._callbackMetrics[config.monitor];
        if (value === undefined) {
          if (!config.strict) continue;
          throw new MisconfigurationError(
            `lrScheduler monitor '${config.monitor}' is not among the logged metrics: ${Object.keys(this._callbackMetrics).join(', ') || '(none logged yet)'}. Log it, or set strict: false to skip the step when it is missing.`,
          );
        }
        config.scheduler.step(value);
      } else config.scheduler.step();
    }
  }

  // ---- evaluation loop ------------------------------------------------------------------------

  private async evaluationLoop(module: LightningModule, loader: DataLoader<unknown>, stage: EvalStage, limitOverride?: number): Promise<Metrics> {
    const hooks = EVAL_HOOKS[stage];
    const d = this.dispatcher;
    const o = this.options;
    const stepFn = module[hooks.step] as ((batch: unknown, idx: number) => unknown) | undefined;
    if (typeof stepFn !== 'function') {
      throw new MisconfigurationError(`${module.constructor.name} has no ${hooks.step}(batch, batchIdx): implement it to run trainer.${stage === 'test' ? 'test' : 'validate'}.`);
    }
    const fast = this.fastDevRunBatches;
    const limit =
      limitOverride ?? applyLimit(fast > 0 ? fast : stage === 'test' ? o.limitTestBatches : o.limitValBatches, loader.length);
    const wasTraining = module.training;
    const previousStage = this._runningStage;
    const previousLoop = this.collector.loop;
    this._runningStage = stage;
    module.eval();
    const loop: ResultLoop = hooks.loop;
    this.collector.loop = loop;
    await d.call(hooks.start, []);
    await d.call(hooks.epochStart, []);
    this.emit('evalStart', { stage, numBatches: limit });
    let batchIdx = 0;
    for await (const batch of loader.batches(0, 0)) {
      if (batchIdx >= limit) {
        disposeBatch(batch);
        break;
      }
      try {
        await d.call(hooks.batchStart, [batch, batchIdx]);
        this.collector.hookKind = 'eval_step';
        this.collector.hookName = hooks.step;
        this.collector.currentBatchSize = inferBatchSize(batch);
        try {
          tf.tidy(() => {
            this.checkSync(module, hooks.step, stepFn.call(module, batch, batchIdx));
          });
        } catch (error) {
          throw this.stepError(module, hooks.step, batch, batchIdx, error);
        }
        this.collector.hookKind = 'none';
        const stepMetrics = this.collector.readStep();
        if (stage !== 'sanity_check') this.absorb(stepMetrics);
        await d.call(hooks.batchEnd, [stepMetrics.callback, batch, batchIdx]);
      } finally {
        disposeBatch(batch);
        this.collector.hookKind = 'none';
      }
      this.emit('evalBatchEnd', { stage, batchIdx, numBatches: limit });
      batchIdx += 1;
      if (this.interruptListener?.received !== undefined && this._stage === 'fit') {
        // Partial validation results do not go into the checkpoint of this interrupt: its resume runs
        // an epoch-end validation again, whole (an in-epoch one is not repeated).
        this.collector.takeEpoch(loop);
      }
      await this.checkInterrupt(batchIdx);
      if (batchIdx >= limit) break;
    }
    this.collector.hookKind = 'epoch';
    this.collector.hookName = hooks.epochEnd;
    let metrics: Record<string, number> = {};
    const finish = async (): Promise<void> => {
      this.collector.readStep();
      const collected = this.collector.takeEpoch(loop);
      metrics = collected.callback;
      if (stage === 'sanity_check') return; // Lightning discards sanity-check metrics.
      this.absorb(collected);
      if (Object.keys(collected.logged).length > 0) await this.logMetrics(collected.logged, this.globalStep);
      if (stage === 'validate' && this._stage === 'fit') this.recordHistory(this.currentEpoch, collected.callback);
    };
    await d.call(hooks.epochEnd, [], finish);
    this.collector.hookKind = 'none';
    await d.call(hooks.end, [], () => undefined);
    this.emit('evalEnd', { stage, metrics });
    this._runningStage = previousStage;
    this.collector.loop = previousLoop;
    if (wasTraining) module.train();
    return metrics;
  }

  // ---- metrics --------------------------------------------------------------------------------

  /** Folds collected numbers into the trainer's metric views. */
  private absorb(collected: CollectedMetrics): void {
    Object.assign(this._callbackMetrics, collected.callback);
    Object.assign(this._progressBarMetrics, collected.progBar);
  }

  /**
   * Sends metrics to every logger at `step`, with the `epoch` key (the current epoch) in every call,
   * as Lightning does: loggers may place metrics on an epoch axis (TensorBoardLogger's
   * `epochAxisMetrics`). Loggers write one `epoch` point per step.
   */
  async logMetrics(metrics: Metrics, step: number = this.globalStep): Promise<void> {
    const logged = { ...metrics, epoch: this.currentEpoch };
    Object.assign(this._loggedMetrics, logged);
    for (const logger of this.loggers) await logger.logMetrics(logged, step);
  }

  private async logPendingStep(): Promise<void> {
    const pending = this.pendingStepLog;
    if (pending === undefined) return;
    this.pendingStepLog = undefined;
    await this.logMetrics(pending.metrics, pending.step);
  }

  private recordHistory(epoch: number, metrics: Readonly<Record<string, number>>): void {
    const last = this._history[this._history.length - 1];
    if (last !== undefined && last.epoch === epoch) {
      this._history[this._history.length - 1] = { epoch, globalStep: this.globalStep, metrics: { ...last.metrics, ...metrics } };
    } else this._history.push({ epoch, globalStep: this.globalStep, metrics: { ...metrics } });
  }
}

/** Where a logger's state goes in a checkpoint: its stateKey, or its class name. */
function loggerStateKey(logger: Logger): string {
  return logger.stateKey ?? logger.constructor.name;
}
