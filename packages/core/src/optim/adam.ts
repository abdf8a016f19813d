import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { MisconfigurationError } from '../errors.js';
import { parseOptions } from '../options.js';
import { APPLY_ADAM_KERNEL, type AdamStep, type AdamStepScalars, type RawHandle } from './adam-kernel.js';
import { KernelAdamSlot, OpsAdamSlot, type AdamSlot } from './internal/adam-state.js';

/** `{ name, tensor }`, as tfjs optimizers take and return them (not exported by @tensorflow/tfjs). */
type NamedTensor = { name: string; tensor: tf.Tensor };

const fround = Math.fround;

export const adamOptionsSchema = z.strictObject({
  /** Step size. Default 1e-3. Schedulers change it through `learningRate` between steps. */
  learningRate: z.number().finite().min(0, { error: 'must be a finite number >= 0' }).default(1e-3),
  /** Decay of the first moment, in [0, 1). Default 0.9. */
  beta1: z.number().min(0, { error: 'must be in [0, 1)' }).lt(1, { error: 'must be in [0, 1)' }).default(0.9),
  /** Decay of the second moment, in [0, 1). Default 0.999. */
  beta2: z.number().min(0, { error: 'must be in [0, 1)' }).lt(1, { error: 'must be in [0, 1)' }).default(0.999),
  /** Added to the root of the second moment. Default 1e-7, as `tf.train.adam` (PyTorch uses 1e-8). */
  epsilon: z.number().positive({ error: 'must be a number > 0' }).default(1e-7),
  /**
   * Run the backend's Adam kernel (`APPLY_ADAM_KERNEL`) where it registers one (default true): on
   * the native backend, TensorFlow's fused `ResourceApplyAdam`. False always uses tfjs ops, as on
   * other backends.
   */
  native: z.boolean().default(true),
});

export type AdamOptions = z.input<typeof adamOptionsSchema>;
type ResolvedAdamOptions = z.output<typeof adamOptionsSchema>;

/**
 * Adam that gives the same numbers as `tf.train.adam` (to float32 rounding) with far fewer ops per
 * step; pass it from `configureOptimizers` like any tfjs optimizer.
 *
 * - Where the backend registers `APPLY_ADAM_KERNEL` (`@flint/backends` does for the native backend,
 *   `@tensorflow/tfjs-node`), every parameter is updated by it; on the native backend that is
 *   TensorFlow's fused `ResourceApplyAdam` on moments kept in TensorFlow resource variables: 2 ops
 *   per parameter and step (update, read back) instead of about 16, and one pass over memory
 *   instead of a dozen.
 * - On every other backend it runs 12 tfjs ops per parameter (tfjs's Adam: about 16, plus 6 scalar
 *   tensors).
 *
 * Moments follow TensorFlow's `ApplyAdam` form (`m += (g - m)(1 - β1)`); the bias corrections and
 * epsilon are folded into the step size so that the update equals tfjs's
 * `lr · m̂ / (sqrt(v̂) + ε)`, with tfjs's float32 beta powers. State is keyed by variable name, and
 * `getWeights` / `setWeights` carry it (`iter`, then `<var>/m` and `<var>/v` for every parameter),
 * which is what Flint checkpoints store: a resumed run continues exactly. Tensors returned by
 * `getWeights` belong to the optimizer (as with tfjs's optimizers): they stay valid until the next
 * step, `getWeights` or `dispose`.
 */
export class FlintAdam extends tf.Optimizer {
  static get className(): string {
    return 'FlintAdam';
  }

  /** Read at every step: set it to change the step size (schedulers do). */
  learningRate: number;
  /** Decay of the first moment; settable between steps (OneCycleLR and CyclicLR cycle it, as PyTorch does). */
  beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  /** Whether the backend's Adam kernel is used where it registers one. */
  readonly native: boolean;

  private readonly slots = new Map<string, AdamSlot>();
  /** Moments given to setWeights for variables not seen yet. */
  private readonly pending = new Map<string, { m?: tf.Tensor; v?: tf.Tensor }>();
  /** Tensors returned by the last getWeights (owned here). */
  private snapshot: tf.Tensor[] = [];
  /** tfjs's float32 running powers beta^t at step `at`; `of1` is the beta1 they were computed for. */
  private powers = { at: -1, beta1: 0, beta2: 0, of1: 0 };
  /** The next step's scalars as tensors, given by `_compiledStepInputs` (owned by the caller). */
  private fed: readonly tf.Tensor[] | undefined;

