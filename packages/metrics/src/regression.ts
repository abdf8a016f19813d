import * as tf from '@tensorflow/tfjs';
import { DataError, parseOptions, positiveInt, wholeNumber } from '@flint/core';
import { z } from 'zod';
import { checkSameShape } from './internal/inputs.js';
import { Metric, type States } from './metric.js';

const numOutputs = positiveInt.default(1);

export const meanSquaredErrorOptionsSchema = z.strictObject({
  /** false gives the root mean squared error. Default true. */
  squared: z.boolean().default(true),
  /** Outputs per row: 1 flattens every input; more expects [N, numOutputs] and gives one value per output. */
  numOutputs,
});
export type MeanSquaredErrorOptions = z.input<typeof meanSquaredErrorOptionsSchema>;

export const meanAbsoluteErrorOptionsSchema = z.strictObject({ numOutputs });
export type MeanAbsoluteErrorOptions = z.input<typeof meanAbsoluteErrorOptionsSchema>;

export const r2ScoreOptionsSchema = z.strictObject({
  /** Outputs per row ([N] or [N, numOutputs]); torchmetrics infers it, Flint needs it for the state's shape. */
  numOutputs,
  /** Number of regressors for the adjusted R²; 0 gives the plain R². */
  adjusted: wholeNumber.default(0),
  /** How several outputs combine: 'raw_values' (one per output), 'uniform_average', 'variance_weighted'. */
  multioutput: z.enum(['raw_values', 'uniform_average', 'variance_weighted']).default('uniform_average'),
});
export type R2ScoreOptions = z.input<typeof r2ScoreOptionsSchema>;

/** preds and target as [M, numOutputs] float32 (numOutputs 1: every element is one observation). */
function rows(owner: string, preds: tf.Tensor, target: tf.Tensor, outputs: number, flatten: boolean): { p: tf.Tensor2D; t: tf.Tensor2D } {
  checkSameShape(owner, preds, target, 'regression');
  if (outputs === 1 && flatten) return { p: preds.toFloat().reshape([-1, 1]), t: target.toFloat().reshape([-1, 1]) };
  const ok = outputs === 1 ? preds.rank === 1 || (preds.rank === 2 && preds.shape[1] === 1) : preds.rank === 2 && preds.shape[1] === outputs;
  if (!ok) {
    throw new DataError(`${owner}.update: preds and target must be ${outputs === 1 ? '[N] or [N, 1]' : `[N, numOutputs=${outputs}]`} (received [${preds.shape.join(', ')}]).`);
  }
  return { p: preds.toFloat().reshape([-1, outputs]), t: target.toFloat().reshape([-1, outputs]) };
}

/** One value, or one per output. */
const perOutput = (x: tf.Tensor, outputs: number): tf.Tensor => (outputs === 1 ? x.reshape([]) : x);

/**
 * The mean of an elementwise error over every observation: states the error's sum per output
 * (`sumSquaredError` / `sumAbsError`, torchmetrics' names) and the count.
 */
abstract class MeanError extends Metric {
  constructor(
    private readonly sumName: string,
    private readonly outputs: number,
  ) {
    super();
    this.addState(sumName, 'sum', [outputs], 'float32');
    this.addState('total', 'sum', [], 'int32');
  }

  /** The elementwise error. */
  protected abstract error(diff: tf.Tensor): tf.Tensor;

  protected batchState(preds: tf.Tensor, target: tf.Tensor): Record<string, tf.Tensor> {
    const { p, t } = rows(this.constructor.name, preds, target, this.outputs, true);
    return { [this.sumName]: tf.sum(this.error(tf.sub(p, t)), 0), total: tf.scalar(p.shape[0], 'int32') };
  }

  protected computeFrom(s: States): tf.Tensor {
    return perOutput(this.finish(tf.div(s[this.sumName]!, s['total']!.toFloat())), this.outputs);
  }

  protected finish(mean: tf.Tensor): tf.Tensor {
    return mean;
  }
}

/** Mean squared error (or its root with `squared: false`), as torchmetrics' `MeanSquaredError`. */
export class MeanSquaredError extends MeanError {
  private readonly squared: boolean;

