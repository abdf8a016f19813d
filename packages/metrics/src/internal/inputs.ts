import * as tf from '@tensorflow/tfjs';
import { DataError } from '@flint/core';

/** The classification tasks, as torchmetrics' `task` argument. */
export type Task = 'binary' | 'multiclass' | 'multilabel';

const shapeText = (t: tf.Tensor): string => `[${t.shape.join(', ')}]`;

/**
 * torchmetrics' `normalize_logits_if_needed`: when any score lies outside [0, 1] the batch is taken as
 * logits and goes through sigmoid (or softmax over the last axis). Decided on the device with
 * `tf.where`, so without a device-to-host read.
 */
export function normalizeIfNeeded(preds: tf.Tensor, how: 'sigmoid' | 'softmax'): tf.Tensor {
  const x = preds.toFloat();
  if (x.size === 0) return x;
  const outside = tf.any(tf.logicalOr(tf.less(x, 0), tf.greater(x, 1)));
  const normalized = how === 'sigmoid' ? tf.sigmoid(x) : tf.softmax(x, -1);
  return tf.where(tf.broadcastTo(outside, x.shape), normalized, x);
}

/** [N, C, ...rest] -> [N * prod(rest), C] (the class axis last, as torchmetrics' movedim + reshape). */
export function classAxisLast(x: tf.Tensor): tf.Tensor2D {
  const c = x.shape[1]!;
  if (x.rank === 2) return x as tf.Tensor2D;
  const perm = [0, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 2), 1];
  return tf.transpose(x, perm).reshape([-1, c]);
}

export function isFloat(t: tf.Tensor): boolean {
  return t.dtype === 'float32';
}

export function checkSameShape(owner: string, preds: tf.Tensor, target: tf.Tensor, what: string): void {
  if (preds.shape.length !== target.shape.length || preds.shape.some((d, i) => d !== target.shape[i])) {
    throw new DataError(`${owner}.update: preds ${shapeText(preds)} and target ${shapeText(target)} must have the same shape (${what}).`);
  }
}

/**
 * Multiclass inputs as labels: `preds` [N, ...] labels or [N, C, ...] scores (argmax, or with
 * topK > 1 the target when it is among the topK scores, else the top score, as torchmetrics 1.9),
 * `target` [N, ...] labels. Returns flat int32 [M] predicted and true labels.
 */
export function multiclassLabels(owner: string, preds: tf.Tensor, target: tf.Tensor, numClasses: number, topK: number): { p: tf.Tensor1D; t: tf.Tensor1D } {
  const t = target.toInt().reshape([-1]) as tf.Tensor1D;
  if (preds.rank === target.rank + 1) {
    if (preds.shape[1] !== numClasses || preds.shape.some((d, i) => i >= 2 && d !== target.shape[i - 1]) || preds.shape[0] !== target.shape[0]) {
      throw new DataError(
        `${owner}.update: preds ${shapeText(preds)} must be [N, numClasses=${numClasses}, ...] with target ${shapeText(target)} as [N, ...].`,
      );
    }
    const scores = classAxisLast(preds.toFloat());
    if (topK === 1) return { p: tf.argMax(scores, -1).toInt() as tf.Tensor1D, t };
    const { indices } = tf.topk(scores, topK);
    const inTop = tf.any(tf.equal(indices, t.reshape([-1, 1])), -1);
    const top1 = indices.slice([0, 0], [-1, 1]).reshape([-1]);
    return { p: tf.where(inTop, t, top1) as tf.Tensor1D, t };
  }
  if (topK > 1) {
    throw new DataError(`${owner}.update: topK=${topK} needs scores in preds ([N, numClasses, ...]); received labels of shape ${shapeText(preds)}.`);
  }
  checkSameShape(owner, preds, target, `labels, or preds [N, ${numClasses}, ...] scores`);
  return { p: preds.toInt().reshape([-1]) as tf.Tensor1D, t };
}

/** Binary inputs as 0/1 int32 [M]: float preds go through sigmoid when needed and `> threshold`. */
export function binaryLabels(owner: string, preds: tf.Tensor, target: tf.Tensor, threshold: number): { p: tf.Tensor1D; t: tf.Tensor1D } {
  checkSameShape(owner, preds, target, 'binary task');
  const p = isFloat(preds) ? tf.greater(normalizeIfNeeded(preds, 'sigmoid'), threshold).toInt() : preds.toInt();
  return { p: p.reshape([-1]) as tf.Tensor1D, t: target.toInt().reshape([-1]) as tf.Tensor1D };
}

/** Multilabel inputs [N, L, ...] as 0/1 int32 [M, L]. */
export function multilabelLabels(owner: string, preds: tf.Tensor, target: tf.Tensor, numLabels: number, threshold: number): { p: tf.Tensor2D; t: tf.Tensor2D } {
  checkSameShape(owner, preds, target, `multilabel task, [N, numLabels=${numLabels}, ...]`);
  if (preds.rank < 2 || preds.shape[1] !== numLabels) {
    throw new DataError(`${owner}.update: preds and target must be [N, numLabels=${numLabels}, ...] (received ${shapeText(preds)}).`);
  }
  const p = isFloat(preds) ? tf.greater(normalizeIfNeeded(preds, 'sigmoid'), threshold).toInt() : preds.toInt();
  return { p: classAxisLast(p), t: classAxisLast(target.toInt()) };
}

/** Counts of (true, predicted) pairs: [C, C] int32, rows true labels, columns predictions. */
export function confusionCounts(t: tf.Tensor1D, p: tf.Tensor1D, numClasses: number): tf.Tensor2D {
  const ot = tf.oneHot(t, numClasses).toFloat();
  const op = tf.oneHot(p, numClasses).toFloat();
  return tf.matMul(ot, op, true, false).toInt() as tf.Tensor2D;
}

/** Per-label [[tn, fp], [fn, tp]] counts of multilabel 0/1 inputs [M, L]: [L, 2, 2] int32. */
export function multilabelCounts(t: tf.Tensor2D, p: tf.Tensor2D): tf.Tensor3D {
  const tf32 = t.toFloat();
  const pf = p.toFloat();
  const tp = tf.sum(tf.mul(tf32, pf), 0);
  const fp = tf.sub(tf.sum(pf, 0), tp);
  const fn = tf.sub(tf.sum(tf32, 0), tp);
  const tn = tf.sub(tf.sub(tf.sub(tf.scalar(t.shape[0]), tp), fp), fn);
  return tf.stack([tn, fp, fn, tp], 1).reshape([-1, 2, 2]).toInt() as tf.Tensor3D;
}

/** torchmetrics' `_safe_divide`: num / denom, and `zero` where denom is 0. */
export function safeDivide(num: tf.Tensor, denom: tf.Tensor, zero = 0): tf.Tensor {
  const d = denom.toFloat();
  return tf.where(tf.equal(d, 0), tf.fill(d.shape, zero), tf.div(num.toFloat(), tf.where(tf.equal(d, 0), tf.onesLike(d), d)));
}
