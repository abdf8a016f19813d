import * as tf from '@tensorflow/tfjs';
import { MisconfigurationError } from './errors.js';

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

/** Options of `LightningModule.log`. Unset values take Lightning's defaults for the running hook. */
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

/** Which loop's results a value belongs to. */
export type ResultLoop = 'train' | 'validate' | 'test' | 'predict';

interface Entry {
  readonly name: string;
  readonly value: tf.Tensor | number;
  readonly onStep: boolean;
  readonly onEpoch: boolean;
  readonly progBar: boolean;
  readonly logger: boolean;
  readonly reduce: Reduce;
  readonly batchSize: number;
}

interface Accumulator {
  onStep: boolean;
  progBar: boolean;
  logger: boolean;
  reduce: Reduce;
  sum: number;
  weight: number;
  value: number;
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
  hookKind: HookKind = 'none';
  hookName = '';
  loop: ResultLoop = 'train';
  /** Batch size of the running step, inferred by the trainer from the batch. */
  currentBatchSize = 1;
  /** While true (a dry run that builds lazy layers), log() calls are dropped. */
  muted = false;
  private pending: Entry[] = [];
  private readonly epoch = new Map<ResultLoop, Map<string, Accumulator>>();

  log(name: string, value: tf.Tensor | number, options: LogOptions = {}): void {
    if (this.muted) return;
    if (typeof name !== 'string' || name.length === 0) {
      throw new MisconfigurationError(`log(): the metric name must be a non-empty string (received ${JSON.stringify(name)}).`);
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
    const defaults = DEFAULTS[this.hookKind];
    const onStep = options.onStep ?? defaults.onStep;
    const onEpoch = options.onEpoch ?? defaults.onEpoch;
    if (this.hookKind === 'epoch' && onStep) {
      throw new MisconfigurationError(
        `log('${name}', ..., { onStep: true }) is not allowed in ${this.hookName}: epoch-level hooks log once per epoch (use onEpoch).`,
      );
    }
    const batchSize = options.batchSize ?? this.currentBatchSize;
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

  /** Whether anything was logged since the last `readStep`. */
  hasPending(): boolean {
    return this.pending.length > 0;
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
    let acc = this.epoch.get(this.loop);
    if (acc === undefined) {
      acc = new Map();
      this.epoch.set(this.loop, acc);
    }
    for (const e of entries) {
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

  /** The reduced epoch-level values of a loop, then forgets them. */
  takeEpoch(loop: ResultLoop): CollectedMetrics {
    const out: CollectedMetrics = { logged: {}, progBar: {}, callback: {} };
    const acc = this.epoch.get(loop);
    this.epoch.delete(loop);
    if (acc === undefined) return out;
    for (const [name, a] of acc) {
      const key = a.onStep ? `${name}_epoch` : name;
      if (a.logger) out.logged[key] = a.value;
      if (a.progBar) out.progBar[key] = a.value;
      out.callback[key] = a.value;
      out.callback[name] = a.value;
    }
    return out;
  }

  /** The epoch accumulators (plain numbers), for a checkpoint taken in the middle of an epoch. */
  stateDict(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [loop, acc] of this.epoch) out[loop] = Object.fromEntries([...acc].map(([k, a]) => [k, { ...a }]));
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
