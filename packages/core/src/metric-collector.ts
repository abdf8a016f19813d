import * as tf from '@tensorflow/tfjs';
import { MisconfigurationError } from './errors.js';
import type { Phase } from './stages.js';

export type Reduce = 'mean' | 'sum' | 'max' | 'min';

/**
 * A stateful metric object that `log()` accepts, such as those of `@flint/metrics` (declared here so
 * that core does not depend on them): the trainer calls `compute()` at epoch end, then `reset()`, and
 * keeps `stateDict()` in checkpoints taken mid-epoch; on resume the saved state is merged into the
 * metric with `mergeState`.
 */
export interface LoggableMetric {
  compute(): tf.Tensor;
  reset(): void;
  stateDict(): Record<string, unknown>;
  loadStateDict(state: Readonly<Record<string, unknown>>): void;
  mergeState(incoming: Readonly<Record<string, unknown>>): void;
}

/** Whether `value` is a metric object for `log()` (structurally: compute, reset, stateDict, loadStateDict, mergeState). */
export function isLoggableMetric(value: unknown): value is LoggableMetric {
  if (value === null || typeof value !== 'object' || value instanceof tf.Tensor) return false;
  const m = value as Record<string, unknown>;
  return ['compute', 'reset', 'stateDict', 'loadStateDict', 'mergeState'].every((k) => typeof m[k] === 'function');
}

export interface LogOptions {
  /** Log the value of this step (logged as `name_step` when onEpoch is also set). */
  onStep?: boolean;
  /** Accumulate over the epoch and log the reduced value at epoch end (`name_epoch` when onStep too). */
  onEpoch?: boolean;
  /** Show in the progress bar. Default false. */
  progBar?: boolean;
  /** Send to the loggers. Default true. */
  logger?: boolean;
  /** How to reduce over the epoch: 'mean' (weighted by batch size), 'sum', 'max', 'min'. Default 'mean'. */
  reduce?: Reduce;
  /** Batch size for the weighted mean (inferred from the batch when omitted). */
  batchSize?: number;
}

/** Which kind of hook is running, for Lightning's per-hook defaults. */
export type HookKind = 'train_step' | 'eval_step' | 'epoch' | 'none';

/** Which loop's results a value belongs to (the sanity check's go to 'validate', and are discarded). */
export type ResultLoop = Exclude<Phase, 'sanity_check'>;

/**
 * Where `log()` calls come from while a scope is open (`MetricCollector.scope`): the kind of hook
 * (for Lightning's per-hook defaults), its name (for messages), the loop whose epoch values they
 * join and the batch size of the running step (for weighted means).
 */
export interface LogScope {
  readonly kind: HookKind;
  readonly hook: string;
  readonly loop: ResultLoop;
  readonly batchSize: number;
}

const OUTSIDE: LogScope = { kind: 'none', hook: '', loop: 'train', batchSize: 1 };

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

interface Entry {
  readonly name: string;
  readonly value: tf.Tensor | number;
  /** A metric object: no step value; computed at epoch end. */
  readonly metric?: LoggableMetric;
  readonly onStep: boolean;
  readonly onEpoch: boolean;
  readonly progBar: boolean;
  readonly logger: boolean;
  readonly reduce: Reduce;
  readonly batchSize: number;
}

/** @internal The log() calls of a step without their values (see `MetricCollector._pendingTensors`). */
export interface PendingCalls {
  /** Equal keys mean the same calls, with the same options. */
  readonly key: string;
  readonly specs: ReadonlyArray<Omit<Entry, 'value'>>;
}

interface Accumulator {
  onStep: boolean;
  progBar: boolean;
  logger: boolean;
  reduce: Reduce;
  sum: number;
  weight: number;
  value: number;
  /** A logged metric object: its compute() is the epoch value. */
  metric?: LoggableMetric;
  /** A metric's state from a checkpoint, merged into the metric when it is next logged. */
  metricState?: Record<string, unknown>;
}

/** Numbers ready for the trainer: what goes to loggers, the progress bar and callbacks. */
export interface CollectedMetrics {
  logged: Record<string, number>;
  progBar: Record<string, number>;
  callback: Record<string, number>;
}

const DEFAULTS: Record<HookKind, { onStep: boolean; onEpoch: boolean }> = {
  train_step: { onStep: true, onEpoch: false },
  eval_step: { onStep: false, onEpoch: true },
  epoch: { onStep: false, onEpoch: true },
  none: { onStep: false, onEpoch: true },
};

