import * as tf from '@tensorflow/tfjs';
import { parseOptions } from '@flint/core';
import { z } from 'zod';
import { safeDivide } from './internal/inputs.js';
import { averageOptionsShape, averageScores, StatScoresMetric, taskOptionsShape, type Average, type Stats } from './internal/stat-scores.js';

export const precisionRecallOptionsSchema = z.strictObject({ ...taskOptionsShape, ...averageOptionsShape });
export type PrecisionOptions = z.input<typeof precisionRecallOptionsSchema>;
export type RecallOptions = z.input<typeof precisionRecallOptionsSchema>;

/** torchmetrics' `_precision_recall_reduce`: tp / (tp + fp) or tp / (tp + fn), 0 where undefined. */
function precisionRecall(which: 'precision' | 'recall', s: Stats, average: Average | 'binary', multilabel: boolean, topK: number): tf.Tensor {
  const other = (x: Stats) => (which === 'precision' ? x.fp : x.fn);
  if (average === 'binary') return safeDivide(s.tp, tf.add(s.tp, other(s)));
  if (average === 'micro') {
    const tp = tf.sum(s.tp);
    return safeDivide(tp, tf.add(tp, tf.sum(other(s))));
  }
  return averageScores(safeDivide(s.tp, tf.add(s.tp, other(s))), average, multilabel, s, topK);
}

/** Precision, tp / (tp + fp), as torchmetrics' `Precision(task=...)` (zeroDivision 0). */
export class Precision extends StatScoresMetric {
  constructor(options: PrecisionOptions) {
    super('Precision', parseOptions('Precision', precisionRecallOptionsSchema, options));
  }

  protected reduce(s: Stats, average: Average | 'binary'): tf.Tensor {
    return precisionRecall('precision', s, average, this.config.task === 'multilabel', this.config.topK);
  }
}

/** Recall, tp / (tp + fn), as torchmetrics' `Recall(task=...)` (zeroDivision 0). */
export class Recall extends StatScoresMetric {
  constructor(options: RecallOptions) {
    super('Recall', parseOptions('Recall', precisionRecallOptionsSchema, options));
  }

  protected reduce(s: Stats, average: Average | 'binary'): tf.Tensor {
    return precisionRecall('recall', s, average, this.config.task === 'multilabel', this.config.topK);
  }
}
