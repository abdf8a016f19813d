import type * as tf from '@tensorflow/tfjs';
import { CheckpointError, MisconfigurationError, parseOptions } from '@flint/core';
import { z } from 'zod';
import type { Metric, MetricStateDict } from './metric.js';

export const metricCollectionOptionsSchema = z.strictObject({
  /** Put before every name, e.g. 'val_'. */
  prefix: z.string().default(''),
  /** Put after every name. */
  postfix: z.string().default(''),
});
export type MetricCollectionOptions = z.input<typeof metricCollectionOptionsSchema>;

/**
 * Several metrics fed the same batches, as torchmetrics' `MetricCollection`: `update` and `reset` go
 * to each, `compute` gives a record by name (with prefix / postfix). `this.logDict(collection)` in a
 * LightningModule logs each metric under its name.
 */
export class MetricCollection {
  private readonly metrics: ReadonlyMap<string, Metric>;

  constructor(metrics: Readonly<Record<string, Metric>>, options: MetricCollectionOptions = {}) {
    const { prefix, postfix } = parseOptions('MetricCollection', metricCollectionOptionsSchema, options);
    const entries = Object.entries(metrics);
    if (entries.length === 0) throw new MisconfigurationError('MetricCollection: give at least one metric (received an empty record).');
    this.metrics = new Map(entries.map(([name, m]) => [`${prefix}${name}${postfix}`, m]));
  }

  /** The metrics by their full names. */
  items(): Array<[string, Metric]> {
    return [...this.metrics];
  }

  /** Folds a batch into every metric. */
  update(preds: tf.Tensor, target: tf.Tensor): void {
    for (const m of this.metrics.values()) m.update(preds, target);
  }

  /** Every metric's value by name; the caller owns the tensors. */
  compute(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    try {
      for (const [name, m] of this.metrics) out[name] = m.compute();
    } catch (error) {
      for (const t of Object.values(out)) t.dispose();
      throw error;
    }
    return out;
  }

  /** Every metric's value of this batch alone, folding the batch into each state. */
  forward(preds: tf.Tensor, target: tf.Tensor): Record<string, tf.Tensor> {
    return Object.fromEntries([...this.metrics].map(([name, m]) => [name, m.forward(preds, target)]));
  }

  reset(): void {
    for (const m of this.metrics.values()) m.reset();
  }

  dispose(): void {
    for (const m of this.metrics.values()) m.dispose();
  }

  /** Each metric's `stateDict()` by name. */
  stateDict(): Record<string, MetricStateDict> {
    return Object.fromEntries([...this.metrics].map(([name, m]) => [name, m.stateDict()]));
  }

  loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.checkNames(state, 'loadStateDict');
    for (const [name, m] of this.metrics) m.loadStateDict(state[name] as Record<string, unknown>);
  }

  /** Adds another collection's state (same names, same kinds of metric) or its `stateDict()`. */
  mergeState(incoming: MetricCollection | Readonly<Record<string, unknown>>): void {
    const state = incoming instanceof MetricCollection ? incoming.stateDict() : incoming;
    this.checkNames(state, 'mergeState');
    for (const [name, m] of this.metrics) m.mergeState(state[name] as Record<string, unknown>);
  }

  private checkNames(state: Readonly<Record<string, unknown>>, what: string): void {
    const names = [...this.metrics.keys()];
    const got = Object.keys(state);
    if (got.length !== names.length || !names.every((n) => n in state)) {
      throw new CheckpointError(`MetricCollection.${what}: the state has metrics [${got.join(', ')}]; this collection has [${names.join(', ')}].`);
    }
  }
}