  constructor(options: MeanSquaredErrorOptions = {}) {
    const o = parseOptions('MeanSquaredError', meanSquaredErrorOptionsSchema, options);
    super('sumSquaredError', o.numOutputs);
    this.squared = o.squared;
  }

  protected error(diff: tf.Tensor): tf.Tensor {
    return tf.square(diff);
  }

  protected override finish(mse: tf.Tensor): tf.Tensor {
    return this.squared ? mse : tf.sqrt(mse);
  }
}

/** Mean absolute error, as torchmetrics' `MeanAbsoluteError`. */
export class MeanAbsoluteError extends MeanError {
  constructor(options: MeanAbsoluteErrorOptions = {}) {
    super('sumAbsError', parseOptions('MeanAbsoluteError', meanAbsoluteErrorOptionsSchema, options).numOutputs);
  }

  protected error(diff: tf.Tensor): tf.Tensor {
    return tf.abs(diff);
  }
}

/**
 * The coefficient of determination R² = 1 - RSS / TSS, as torchmetrics' `R2Score` (outputs whose
 * RSS and TSS are both ~0 score 1, a ~0 TSS alone scores 0). With fewer than 2 observations the
 * value is NaN (torchmetrics raises; Flint's compute reads nothing back from the device to decide).
 */
export class R2Score extends Metric {
  private readonly o: z.output<typeof r2ScoreOptionsSchema>;

  constructor(options: R2ScoreOptions = {}) {
    super();
    this.o = parseOptions('R2Score', r2ScoreOptionsSchema, options);
    const n = this.o.numOutputs;
    this.addState('sumSquaredObs', 'sum', [n], 'float32');
    this.addState('sumObs', 'sum', [n], 'float32');
    this.addState('rss', 'sum', [n], 'float32');
    this.addState('total', 'sum', [], 'int32');
  }

  protected batchState(preds: tf.Tensor, target: tf.Tensor): Record<string, tf.Tensor> {
    const { p, t } = rows('R2Score', preds, target, this.o.numOutputs, false);
    return {
      sumSquaredObs: tf.sum(tf.square(t), 0),
      sumObs: tf.sum(t, 0),
      rss: tf.sum(tf.square(tf.sub(t, p)), 0),
      total: tf.scalar(p.shape[0], 'int32'),
    };
  }

  protected computeFrom(s: States): tf.Tensor {
    const n = s['total']!.toFloat();
    const sumObs = s['sumObs']!;
    const rss = s['rss']!;
    const tss = tf.sub(s['sumSquaredObs']!, tf.mul(sumObs, tf.div(sumObs, n)));
    const rssNonZero = tf.greater(tf.abs(rss), 1e-4);
    const tssNonZero = tf.greater(tf.abs(tss), 1e-4);
    const ratio = tf.sub(1, tf.div(rss, tf.where(tssNonZero, tss, tf.onesLike(tss))));
    const raw = tf.where(tf.logicalAnd(rssNonZero, tssNonZero), ratio, tf.where(rssNonZero, tf.zerosLike(rss), tf.onesLike(rss)));
    let r2: tf.Tensor =
      this.o.multioutput === 'raw_values' ? raw : this.o.multioutput === 'uniform_average' ? tf.mean(raw) : tf.sum(tf.mul(tf.div(tss, tf.sum(tss)), raw));
    const k = this.o.adjusted;
    if (k > 0) {
      // As torchmetrics: no adjustment (it warns) when adjusted >= n - 1.
      const adj = tf.sub(1, tf.div(tf.mul(tf.sub(1, r2), tf.sub(n, 1)), tf.sub(n, k + 1)));
      r2 = tf.where(tf.broadcastTo(tf.greater(tf.sub(n, k + 1), 0), r2.shape), adj, r2);
    }
    const valid = tf.greaterEqual(n, 2);
    r2 = tf.where(tf.broadcastTo(valid, r2.shape), r2, tf.fill(r2.shape, Number.NaN));
    return this.o.multioutput === 'raw_values' ? perOutput(r2, this.o.numOutputs) : r2;
  }
}
