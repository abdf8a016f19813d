import * as tf from '@tensorflow/tfjs';
import { compileStep, compileStepUnavailable, failTrace, signatureOf, type CompiledStep, type StepInput } from '@flint/backends';
import { describeBatch, FlintAdam, LightningModule, tapeGradients, type PendingCalls, type TapeResult } from '@flint/core';
import type { CompiledTrainingStep, RunContext } from './run-state.js';
import { extractLoss, noGradientError, stepError } from './step-errors.js';

/** Hooks that run between trainingStep and the update: a step with any of them runs eagerly. */
const STEP_HOOKS = ['onBeforeZeroGrad', 'onBeforeBackward', 'onAfterBackward', 'onBeforeOptimizerStep'] as const;
/** LightningModule methods that shape the step: overriding any of them keeps the step eager. */
const STEP_METHODS = ['optimizerStep', 'optimizerZeroGrad', 'backward', 'configureGradientClipping'] as const;

/**
 * `Trainer({ compile: true })`: an automatic-optimization training step (trainingStep, the gradient
 * tape and FlintAdam's update) traced into one TensorFlow function (`compileStep` of
 * `@flint/backends`) and replayed as one call per batch on the native backend.
 *
 * The step's inputs are the batch's tensors, the parameters, the optimizer's step scalars and its
 * TensorFlow resources (the moments and its copies of the parameters); its outputs are the tensors
 * trainingStep logged and the parameters' new values. A replayed step makes the same log() calls
 * again with the new values, assigns the parameters and counts the optimizer's step, so the
 * loggers, callbacks, schedulers and checkpoints see what an eager step would give them.
 *
 * What stays eager, and says so once: a step with hooks between trainingStep and the update, an
 * overridden optimizerStep/optimizerZeroGrad/backward/configureGradientClipping, gradient clipping,
 * an optimizer other than `adam()`, a backend other than the native one, a batch that is not made of
 * tensors, and whatever `compileStep` cannot replay (random ops or values drawn in JavaScript such as
 * dropout's mask, reads back to JavaScript, tensors from outside the step, variables assigned in
 * JavaScript, numbers logged). A step runs the usual way while the optimizer has not made its state
 * yet (the first step) or after a parameter was assigned from outside.
 */
export class CompiledTraining implements CompiledTrainingStep {
  /** Why this fit's steps all run the usual way (printed once), or undefined while they may be compiled. */
  private disabled: string | undefined;
  private compiled: CompiledStep | undefined;
  /** The reasons for eager steps the fit was told. */
  private readonly told = new Set<string>();
  /** Whether the fit was told that its step is compiled. */
  private announced = false;
  /** Per input signature, the log() calls of its last traced call (see `MetricCollector._pendingTensors`). */
  private readonly calls = new Map<string, PendingCalls>();

  constructor(private readonly run: RunContext) {
    this.disabled = eagerReason(run);
    if (this.disabled !== undefined) this.say(this.disabled);
  }

  private say(reason: string): void {
    this.run.print(`Trainer(compile: true): the training step runs eagerly: ${reason}.`);
  }

  step(batch: unknown, batchIdx: number, vars: readonly tf.Variable[]): boolean {
    if (this.disabled !== undefined) return false;
    const { module, collector, state } = this.run;
    const adam = state.optimizers[0]!.optimizer as FlintAdam;
    const batchTensors = tensorsOf(batch);
    if (batchTensors === undefined) {
      this.disabled = 'the batch is not made of tensors (arrays or objects of tf.Tensor)';
      this.say(this.disabled);
      return false;
    }
    const prepared = adam._compiledStepInputs(vars);
    if ('reason' in prepared) return false;
    const inputs: StepInput[] = [...batchTensors, ...vars, ...prepared.feed, ...prepared.resources];
    const signature = signatureOf(inputs);
    this.compiled ??= compileStep(() => this.trace(), {
      onFallback: (_message, reason) => {
        // Once per reason: the epoch's last, smaller batch usually falls back for the same one.
        if (this.told.has(reason)) return;
        this.told.add(reason);
        this.say(`${reason} (batch ${describeBatch(this.current?.batch)})`);
      },
    });
    const before = this.compiled.status(inputs)?.kind;
    const replay = before === 'compiled';
    // zero_grad: a compiled step keeps no gradients (the hooks that would read them keep the step eager).
    module._gradStore.clear();
    let outputs: tf.Tensor[];
    try {
      this.current = { signature, batch, batchIdx, vars, failure: undefined };
      outputs = this.compiled.run(inputs);
    } catch (error) {
      adam._dropFeed();
      this.current = undefined;
      throw stepError(this.run, 'trainingStep', batch, batchIdx, error);
    } finally {
      tf.dispose(prepared.feed);
    }
    const failure = this.current.failure;
    this.current = undefined;
    if (failure !== undefined) throw failure;
    // Only a call that was traced can have compiled the step (an eager step asks nothing more).
    if ((before === undefined || before === 'tracing') && !this.announced) {
      const status = this.compiled.status(inputs);
      if (status?.kind === 'compiled') {
        this.announced = true;
        this.run.print(`Trainer(compile: true): the training step runs as one TensorFlow call (${status.numOps} ops) from global step ${state.progress.globalStep + 1} on.`);
      }
    }
    if (replay) {
      const values = outputs.slice(outputs.length - vars.length);
      collector._replayPending(this.calls.get(signature)!, outputs.slice(0, outputs.length - vars.length));
      adam._completeCompiledStep(vars, values);
      tf.dispose(values);
    }
    // Otherwise the step ran eagerly (traced or not): the collector holds the logged tensors and the
    // optimizer has updated the variables, which are the other outputs.
    return true;
  }

