import * as tf from '@tensorflow/tfjs';
import { CheckpointError, MisconfigurationError, type LoggableMetric } from '@flint/core';

/** How a state accumulates over batches: added up (counts, sums) or concatenated along axis 0 (AUROC's scores). */
export type StateReduce = 'sum' | 'cat';

/** One state as host numbers, for checkpoints: `values` in row-major order. */
export interface HostState {
  shape: number[];
  dtype: 'float32' | 'int32';
  values: number[];
}

/** A metric's state as plain data (JSON-serializable): state name -> host tensor. */
export type MetricStateDict = Record<string, HostState>;

interface StateDef {
  readonly reduce: StateReduce;
  /** Shape of a sum state, or of one row of a cat state (then the state is [n, ...row]). */
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32';
}

/** The states handed to `computeFrom`: sum states as their totals, cat states concatenated. */
export type States = Readonly<Record<string, tf.Tensor>>;

/**
 * The base of every metric, as torchmetrics' `Metric`: `update(preds, target)` folds a batch into
 * the state (tensors, kept across `tf.tidy`, no device-to-host read), `compute()` gives the value
 * over everything seen since the last `reset()`, `forward(preds, target)` does both for one batch.
 * States are added up ('sum') or concatenated ('cat'); `mergeState` combines two metrics' states and
 * `stateDict` / `loadStateDict` move them through checkpoints as plain numbers.
 *
 * A metric owns its state tensors: `reset()` and `dispose()` free them; a reset metric holds none.
 */
export abstract class Metric<Out extends tf.Tensor = tf.Tensor> implements LoggableMetric {
  private readonly defs = new Map<string, StateDef>();
  /** Accumulated sum states (absent until the first update after a reset). */
  private readonly sums = new Map<string, tf.Tensor>();
  /** Accumulated cat states: one tensor per update. */
  private readonly cats = new Map<string, tf.Tensor[]>();
  private updates = 0;
  private disposed = false;

  /** Declares a state; call it in the constructor. */
  protected addState(name: string, reduce: StateReduce, shape: readonly number[], dtype: 'float32' | 'int32'): void {
    this.defs.set(name, { reduce, shape: [...shape], dtype });
  }

  /** The state of one batch (every declared state, as tensors; runs inside a `tf.tidy`). */
  protected abstract batchState(preds: tf.Tensor, target: tf.Tensor): Record<string, tf.Tensor>;

  /** The metric's value from the states (runs inside a `tf.tidy`). */
  protected abstract computeFrom(states: States): Out;

  /** How many `update` / `forward` calls went into the state since the last reset (0 after a load). */
  get updateCount(): number {
    return this.updates;
  }

  /** Folds a batch into the state. Works inside `trainingStep` / `validationStep` (their `tf.tidy`). */
  update(preds: tf.Tensor, target: tf.Tensor): void {
    this.checkAlive('update');
    const batch = tf.tidy(() => this.checkedBatchState(preds, target));
    this.fold(batch);
    this.updates += 1;
  }

  /**
   * Folds a batch into the state and returns the metric of that batch alone (torchmetrics'
   * `forward`); the caller owns the returned tensor.
   */
  forward(preds: tf.Tensor, target: tf.Tensor): Out {
    this.checkAlive('forward');
    const batch = tf.tidy(() => this.checkedBatchState(preds, target));
    const value = tf.tidy(() => this.computeFrom(batch));
    this.fold(batch);
    this.updates += 1;
    return value;
  }

  /** The value over every batch since the last reset, as a new tensor the caller owns. */
  compute(): Out {
    this.checkAlive('compute');
    return tf.tidy(() => this.computeFrom(this.currentStates()));
  }

  /** Forgets every batch: the state tensors are disposed. */
  reset(): void {
    for (const t of this.sums.values()) t.dispose();
    for (const list of this.cats.values()) for (const t of list) t.dispose();
    this.sums.clear();
    this.cats.clear();
    this.updates = 0;
  }

  /** Frees the state; the metric cannot be used afterwards. */
  dispose(): void {
    this.reset();
    this.disposed = true;
  }

  /** The state as plain numbers (one device-to-host read per state), for checkpoints. */
  stateDict(): MetricStateDict {
    this.checkAlive('stateDict');
    const out: MetricStateDict = {};
    const states = tf.tidy(() => this.currentStates());
    try {
      for (const [name, def] of this.defs) {
        const t = states[name]!;
        out[name] = { shape: [...t.shape], dtype: def.dtype, values: Array.from(t.dataSync()) };
      }
    } finally {
      for (const t of Object.values(states)) t.dispose();
    }
    return out;
  }

