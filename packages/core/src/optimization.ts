import * as tf from '@tensorflow/tfjs';
import { MisconfigurationError } from './errors.js';
import { parseOptions } from './options.js';
import { lrSchedulerConfigSchema, tfOptimizerSchema, type LRScheduler } from './schemas.js';

export type { LRScheduler } from './schemas.js';


/** Scheduler configuration as in Lightning's `lr_scheduler` dict. */
export interface LRSchedulerConfigInput {
  scheduler: LRScheduler;
  /** 'epoch' (default) or 'step'. */
  interval?: 'epoch' | 'step';
  /** Step the scheduler every `frequency` intervals. Default 1. */
  frequency?: number;
  /** Metric passed to `scheduler.step(metric)` (ReduceLROnPlateau). */
  monitor?: string;
  /** With `monitor`: fail when the metric is missing (default true) or skip the step. */
  strict?: boolean;
  /** Name for LearningRateMonitor. */
  name?: string;
}

/** A scheduler config after defaults are applied, tied to its optimizer. */
export interface LRSchedulerConfig {
  readonly scheduler: LRScheduler;
  readonly interval: 'epoch' | 'step';
  readonly frequency: number;
  readonly monitor: string | undefined;
  readonly strict: boolean;
  readonly name: string | undefined;
  readonly optimizer: OptimizerWrapper;
}

/** One optimizer, optionally limited to some parameters, optionally with a scheduler. */
export interface OptimizerConfig {
  optimizer: tf.Optimizer;
  /** The variables this optimizer updates. Default: every trainable parameter of the module. */
  params?: readonly tf.Variable[];
  lrScheduler?: LRScheduler | LRSchedulerConfigInput;
}

/** What `configureOptimizers()` may return. */
export type OptimizersReturn = tf.Optimizer | OptimizerConfig | ReadonlyArray<tf.Optimizer | OptimizerConfig>;

/** Reads the learning rate a tfjs optimizer really uses. */
export function getLearningRate(optimizer: tf.Optimizer): number {
  const lr = (optimizer as unknown as { learningRate?: unknown }).learningRate;
  if (typeof lr !== 'number') {
    throw new MisconfigurationError(`The optimizer ${optimizer.getClassName()} has no numeric learning rate that Flint can read.`);
  }
  return lr;
}

/**
 * Sets the learning rate a tfjs optimizer uses from its next step on. SGD and Momentum cache
 * `-lr` in a tensor, refreshed through their `setLearningRate`; the others read `learningRate` at
 * every step.
 */
export function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  if (!Number.isFinite(lr) || lr < 0) {
    throw new MisconfigurationError(`learning rate must be a finite number >= 0 (received ${lr}).`);
  }
  const o = optimizer as unknown as { learningRate: number; setLearningRate?: (lr: number) => void };
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else o.learningRate = lr;
}

/**
 * The momentum a tfjs optimizer uses, as PyTorch's cycling schedulers read it: the `momentum` of
 * SGD with momentum (`tf.train.momentum`) and RMSProp, or the `beta1` of Adam (Flint's `adam()`,
 * `tf.train.adam`) and Adamax. Undefined for an optimizer without one (plain SGD, Adagrad, ...).
 */
export function getMomentum(optimizer: tf.Optimizer): number | undefined {
  const o = optimizer as unknown as { momentum?: unknown; beta1?: unknown };
  if (typeof o.momentum === 'number') return o.momentum;
  if (typeof o.beta1 === 'number') return o.beta1;
  return undefined;
}

/**
 * Sets the momentum (see `getMomentum`) the optimizer uses from its next step on. tfjs's Momentum
 * caches it in a scalar tensor (its own `setMomentum` leaves that tensor alone), replaced here;
 * for tfjs's Adam the running `beta1^t` of its bias correction becomes `beta1^t` of the new value,
 * as PyTorch's Adam computes it. Throws for an optimizer without momentum.
 */
