import {
  Callback,
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

/**
 * Which part of an epoch-end hook to call. The loop computes the epoch's metrics between the two:
 * `'early'` calls the callbacks and loggers that do not read epoch metrics, then the module;
 * `'late'` calls the callbacks that set `readsEpochMetrics` (EarlyStopping, ModelCheckpoint, ...).
 */
export type EpochEndPart = 'early' | 'late';

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * The one place that calls hooks: callbacks in list order, then loggers, then the module (without
 * the trainer/module arguments), skipping what is not implemented and timing each call. An
 * epoch-end hook is called in two parts (`EpochEndPart`) by the loop, which computes the epoch
 * metrics between them; the dispatcher knows no hook names.
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

  /** Calls the hook on every target then the module, or one part of it (see `EpochEndPart`). */
  async call<K extends CallbackHookName>(name: K, args: HookArgs<K>, part?: EpochEndPart): Promise<void> {
    for (const target of this.targets) {
      if (part !== undefined && (target.readsEpochMetrics === true) !== (part === 'late')) continue;
      await this.invokeTarget(target, name, args);
    }
    if (part !== 'late') await this.invokeModule(name, args);
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

/** A checkpointing callback: one that answers `ckptPath: 'last' | 'best'` (ModelCheckpoint). */
function isCheckpoint(cb: Callback): boolean {
  return typeof cb.checkpointPath === 'function';
}

/**
 * The callbacks of a run, as Lightning's: the module's `configureCallbacks()` added (replacing the
 * trainer's callbacks of the same class), and the checkpointing callbacks moved after all others,
 * so that a checkpoint saved in a hook sees what the other callbacks did in that hook.
 */
export function runCallbacks(callbacks: readonly Callback[], module?: LightningModule): Callback[] {
  const given = module?.configureCallbacks();
  const own = given === undefined ? [] : Array.isArray(given) ? given : [given];
  for (const cb of own) {
    if (!(cb instanceof Callback)) {
      throw new MisconfigurationError(`${module!.constructor.name}.configureCallbacks() must return a Callback or a list of them (received ${cb === null ? 'null' : typeof cb}).`);
    }
  }
  const ownClasses = new Set(own.map((cb) => cb.constructor));
  const all = [...callbacks.filter((cb) => !ownClasses.has(cb.constructor)), ...own];
  return [...all.filter((cb) => !isCheckpoint(cb)), ...all.filter(isCheckpoint)];
}
