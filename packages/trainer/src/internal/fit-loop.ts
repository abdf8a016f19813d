import { DataError, type DataLoader } from '@flint/core';
import type { BatchLimits } from '../trainer-options.js';
import { limitedBatches } from './batches.js';
import { evaluationLoop } from './evaluation-loop.js';
import type { RunContext } from './run-state.js';
import { stepSchedulers, trainingStep } from './training-step.js';

/**
 * The fit loop, top to bottom: the sanity check, then epochs of training batches with validation
 * (within the epoch every `valCheckInterval` batches, and at its end), the epoch end, and the stop
 * rules (maxSteps, maxTime, a requested stop, never before minEpochs; maxEpochs ends the loop).
 */
export async function fitLoop(run: RunContext, trainLoader: DataLoader<unknown>, valLoader: DataLoader<unknown> | undefined, batches: BatchLimits): Promise<void> {
  const { options: o, limits, state, module, dispatcher: d, collector } = run;
  const { progress } = state;
  if (state.numTrainingBatches === 0) {
    throw new DataError(`trainer.fit: there are no training batches (the loader has ${trainLoader.length}, limitTrainBatches=${String(o.limitTrainBatches)}).`);
  }
  const overfit = o.overfitBatches > 0;
  const evalLoader = overfit ? trainLoader : valLoader;
  const valLimit = evalLoader === undefined ? 0 : batches.val;
  const started = performance.now();

  // Sanity check: a few validation batches before training, metrics discarded.
  if (evalLoader !== undefined && batches.sanity > 0 && progress.globalStep === 0) {
    state.phase = 'sanity_check';
    await d.call('onSanityCheckStart', []);
    await evaluationLoop(run, evalLoader, 'sanity_check', batches.sanity);
    await d.call('onSanityCheckEnd', []);
  }

  run.emit('fitStart', { maxEpochs: limits.maxEpochs, numTrainingBatches: state.numTrainingBatches, startEpoch: progress.epoch });
  await d.call('onTrainStart', []);
  const valInterval = valCheckBatches(run);
  const stepsReached = () => limits.maxSteps !== -1 && progress.globalStep >= limits.maxSteps;
  // maxSteps already reached (maxSteps: 0, or a resume at or past it): no step is taken.
  const stepsDone = stepsReached();
  if (stepsDone) state.stopWith('max_steps', `reached maxSteps=${limits.maxSteps}`);
  while (!stepsDone && (limits.maxEpochs === -1 || progress.epoch < limits.maxEpochs)) {
    const epoch = progress.epoch;
    const valEpoch = evalLoader !== undefined && valLimit > 0 && (epoch + 1) % o.checkValEveryNEpoch === 0;
    state.epochEndDone = false;
    state.phase = 'train';
    module.train();
    await run.checkInterrupt(progress.batchInEpoch);
    await d.call('onTrainEpochStart', []);
    run.emit('trainEpochStart', { epoch, numBatches: state.numTrainingBatches });
    let validatedAt = -1;
    let batchesDone = progress.batchInEpoch;
    // overfitBatches trains on the same first batches every epoch: the loader's order of epoch 0.
    for await (const [batchIdx, batch] of limitedBatches(trainLoader, state.numTrainingBatches, overfit ? 0 : epoch, progress.batchInEpoch)) {
      const isLast = batchIdx + 1 >= state.numTrainingBatches;
      await d.call('onTrainBatchStart', [batch, batchIdx]);
      const stepMetrics = await trainingStep(run, batch, batchIdx, isLast);
      state.absorb(stepMetrics);
      progress.batchInEpoch = batchIdx + 1;
      progress.totalBatches += 1;
      if (Object.keys(stepMetrics.logged).length > 0 && (progress.globalStep % o.logEveryNSteps === 0 || isLast)) {
        state.holdStepLog(stepMetrics.logged, progress.globalStep);
      }
      await d.call('onTrainBatchEnd', [stepMetrics.callback, batch, batchIdx]);
      run.emit('trainBatchEnd', { epoch, batchIdx, numBatches: state.numTrainingBatches, globalStep: progress.globalStep, metrics: state.progressBarMetrics });
      await state.logPendingStep();
      batchesDone = batchIdx + 1;
      if (stepsReached()) state.stopWith('max_steps', `reached maxSteps=${limits.maxSteps}`);
      if (performance.now() - started >= limits.maxTimeMs) {
        state.stopWith('max_time', `reached maxTime (${(limits.maxTimeMs / 1000).toFixed(1)} s) after ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
      await run.checkInterrupt(batchesDone);
      if (valEpoch && valInterval > 0 && batchesDone % valInterval === 0 && !isLast && !state.shouldStop) {
        await evaluationLoop(run, evalLoader!, 'validate', valLimit);
        validatedAt = batchesDone;
      }
      if (isLast || state.shouldStop) break;
    }
    if (valEpoch && validatedAt !== batchesDone) await evaluationLoop(run, evalLoader!, 'validate', valLimit);

    // Epoch end, as Lightning's: the callbacks that do not read epoch metrics, the loggers and the
    // module; then the train epoch's metrics (logged, in the history) and the epoch schedulers;
    // then the callbacks that read them (EarlyStopping, ModelCheckpoint).
    await collector.scope({ kind: 'epoch', hook: 'onTrainEpochEnd' }, async () => {
      await d.call('onTrainEpochEnd', [], 'early');
      await endTrainEpoch(run, epoch);
      await d.call('onTrainEpochEnd', [], 'late');
    });
    for (const logger of run.loggers) await logger.save();
    progress.epoch = epoch + 1;
    progress.batchInEpoch = 0;
    // From here a checkpoint resumes at the start of the next epoch.
    state.epochEndDone = false;
    run.emit('trainEpochEnd', { epoch, metrics: { ...state.progressBarMetrics } });
    await run.checkInterrupt(0);
    if (state.shouldStop) {
      if (progress.epoch >= o.minEpochs) break;
      run.print(`Flint: a stop was requested (${state.stopReason?.message ?? 'no reason given'}) but minEpochs=${o.minEpochs} is not reached; training continues.`);
      state.cancelStop();
    }
  }
  if (!state.shouldStop && state.stopReason === undefined) {
    state.stopReason = { rule: 'max_epochs', message: `reached maxEpochs=${limits.maxEpochs}`, epoch: progress.epoch, globalStep: progress.globalStep, source: 'trainer' };
  }
  state.phase = undefined;
  await d.call('onTrainEnd', []);
  run.emit('fitEnd', { stopReason: state.stopReason, epochs: progress.epoch, globalStep: progress.globalStep, seconds: (performance.now() - started) / 1000 });
}

/**
 * The train epoch's metrics: the values logged in the epoch-end hooks so far, the epoch's reduced
 * values (to the metric views and the loggers, and into the history), then the epoch schedulers,
 * before the callbacks that read epoch metrics, so that an epoch-end checkpoint holds the
 * scheduler state after this epoch's step. The epoch is complete from here.
 */
async function endTrainEpoch(run: RunContext, epoch: number): Promise<void> {
  const { collector, state } = run;
  collector.readStep();
  const collected = collector.takeEpoch('train');
  state.absorb(collected);
  if (Object.keys(collected.logged).length > 0) await state.logMetrics(collected.logged);
  state.recordHistory(epoch, collected.byName);
  await stepSchedulers(run, 'epoch');
  state.epochEndDone = true;
}

/** Batches between in-epoch validations (0: only at epoch end). */
function valCheckBatches(run: RunContext): number {
  const v = run.options.valCheckInterval;
  const batches = run.state.numTrainingBatches;
  if (v === undefined || run.limits.fastDevRunBatches > 0) return 0;
  if (v > 0 && v < 1) return Number.isFinite(batches) ? Math.max(1, Math.floor(batches * v)) : 0;
  return v;
}