const VALID_REDUCE: readonly Reduce[] = ['mean', 'sum', 'max', 'min'];

/**
 * Collects what a module logs. Tensors logged during a step are kept and read back together in one
 * device-to-host read at the end of the step (`readStep`), which also disposes them. Epoch
 * accumulation happens on plain numbers.
 */
export class MetricCollector {
  private current: LogScope = OUTSIDE;
  private mutedFlag = false;
  /** Metric objects logged while muted: the dry run's batch went into them, so they are reset on unmute. */
  private readonly mutedMetrics = new Set<LoggableMetric>();

  /** The kind of hook whose log() calls are collected now (see `scope`). */
  get hookKind(): HookKind {
    return this.current.kind;
  }
  /** The name of that hook, for messages. */
  get hookName(): string {
    return this.current.hook;
  }
  /** The loop whose epoch values log() calls join now. */
  get loop(): ResultLoop {
    return this.current.loop;
  }
  /** Batch size of the running step, inferred by the trainer from the batch. */
  get currentBatchSize(): number {
    return this.current.batchSize;
  }

  /**
   * Runs `fn` with the log() calls it makes attributed to `scope` (fields not given are kept from the
   * enclosing scope), and restores the enclosing scope when `fn` returns, throws, or (when it returns
   * a promise) settles. The trainer opens one per loop (`{ loop }`) and one per step or epoch-end
   * hook (`{ kind, hook, batchSize }`).
   */
  scope<T>(scope: Partial<LogScope>, fn: () => T): T {
    const enclosing = this.current;
    this.current = { ...enclosing, ...scope };
    let result: T;
    try {
      result = fn();
    } catch (error) {
      this.current = enclosing;
      throw error;
    }
    if (!isThenable(result)) {
      this.current = enclosing;
      return result;
    }
    return Promise.resolve(result).finally(() => {
      this.current = enclosing;
    }) as T;
  }

  /** While true (a dry run that builds lazy layers), log() calls are dropped. */
  get muted(): boolean {
    return this.mutedFlag;
  }

  /**
   * Runs `fn` (synchronous) with log() calls dropped: a dry run whose batch must not count. Metric
   * objects it logged saw that batch, so they are reset afterwards.
   */
  runMuted<T>(fn: () => T): T {
    this.mutedFlag = true;
    try {
      return fn();
    } finally {
      this.mutedFlag = false;
      for (const m of this.mutedMetrics) m.reset();
      this.mutedMetrics.clear();
    }
  }
  private pending: Entry[] = [];
  private readonly epoch = new Map<ResultLoop, Map<string, Accumulator>>();

  log(name: string, value: tf.Tensor | number | LoggableMetric, options: LogOptions = {}): void {
    if (this.muted) {
      if (isLoggableMetric(value)) this.mutedMetrics.add(value);
      return;
    }
    if (typeof name !== 'string' || name.length === 0) {
      throw new MisconfigurationError(`log(): the metric name must be a non-empty string (received ${JSON.stringify(name)}).`);
    }
    if (isLoggableMetric(value)) {
      this.logMetricObject(name, value, options);
      return;
    }
    if (value instanceof tf.Tensor) {
      if (value.size !== 1) {
        throw new MisconfigurationError(
          `log('${name}'): the value must be a scalar (a number or a tensor with one element); received a tensor of shape [${value.shape.join(', ')}].`,
        );
      }
    } else if (typeof value !== 'number') {
      throw new MisconfigurationError(`log('${name}'): the value must be a number or a scalar tensor; received ${typeof value}.`);
    }
    const reduce = options.reduce ?? 'mean';
    if (!VALID_REDUCE.includes(reduce)) {
      throw new MisconfigurationError(`log('${name}'): option 'reduce' must be one of ${VALID_REDUCE.join(', ')} (received ${JSON.stringify(reduce)}).`);
    }
    const { kind, hook } = this.current;
    const defaults = DEFAULTS[kind];
    const onStep = options.onStep ?? defaults.onStep;
    const onEpoch = options.onEpoch ?? defaults.onEpoch;
    if (kind === 'epoch' && onStep) {
      throw new MisconfigurationError(
        `log('${name}', ..., { onStep: true }) is not allowed in ${hook}: epoch-level hooks log once per epoch (use onEpoch).`,
      );
    }
    const batchSize = options.batchSize ?? this.current.batchSize;
    if (!(batchSize > 0)) {
      throw new MisconfigurationError(`log('${name}'): option 'batchSize' must be a positive number (received ${batchSize}).`);
    }
    // Replace an earlier log of the same name in this step.
    const existing = this.pending.findIndex((e) => e.name === name);
    if (existing >= 0) {
      const old = this.pending[existing]!;
      if (old.value instanceof tf.Tensor && old.value !== value) old.value.dispose();
      this.pending.splice(existing, 1);
    }
    const kept = value instanceof tf.Tensor ? tf.keep(value) : value;
    this.pending.push({
      name,
      value: kept,
      onStep,
      onEpoch,
      progBar: options.progBar ?? false,
      logger: options.logger ?? true,
      reduce,
      batchSize,
    });
  }