  private current: { signature: string; batch: unknown; batchIdx: number; vars: readonly tf.Variable[]; failure: Error | undefined } | undefined;

  /** The step as traced: trainingStep and the loss in the gradient tape, then the optimizer's update. Returns the logged tensors and the parameters. */
  private trace(): tf.Tensor[] {
    const { module, collector, state } = this.run;
    const opt = state.optimizers[0]!;
    const current = this.current!;
    const { batch, batchIdx, vars } = current;
    const others = otherVariables(vars);
    let failed = undefined as Exclude<TapeResult, { kind: 'ok' }> | undefined;
    tf.tidy(() => {
      const r = tapeGradients(() => extractLoss(module, module.trainingStep(batch, batchIdx), batch, batchIdx), vars);
      if (r.kind !== 'ok') {
        failed = r;
        return;
      }
      opt.optimizer.applyGradients(r.grads);
    });
    if (failed?.kind === 'threw') throw failed.error;
    if (failed?.kind === 'no-gradient') {
      current.failure = noGradientError(module, batchIdx);
      failTrace('the loss does not depend on the parameters');
      return [];
    }
    for (const [name, dataId] of others) {
      if (tf.engine().registeredVariables[name]?.dataId !== dataId) failTrace(`trainingStep assigns the variable '${name}' in JavaScript (a replay would not)`);
    }
    const logged = collector._pendingTensors();
    if ('reason' in logged) {
      failTrace(logged.reason);
      return [...vars];
    }
    const before = this.calls.get(current.signature);
    if (before !== undefined && before.key !== logged.calls.key) failTrace('trainingStep made different log() calls in two steps');
    this.calls.set(current.signature, logged.calls);
    return [...logged.tensors, ...vars];
  }

  dispose(): void {
    this.compiled?.dispose();
    this.compiled = undefined;
    this.calls.clear();
  }
}

/** Why this fit's training step cannot be compiled at all, or undefined. */
function eagerReason(run: RunContext): string | undefined {
  const { module, dispatcher, options, state } = run;
  const unavailable = compileStepUnavailable();
  if (unavailable !== undefined) return unavailable;
  const hook = STEP_HOOKS.find((h) => dispatcher.has(h));
  if (hook !== undefined) return `${hook} runs between trainingStep and the update`;
  const method = STEP_METHODS.find((m) => module[m] !== LightningModule.prototype[m]);
  if (method !== undefined) return `${module.constructor.name} overrides ${method}`;
  if (options.accumulateGradBatches > 1) return 'accumulateGradBatches sums the gradients of several batches before the update';
  if (options.gradientClipVal !== undefined) return 'gradientClipVal clips the gradients between the tape and the update';
  const optimizer = state.optimizers[0]!.optimizer;
  if (!(optimizer instanceof FlintAdam)) return `the optimizer is ${optimizer.constructor.name}; compiled steps use Flint's adam()`;
  return undefined;
}

/** The tensors of a batch (a tensor, or arrays and plain objects of them), or undefined if it holds anything else. */
function tensorsOf(batch: unknown): tf.Tensor[] | undefined {
  const out: tf.Tensor[] = [];
  const visit = (x: unknown): boolean => {
    if (x instanceof tf.Tensor) {
      out.push(x);
      return true;
    }
    if (Array.isArray(x)) return x.every(visit);
    if (x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype) return Object.values(x).every(visit);
    return false;
  };
  return visit(batch) ? out : undefined;
}

/** The data of every registered variable other than `vars`, to see whether the step assigns one in JavaScript. */
function otherVariables(vars: readonly tf.Variable[]): Map<string, object> {
  const mine = new Set(vars.map((v) => v.name));
  const out = new Map<string, object>();
  for (const [name, v] of Object.entries(tf.engine().registeredVariables)) if (!mine.has(name)) out.set(name, v.dataId);
  return out;
}
