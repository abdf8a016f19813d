import * as tf from '@tensorflow/tfjs';
import { loadCheckpointFile } from './checkpoint.js';
import { CheckpointError, MisconfigurationError } from './errors.js';
import type { Callback, ModuleHooks, TrainerContext } from './hooks.js';
import { MetricCollector, type LoggableMetric, type LogOptions } from './metric-collector.js';
import { tapeGradients } from './gradients.js';
import { Module, withEvalMode } from './module.js';
import { clipGradients, GradStore, type LRSchedulerConfig, type OptimizerWrapper, type OptimizersReturn } from './optimization.js';

export type { LogOptions } from './metric-collector.js';

/** @internal What a trainer attaches to the module it runs (`LightningModule.attachTrainer`). */
export interface ModuleRuntime {
  readonly trainer?: TrainerContext;
  readonly collector?: MetricCollector;
  readonly optimizers?: readonly OptimizerWrapper[];
  readonly lrSchedulers?: readonly LRSchedulerConfig[];
}

/** What `trainingStep` returns under automatic optimization: the loss, or the loss with extras. */
export type TrainingStepOutput = tf.Scalar | tf.Tensor | { loss: tf.Scalar | tf.Tensor; [key: string]: unknown };

/** What `trainingStep` may return under manual optimization. */
export type ManualStepOutput = TrainingStepOutput | void | undefined;

/**
 * The user's model and its training logic, as Lightning's: implement `trainingStep` and
 * `configureOptimizers`, optionally `validationStep`, `testStep`, `predictStep`, `forward` and any
 * hook of `ModuleHooks`. Steps are synchronous and run inside the trainer's `tf.tidy` and gradient
 * closure: return tensors, do not dispose what you return, and do not await.
 */
export abstract class LightningModule<Batch = unknown> extends Module {
  protected static override readonly ignoredProperties: ReadonlySet<string> = new Set([
    'training',
    'trainer',
    'hparams',
    'automaticOptimization',
    'exampleInputArray',
  ]);

  /** Set to false to write the optimizer loop yourself in `trainingStep` (manual optimization). */
  automaticOptimization = true;

  /** Hyper-parameters saved with `saveHyperparameters`, stored in checkpoints and shown by loggers. */
  hparams: Record<string, unknown> = {};

  /**
   * An input for `forward`, as Lightning's `example_input_array`: a tensor (passed as `forward(x)`)
   * or an array of tensors (spread into `forward`). Where tfjs layers get their weights only on
   * their first call, `loadFromCheckpoint` and the trainer run `forward` on it once (in eval mode,
   * inside `tf.tidy`) to build them. Its shape matters, its values do not: `tf.zeros([1, 3])`.
   */
  exampleInputArray: tf.Tensor | tf.Tensor[] | undefined;

  /** The trainer running this module (set by the trainer during fit/validate/test/predict). */
  trainer: TrainerContext | undefined;

  /** @internal Where log() goes while a trainer runs the module (see `attachTrainer`). */
  _collector: MetricCollector | undefined;
  /** @internal Gradients collected by manualBackward. */
  readonly _gradStore = new GradStore();
  /** @internal The optimizers of the running fit (see `attachTrainer`). */
  _optimizers: OptimizerWrapper[] = [];
  /** @internal */
  _lrSchedulers: LRSchedulerConfig[] = [];

  /**
   * @internal The trainer's one door into the module: at the start of a run it attaches itself and
   * its metric collector, after configureOptimizers the optimizers and schedulers (an empty list
   * when the fit that made them ends). Fields not given are left as they are.
   */
  attachTrainer(runtime: ModuleRuntime): void {
    if (runtime.trainer !== undefined) this.trainer = runtime.trainer;
    if (runtime.collector !== undefined) this._collector = runtime.collector;
    if (runtime.optimizers !== undefined) this._optimizers = [...runtime.optimizers];
    if (runtime.lrSchedulers !== undefined) this._lrSchedulers = [...runtime.lrSchedulers];
  }

  /**
   * @internal At the end of a run: log() no longer reaches the trainer and collected gradients are
   * dropped. `trainer` stays set, so that the module can still read the last run's state.
   */
  detachTrainer(): void {
    this._collector = undefined;
    this._gradStore.clear();
  }