  constructor(options: AdamOptions = {}) {
    super();
    const o: ResolvedAdamOptions = parseOptions('FlintAdam', adamOptionsSchema, options);
    this.learningRate = o.learningRate;
    this.beta1 = o.beta1;
    this.beta2 = o.beta2;
    this.epsilon = o.epsilon;
    this.native = o.native;
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const entries: Array<[string, tf.Tensor | undefined]> = Array.isArray(variableGradients)
      ? variableGradients.map((g) => [g.name, g.tensor])
      : Object.entries(variableGradients);
    const lr = this.learningRate;
    if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) {
      throw new MisconfigurationError(`FlintAdam: learningRate must be a finite number >= 0 (received ${String(lr)}).`);
    }
    this.releaseSnapshot();
    const step: AdamStep = this.stepScalars(this.iterations + 1);
    if (this.fed !== undefined) {
      step.feed = this.fed;
      this.fed = undefined;
    }
    const useKernel = this.native && tf.getKernel(APPLY_ADAM_KERNEL, tf.getBackend()) !== undefined;
    try {
      for (const [name, grad] of entries) {
        if (grad === undefined || grad === null) continue;
        const variable = tf.engine().registeredVariables[name];
        if (variable === undefined) {
          throw new MisconfigurationError(`FlintAdam.applyGradients: '${name}' is not the name of a tf.Variable (gradients must be keyed by variable name).`);
        }
        this.slotFor(variable, useKernel).update(variable, grad, step);
      }
    } finally {
      step.release?.();
    }
    this.incrementIterations();
  }

  /**
   * @internal For `Trainer({ compile: true })`: what the next step of `vars` needs as inputs when it
   * runs as one traced TensorFlow call (the step's scalars as new float32 tensors, which the caller
   * disposes after the step, and the kernel's resources), or why it cannot: the backend's kernel
   * does not keep its state in resources, a variable has not taken its first step yet, or one was
   * assigned from outside since the last step (such a step runs eagerly and brings it back in sync).
   */
  _compiledStepInputs(vars: readonly tf.Variable[]): { feed: tf.Tensor[]; resources: RawHandle[] } | { reason: string } {
    if (!this.native || tf.getKernel(APPLY_ADAM_KERNEL, tf.getBackend()) === undefined) {
      return { reason: `FlintAdam has no fused kernel on the '${tf.getBackend()}' backend` };
    }
    const resources: RawHandle[] = [];
    for (const variable of vars) {
      const slot = this.slots.get(variable.name);
      const compiled = slot instanceof KernelAdamSlot && slot.backend === tf.backend() ? slot.compiled : undefined;
      if (compiled === undefined) return { reason: `the parameter '${variable.name}' has not taken its first step yet` };
      if (!compiled.inSync(variable)) return { reason: `the parameter '${variable.name}' was assigned from outside the optimizer` };
      resources.push(...compiled.inputs);
    }
    const s = this.stepScalars(this.iterations + 1);
    const feed = [0, s.beta1, s.beta2, s.alpha, s.epsilon].map((x) => tf.scalar(x, 'float32'));
    this.fed = feed;
    return { feed, resources };
  }

  /**
   * @internal For `Trainer({ compile: true })`: a traced step ran as one TensorFlow call and computed
   * `values`, the new values of `vars` (read back from the kernel's copies): assigns them (the caller
   * keeps ownership of `values`) and counts the step.
   */
  _completeCompiledStep(vars: readonly tf.Variable[], values: readonly tf.Tensor[]): void {
    this.releaseSnapshot();
    this.fed = undefined;
    vars.forEach((variable, i) => {
      variable.assign(values[i]!);
      (this.slots.get(variable.name) as KernelAdamSlot).compiled!.markSynced(variable);
    });
    this.incrementIterations();
  }

  /** @internal Drops the scalars given by `_compiledStepInputs` when their step did not run. */
  _dropFeed(): void {
    this.fed = undefined;
  }

  /**
   * The scalars of step `t` (1-based). tfjs keeps beta^t as a float32 product updated once per
   * step and computes `1 - beta^t` in float32; these are reproduced exactly. TensorFlow's form
   * weights new gradients by `1 - fround(beta)` where tfjs uses `fround(1 - beta)`: the moments
   * differ by a constant factor k, folded into alpha and epsilon.
   */
  private stepScalars(t: number): AdamStepScalars {
    const b1 = fround(this.beta1);
    const b2 = fround(this.beta2);
    if (this.powers.at !== t || this.powers.of1 !== b1) {
      let p1 = b1;
      let p2 = b2;
      let at = 1;
      if (this.powers.at >= 1 && this.powers.at <= t) {
        ({ beta1: p1, beta2: p2, at } = this.powers);
        // beta1 was changed (a scheduler cycles it): the bias correction is 1 - beta1^t of the new
        // value, as PyTorch's Adam computes it.
        if (this.powers.of1 !== b1) p1 = fround(b1 ** at);
      }
      for (; at < t; at++) {
        p1 = fround(p1 * b1);
        p2 = fround(p2 * b2);
      }
      this.powers = { at: t, beta1: p1, beta2: p2, of1: b1 };
    }
    const oneMinusBeta1 = 1 - b1; // exact in float32
    const oneMinusBeta2 = 1 - b2;
    const k1 = oneMinusBeta1 / fround(1 - this.beta1);
    const k2 = oneMinusBeta2 / fround(1 - this.beta2);
    const d1 = fround(1 - this.powers.beta1);
    const d2 = fround(1 - this.powers.beta2);
    const root = Math.sqrt(d2 * k2);
    return {
      beta1: b1,
      beta2: b2,
      oneMinusBeta1,
      oneMinusBeta2,
      alpha: (fround(this.learningRate) * root) / (d1 * k1),
      epsilon: fround(this.epsilon) * root,
    };
  }

  private slotFor(variable: tf.Variable, useKernel: boolean): AdamSlot {
    const name = variable.name;
    let slot = this.slots.get(name);
    if (slot !== undefined && slot.backend === tf.backend() && useKernel === slot instanceof KernelAdamSlot) return slot;
    // A new variable, or the backend changed under an existing one: (re)build its state here.
    let m: tf.Tensor;
    let v: tf.Tensor;
    if (slot !== undefined) {
      ({ m, v } = slot.read());
      slot.dispose();
    } else {
      const given = this.pending.get(name);
      this.pending.delete(name);
      m = given?.m ?? tf.zerosLike(variable);
      v = given?.v ?? tf.zerosLike(variable);
      for (const [label, t] of [['m', m], ['v', v]] as const) {
        if (!tf.util.arraysEqual(t.shape, variable.shape)) {
          m.dispose();
          v.dispose();
          throw new MisconfigurationError(
            `FlintAdam: the restored moment '${name}/${label}' has shape [${t.shape.join(', ')}], the variable [${variable.shape.join(', ')}].`,
          );
        }
      }
    }
    slot = useKernel ? new KernelAdamSlot(m, v) : new OpsAdamSlot(m, v);
    this.slots.set(name, slot);
    return slot;
  }

  private releaseSnapshot(): void {
    tf.dispose(this.snapshot);
    this.snapshot = [];
  }

  /** `iter`, then the first moments (`<var>/m`), then the second (`<var>/v`), as tfjs's Adam orders them. */
  override async getWeights(): Promise<NamedTensor[]> {
    this.releaseSnapshot();
    const ms: NamedTensor[] = [];
    const vs: NamedTensor[] = [];
    for (const [name, slot] of this.slots) {
      const { m, v } = slot.read();
      ms.push({ name: `${name}/m`, tensor: m });
      vs.push({ name: `${name}/v`, tensor: v });
    }
    for (const [name, p] of this.pending) {
      if (p.m !== undefined) ms.push({ name: `${name}/m`, tensor: p.m.clone() });
      if (p.v !== undefined) vs.push({ name: `${name}/v`, tensor: p.v.clone() });
    }
    this.snapshot = [...ms, ...vs].map((w) => w.tensor);
    return [await this.saveIterations(), ...ms, ...vs];
  }

  /**
   * Restores what `getWeights` returned: `iter` first, then moments named `<var>/m` and `<var>/v`
   * (copied; the caller keeps ownership of the tensors given).
   */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    if (weightValues.length === 0 || weightValues[0]!.name !== 'iter') {
      throw new MisconfigurationError(`FlintAdam.setWeights: the first weight must be 'iter' (received ${weightValues[0]?.name ?? 'nothing'}).`);
    }
    const rest = await this.extractIterations(weightValues);
    const parsed: Array<{ variable: string; which: 'm' | 'v'; tensor: tf.Tensor }> = [];
    for (const w of rest) {
      const match = /^(.*)\/(m|v)$/.exec(w.name);
      if (match === null) {
        throw new MisconfigurationError(`FlintAdam.setWeights: weight '${w.name}' is not a moment (expected '<variable>/m' or '<variable>/v').`);
      }
      parsed.push({ variable: match[1]!, which: match[2] as 'm' | 'v', tensor: w.tensor });
    }
    this.releaseSnapshot();
    for (const slot of this.slots.values()) slot.dispose();
    this.slots.clear();
    this.disposePending();
    for (const { variable, which, tensor } of parsed) {
      const entry = this.pending.get(variable) ?? {};
      entry[which]?.dispose();
      entry[which] = tf.keep(tensor.clone());
      this.pending.set(variable, entry);
    }
    this.powers = { at: -1, beta1: 0, beta2: 0, of1: 0 };
  }

  private disposePending(): void {
    for (const p of this.pending.values()) tf.dispose([p.m, p.v].filter((t): t is tf.Tensor => t !== undefined));
    this.pending.clear();
  }

  override dispose(): void {
    this.releaseSnapshot();
    for (const slot of this.slots.values()) slot.dispose();
    this.slots.clear();
    this.disposePending();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon, native: this.native };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    return new cls(config as AdamOptions);
  }
}
tf.serialization.registerClass(FlintAdam);

/** `new FlintAdam(options)`: Adam with the numbers of `tf.train.adam` and a fraction of its ops. */
export function adam(options: AdamOptions = {}): FlintAdam {
  return new FlintAdam(options);
}
