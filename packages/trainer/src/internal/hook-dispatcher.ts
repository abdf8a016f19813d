import {
  MisconfigurationError,
  type CallbackHookName,
  type CallbackHooks,
  type LightningModule,
  type TrainerContext,
} from '@flint/core';

/** The arguments of a hook after `(trainer, module)`. */
export type HookArgs<K extends CallbackHookName> =
  Parameters<NonNullable<CallbackHooks[K]>> extends [TrainerContext, LightningModule, ...infer Rest] ? Rest : never;

/** A callback or logger in the dispatch list. */
export type HookTarget = CallbackHooks & { readonly readsEpochMetrics?: boolean };

/** Time spent in each hook, summed over the run (`trainer.hookTimings`). */
export interface HookTiming {
  calls: number;
  totalMs: number;
}

/** Hooks after which callbacks that read epoch metrics run last, once the metrics are computed. */
const EPOCH_END_HOOKS: ReadonlySet<CallbackHookName> = new Set(['onTrainEpochEnd', 'onValidationEpochEnd', 'onValidationEnd', 'onTestEpochEnd', 'onTestEnd']);

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * The one place that calls hooks: callbacks in list order, then loggers, then the module (without
 * the trainer/module arguments), skipping what is not implemented and timing each call. For the
 * epoch-end hooks, callbacks that declare `readsEpochMetrics` run after the module, and `between`
 * (the trainer's epoch-metric computation) runs just before them.
 */
export class HookDispatcher {
  readonly timings = new Map<string, HookTiming>();

  constructor(
    private readonly trainer: TrainerContext,
    private readonly module: LightningModule,
    private readonly targets: readonly HookTarget[],
  ) {}

  /** Whether anything implements the hook (lets the hot path skip work nobody asked for). */
  has(name: CallbackHookName): boolean {
    return typeof (this.module as unknown as Record<string, unknown>)[name] === 'function' || this.targets.some((t) => typeof t[name] === 'function');
  }

  async call<K extends CallbackHookName>(name: K, args: HookArgs<K>, between?: () => void | Promise<void>): Promise<void> {
    const epochEnd = EPOCH_END_HOOKS.has(name);
    const late: HookTarget[] = [];
    for (const target of this.targets) {
      if (epochEnd && target.readsEpochMetrics === true) {
        late.push(target);
        continue;
      }
      await this.invokeTarget(target, name, args);
    }
    await this.invokeModule(name, args);
    if (between !== undefined) await between();
    for (const target of late) await this.invokeTarget(target, name, args);
  }

  /** For hooks inside the gradient tape: they must not return a promise. */
  callSync<K extends CallbackHookName>(name: K, args: HookArgs<K>): void {
    const check = (owner: string, result: unknown): void => {
      if (isThenable(result)) {
        throw new MisconfigurationError(
          `${owner}.${name} returned a promise: ${name} runs inside the gradient tape (tf.variableGrads), which cannot span an await. Make it synchronous.`,
        );
      }
    };
    for (const target of this.targets) {
      const fn = target[name] as ((...a: unknown[]) => unknown) | undefined;
      if (typeof fn !== 'function') continue;
      check(target.constructor.name, this.timed(target, name, () => fn.call(target, this.trainer, this.module, ...args)));
    }
    const fn = (this.module as unknown as Record<string, unknown>)[name] as ((...a: unknown[]) => unknown) | undefined;
    if (typeof fn === 'function') check(this.module.constructor.name, this.timed(this.module, name, () => fn.apply(this.module, [...args])));
  }

  private async invokeTarget(target: HookTarget, name: CallbackHookName, args: readonly unknown[]): Promise<void> {
    const fn = target[name] as ((...a: unknown[]) => unknown) | undefined;
    if (typeof fn !== 'function') return;
    const started = performance.now();
    const result = fn.call(target, this.trainer, this.module, ...args);
    if (isThenable(result)) await result;
    this.record(target, name, started);
  }

  private async invokeModule(name: CallbackHookName, args: readonly unknown[]): Promise<void> {
    const fn = (this.module as unknown as Record<string, unknown>)[name] as ((...a: unknown[]) => unknown) | undefined;
    if (typeof fn !== 'function') return;
    const started = performance.now();
    const result = fn.apply(this.module, [...args]);
    if (isThenable(result)) await result;
    this.record(this.module, name, started);
  }

  private timed(owner: object, name: string, run: () => unknown): unknown {
    const started = performance.now();
    const result = run();
    this.record(owner, name, started);
    return result;
  }

  private record(owner: object, name: string, started: number): void {
    const key = `${owner.constructor.name}.${name}`;
    const t = this.timings.get(key);
    const elapsed = performance.now() - started;
    if (t === undefined) this.timings.set(key, { calls: 1, totalMs: elapsed });
    else {
      t.calls += 1;
      t.totalMs += elapsed;
    }
  }
}