  /**
   * Builds a module from a checkpoint for inference: constructs it with `args` (default: the saved
   * hyper-parameters as the only argument, as Lightning passes `hparams`), loads the weights by
   * parameter name (all checked before any is assigned) and puts it in eval mode.
   */
  static async loadFromCheckpoint<T extends LightningModule>(
    this: new (...args: never[]) => T,
    path: string,
    options: { args?: unknown[] } = {},
  ): Promise<T> {
    const ckpt = await loadCheckpointFile(path);
    const hparams = ckpt.hparams;
    const args = (options.args ?? [hparams]) as never[];
    const module = new this(...args);
    const unbuilt = module.buildLayers();
    if (unbuilt.length > 0) {
      throw new CheckpointError(
        `loadFromCheckpoint: ${this.name}'s layers ${unbuilt.join(', ')} have no weights until their first call, and their input shape is unknown: ` +
          `set exampleInputArray in ${this.name} (an input for forward, e.g. this.exampleInputArray = tf.zeros([1, 3])) so that they are built before the weights are loaded.`,
      );
    }
    try {
      module.loadStateDict(ckpt.stateDict);
    } catch (error) {
      throw new CheckpointError(`checkpoint ${path}: ${(error as Error).message}`, { cause: error });
    }
    module.hparams = { ...hparams };
    module.eval();
    return module;
  }

  /**
   * Builds tfjs layers that have no weights yet without training data: layers that know their input
   * shape (see `Module.buildLayers`), then a `forward(exampleInputArray)` in eval mode when the
   * module declares one. Returns the layers still unbuilt.
   */
  override buildLayers(): string[] {
    const unbuilt = super.buildLayers();
    const example = this.exampleInputArray;
    if (unbuilt.length === 0 || example === undefined) return unbuilt;
    try {
      withEvalMode(this, () => tf.tidy(() => void (Array.isArray(example) ? this.forward(...example) : this.forward(example))));
    } catch (error) {
      throw new MisconfigurationError(
        `${this.constructor.name}: forward(exampleInputArray) failed (exampleInputArray: ${describeExample(example)}): ${(error as Error).message ?? String(error)}`,
        { cause: error },
      );
    }
    return this.unbuiltLayers();
  }

  /** The forward pass. Override it; `trainingStep` usually calls it. */
  forward(..._inputs: unknown[]): tf.Tensor | tf.Tensor[] {
    throw new MisconfigurationError(`${this.constructor.name}.forward() is not implemented: override forward(x) to use the module for inference.`);
  }

  call(...inputs: unknown[]): tf.Tensor | tf.Tensor[] {
    return this.forward(...inputs);
  }

  abstract trainingStep(batch: Batch, batchIdx: number): TrainingStepOutput | ManualStepOutput;
  validationStep?(batch: Batch, batchIdx: number): unknown;
  testStep?(batch: Batch, batchIdx: number): unknown;
  /** Default: `forward(batch)` (or `forward(batch[0])` for an [x, y] batch, or `forward(batch.x)`). */
  predictStep(batch: Batch, _batchIdx: number): tf.Tensor | tf.Tensor[] {
    if (Array.isArray(batch)) return this.forward(batch[0]);
    if (batch !== null && typeof batch === 'object' && !(batch instanceof tf.Tensor) && 'x' in batch) {
      return this.forward((batch as { x: unknown }).x);
    }
    return this.forward(batch);
  }

  abstract configureOptimizers(): OptimizersReturn;

  /**
   * Logs a metric. In `trainingStep` it defaults to `onStep: true, onEpoch: false`; in
   * validation/test steps and epoch-level hooks to `onStep: false, onEpoch: true` (Lightning's
   * defaults). With both, loggers get `name_step` and `name_epoch`.
   *
   * `value` may be a metric object (e.g. `Accuracy` of `@flint/metrics`) that the step updates: it is
   * logged once per epoch, as its `compute()` at epoch end, followed by `reset()`; its state goes
   * into checkpoints taken mid-epoch.
   */
  log(name: string, value: tf.Tensor | number | LoggableMetric, options?: LogOptions): void {
    if (this._collector === undefined) {
      throw new MisconfigurationError(
        `log('${name}') was called outside of a Trainer: log() works inside steps and hooks run by trainer.fit/validate/test.`,
      );
    }
    this._collector.log(name, value, options);
  }

