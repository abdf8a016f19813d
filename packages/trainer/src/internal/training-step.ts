import * as tf from '@tensorflow/tfjs';
import {
  inferBatchSize,
  MisconfigurationError,
  normalizeOptimizers,
  tapeGradients,
  type CollectedMetrics,
  type LightningModule,
  type LRSchedulerConfig,
  type OptimizerWrapper,
  type TapeResult,
} from '@flint/core';
import { readMonitoredMetric } from '@flint/callbacks';
import type { ResolvedTrainerOptions } from '../trainer-options.js';
import { CompiledTraining } from './compiled-step.js';
import { checkSync, extractLoss, isThenable, noGradientError, stepError, trainerError } from './step-errors.js';
import type { RunContext } from './run-state.js';

/**
 * One training batch, in Lightning's order:
 *
 *   automatic optimization: on a batch that steps, the module's optimizerStep with the closure;
 *   the closure is trainingStep, onBeforeZeroGrad and optimizerZeroGrad (first batch of an
 *   accumulation group), onBeforeBackward and backward in one gradient tape, then onAfterBackward;
 *   `optimizer.step(closure)` adds onBeforeOptimizerStep, configureGradientClipping and the update;
 *   then the step schedulers. A batch that only accumulates runs the closure alone;
 *   manual optimization: trainingStep, which steps its optimizers itself.
 *
 * The step runs in the collector's train-step scope (log() defaults of trainingStep); the step's
 * logged values are returned.
 */
export async function trainingStep(run: RunContext, batch: unknown, batchIdx: number, isLast: boolean): Promise<CollectedMetrics> {
  const { module, collector } = run;
  await collector.scope({ kind: 'train_step', hook: 'trainingStep', batchSize: inferBatchSize(batch) }, () =>
    module.automaticOptimization ? automaticStep(run, batch, batchIdx, isLast) : manualStep(run, batch, batchIdx),
  );
  return collector.readStep();
}

async function automaticStep(run: RunContext, batch: unknown, batchIdx: number, isLast: boolean): Promise<void> {
  const { module, dispatcher: d, options, state } = run;
  const opt = state.optimizers[0]!;
  // The optimizer's parameters, found once per batch (each read walks the module).
  const params = opt.params;
  if (params.length === 0) {
    throw new MisconfigurationError(`${module.constructor.name} has no trainable parameters: nothing to optimize.`);
  }
  const accumulate = state.accumulateGradBatches ?? options.accumulateGradBatches;
  const epoch = state.progress.epoch;
  if (options.compile && accumulate === 1 && (state.compiledStep ??= new CompiledTraining(run)).step(batch, batchIdx, params)) {
    state.progress.globalStep += 1;
    await stepSchedulers(run, 'step', 'unmonitored', batchIdx);
    return;
  }
  // Lightning's closure: trainingStep, zero_grad (first batch of an accumulation group), backward.
  const pending: Array<Promise<void>> = [];
  const closure = (): Promise<void> => {
    const p = forwardBackward(run, opt, params, batch, batchIdx, batchIdx % accumulate === 0);
    p.catch(() => undefined);
    pending.push(p);
    return p;
  };
  // Accumulation: the optimizer steps every `accumulate` batches and on the epoch's last.
  if ((batchIdx + 1) % accumulate !== 0 && !isLast) {
    await closure();
    return;
  }
  opt._afterClosure = async () => {
    if (d.has('onBeforeOptimizerStep')) await d.call('onBeforeOptimizerStep', [opt, module._gradStore.get(new Set(opt.params.map((v) => v.name)))]);
    module.configureGradientClipping(opt, options.gradientClipVal, options.gradientClipAlgorithm);
  };
  try {
    await module.optimizerStep(epoch, batchIdx, opt, closure);
    // A step that did not return (or await) the closure's or the update's promise is awaited here.
    await Promise.all(pending);
    await opt._lastStep;
  } finally {
    opt._afterClosure = undefined;
    opt._lastStep = undefined;
  }
  state.progress.globalStep += 1;
  await stepSchedulers(run, 'step', 'unmonitored', batchIdx);
}

/**
 * The closure: trainingStep, the zero-grad hooks, onBeforeBackward and `backward` in one gradient
 * tape, then onAfterBackward with this batch's gradients, which are added to the module's
 * collected gradients (what the optimizer step applies).
 */
async function forwardBackward(run: RunContext, opt: OptimizerWrapper, vars: readonly tf.Variable[], batch: unknown, batchIdx: number, zeroGrad: boolean): Promise<void> {
  const { module, dispatcher: d, options, state } = run;
  const accumulate = state.accumulateGradBatches ?? options.accumulateGradBatches;
  const wantsBeforeBackward = d.has('onBeforeBackward');
  const epoch = state.progress.epoch;
  // Forward and backward: the step runs inside the gradient tape; when it fails, tapeGradients frees what the tape kept.
  let failed = undefined as Exclude<TapeResult, { kind: 'ok' }> | undefined;
  const grads: tf.NamedTensorMap = tf.tidy((): tf.NamedTensorMap => {
    const r = tapeGradients(() => {
      const out = module.trainingStep(batch, batchIdx);
      let loss = extractLoss(module, out, batch, batchIdx);
      if (accumulate > 1) loss = tf.div(loss, accumulate);
      if (zeroGrad) {
        if (d.has('onBeforeZeroGrad')) d.callSync('onBeforeZeroGrad', [opt]);
        checkSyncHook(module, 'optimizerZeroGrad', module.optimizerZeroGrad(epoch, batchIdx, opt));
      }
      if (wantsBeforeBackward) d.callSync('onBeforeBackward', [loss]);
      const differentiated = module.backward(loss);
      checkSyncHook(module, 'backward', differentiated);
      return differentiated;
    }, vars);
    if (r.kind === 'ok') return r.grads;
    failed = r;
    return {};
  });
  if (failed?.kind === 'threw') throw stepError(run, 'trainingStep', batch, batchIdx, failed.error);
  if (failed?.kind === 'no-gradient') throw noGradientError(module, batchIdx);
  try {
    if (d.has('onAfterBackward')) await d.call('onAfterBackward', [grads]);
    module._gradStore.accumulate(grads);
  } finally {
    tf.dispose(grads);
  }
}

