import * as tf from '@tensorflow/tfjs';
import { attachStepContext, describeBatch, MisconfigurationError, type LightningModule, type StepErrorContext } from '@flint/core';

/**
 * A step's output and errors, shared by the loops: the loss a training step returned, checked;
 * a step that returned a promise; the error a step threw, with where it happened attached.
 */

type StepName = StepErrorContext['step'];

/** Errors the trainer raised itself inside a step: they already say everything and are not wrapped (see `stepError`). */
const TRAINER_ERRORS = new WeakSet<Error>();
export function trainerError<E extends Error>(error: E): E {
  TRAINER_ERRORS.add(error);
  return error;
}

/** The trainable parameters' names, for messages: the first few and how many more. */
function describeParams(module: LightningModule): string {
  const names = module.namedParameters({ trainableOnly: true }).map((p) => p.name);
  return names.length <= 4 ? names.join(', ') : `${names.slice(0, 4).join(', ')} and ${names.length - 4} more`;
}

function isTensor(value: unknown): value is tf.Tensor {
  return value instanceof tf.Tensor;
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

/** The loss of trainingStep's output (a scalar, or `{ loss }`), checked. */
export function extractLoss(module: LightningModule, out: unknown, batch: unknown, batchIdx: number): tf.Scalar {
  checkSync(module, 'trainingStep', out);
  const loss = isTensor(out) ? out : out !== null && typeof out === 'object' && 'loss' in out ? (out as { loss: unknown }).loss : undefined;
  if (!isTensor(loss)) {
    throw trainerError(
      new MisconfigurationError(
        `${module.constructor.name}.trainingStep must return the loss as a scalar tensor, or { loss, ... }, under automatic optimization (batch ${batchIdx}: received ${describeBatch(out)}).`,
      ),
    );
  }
  if (loss.size !== 1) {
    throw trainerError(
      new MisconfigurationError(
        `${module.constructor.name}.trainingStep returned a loss of shape [${loss.shape.join(', ')}] on batch ${batchIdx} (${describeBatch(batch)}): reduce it to a scalar (e.g. tf.mean).`,
      ),
    );
  }
  if (loss.dtype !== 'float32') {
    throw trainerError(
      new MisconfigurationError(
        `${module.constructor.name}.trainingStep returned ${loss.dtype === 'int32' ? 'an' : 'a'} ${loss.dtype} loss on batch ${batchIdx}: a loss must be float32 and depend on the trainable float parameters ` +
          `(${describeParams(module)}); no gradient flows through ${loss.dtype} values (argMax, tf.cast to int32, comparisons). Compute it with float ops, e.g. tf.losses.* or crossEntropy.`,
      ),
    );
  }
  return (loss.rank === 0 ? loss : loss.reshape([])) as tf.Scalar;
}

/** A step that returned a promise was declared async: its work after an await runs outside the tape and tidy. */
export function checkSync(module: LightningModule, step: StepName, out: unknown): void {
  if (!isThenable(out)) return;
  // Its result is not used; a later rejection must not become an unhandled one.
  Promise.resolve(out).catch(() => undefined);
  throw trainerError(
    new MisconfigurationError(
      `${module.constructor.name}.${step} returned a Promise (is it declared async?): steps must be synchronous, because they run inside tf.tidy and ` +
        `the gradient tape (tf.variableGrads), which cannot span an await. Remove async/await from ${step}; load data in the DataLoader and do asynchronous work in hooks.`,
    ),
  );
}

/**
 * The error a step threw, kept as it is (same object and class, its message first) with where it
 * happened attached (`flintContext` and a note as the message's last line). Errors the trainer
 * raised itself inside the step already say everything.
 */
export function stepError(run: { readonly module: LightningModule; readonly state: { readonly progress: { readonly epoch: number } } }, step: StepName, batch: unknown, batchIdx: number, error: unknown): Error {
  if (error instanceof Error && TRAINER_ERRORS.has(error)) return error;
  return attachStepContext(error, { module: run.module.constructor.name, step, batchIdx, epoch: run.state.progress.epoch, batch: describeBatch(batch) });
}

/** trainingStep's loss does not reach any trainable parameter. */
export function noGradientError(module: LightningModule, batchIdx: number): Error {
  return trainerError(
    new MisconfigurationError(
      `${module.constructor.name}.trainingStep returned a loss that does not depend on the trainable float parameters (batch ${batchIdx}: no gradient reaches any of ` +
        `${describeParams(module)}): compute the loss inside trainingStep from the module's outputs (not from a constant, or from numbers read back with dataSync()).`,
    ),
  );
}