  /** Logs several metrics with the same options; also takes a `MetricCollection` (its `items()`). */
  logDict(
    values: Readonly<Record<string, tf.Tensor | number | LoggableMetric>> | { items(): Iterable<[string, LoggableMetric]> },
    options?: LogOptions,
  ): void {
    const entries = typeof values.items === 'function' ? [...(values.items as () => Iterable<[string, LoggableMetric]>)()] : Object.entries(values);
    for (const [name, value] of entries) this.log(name, value as tf.Tensor | number | LoggableMetric, options);
  }

  /**
   * Saves hyper-parameters: they go into `this.hparams`, into checkpoints and to the loggers.
   * Values must be JSON-serializable.
   */
  saveHyperparameters(hparams: Readonly<Record<string, unknown>>): void {
    for (const [k, v] of Object.entries(hparams)) {
      if (v instanceof tf.Tensor || typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint') {
        throw new MisconfigurationError(`saveHyperparameters: '${k}' must be JSON-serializable (received ${typeof v === 'object' ? 'a tensor' : typeof v}).`);
      }
    }
    this.hparams = { ...this.hparams, ...structuredClone(hparams) };
  }

  // ---- Lightning's module-only hooks, with Lightning's defaults (see docs/concepts.md) -------------

  /**
   * Downloads or writes data once, before `setup` (after a DataModule's own `prepareData`). Default:
   * nothing.
   */
  prepareData(): void | Promise<void> {}

  /** Builds what the module creates lazily, after `setup` at the start of every run. Default: nothing. */
  configureModel(): void | Promise<void> {}

  /**
   * Callbacks the module brings (one or a list), added at the start of every run; a trainer callback
   * of the same class is replaced by the module's. Default: none.
   */
  configureCallbacks(): Callback | Callback[] {
    return [];
  }

  /**
   * Preprocesses or augments a batch before the step's batch hooks, in every loop (train,
   * validation, test, predict). Synchronous; runs inside `tf.tidy`: tensors it makes for the batch
   * are disposed once the batch is done. Default: the batch unchanged.
   */
  onBeforeBatchTransfer(batch: Batch, _dataloaderIdx: number): Batch {
    return batch;
  }

  /** Called right after `onBeforeBatchTransfer` (tfjs has no transfer between the two); same rules. Default: the batch unchanged. */
  onAfterBatchTransfer(batch: Batch, _dataloaderIdx: number): Batch {
    return batch;
  }

  /**
   * The optimizer step of automatic optimization, once per `accumulateGradBatches` batches.
   * `closure` runs trainingStep and backward; `optimizer.step(closure)` runs it, then
   * onBeforeOptimizerStep and `configureGradientClipping`, then updates the weights. Override it to
   * skip or delay steps (call `closure()` alone to run the step without an update) or to change the
   * learning rate first (warm-up). Default: `return optimizer.step(closure)`.
   */
  optimizerStep(_epoch: number, _batchIdx: number, optimizer: OptimizerWrapper, closure: () => Promise<void>): void | Promise<void> {
    return optimizer.step(closure);
  }

  /**
   * Drops the gradients collected for `optimizer`, on the first batch of each accumulation group,
   * after trainingStep and before backward (synchronous: it runs inside the gradient tape). Override
   * it to keep gradients across steps. Default: `optimizer.zeroGrad()`.
   */
  optimizerZeroGrad(_epoch: number, _batchIdx: number, optimizer: OptimizerWrapper): void {
    optimizer.zeroGrad();
  }

  /**
   * Inside the gradient tape, after onBeforeBackward: returns the value whose gradients the trainer
   * takes (tfjs differentiates a function, so there is no `loss.backward()` to call). Synchronous.
   * Default: the loss.
   */
  backward(loss: tf.Scalar): tf.Scalar {
    return loss;
  }

