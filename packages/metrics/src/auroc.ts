import * as tf from '@tensorflow/tfjs';
import { DataError, MisconfigurationError, parseOptions } from '@flint/core';
import { z } from 'zod';
import { averagePrecision, clfCurve, rocAuc, type Curve } from './internal/curve.js';
import { checkSameShape, classAxisLast, normalizeIfNeeded } from './internal/inputs.js';
import { Metric, type States } from './metric.js';

export const curveOptionsSchema = z.strictObject({
  /** 'binary', or 'multiclass' (one-vs-rest per class). */
  task: z.enum(['binary', 'multiclass']),
  /** Number of classes; required for task 'multiclass'. */
  numClasses: z.number().int({ error: 'must be a whole number >= 2' }).min(2, { error: 'must be a whole number >= 2' }).optional(),
  /** Multiclass: mean of the per-class values ('macro'), weighted by class support ('weighted'), or each ('none'). Default 'macro'. */
  average: z.enum(['macro', 'weighted', 'none']).default('macro'),
});
export type AUROCOptions = z.input<typeof curveOptionsSchema>;
export type AveragePrecisionOptions = z.input<typeof curveOptionsSchema>;
type CurveOptions = z.output<typeof curveOptionsSchema>;

/**
 * Shared by AUROC and AveragePrecision: the scores and targets of every batch are kept (concatenated,
 * as torchmetrics with `thresholds=None`), and compute() reads them once and works exactly in float64.
 */
abstract class CurveMetric extends Metric {
  protected readonly o: CurveOptions;

  constructor(owner: string, options: unknown) {
    super();
    this.o = parseOptions(owner, curveOptionsSchema, options);
    if (this.o.task === 'multiclass' && this.o.numClasses === undefined) {
      throw new MisconfigurationError(`${owner} option 'numClasses': required for task 'multiclass' (a whole number >= 2).`);
    }
    this.addState('preds', 'cat', this.o.task === 'binary' ? [] : [this.o.numClasses!], 'float32');
    this.addState('target', 'cat', [], 'int32');
  }

  protected batchState(preds: tf.Tensor, target: tf.Tensor): Record<string, tf.Tensor> {
    const owner = this.constructor.name;
    if (this.o.task === 'binary') {
      checkSameShape(owner, preds, target, 'binary task');
      return { preds: normalizeIfNeeded(preds.reshape([-1]), 'sigmoid'), target: target.toInt().reshape([-1]) };
    }
    const c = this.o.numClasses!;
    if (preds.rank !== target.rank + 1 || preds.shape[0] !== target.shape[0] || preds.shape[1] !== c || preds.shape.some((d, i) => i >= 2 && d !== target.shape[i - 1])) {
      throw new DataError(`${owner}.update: preds [${preds.shape.join(', ')}] must be [N, numClasses=${c}, ...] scores with target [${target.shape.join(', ')}] as [N, ...] labels.`);
    }
    return { preds: normalizeIfNeeded(classAxisLast(preds), 'softmax'), target: target.toInt().reshape([-1]) };
  }

  /** The value of one binary curve. */
  protected abstract score(curve: Curve): number;

  protected computeFrom(s: States): tf.Tensor {
    const scores = s['preds']!.dataSync();
    const target = Array.from(s['target']!.dataSync());
    if (this.o.task === 'binary') return tf.scalar(this.score(clfCurve(scores, (i) => target[i] === 1)));
    const c = this.o.numClasses!;
    const column = (k: number) => Float64Array.from({ length: target.length }, (_, i) => scores[i * c + k]!);
    const per = Array.from({ length: c }, (_, k) => this.score(clfCurve(column(k), (i) => target[i] === k)));
    if (this.o.average === 'none') return tf.tensor1d(per);
    const support = Array.from({ length: c }, (_, k) => target.reduce((n, t) => n + (t === k ? 1 : 0), 0));
    const kept = per.map((v, k) => [v, this.o.average === 'weighted' ? support[k]! : 1] as const).filter(([v]) => !Number.isNaN(v));
    const total = kept.reduce((a, [, w]) => a + w, 0);
    return tf.scalar(total === 0 ? (kept.length === 0 ? Number.NaN : 0) : kept.reduce((a, [v, w]) => a + (v * w) / total, 0));
  }
}

/**
 * Area under the ROC curve, as torchmetrics' `AUROC(task=...)` with `thresholds=None` (exact, as
 * scikit-learn's `roc_auc_score`). Multiclass is one-vs-rest; a class with no positive (or no
 * negative) sample scores 0, as in torchmetrics. Scores outside [0, 1] are taken as logits (sigmoid /
 * softmax per batch).
 */
export class AUROC extends CurveMetric {
  constructor(options: AUROCOptions) {
    super('AUROC', options);
  }

  protected score(curve: Curve): number {
    return rocAuc(curve);
  }
}

/**
 * Average precision (area under the precision-recall curve as a step sum), as torchmetrics'
 * `AveragePrecision(task=...)` with `thresholds=None` and scikit-learn's `average_precision_score`.
 * A class without positives is NaN and left out of macro / weighted means (binary: 0, as torchmetrics).
 */
export class AveragePrecision extends CurveMetric {
  constructor(options: AveragePrecisionOptions) {
    super('AveragePrecision', options);
  }

  protected score(curve: Curve): number {
    const ap = averagePrecision(curve);
    return this.o.task === 'binary' && Number.isNaN(ap) ? 0 : ap;
  }
}
