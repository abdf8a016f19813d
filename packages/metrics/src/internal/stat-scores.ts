import * as tf from '@tensorflow/tfjs';
import { MisconfigurationError } from '@flint/core';
import { z } from 'zod';
import { Metric, type States } from '../metric.js';
import { binaryLabels, confusionCounts, multiclassLabels, multilabelCounts, multilabelLabels, safeDivide, type Task } from './inputs.js';

const wholeAtLeast = (min: number) => z.number().int({ error: `must be a whole number >= ${min}` }).min(min, { error: `must be a whole number >= ${min}` });

/** Options shared by the classification metrics (torchmetrics' names in camelCase, its defaults). */
export const taskOptionsShape = {
  /** 'binary', 'multiclass' or 'multilabel' (required, as torchmetrics' task wrappers). */
  task: z.enum(['binary', 'multiclass', 'multilabel']),
  /** Number of classes; required for task 'multiclass'. */
  numClasses: wholeAtLeast(2).optional(),
  /** Number of labels; required for task 'multilabel'. */
  numLabels: wholeAtLeast(1).optional(),
  /** Scores above it count as positive (binary and multilabel). Default 0.5. */
  threshold: z.number().min(0, { error: 'must be in [0, 1]' }).max(1, { error: 'must be in [0, 1]' }).default(0.5),
};

/** `average` and `topK` of Accuracy, Precision, Recall and the F-scores. */
export const averageOptionsShape = {
  /** How per-class scores are combined (multiclass and multilabel). Default 'micro'. */
  average: z.enum(['micro', 'macro', 'weighted', 'none']).default('micro'),
  /** Multiclass: a prediction is right when the target is among the topK scores. Default 1. */
  topK: wholeAtLeast(1).default(1),
};

export type Average = 'micro' | 'macro' | 'weighted' | 'none';

export interface TaskConfig {
  task: Task;
  numClasses?: number | undefined;
  numLabels?: number | undefined;
  threshold: number;
  topK?: number;
}

/** Checks the option combinations a schema cannot express; returns the class (or label) count. */
export function checkTask(owner: string, o: TaskConfig): number {
  if (o.task === 'multiclass' && o.numClasses === undefined) {
    throw new MisconfigurationError(`${owner} option 'numClasses': required for task 'multiclass' (a whole number >= 2).`);
  }
  if (o.task === 'multilabel' && o.numLabels === undefined) {
    throw new MisconfigurationError(`${owner} option 'numLabels': required for task 'multilabel' (a whole number >= 1).`);
  }
  const topK = o.topK ?? 1;
  if (topK > 1 && o.task !== 'multiclass') {
    throw new MisconfigurationError(`${owner} option 'topK': only task 'multiclass' has a topK (received topK=${topK} with task '${o.task}').`);
  }
  if (o.task === 'multiclass' && topK > o.numClasses!) {
    throw new MisconfigurationError(`${owner} option 'topK': must be <= numClasses=${o.numClasses} (received ${topK}).`);
  }
  return o.task === 'binary' ? 2 : o.task === 'multiclass' ? o.numClasses! : o.numLabels!;
}

/** The confusion counts of a batch: [2, 2] (binary), [C, C] (multiclass) or [L, 2, 2] (multilabel). */
export function confusionOf(owner: string, o: TaskConfig, preds: tf.Tensor, target: tf.Tensor): tf.Tensor {
  if (o.task === 'binary') {
    const { p, t } = binaryLabels(owner, preds, target, o.threshold);
    return confusionCounts(t, p, 2);
  }
  if (o.task === 'multiclass') {
    const { p, t } = multiclassLabels(owner, preds, target, o.numClasses!, o.topK ?? 1);
    return confusionCounts(t, p, o.numClasses!);
  }
  const { p, t } = multilabelLabels(owner, preds, target, o.numLabels!, o.threshold);
  return multilabelCounts(t, p);
}

/** tp, fp, tn, fn as float32: scalars (binary) or one per class / label. */
export interface Stats {
  tp: tf.Tensor;
  fp: tf.Tensor;
  tn: tf.Tensor;
  fn: tf.Tensor;
}

export function statsOf(task: Task, confmat: tf.Tensor): Stats {
  const cm = confmat.toFloat();
  if (task === 'multilabel') {
    const at = (i: number, j: number) => cm.slice([0, i, j], [-1, 1, 1]).reshape([-1]);
    return { tn: at(0, 0), fp: at(0, 1), fn: at(1, 0), tp: at(1, 1) };
  }
  const c = cm.shape[0]!;
  const tp = tf.sum(tf.mul(cm, tf.eye(c)), 1);
  const fp = tf.sub(tf.sum(cm, 0), tp);
  const fn = tf.sub(tf.sum(cm, 1), tp);
  const tn = tf.sub(tf.sub(tf.sub(tf.sum(cm), tp), fp), fn);
  if (task === 'binary') {
    const last = (x: tf.Tensor) => x.slice([1], [1]).reshape([]);
    return { tp: last(tp), fp: last(fp), tn: last(tn), fn: last(fn) };
  }
  return { tp, fp, tn, fn };
}

/** torchmetrics' `_adjust_weights_safe_divide`: the macro / weighted mean of per-class scores. */
export function averageScores(score: tf.Tensor, average: Average, multilabel: boolean, s: Stats, topK = 1): tf.Tensor {
  if (average === 'none') return score;
  let weights: tf.Tensor;
  if (average === 'weighted') weights = tf.add(s.tp, s.fn);
  else {
    weights = tf.onesLike(score);
    if (!multilabel) {
      const absent = topK === 1 ? tf.equal(tf.add(tf.add(s.tp, s.fp), s.fn), 0) : tf.equal(tf.add(s.tp, s.fn), 0);
      weights = tf.where(absent, tf.zerosLike(weights), weights);
    }
  }
  return tf.sum(safeDivide(tf.mul(weights, score), tf.broadcastTo(tf.sum(weights), score.shape)));
}

/**
 * The base of Accuracy, Precision, Recall and the F-scores: one state, the confusion counts, from
 * which tp / fp / tn / fn per class are derived at compute time.
 */
export abstract class StatScoresMetric extends Metric {
  protected readonly config: TaskConfig & { average: Average; topK: number };

  constructor(owner: string, config: TaskConfig & { average: Average; topK: number }) {
    super();
    const n = checkTask(owner, config);
    this.config = config;
    this.addState('confmat', 'sum', config.task === 'multilabel' ? [n, 2, 2] : [n, n], 'int32');
  }

  protected batchState(preds: tf.Tensor, target: tf.Tensor): Record<string, tf.Tensor> {
    return { confmat: confusionOf(this.constructor.name, this.config, preds, target) };
  }

  protected computeFrom(states: States): tf.Tensor {
    const { task, average } = this.config;
    return this.reduce(statsOf(task, states['confmat']!), task === 'binary' ? 'binary' : average);
  }

  /** The score from the stats ('binary' for the binary task). */
  protected abstract reduce(s: Stats, average: Average | 'binary'): tf.Tensor;
}