/** A hook that runs inside the gradient tape returned a promise: it cannot be awaited there. */
function checkSyncHook(module: LightningModule, hook: string, result: unknown): void {
  if (!isThenable(result)) return;
  Promise.resolve(result).catch(() => undefined);
  throw trainerError(new MisconfigurationError(`${module.constructor.name}.${hook} returned a promise: it runs inside the gradient tape (tf.variableGrads), which cannot span an await. Make it synchronous.`));
}

/** Manual optimization: the step owns the optimizer loop; the trainer counts steps. */
function manualStep(run: RunContext, batch: unknown, batchIdx: number): void {
  const { module } = run;
  try {
    tf.tidy(() => {
      checkSync(module, 'trainingStep', module.trainingStep(batch, batchIdx));
    });
  } catch (error) {
    throw stepError(run, 'trainingStep', batch, batchIdx, error);
  } finally {
    module._gradStore.clear();
  }
  run.state.progress.globalStep += 1;
}

/**
 * Steps the LR schedulers of `interval` whose frequency is due (automatic optimization; manual
 * optimization steps them itself); `which` picks those with a `monitor` (stepped after the step's
 * values are stored, as Lightning's plateau schedulers), those without (right after the optimizer
 * step), or all. A monitored scheduler gets its metric's value by the rule of `readMonitoredMetric`,
 * the one every monitoring callback follows; a value that is not logged yet skips the step.
 */
export async function stepSchedulers(run: RunContext, interval: 'epoch' | 'step', which: 'monitored' | 'unmonitored' | 'all' = 'all', batchIdx = 0): Promise<void> {
  const { module, state } = run;
  if (!module.automaticOptimization) return;
  for (const config of state.lrSchedulers) {
    if (config.interval !== interval) continue;
    if ((which === 'monitored' && config.monitor === undefined) || (which === 'unmonitored' && config.monitor !== undefined)) continue;
    // `frequency` counts, as Lightning's, the batches of the epoch ('step') or the epochs.
    const count = interval === 'step' ? batchIdx + 1 : state.progress.epoch + 1;
    if (count % config.frequency !== 0) continue;
    if (config.monitor !== undefined) {
      const source = { callbackMetrics: state.callbackMetrics, history: state.history, currentEpoch: state.progress.epoch, validationRuns: state.validationRuns, print: run.print };
      const value = readMonitoredMetric(source, config.monitor, {
        strict: config.strict,
        owner: `lrScheduler ${config.scheduler.constructor.name}`,
        warned: state.warnedMonitors,
        epochEnd: interval === 'epoch',
      });
      if (value !== undefined) config.scheduler.step(value);
    } else config.scheduler.step();
  }
}

/** What configureOptimizers returned, checked against the trainer's options. */
export function configureOptimizers(module: LightningModule, options: ResolvedTrainerOptions): { optimizers: OptimizerWrapper[]; lrSchedulers: LRSchedulerConfig[] } {
  const { optimizers, schedulers } = normalizeOptimizers(module.configureOptimizers(), () => module.parameters(), module._gradStore);
  if (module.automaticOptimization && optimizers.length > 1) {
    throw new MisconfigurationError(
      `${module.constructor.name}.configureOptimizers returned ${optimizers.length} optimizers: automatic optimization uses one. Set automaticOptimization = false and step them yourself in trainingStep.`,
    );
  }
  if (!module.automaticOptimization && (options.accumulateGradBatches > 1 || options.gradientClipVal !== undefined)) {
    throw new MisconfigurationError(
      'Trainer options accumulateGradBatches and gradientClipVal apply to automatic optimization; with automaticOptimization = false, accumulate and clip in your trainingStep.',
    );
  }
  return { optimizers, lrSchedulers: schedulers };
}

/**
 * The optimizers configureOptimizers created belong to the fit that created them: they are
 * disposed when it ends (a later fit calls configureOptimizers again; a resume restores their
 * state from the checkpoint), so that a finished fit leaves no tensors behind.
 */
export function disposeOptimizers(optimizers: readonly OptimizerWrapper[]): void {
  for (const o of optimizers) {
    o.optimizer.dispose();
    // tfjs's MomentumOptimizer.dispose() does not free the learning-rate scalar `c` it inherits
    // from SGDOptimizer (SGD's own dispose does): free it here so that a fit leaks nothing.
    const c = (o.optimizer as unknown as { c?: unknown }).c;
    if (c instanceof tf.Tensor && !c.isDisposed) c.dispose();
  }
}
