import { Callback, parseOptions, type CallbackHookName, type CallbackHooks } from '@flint/core';
import { z } from 'zod';

/** Every callback hook, checked against CallbackHooks by the compiler. */
const HOOKS = {
  setup: true,
  teardown: true,
  onFitStart: true,
  onFitEnd: true,
  onSanityCheckStart: true,
  onSanityCheckEnd: true,
  onTrainStart: true,
  onTrainEnd: true,
  onTrainEpochStart: true,
  onTrainEpochEnd: true,
  onTrainBatchStart: true,
  onTrainBatchEnd: true,
  onValidationStart: true,
  onValidationEnd: true,
  onValidationEpochStart: true,
  onValidationEpochEnd: true,
  onValidationBatchStart: true,
  onValidationBatchEnd: true,
  onTestStart: true,
  onTestEnd: true,
  onTestEpochStart: true,
  onTestEpochEnd: true,
  onTestBatchStart: true,
  onTestBatchEnd: true,
  onPredictStart: true,
  onPredictEnd: true,
  onPredictEpochStart: true,
  onPredictEpochEnd: true,
  onPredictBatchStart: true,
  onPredictBatchEnd: true,
  onBeforeZeroGrad: true,
  onBeforeBackward: true,
  onAfterBackward: true,
  onBeforeOptimizerStep: true,
  onSaveCheckpoint: true,
  onLoadCheckpoint: true,
  onException: true,
} as const satisfies Record<CallbackHookName, true>;

const hookNames = Object.keys(HOOKS) as CallbackHookName[];
const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', { error: 'must be a function (trainer, module, ...) => void' });

export const lambdaCallbackOptionsSchema = z.strictObject({
  ...(Object.fromEntries(hookNames.map((h) => [h, fn.optional()])) as Record<CallbackHookName, z.ZodOptional<typeof fn>>),
  /** Run the epoch-end hooks after the module's, once the epoch metrics are computed. */
  readsEpochMetrics: z.boolean({ error: 'must be true or false' }).default(false),
  /** Key in checkpoints (needed when two LambdaCallbacks with the same hooks are in one trainer). Default: the hook names. */
  stateKey: z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' }).optional(),
});

export type LambdaCallbackOptions = CallbackHooks & { readsEpochMetrics?: boolean; stateKey?: string };

/**
 * A callback from functions, as Lightning's LambdaCallback:
 * `new LambdaCallback({ onTrainEpochEnd: (trainer) => console.log(trainer.callbackMetrics) })`.
 */
export class LambdaCallback extends Callback {
  override readonly readsEpochMetrics: boolean;
  private readonly key: string;

  constructor(options: LambdaCallbackOptions) {
    super();
    const parsed = parseOptions('LambdaCallback', lambdaCallbackOptionsSchema, options);
    this.readsEpochMetrics = parsed.readsEpochMetrics;
    const given = hookNames.filter((h) => parsed[h] !== undefined);
    this.key = parsed.stateKey ?? `LambdaCallback[${given.join(',')}]`;
    for (const h of given) (this as Record<string, unknown>)[h] = (options as Record<string, unknown>)[h];
  }

  override get stateKey(): string {
    return this.key;
  }
}
