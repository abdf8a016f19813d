import type * as tf from '@tensorflow/tfjs';
import type { Checkpoint } from './checkpoint.js';
import type { OptimizerWrapper, LRSchedulerConfig } from './optimization.js';
import type { Stage } from './stages.js';
import type { DataLoader } from './data/data-loader.js';

export type { RunningStage, Stage } from './stages.js';

/**
 * The module hooks are called with: `LightningModule`. This file declares it empty and
 * `lightning-module.ts` completes it (`declare module './hooks.js'`), so that the hooks need no
 * import of the module, which itself implements the hooks: the two files do not import each other.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface HookModule {}

/** Plain numbers, never tensors: what callbacks and loggers see of the metrics. */
export type Metrics = Readonly<Record<string, number>>;


/** Why training stopped, visible as `trainer.stopReason`. */
export interface StopReason {
  /** Which rule fired: 'max_epochs', 'max_steps', 'max_time', 'early_stopping', 'user', ... */
  readonly rule: string;
  /** Human-readable explanation with the values involved. */
  readonly message: string;
  /** Epoch at which the rule fired. */
  readonly epoch: number;
  /** Global step at which the rule fired. */
  readonly globalStep: number;
  /** Who asked for the stop (a callback's stateKey, 'trainer', or the module). */
  readonly source?: string;
  /** Values that made the rule fire (monitored value, threshold, ...). */
  readonly values?: Readonly<Record<string, number | string>>;
}

/** One row of `trainer.history`: every epoch-level metric of one epoch, train and validation side by side. */
export interface EpochRecord {
  readonly epoch: number;
  readonly globalStep: number;
  readonly metrics: Metrics;
}

/** Serializable progress of the fit loop: where a resume lands. */
export interface FitProgress {
  /** Epochs fully completed. */
  epoch: number;
  /** Optimizer steps taken. */
  globalStep: number;
  /** Batches of the current epoch already consumed (for a mid-epoch resume). */
  batchInEpoch: number;
  /** Total training batches processed (including accumulation batches). */
  totalBatches: number;
}

/**
 * The narrow view of the Trainer that callbacks, loggers and modules (`this.trainer`) get: what they
 * read, and the one way to stop (`requestStop`). They never import `@flint/trainer`; the `Trainer`
 * itself offers more (options, `loggers`, `callbacks`, `progress`, `dumpCheckpoint`, ...).
 */
export interface TrainerContext {
  /** Epochs fully completed (the epoch running now, counting from 0). */
  readonly currentEpoch: number;
  readonly globalStep: number;
  /** Training batches per epoch after `limitTrainBatches` (Infinity when unknown). */
  readonly numTrainingBatches: number;
  readonly stage: Stage | undefined;
  readonly sanityChecking: boolean;
  /** True during fastDevRun: callbacks that write files should do nothing. */
  readonly fastDevRun: boolean;
  readonly callbackMetrics: Metrics;
  readonly history: readonly EpochRecord[];
  /** Validation runs of the current fit so far (not the sanity check); 0 outside fit. */
  readonly validationRuns: number;
  /** Whether a validation run of the current fit happened in the current epoch. */
  readonly validatedThisEpoch: boolean;
  /** The run's folder (the first logger's logDir, or defaultRootDir). */
  readonly logDir: string;
  readonly optimizers: readonly OptimizerWrapper[];
  readonly lrSchedulers: readonly LRSchedulerConfig[];
  /** Batches per optimizer step from now on (the option `accumulateGradBatches` until set; GradientAccumulationScheduler sets it per epoch). */
  accumulateGradBatches?: number;
  /** The epoch limit (-1: none), where the trainer has one. */
  readonly maxEpochs?: number;
  /** fit's training loader while fit runs (StochasticWeightAveraging recomputes batch-norm statistics over it). */
  readonly trainDataloader?: DataLoader<unknown> | undefined;
  /** Whether a stop was requested (training ends after the current batch and epoch end, never before minEpochs). */
  readonly shouldStop: boolean;
  readonly stopReason: StopReason | undefined;
  /** Stops training after the current batch and epoch end (never before minEpochs), with a reason (`stopReason`). */
  requestStop(reason: Omit<StopReason, 'epoch' | 'globalStep'> & Partial<Pick<StopReason, 'epoch' | 'globalStep'>>): void;
  /** Writes a checkpoint atomically. */
  saveCheckpoint(path: string, weightsOnly?: boolean): Promise<void>;
  /** Sends metrics to every logger (with `epoch`), at `step` (default: the global step). */
  logMetrics(metrics: Metrics, step?: number): Promise<void>;
  /** Prints a line the way the trainer does (above the progress bar). */
  print(message: string): void;
}