  /**
   * A metric object is logged once per epoch, as Lightning does with torchmetrics: its `compute()`
   * at epoch end, then `reset()`. Its state is kept by the metric itself (updated by the user).
   */
  private logMetricObject(name: string, metric: LoggableMetric, options: LogOptions): void {
    if ((options.onStep ?? false) || !(options.onEpoch ?? true)) {
      throw new MisconfigurationError(
        `log('${name}', metric): a metric object is logged per epoch (compute() at epoch end, then reset()), so onStep must be false and onEpoch true (received onStep=${String(options.onStep)}, onEpoch=${String(options.onEpoch)}); for a value per step, log the tensor that metric.forward(preds, target) returns.`,
      );
    }
    for (const e of this.pending) if (e.name === name && e.value instanceof tf.Tensor) e.value.dispose();
    this.pending = this.pending.filter((e) => e.name !== name);
    this.pending.push({
      name,
      value: Number.NaN,
      metric,
      onStep: false,
      onEpoch: true,
      progBar: options.progBar ?? false,
      logger: options.logger ?? true,
      reduce: 'mean',
      batchSize: 1,
    });
  }

  /**
   * @internal For compiled training steps (`@flint/trainer`): what the step logged so far, as the
   * tensors it logged and its log() calls without their values (`key`: equal keys mean the same
   * calls), or a reason when a call logged a number or a metric object (values a compiled step
   * cannot return).
   */
  _pendingTensors(): { tensors: tf.Tensor[]; calls: PendingCalls } | { reason: string } {
    const tensors: tf.Tensor[] = [];
    for (const e of this.pending) {
      if (!(e.value instanceof tf.Tensor) || e.metric !== undefined) {
        return { reason: `log('${e.name}') logs ${e.metric !== undefined ? 'a metric object' : 'a number'}, which is computed in JavaScript (log a tensor instead)` };
      }
      tensors.push(e.value);
    }
    const specs = this.pending.map(({ value: _value, ...rest }) => rest);
    return { tensors, calls: { key: JSON.stringify(specs), specs } };
  }

  /**
   * @internal For compiled training steps: the log() calls `calls` (from `_pendingTensors` of an
   * earlier step) made again with `tensors`, which the collector now owns.
   */
  _replayPending(calls: PendingCalls, tensors: readonly tf.Tensor[]): void {
    calls.specs.forEach((spec, i) => this.pending.push({ ...spec, value: tensors[i]! }));
  }

  /**
   * Reads the values logged during the step (one device-to-host read for all tensors), disposes
   * them, folds them into the epoch accumulators and returns the step-level numbers.
   */
  readStep(): CollectedMetrics {
    const entries = this.pending;
    this.pending = [];
    const out: CollectedMetrics = { logged: {}, progBar: {}, callback: {} };
    if (entries.length === 0) return out;
    const tensors = entries.filter((e): e is Entry & { value: tf.Tensor } => e.value instanceof tf.Tensor);
    const numbers = new Map<Entry, number>();
    if (tensors.length > 0) {
      let host: ArrayLike<number>;
      try {
        if (tensors.length === 1) host = tensors[0]!.value.dataSync();
        else {
          const stacked = tf.tidy(() => tf.concat(tensors.map((e) => e.value.reshape([1]).cast('float32'))));
          host = stacked.dataSync();
          stacked.dispose();
        }
      } finally {
        for (const e of tensors) e.value.dispose();
      }
      tensors.forEach((e, i) => numbers.set(e, host[i]!));
    }
    const loop = this.current.loop;
    let acc = this.epoch.get(loop);
    if (acc === undefined) {
      acc = new Map();
      this.epoch.set(loop, acc);
    }
    for (const e of entries) {
      if (e.metric !== undefined) {
        const a = acc.get(e.name);
        if (a?.metricState !== undefined) e.metric.mergeState(a.metricState); // resumed mid-epoch
        acc.set(e.name, { onStep: false, progBar: e.progBar, logger: e.logger, reduce: 'mean', sum: 0, weight: 0, value: Number.NaN, metric: e.metric });
        continue;
      }
      const v = typeof e.value === 'number' ? e.value : numbers.get(e)!;
      if (e.onStep) {
        const key = e.onEpoch ? `${e.name}_step` : e.name;
        if (e.logger) out.logged[key] = v;
        if (e.progBar) out.progBar[key] = v;
        out.callback[key] = v;
        if (e.onEpoch) out.callback[e.name] = v;
      }
      if (e.onEpoch) {
        let a = acc.get(e.name);
        if (a === undefined) {
          a = { onStep: e.onStep, progBar: e.progBar, logger: e.logger, reduce: e.reduce, sum: 0, weight: 0, value: Number.NaN };
          acc.set(e.name, a);
        }
        switch (e.reduce) {
          case 'mean':
            a.sum += v * e.batchSize;
            a.weight += e.batchSize;
            a.value = a.sum / a.weight;
            break;
          case 'sum':
            a.sum += v;
            a.value = a.sum;
            break;
          case 'max':
            a.value = Number.isNaN(a.value) ? v : Math.max(a.value, v);
            break;
          case 'min':
            a.value = Number.isNaN(a.value) ? v : Math.min(a.value, v);
            break;
        }
      }
    }
    return out;
  }

