import * as tf from '@tensorflow/tfjs';
import { parseOptions } from '@flint/core';
import { z } from 'zod';
import { safeDivide } from './internal/inputs.js';
import { averageOptionsShape, averageScores, StatScoresMetric, taskOptionsShape, type Average, type Stats } from './internal/stat-scores.js';

export const fBetaScoreOptionsSchema = z.strictObject({
  ...taskOptionsShape,
  ...averageOptionsShape,
  /** Weight of recall against precision. Default 1 (torchmetrics' FBetaScore default). */
  beta: z.number().positive({ error: 'must be a number > 0' }).default(1),
});
export type FBetaScoreOptions = z.input<typeof fBetaScoreOptionsSchema>;

export const f1ScoreOptionsSchema = z.strictObject({ ...taskOptionsShape, ...averageOptionsShape });
export type F1ScoreOptions = z.input<typeof f1ScoreOptionsSchema>;

/**
 * F-beta, (1 + β²)·tp / ((1 + β²)·tp + β²·fn + fp), as torchmetrics' `FBetaScore(task=...)`
 * (zeroDivision 0). Macro / weighted average the per-class scores; micro pools the counts first.
 */
export class FBetaScore extends StatScoresMetric {
  private readonly beta: number;

  constructor(options: FBetaScoreOptions, owner = 'FBetaScore') {
    const o = parseOptions(owner, fBetaScoreOptionsSchema, options);
    super(owner, o);
    this.beta = o.beta;
  }

  protected reduce(s: Stats, average: Average | 'binary'): tf.Tensor {
    const b2 = this.beta * this.beta;
    const f = (tp: tf.Tensor, fp: tf.Tensor, fn: tf.Tensor) => {
      const num = tf.mul(1 + b2, tp);
      return safeDivide(num, tf.add(tf.add(num, tf.mul(b2, fn)), fp));
    };
    if (average === 'binary') return f(s.tp, s.fp, s.fn);
    if (average === 'micro') return f(tf.sum(s.tp), tf.sum(s.fp), tf.sum(s.fn));
    // torchmetrics passes no topK here: classes absent from target and predictions get weight 0.
    return averageScores(f(s.tp, s.fp, s.fn), average, this.config.task === 'multilabel', s);
  }
}

/** F1, the harmonic mean of precision and recall: `FBetaScore` with beta 1, as torchmetrics' `F1Score`. */
export class F1Score extends FBetaScore {
  constructor(options: F1ScoreOptions) {
    super(parseOptions('F1Score', f1ScoreOptionsSchema, options), 'F1Score');
  }
}
