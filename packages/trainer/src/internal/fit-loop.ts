import { DataError, MisconfigurationError, type DataLoader } from '@flint/core';
import type { BatchLimits } from '../trainer-options.js';
import { limitedBatches, withTransferredBatch } from './batches.js';
import { evaluationLoop } from './evaluation-loop.js';
import { heapRelease } from './heap-release.js';
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
  const heap = heapRelease(o.releaseHeap);

  // Sanity check: a few validation batches before training, metrics discarded.
  if (evalLoader !== undefined && batches.sanity > 0 && progress.globalStep === 0) {
    state.phase = 'sanity_check';
    await d.call('onSanityCheckStart', []);
    await evaluationLoop(run, evalLoader, 'sanity_check', batches.sanity);
    await d.call('onSanityCheckEnd', []);
  }

  run.emit('fitStart', { maxEpochs: limits.maxEpochs, numTrainingBatches: state.numTrainingBatches, startEpoch: progress.epoch });
  await d.call('onTrainStart', []);
  const valInterval = valCheckBatches(run, valLimit > 0 && evalLoader !== undefined);
  const stepsReached = () => limits.maxSteps !== -1 && progress.globalStep >= limits.maxSteps;
  // maxSteps already reached (maxSteps: 0, or a resume at or past it): no step is taken.
  const stepsDone = stepsReached();
  if (stepsDone) state.stopWith('max_steps', `reached maxSteps=${limits.maxSteps}`);
  const firstEpoch = progress.epoch;
  while (!stepsDone && (limits.maxEpochs === -1 || progress.epoch < limits.maxEpochs)) {
    const epoch = progress.epoch;
    // Between two epochs of this fit (not after the last: the fit's garbage is V8's to collect then).
    if (epoch > firstEpoch) heap.betweenEpochs();
    const everyN = o.checkValEveryNEpoch;
    const valEpoch = evalLoader !== undefined && valLimit > 0 && (everyN === null || (epoch + 1) % everyN === 0);
    state.epochEndDone = false;
    state.validatedThisEpoch = false;
    state.phase = 'train';
    module.train();
    await run.checkInterrupt(progress.batchInEpoch);
    await d.call('onTrainEpochStart', []);
    run.emit('trainEpochStart', { epoch, numBatches: state.numTrainingBatches });
    let validatedAt = -1;
    let batchesDone = progress.batchInEpoch;
    let leftEarly = false;
    const resumedAt = progress.batchInEpoch;
    // The batch whose monitored step schedulers wait for the epoch-end validation (-1: none).
    let monitoredStepPending = -1;
    // overfitBatches trains on the same first batches every epoch: the loader's order of epoch 0.
    for await (const [batchIdx, raw] of limitedBatches(trainLoader, state.numTrainingBatches, overfit ? 0 : epoch, progress.batchInEpoch)) {
      const isLast = batchIdx + 1 >= state.numTrainingBatches;
      const stepBefore = progress.globalStep;
      await withTransferredBatch(run, raw, async (batch) => {
        await d.call('onTrainBatchStart', [batch, batchIdx]);
        const stepMetrics = await trainingStep(run, batch, batchIdx, isLast);
        state.absorb(stepMetrics);
        progress.batchInEpoch = batchIdx + 1;
        progress.totalBatches += 1;
        const stepped = progress.globalStep > stepBefore;
        const hasLogs = Object.keys(stepMetrics.logged).length > 0;
        // Lightning's logging step: the optimizer steps before this batch (for this batch's values
        // and the validation after it). Step values go to the loggers every logEveryNSteps optimizer
        // steps (a batch that only accumulates gradients logs nothing), and when a stop was requested.
        state.fitLogStep = stepBefore;
        const due = hasLogs && stepped && progress.globalStep % o.logEveryNSteps === 0;
        if (due) state.holdStepLog(stepMetrics.logged, stepBefore);
        await d.call('onTrainBatchEnd', [stepMetrics.callback, batch, batchIdx]);
        run.emit('trainBatchEnd', { epoch, batchIdx, numBatches: state.numTrainingBatches, globalStep: progress.globalStep, metrics: state.progressBarMetrics });
        if (performance.now() - started >= limits.maxTimeMs) {
          state.stopWith('max_time', `reached maxTime (${(limits.maxTimeMs / 1000).toFixed(1)} s) after ${((performance.now() - started) / 1000).toFixed(1)} s`);
        }
        if (!due && hasLogs && stepped && state.shouldStop) state.holdStepLog(stepMetrics.logged, stepBefore);
        await state.logPendingStep();
      });
      batchesDone = batchIdx + 1;
      await run.checkInterrupt(batchesDone);
      // Validation after this batch (Lightning's rule): every valCheckInterval batches of the epoch
      // (of the whole run with checkValEveryNEpoch: null), or when a stop was requested that may
      // take effect now. maxSteps is not a stop request: training just ends.
      const canStop = progress.epoch >= o.minEpochs;
      const iteration = everyN === null ? progress.totalBatches : batchesDone;
      if (valEpoch && ((state.shouldStop && canStop) || (Number.isFinite(valInterval) ? iteration % valInterval === 0 : isLast))) {
        await evaluationLoop(run, evalLoader!, 'validate', valLimit);
        validatedAt = batchesDone;
      }
      if (stepsReached()) state.stopWith('max_steps', `reached maxSteps=${limits.maxSteps}`);
      // Schedulers with a monitor step once this step's values (and an in-epoch validation's) are
      // stored, as Lightning's plateau schedulers do; on the epoch's last step, after its validation.
      const optimizerStepped = progress.globalStep > stepBefore;
      if (isLast || stepsReached() || (state.shouldStop && canStop)) {
        leftEarly = !isLast;
        monitoredStepPending = optimizerStepped ? batchIdx : -1;
        break;
      }
      if (optimizerStepped) await stepSchedulers(run, 'step', 'monitored', batchIdx);
    }
    // A loader of unknown length ended: its last batch was the epoch's last (validated as such).
    const unknownLengthEnded = !leftEarly && !Number.isFinite(valInterval) && !Number.isFinite(state.numTrainingBatches);
    // A resume from a checkpoint taken in the epoch's last onTrainBatchEnd: that batch's validation is still due.
    const resumedAtEnd = resumedAt > 0 && resumedAt >= state.numTrainingBatches && (Number.isFinite(valInterval) ? (everyN === null ? progress.totalBatches : resumedAt) % valInterval === 0 : true);
    if (valEpoch && validatedAt !== batchesDone && (unknownLengthEnded || resumedAtEnd)) {
      await evaluationLoop(run, evalLoader!, 'validate', valLimit);
    }
    if (monitoredStepPending >= 0) await stepSchedulers(run, 'step', 'monitored', monitoredStepPending);

    // Epoch end, as Lightning's: the callbacks that do not read epoch metrics, the loggers and the
    // module; then the train epoch's metrics (logged, in the history) and the epoch schedulers;
    // then the callbacks that read them (EarlyStopping, ModelCheckpoint).
    // The epoch's end logs at the step of its last batch, as Lightning's.
    state.fitLogStep = Math.max(0, progress.globalStep - 1);
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
  state.fitLogStep = undefined;
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

/**
 * Batches between validations, as Lightning's `val_check_batch`: the epoch's length by default (an
 * epoch-end validation; Infinity for a loader of unknown length: at its last batch), every
 * `valCheckInterval` batches, or that fraction of the epoch.
 */
function valCheckBatches(run: RunContext, validates: boolean): number {
  const v = run.options.valCheckInterval;
  const batches = run.state.numTrainingBatches;
  if (v === undefined || run.limits.fastDevRunBatches > 0) return batches;
  if (v > 0 && v < 1) return Number.isFinite(batches) ? Math.max(1, Math.floor(batches * v)) : Number.POSITIVE_INFINITY;
  if (validates && v > batches && run.options.checkValEveryNEpoch !== null) {
    throw new MisconfigurationError(
      `Trainer option valCheckInterval (${v}) must not exceed the number of training batches per epoch (${batches}): no validation would ever run. ` +
        'Use a smaller valCheckInterval, or checkValEveryNEpoch: null to count batches across epochs.',
    );
  }
  return v;
}