export function setMomentum(optimizer: tf.Optimizer, momentum: number): void {
  if (!Number.isFinite(momentum) || momentum < 0 || momentum >= 1) {
    throw new MisconfigurationError(`momentum must be a number in [0, 1) (received ${momentum}).`);
  }
  const name = optimizer.getClassName();
  if (!['Momentum', 'RMSProp', 'Adam', 'FlintAdam'].includes(name)) {
    throw new MisconfigurationError(
      `The optimizer ${name} has no momentum or beta1 that Flint can set: use tf.train.momentum(lr, 0.9), tf.train.rmsprop(lr, 0.9, 0.9), adam() from @flint/core or tf.train.adam(lr).`,
    );
  }
  const o = optimizer as unknown as { momentum: number; beta1: number; m?: tf.Scalar; accBeta1?: tf.Variable; iterations: number };
  if (name === 'Momentum') {
    o.momentum = momentum;
    o.m?.dispose();
    o.m = tf.keep(tf.scalar(momentum));
  } else if (name === 'RMSProp') o.momentum = momentum;
  else {
    o.beta1 = momentum;
    if (name === 'Adam' && o.accBeta1 !== undefined) {
      const power = momentum ** (o.iterations + 1);
      tf.tidy(() => o.accBeta1!.assign(tf.scalar(power)));
    }
  }
}

/**
 * Gradients accumulated by `manualBackward` (or by the trainer's accumulation), keyed by variable
 * name, kept alive across tidy scopes until an optimizer step or `zeroGrad` disposes them.
 */
export class GradStore {
  private readonly grads = new Map<string, tf.Tensor>();

  /** Adds gradients into the store (summing with what is there). Takes ownership of nothing: it keeps copies. */
  accumulate(grads: Readonly<Record<string, tf.Tensor>>): void {
    for (const [name, g] of Object.entries(grads)) {
      const old = this.grads.get(name);
      const next = old === undefined ? tf.keep(g.clone()) : tf.keep(tf.add(old, g));
      old?.dispose();
      this.grads.set(name, next);
    }
  }

  get(names?: ReadonlySet<string>): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, g] of this.grads) if (names === undefined || names.has(name)) out[name] = g;
    return out;
  }

  get size(): number {
    return this.grads.size;
  }

  /** Replaces the stored gradients of the names given (clipping): takes ownership of the new tensors, disposes the old. */
  replace(grads: Readonly<Record<string, tf.Tensor>>): void {
    for (const [name, g] of Object.entries(grads)) {
      const old = this.grads.get(name);
      if (old === g) continue;
      this.grads.set(name, tf.keep(g));
      old?.dispose();
    }
  }

  /** Disposes the gradients of the given variables (all when omitted). */
  clear(names?: ReadonlySet<string>): void {
    for (const [name, g] of [...this.grads]) {
      if (names === undefined || names.has(name)) {
        g.dispose();
        this.grads.delete(name);
      }
    }
  }
}

/**
 * Lightning's LightningOptimizer: the tfjs optimizer plus the parameters it updates, with `step()`
 * and `zeroGrad()` working on the gradients collected by `manualBackward`.
 */
export class OptimizerWrapper {
  constructor(
    readonly optimizer: tf.Optimizer,
    private readonly paramsFn: () => readonly tf.Variable[],
    private readonly store: GradStore,
    readonly index: number,
  ) {}

  /** The variables this optimizer updates. */
  get params(): readonly tf.Variable[] {
    return this.paramsFn();
  }

  get lr(): number {
    return getLearningRate(this.optimizer);
  }

  set lr(value: number) {
    setLearningRate(this.optimizer, value);
  }

  private names(): Set<string> {
    return new Set(this.params.map((v) => v.name));
  }

  /**
   * @internal Set by the trainer while `optimizerStep` runs under automatic optimization: what runs
   * between the closure and the update (onBeforeOptimizerStep, configureGradientClipping).
   */
  _afterClosure: (() => Promise<void>) | undefined = undefined;
  /** @internal The last `step(closure)` started (the trainer awaits it). */
  _lastStep: Promise<void> | undefined = undefined;

  /**
   * Applies the gradients collected for this optimizer's parameters (or the ones given) and
   * clears them. A step with no gradients does nothing.
   *
   * With a closure (in `LightningModule.optimizerStep`, as Lightning's `optimizer.step(closure=...)`):
   * runs the closure (trainingStep and backward), then onBeforeOptimizerStep and gradient clipping,
   * then the update, and keeps the gradients (as torch's `.grad`) until `optimizerZeroGrad` drops
   * them. Returns a promise.
   */
  step(grads?: Readonly<Record<string, tf.Tensor>>): void;
  step(closure: () => unknown): Promise<void>;
  step(arg?: Readonly<Record<string, tf.Tensor>> | (() => unknown)): void | Promise<void> {
    if (typeof arg === 'function') {
      const run = (async () => {
        await arg();
        await this._afterClosure?.();
        this.applyStored(this.store.get(this.names()));
      })();
      this._lastStep = run;
      run.catch(() => undefined);
      return run;
    }
    this.applyStored(arg);
  }