  /**
   * Clips the gradients before the optimizer step (after onBeforeOptimizerStep), with the trainer's
   * `gradientClipVal` / `gradientClipAlgorithm`. Override it to clip differently. Default:
   * `this.clipGradients(optimizer, gradientClipVal, gradientClipAlgorithm)`.
   */
  configureGradientClipping(optimizer: OptimizerWrapper, gradientClipVal: number | undefined, gradientClipAlgorithm: 'norm' | 'value' | undefined): void {
    this.clipGradients(optimizer, gradientClipVal, gradientClipAlgorithm);
  }

  /** Clips the gradients collected for `optimizer`'s parameters by global norm (default) or by value; nothing without a positive `clipVal`. */
  clipGradients(optimizer: OptimizerWrapper, clipVal: number | undefined, algorithm: 'norm' | 'value' = 'norm'): void {
    if (clipVal === undefined || !(clipVal > 0)) return;
    const names = new Set(optimizer.params.map((v) => v.name));
    const grads = this._gradStore.get(names);
    if (Object.keys(grads).length === 0) return;
    this._gradStore.replace(tf.tidy(() => clipGradients(grads, clipVal, algorithm)));
  }

  /** Before a validation loop (also the sanity check). Default: `this.eval()`. */
  onValidationModelEval(): void {
    this.eval();
  }

  /** After a validation loop, when overridden; otherwise the module gets back the mode it had. Default: `this.train()`. */
  onValidationModelTrain(): void {
    this.train();
  }

  /** Before a test loop. Default: `this.eval()`. */
  onTestModelEval(): void {
    this.eval();
  }

  /** After a test loop, when overridden; otherwise the module gets back the mode it had. Default: `this.train()`. */
  onTestModelTrain(): void {
    this.train();
  }

  /** Before a predict loop. Default: `this.eval()`. */
  onPredictModelEval(): void {
    this.eval();
  }

  /** The optimizers returned by `configureOptimizers`, wrapped with `step()` / `zeroGrad()` (manual optimization). */
  optimizers(): OptimizerWrapper[] {
    if (this._optimizers.length === 0) {
      throw new MisconfigurationError('optimizers() is only available while a Trainer runs this module (after configureOptimizers).');
    }
    return this._optimizers;
  }

  /** The learning-rate scheduler configs (manual optimization steps them itself). */
  lrSchedulers(): LRSchedulerConfig[] {
    return this._lrSchedulers;
  }

  /**
   * Manual optimization's backward: computes the gradients of `lossFn()` with respect to `params`
   * (default: every trainable parameter) and adds them to the collected gradients that
   * `optimizer.step()` applies. Returns the loss. Call it inside `trainingStep`.
   */
  manualBackward(lossFn: () => tf.Scalar, params?: readonly tf.Variable[]): tf.Scalar {
    if (this.automaticOptimization) {
      throw new MisconfigurationError('manualBackward() is for manual optimization: set `automaticOptimization = false` in the module.');
    }
    const vars = params ?? this.parameters();
    if (vars.length === 0) {
      throw new MisconfigurationError('manualBackward(): there are no trainable parameters to differentiate.');
    }
    const result = tapeGradients(lossFn, vars);
    if (result.kind === 'threw') throw result.error;
    if (result.kind === 'no-gradient') {
      throw new MisconfigurationError(
        `manualBackward(): the loss does not depend on the trainable float parameters given (${vars.length}): compute it inside lossFn from the module's outputs.`,
      );
    }
    const { value, grads } = result;
    this._gradStore.accumulate(grads);
    for (const g of Object.values(grads)) g.dispose();
    return value;
  }
}

function describeExample(example: tf.Tensor | tf.Tensor[]): string {
  const one = (t: unknown) => (t instanceof tf.Tensor ? `${t.dtype}[${t.shape.join(',')}]` : typeof t);
  return Array.isArray(example) ? `[${example.map(one).join(', ')}]` : one(example);
}

// The module hooks are optional methods of LightningModule.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface LightningModule<Batch> extends ModuleHooks {}

// What the callback hooks in hooks.ts receive as `module`.
declare module './hooks.js' {
  interface HookModule extends LightningModule {}
}
