import * as tf from '@tensorflow/tfjs';
import { inferBatchSize, LightningModule, MisconfigurationError, type DataLoader, type EvaluationPhase, type Metrics } from '@flint/core';
import { limitedBatches, withTransferredBatch } from './batches.js';
import type { RunContext } from './run-state.js';
import { checkSync, stepError } from './step-errors.js';

/** The hooks and step of each evaluation phase (the sanity check runs the validation's). */
const VALIDATION = {
  start: 'onValidationStart',
  epochStart: 'onValidationEpochStart',
  batchStart: 'onValidationBatchStart',
  batchEnd: 'onValidationBatchEnd',
  epochEnd: 'onValidationEpochEnd',
  end: 'onValidationEnd',
  step: 'validationStep',
  loop: 'validate',
  modelEval: 'onValidationModelEval',
  modelTrain: 'onValidationModelTrain',
} as const;
const TEST = {
  start: 'onTestStart',
  epochStart: 'onTestEpochStart',
  batchStart: 'onTestBatchStart',
  batchEnd: 'onTestBatchEnd',
  epochEnd: 'onTestEpochEnd',
  end: 'onTestEnd',
  step: 'testStep',
  loop: 'test',
  modelEval: 'onTestModelEval',
  modelTrain: 'onTestModelTrain',
} as const;

/**
 * One pass of validation or test over at most `limit` batches: start and epoch-start hooks, per batch
 * the step (in eval mode, inside tf.tidy) between its batch hooks, then the epoch end (the epoch
 * metrics between the two parts of the epoch-end and end hooks, as in the fit loop) and the end.
 * The sanity check runs validation and discards its metrics. The module's mode and the phase are
 * restored afterwards. Returns the epoch-level metrics.
 */
export async function evaluationLoop(run: RunContext, loader: DataLoader<unknown>, phase: EvaluationPhase, limit: number): Promise<Metrics> {
  const { module, dispatcher: d, collector, state } = run;
  const hooks = phase === 'test' ? TEST : VALIDATION;
  const stepFn = module[hooks.step] as ((batch: unknown, idx: number) => unknown) | undefined;
  if (typeof stepFn !== 'function') {
    throw new MisconfigurationError(`${module.constructor.name} has no ${hooks.step}(batch, batchIdx): implement it to run trainer.${phase === 'test' ? 'test' : 'validate'}.`);
  }
  const enclosingPhase = state.phase;
  state.phase = phase;
  const restoreMode = enterEvalMode(module, hooks.modelEval, hooks.modelTrain);
  const metrics = await collector.scope({ loop: hooks.loop }, async () => {
    await d.call(hooks.start, []);
    await d.call(hooks.epochStart, []);
    run.emit('evalStart', { stage: phase, numBatches: limit });
    for await (const [batchIdx, raw] of limitedBatches(loader, limit)) {
      await withTransferredBatch(run, raw, async (batch) => {
        await d.call(hooks.batchStart, [batch, batchIdx]);
        const stepMetrics = collector.scope({ kind: 'eval_step', hook: hooks.step, batchSize: inferBatchSize(batch) }, () => {
          try {
            tf.tidy(() => {
              checkSync(module, hooks.step, stepFn.call(module, batch, batchIdx));
            });
          } catch (error) {
            throw stepError(run, hooks.step, batch, batchIdx, error);
          }
          return collector.readStep();
        });
        if (phase !== 'sanity_check') state.absorbEvalStep(stepMetrics);
        await d.call(hooks.batchEnd, [stepMetrics.callback, batch, batchIdx]);
        // Step-level values (onStep) go to the loggers after every batch, at the run's count of
        // evaluation batches, as Lightning's (the sanity check logs nothing).
        if (phase !== 'sanity_check') {
          const step = state.evalLogStep;
          state.evalLogStep += 1;
          if (Object.keys(stepMetrics.logged).length > 0) await state.logMetrics(stepMetrics.logged, step);
        }
      });
      run.emit('evalBatchEnd', { stage: phase, batchIdx, numBatches: limit });
      if (run.interruptReceived() && state.stage === 'fit') {
        // Partial validation results do not go into the checkpoint of this interrupt: its resume runs
        // an epoch-end validation again, whole (an in-epoch one is not repeated).
        collector.takeEpoch(hooks.loop);
      }
      await run.checkInterrupt(batchIdx + 1);
      if (batchIdx + 1 >= limit) break;
    }
    // Epoch end: the hooks that do not read epoch metrics and the module's, the epoch metrics, then
    // the callbacks that read them; the same for the end hooks.
    const epochMetrics = await collector.scope({ kind: 'epoch', hook: hooks.epochEnd }, async () => {
      await d.call(hooks.epochEnd, [], 'early');
      const collected = await endEvaluationEpoch(run, phase, hooks.loop);
      await d.call(hooks.epochEnd, [], 'late');
      return collected;
    });
    await d.call(hooks.end, [], 'early');
    await d.call(hooks.end, [], 'late');
    return epochMetrics;
  });
  restoreMode();
  run.emit('evalEnd', { stage: phase, metrics });
  state.phase = enclosingPhase;
  return metrics;
}

/** What is on LightningModule itself: a hook the user's class does not override. */
function overridden(module: object, name: string): boolean {
  const base = (LightningModule.prototype as unknown as Record<string, unknown>)[name];
  const own = (module as Record<string, unknown>)[name];
  return typeof own === 'function' && own !== base;
}

/**
 * Lightning's `on_*_model_eval` before an evaluation or predict loop (default: `module.eval()`),
 * and what undoes it afterwards: the module's `on_*_model_train` where it overrides it, else the
 * mode the module had before.
 */
export function enterEvalMode(module: LightningModule, evalHook: string, trainHook: string | undefined): () => void {
  const wasTraining = module.training;
  const hooks = module as unknown as Record<string, (() => void) | undefined>;
  const onEval = hooks[evalHook];
  if (typeof onEval === 'function') onEval.call(module);
  else module.eval();
  return () => {
    const onTrain = trainHook === undefined ? undefined : hooks[trainHook];
    if (trainHook !== undefined && overridden(module, trainHook) && typeof onTrain === 'function') onTrain.call(module);
    else if (wasTraining) module.train();
    else module.eval();
  };
}

/** The evaluation's epoch metrics: computed, logged, and (validation inside fit) added to the epoch's history. */
async function endEvaluationEpoch(run: RunContext, phase: EvaluationPhase, loop: 'validate' | 'test'): Promise<Metrics> {
  const { collector, state } = run;
  collector.readStep(); // values logged in the epoch-end hooks so far
  const collected = collector.takeEpoch(loop);
  if (phase === 'sanity_check') return collected.callback; // Lightning discards sanity-check metrics.
  state.absorb(collected);
  if (Object.keys(collected.logged).length > 0) await state.logMetrics(collected.logged);
  if (phase === 'validate' && state.stage === 'fit') {
    state.recordHistory(state.progress.epoch, collected.byName);
    state.countValidation();
  }
  // What validate()/test() return: the values the loggers got (`name_epoch` of an onStep+onEpoch value, not also `name`), as Lightning's.
  return collected.logged;
}