  private applyStored(grads: Readonly<Record<string, tf.Tensor>> | undefined): void {
    const names = this.names();
    const toApply = grads ?? this.store.get(names);
    const filtered: Record<string, tf.Tensor> = {};
    for (const [name, g] of Object.entries(toApply)) if (names.has(name)) filtered[name] = g;
    if (Object.keys(filtered).length > 0) tf.tidy(() => this.optimizer.applyGradients(filtered));
    if (grads === undefined) this.store.clear(names);
  }

  /** Drops the collected gradients of this optimizer's parameters. */
  zeroGrad(): void {
    this.store.clear(this.names());
  }
}

/** Normalizes what `configureOptimizers` returned into wrappers and scheduler configs. */
export function normalizeOptimizers(
  returned: OptimizersReturn | undefined | null,
  allParams: () => readonly tf.Variable[],
  store: GradStore,
): { optimizers: OptimizerWrapper[]; schedulers: LRSchedulerConfig[] } {
  if (returned === undefined || returned === null) {
    throw new MisconfigurationError(
      'configureOptimizers() returned nothing: return a tfjs optimizer (tf.train.adam(1e-3)), { optimizer, lrScheduler }, or a list of them.',
    );
  }
  const list: ReadonlyArray<tf.Optimizer | OptimizerConfig> = Array.isArray(returned)
    ? (returned as ReadonlyArray<tf.Optimizer | OptimizerConfig>)
    : [returned as tf.Optimizer | OptimizerConfig];
  const optimizers: OptimizerWrapper[] = [];
  const schedulers: LRSchedulerConfig[] = [];
  list.forEach((item, index) => {
    const config: OptimizerConfig = tfOptimizerSchema.safeParse(item).success ? { optimizer: item as tf.Optimizer } : (item as OptimizerConfig);
    if (!tfOptimizerSchema.safeParse(config?.optimizer).success) {
      throw new MisconfigurationError(
        `configureOptimizers() item ${index}: expected a tfjs optimizer or { optimizer, lrScheduler? } (received ${describe(item)}).`,
      );
    }
    const fixed = config.params;
    const wrapper = new OptimizerWrapper(config.optimizer, fixed === undefined ? allParams : () => fixed, store, index);
    optimizers.push(wrapper);
    if (config.lrScheduler !== undefined) {
      const given: unknown = config.lrScheduler;
      const input = given !== null && typeof given === 'object' && 'scheduler' in given ? given : { scheduler: given };
      const s = parseOptions(`configureOptimizers() item ${index}: lrScheduler`, lrSchedulerConfigSchema, input);
      schedulers.push({ ...s, monitor: s.monitor, name: s.name, optimizer: wrapper });
    }
  });
  if (optimizers.length === 0) {
    throw new MisconfigurationError('configureOptimizers() returned an empty list: return at least one optimizer.');
  }
  return { optimizers, schedulers };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  return (value as object).constructor?.name ?? 'object';
}

/** The global L2 norm of all gradients (the square root of the sum of their squares), as a scalar (inside a tidy). */
export function globalNorm(grads: readonly tf.Tensor[]): tf.Scalar {
  return tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
}

/**
 * Clips gradients, Lightning's `gradient_clip_val` / `gradient_clip_algorithm`:
 * 'norm' rescales all gradients together so that their global L2 norm is at most `value`;
 * 'value' clamps each element to [-value, value]. Returns a new map of new tensors; `grads` is left as it was (call inside a tidy).
 */
export function clipGradients(
  grads: Readonly<Record<string, tf.Tensor>>,
  value: number,
  algorithm: 'norm' | 'value',
): Record<string, tf.Tensor> {
  const names = Object.keys(grads);
  const out: Record<string, tf.Tensor> = {};
  if (algorithm === 'value') {
    for (const n of names) out[n] = tf.clipByValue(grads[n]!, -value, value);
    return out;
  }
  const norm = globalNorm(names.map((n) => grads[n]!));
  const scale = tf.minimum(tf.scalar(1), tf.div(tf.scalar(value), tf.add(norm, 1e-6)));
  for (const n of names) out[n] = tf.mul(grads[n]!, scale);
  return out;
}