/** @deprecated Use `Checkpoint` (the checkpoint object, typed by `checkpointV1Schema`). */
export type CheckpointData = Checkpoint;

/**
 * Hooks a callback may implement. Arguments `(trainer, module, ...)` as in Lightning. Every hook may
 * return a promise except those that run inside the gradient tape (`onBeforeBackward`), which must
 * be synchronous because `tf.tidy` / `tf.variableGrads` cannot span an `await`.
 */
export interface CallbackHooks {
  setup?(trainer: TrainerContext, module: HookModule, stage: Stage): void | Promise<void>;
  teardown?(trainer: TrainerContext, module: HookModule, stage: Stage): void | Promise<void>;
  onFitStart?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onFitEnd?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onSanityCheckStart?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onSanityCheckEnd?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onTrainStart?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onTrainEnd?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onTrainEpochStart?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onTrainEpochEnd?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onTrainBatchStart?(trainer: TrainerContext, module: HookModule, batch: unknown, batchIdx: number): void | Promise<void>;
  onTrainBatchEnd?(trainer: TrainerContext, module: HookModule, outputs: Metrics, batch: unknown, batchIdx: number): void | Promise<void>;
  onValidationStart?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onValidationEnd?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onValidationEpochStart?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onValidationEpochEnd?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onValidationBatchStart?(trainer: TrainerContext, module: HookModule, batch: unknown, batchIdx: number): void | Promise<void>;
  onValidationBatchEnd?(trainer: TrainerContext, module: HookModule, outputs: Metrics, batch: unknown, batchIdx: number): void | Promise<void>;
  onTestStart?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onTestEnd?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onTestEpochStart?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onTestEpochEnd?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onTestBatchStart?(trainer: TrainerContext, module: HookModule, batch: unknown, batchIdx: number): void | Promise<void>;
  onTestBatchEnd?(trainer: TrainerContext, module: HookModule, outputs: Metrics, batch: unknown, batchIdx: number): void | Promise<void>;
  onPredictStart?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onPredictEnd?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onPredictEpochStart?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onPredictEpochEnd?(trainer: TrainerContext, module: HookModule): void | Promise<void>;
  onPredictBatchStart?(trainer: TrainerContext, module: HookModule, batch: unknown, batchIdx: number): void | Promise<void>;
  onPredictBatchEnd?(trainer: TrainerContext, module: HookModule, outputs: unknown, batch: unknown, batchIdx: number): void | Promise<void>;
  /** Synchronous: runs inside the gradient tape, after trainingStep, before the module's `optimizerZeroGrad` (on the first batch of each accumulation group). */
  onBeforeZeroGrad?(trainer: TrainerContext, module: HookModule, optimizer: OptimizerWrapper): void;
  /** Synchronous: runs inside the gradient tape, after the forward pass, with the loss about to be differentiated. */
  onBeforeBackward?(trainer: TrainerContext, module: HookModule, loss: tf.Scalar): void;
  /** Gradients are computed (before accumulation, clipping and the optimizer step). */
  onAfterBackward?(trainer: TrainerContext, module: HookModule, grads: Readonly<Record<string, tf.Tensor>>): void | Promise<void>;
  /** Right before the optimizer step (after accumulation, before clipping), as in Lightning. */
  onBeforeOptimizerStep?(trainer: TrainerContext, module: HookModule, optimizer: OptimizerWrapper, grads: Readonly<Record<string, tf.Tensor>>): void | Promise<void>;
  onSaveCheckpoint?(trainer: TrainerContext, module: HookModule, checkpoint: Checkpoint): void | Promise<void>;
  onLoadCheckpoint?(trainer: TrainerContext, module: HookModule, checkpoint: Readonly<Checkpoint>): void | Promise<void>;
  onException?(trainer: TrainerContext, module: HookModule, error: unknown): void | Promise<void>;
}

