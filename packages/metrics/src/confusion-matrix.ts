import * as tf from '@tensorflow/tfjs';
import { parseOptions } from '@flint/core';
import { z } from 'zod';
import { Metric, type States } from './metric.js';
import { checkTask, confusionOf, taskOptionsShape, type TaskConfig } from './internal/stat-scores.js';

export const confusionMatrixOptionsSchema = z.strictObject({
  ...taskOptionsShape,
  /** 'true' divides each row by its sum, 'pred' each column, 'all' by the total; 'none' keeps counts. */
  normalize: z.enum(['true', 'pred', 'all', 'none']).default('none'),
});
export type ConfusionMatrixOptions = z.input<typeof confusionMatrixOptionsSchema>;

/**
 * The confusion matrix, as torchmetrics' `ConfusionMatrix(task=...)`: rows are true classes,
 * columns predictions; [2, 2] (binary), [C, C] (multiclass) or [L, 2, 2] (multilabel, each
 * [[tn, fp], [fn, tp]]). Counts are int32; a normalized matrix is float32 with 0 where a row /
 * column is empty.
 */
export class ConfusionMatrix extends Metric {
  private readonly config: TaskConfig & { normalize: 'true' | 'pred' | 'all' | 'none' };

  constructor(options: ConfusionMatrixOptions) {
    super();
    const o = parseOptions('ConfusionMatrix', confusionMatrixOptionsSchema, options);
    const n = checkTask('ConfusionMatrix', o);
    this.config = o;
    this.addState('confmat', 'sum', o.task === 'multilabel' ? [n, 2, 2] : [n, n], 'int32');
  }

  protected batchState(preds: tf.Tensor, target: tf.Tensor): Record<string, tf.Tensor> {
    return { confmat: confusionOf('ConfusionMatrix', this.config, preds, target) };
  }

  protected computeFrom(states: States): tf.Tensor {
    const cm = states['confmat']!;
    const how = this.config.normalize;
    if (how === 'none') return cm.clone();
    const f = cm.toFloat();
    const rank = f.rank;
    const denom = how === 'true' ? tf.sum(f, rank - 1, true) : how === 'pred' ? tf.sum(f, rank - 2, true) : tf.sum(f, [rank - 2, rank - 1], true);
    const d = tf.broadcastTo(denom, f.shape);
    const zero = tf.equal(d, 0);
    return tf.where(zero, tf.zerosLike(f), tf.div(f, tf.where(zero, tf.onesLike(d), d)));
  }
}
