import * as tf from '@tensorflow/tfjs';
import { parseOptions } from '@flint/core';
import { z } from 'zod';
import { safeDivide } from './internal/inputs.js';
import { averageOptionsShape, averageScores, StatScoresMetric, taskOptionsShape, type Average, type Stats } from './internal/stat-scores.js';

export const accuracyOptionsSchema = z.strictObject({ ...taskOptionsShape, ...averageOptionsShape });
export type AccuracyOptions = z.input<typeof accuracyOptionsSchema>;

/**
 * Accuracy, as torchmetrics' `Accuracy(task=...)`. Binary: (tp + tn) / all. Multiclass: micro is
 * the share of right predictions (right = target among the topK scores), macro / weighted the mean of
 * per-class recall. Multilabel: micro is the share of right labels, macro the mean per label.
 */
export class Accuracy extends StatScoresMetric {
  constructor(options: AccuracyOptions) {
    super('Accuracy', parseOptions('Accuracy', accuracyOptionsSchema, options));
  }

  protected reduce(s: Stats, average: Average | 'binary'): tf.Tensor {
    const multilabel = this.config.task === 'multilabel';
    const all = (x: Stats) => tf.add(tf.add(x.tp, x.tn), tf.add(x.fp, x.fn));
    if (average === 'binary') return safeDivide(tf.add(s.tp, s.tn), all(s));
    if (average === 'micro') {
      const sum: Stats = { tp: tf.sum(s.tp), fp: tf.sum(s.fp), tn: tf.sum(s.tn), fn: tf.sum(s.fn) };
      return multilabel ? safeDivide(tf.add(sum.tp, sum.tn), all(sum)) : safeDivide(sum.tp, tf.add(sum.tp, sum.fn));
    }
    const score = multilabel ? safeDivide(tf.add(s.tp, s.tn), all(s)) : safeDivide(s.tp, tf.add(s.tp, s.fn));
    return averageScores(score, average, multilabel, s, this.config.topK);
  }
}