export type CallbackHookName = keyof CallbackHooks;

/**
 * Base class for callbacks. Stateful callbacks override `stateDict` / `loadStateDict`; their state
 * is stored in checkpoints under `stateKey`.
 */
export abstract class Callback {
  /**
   * Callbacks that read epoch-level metrics (EarlyStopping, ModelCheckpoint, ...) set this: their
   * `onTrainEpochEnd` / `onValidationEpochEnd` / `onValidationEnd` run after the module's hook, once the
   * epoch's metrics are computed.
   */
  readonly readsEpochMetrics: boolean = false;

  /** Identifies this callback's state in a checkpoint. Defaults to the class name. */
  get stateKey(): string {
    return this.constructor.name;
  }

  stateDict(): Record<string, unknown> {
    return {};
  }

  loadStateDict(_state: Readonly<Record<string, unknown>>): void {}

  /**
   * Checkpoint providers (ModelCheckpoint) answer `fit(..., { ckptPath: 'last' | 'best' })`: the path
   * of that checkpoint, or undefined when they have none. The trainer asks callbacks in list order.
   */
  checkpointPath?(which: 'last' | 'best'): string | undefined;
}

// Callback hooks are optional methods of Callback.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface Callback extends CallbackHooks {}

/** The hyperparameters the trainer passes to `logHyperparams` (the module's `hparams`). */
export type HParams = Readonly<Record<string, unknown>>;

/** How a run ended, for loggers' `finalize`. */
export type RunStatus = 'success' | 'failed' | 'interrupted';

/**
 * A logger receives plain-number metrics with their step. A logger may also implement callback
 * hooks (for histograms of weights and the like): the trainer dispatches hooks to loggers after
 * the callbacks, in the same dispatcher.
 */
export interface Logger extends CallbackHooks {
  readonly name: string;
  readonly version: string | number;
  /** Folder this logger writes to (for checkpoints' default folder and the printed TensorBoard command). */
  readonly logDir: string | undefined;
  /** The folder that holds every version of this experiment (`<saveDir>/<name>`), where `ckptPath: 'last'` also looks. */
  readonly rootDir?: string;
  /**
   * Identifies this logger's state in a checkpoint (as `Callback.stateKey`): the class name plus the
   * options that tell two loggers apart. Defaults to the class name.
   */
  readonly stateKey?: string;
  logHyperparams(params: HParams): void | Promise<void>;
  /** `step` is the global step (or the epoch, for epoch-axis metrics). */
  logMetrics(metrics: Metrics, step: number): void | Promise<void>;
  /** Flush buffered output. */
  save(): void | Promise<void>;
  /** Called once when the run ends: flush and close. */
  finalize(status: RunStatus): void | Promise<void>;
  stateDict?(): Record<string, unknown>;
  loadStateDict?(state: Readonly<Record<string, unknown>>): void;
}

type WithoutTrainerAndModule<F> = F extends (trainer: TrainerContext, module: HookModule, ...rest: infer A) => infer R
  ? (...args: A) => R
  : never;

/**
 * Hooks a LightningModule may implement: the callback hooks without the `(trainer, module)`
 * arguments (the module has `this.trainer`), as in Lightning.
 */
export type ModuleHooks = {
  [K in CallbackHookName]?: WithoutTrainerAndModule<NonNullable<CallbackHooks[K]>>;
};