  /** Replaces the state with a `stateDict()` of a metric of the same kind and options. */
  loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.checkAlive('loadStateDict');
    const tensors = this.hostToTensors(state, 'loadStateDict');
    this.reset();
    this.fold(tensors);
  }

  /**
   * Adds another metric's state (a metric of the same class and options, or its `stateDict()`) to
   * this one, as torchmetrics' `merge_state`: afterwards `compute()` covers both metrics' batches.
   */
  mergeState(incoming: Metric | Readonly<Record<string, unknown>>): void {
    this.checkAlive('mergeState');
    if (incoming instanceof Metric) {
      if (incoming.constructor !== this.constructor) {
        throw new MisconfigurationError(`${this.constructor.name}.mergeState: cannot merge a ${incoming.constructor.name} (expected another ${this.constructor.name}).`);
      }
      incoming = incoming.stateDict();
    }
    const updates = this.updates;
    this.fold(this.hostToTensors(incoming, 'mergeState'));
    this.updates = updates;
  }

  private checkAlive(what: string): void {
    if (this.disposed) throw new MisconfigurationError(`${this.constructor.name}.${what}(): the metric was disposed.`);
  }

  private checkedBatchState(preds: tf.Tensor, target: tf.Tensor): Record<string, tf.Tensor> {
    if (!(preds instanceof tf.Tensor) || !(target instanceof tf.Tensor)) {
      throw new MisconfigurationError(`${this.constructor.name}.update(preds, target): preds and target must be tensors (received ${typeName(preds)} and ${typeName(target)}).`);
    }
    const batch = this.batchState(preds, target);
    for (const name of this.defs.keys()) {
      if (!(batch[name] instanceof tf.Tensor)) throw new Error(`${this.constructor.name}: batchState() gave no state '${name}'.`);
    }
    return batch;
  }

  /** Adds batch states (owned by the caller until now) into the accumulated state, taking ownership. */
  private fold(batch: Record<string, tf.Tensor>): void {
    for (const [name, def] of this.defs) {
      const t = batch[name]!;
      if (def.reduce === 'cat') {
        const list = this.cats.get(name) ?? [];
        list.push(tf.keep(t));
        this.cats.set(name, list);
      } else {
        const old = this.sums.get(name);
        if (old === undefined) this.sums.set(name, tf.keep(t));
        else {
          this.sums.set(name, tf.keep(tf.add(old, t)));
          old.dispose();
          t.dispose();
        }
      }
    }
  }

  /** The accumulated states (new tensors; inside a tidy or disposed by the caller). */
  private currentStates(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, def] of this.defs) {
      if (def.reduce === 'cat') {
        const list = this.cats.get(name) ?? [];
        out[name] = list.length === 0 ? tf.zeros([0, ...def.shape], def.dtype) : list.length === 1 ? list[0]!.clone() : tf.concat(list, 0);
      } else {
        out[name] = this.sums.get(name)?.clone() ?? tf.zeros([...def.shape], def.dtype);
      }
    }
    return out;
  }

  private hostToTensors(state: Readonly<Record<string, unknown>>, what: string): Record<string, tf.Tensor> {
    const where = `${this.constructor.name}.${what}`;
    const expected = [...this.defs.keys()];
    const got = Object.keys(state);
    if (got.length !== expected.length || !expected.every((k) => k in state)) {
      throw new CheckpointError(`${where}: the state has keys [${got.join(', ')}]; a ${this.constructor.name} with these options has [${expected.join(', ')}].`);
    }
    const checked: Array<[string, HostState]> = [];
    for (const [name, def] of this.defs) {
      const s = state[name] as Partial<HostState> | undefined;
      const shape = s?.shape;
      const values = s?.values;
      const size = Array.isArray(shape) ? shape.reduce((a, b) => a * b, 1) : -1;
      const rowOk =
        Array.isArray(shape) &&
        (def.reduce === 'cat'
          ? shape.length === def.shape.length + 1 && def.shape.every((d, i) => shape[i + 1] === d)
          : shape.length === def.shape.length && def.shape.every((d, i) => shape[i] === d));
      if (!rowOk || !Array.isArray(values) || values.length !== size || s?.dtype !== def.dtype) {
        const want = def.reduce === 'cat' ? `[n, ${def.shape.join(', ')}]` : `[${def.shape.join(', ')}]`;
        throw new CheckpointError(
          `${where}: state '${name}' must be a ${def.dtype} of shape ${want} with as many values (received ${JSON.stringify({ shape, dtype: s?.dtype, values: Array.isArray(values) ? values.length : typeof values })}).`,
        );
      }
      checked.push([name, s as HostState]);
    }
    return Object.fromEntries(checked.map(([name, s]) => [name, tf.tensor(s.values, s.shape, s.dtype)]));
  }
}

function typeName(v: unknown): string {
  return v === null ? 'null' : typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
}