  /**
   * The reduced epoch-level values of a loop, then forgets them. `byName` holds each value once, under
   * the name it was logged with (`loss`, not also `loss_epoch`): what `trainer.history` records.
   */
  takeEpoch(loop: ResultLoop): CollectedMetrics & { byName: Record<string, number> } {
    const out = { logged: {}, progBar: {}, callback: {}, byName: {} } as CollectedMetrics & { byName: Record<string, number> };
    const acc = this.epoch.get(loop);
    this.epoch.delete(loop);
    if (acc === undefined) return out;
    this.computeMetrics(acc);
    for (const [name, a] of acc) {
      if (a.metricState !== undefined && a.metric === undefined) continue; // saved, but not logged again after the resume
      const key = a.onStep ? `${name}_epoch` : name;
      if (a.logger) out.logged[key] = a.value;
      if (a.progBar) out.progBar[key] = a.value;
      out.callback[key] = a.value;
      out.callback[name] = a.value;
      out.byName[name] = a.value;
    }
    return out;
  }

  /** Epoch values of logged metric objects: their compute() (one device-to-host read for all), then reset(). */
  private computeMetrics(acc: Map<string, Accumulator>): void {
    const withMetric = [...acc].filter((e): e is [string, Accumulator & { metric: LoggableMetric }] => e[1].metric !== undefined);
    if (withMetric.length === 0) return;
    const values: tf.Tensor[] = [];
    try {
      for (const [name, a] of withMetric) {
        const t = a.metric.compute();
        values.push(t);
        if (t.size !== 1) {
          throw new MisconfigurationError(`log('${name}', metric): the metric's compute() must give a scalar to be logged; it gave a tensor of shape [${t.shape.join(', ')}] (e.g. average 'none'): log its elements yourself.`);
        }
      }
      const stacked = tf.tidy(() => tf.concat(values.map((t) => t.reshape([1]).toFloat())));
      values.push(stacked);
      const host = stacked.dataSync();
      withMetric.forEach(([, a], i) => {
        a.value = host[i]!;
        a.metric.reset();
      });
    } finally {
      for (const t of values) t.dispose();
    }
  }

  /**
   * The epoch accumulators (plain numbers), for a checkpoint taken in the middle of an epoch; a
   * logged metric object is saved as its `stateDict()`.
   */
  stateDict(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [loop, acc] of this.epoch) {
      out[loop] = Object.fromEntries(
        [...acc].map(([k, { metric, ...a }]) => [k, metric === undefined ? a : { ...a, metricState: metric.stateDict() }]),
      );
    }
    return out;
  }

  loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.epoch.clear();
    for (const [loop, acc] of Object.entries(state)) {
      this.epoch.set(loop as ResultLoop, new Map(Object.entries(acc as Record<string, Accumulator>).map(([k, a]) => [k, { ...a }])));
    }
  }

  /** Drops everything (kept tensors disposed): after an error or at the end of a run. */
  reset(): void {
    for (const e of this.pending) if (e.value instanceof tf.Tensor) e.value.dispose();
    this.pending = [];
    this.epoch.clear();
  }
}
