import * as tf from '@tensorflow/tfjs';
import { Callback, DataLoader, type CallbackHooks, type LightningModule, type TrainerContext } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { describe, expect, it } from 'vitest';
import { Trainer } from './index.js';

const HOOKS: Array<keyof CallbackHooks> = [
  'setup', 'teardown', 'onFitStart', 'onFitEnd', 'onSanityCheckStart', 'onSanityCheckEnd', 'onTrainStart', 'onTrainEnd',
  'onTrainEpochStart', 'onTrainEpochEnd', 'onTrainBatchStart', 'onTrainBatchEnd', 'onValidationStart', 'onValidationEnd',
  'onValidationEpochStart', 'onValidationEpochEnd', 'onValidationBatchStart', 'onValidationBatchEnd', 'onTestStart',
  'onTestEnd', 'onTestEpochStart', 'onTestEpochEnd', 'onTestBatchStart', 'onTestBatchEnd', 'onPredictStart', 'onPredictEnd',
  'onPredictEpochStart', 'onPredictEpochEnd', 'onPredictBatchStart', 'onPredictBatchEnd', 'onBeforeBackward',
  'onAfterBackward', 'onBeforeOptimizerStep', 'onException',
];

/** Records every hook call into `calls` as "Callback.hook" (Lightning's test_hooks.py). */
class RecordingCallback extends Callback {
  constructor(private readonly calls: string[]) {
    super();
    for (const hook of HOOKS) {
      (this as Record<string, unknown>)[hook] = (_t: TrainerContext, _m: LightningModule, ...args: unknown[]) => {
        calls.push(`Callback.${hook}${hook === 'setup' || hook === 'teardown' ? `:${String(args[0])}` : ''}`);
      };
    }
  }
}

class RecordingModule extends BoringModule {
  constructor(readonly calls: string[]) {
    super(4, 2);
    for (const hook of HOOKS) {
      (this as Record<string, unknown>)[hook] = (...args: unknown[]) => {
        this.calls.push(`Module.${hook}${hook === 'setup' || hook === 'teardown' ? `:${String(args[0])}` : ''}`);
      };
    }
  }
  override trainingStep(batch: Parameters<BoringModule['trainingStep']>[0]) {
    this.calls.push('Module.trainingStep');
    return super.trainingStep(batch);
  }
  override validationStep(batch: Parameters<BoringModule['validationStep']>[0]) {
    this.calls.push('Module.validationStep');
    super.validationStep(batch);
  }
  override testStep(batch: Parameters<BoringModule['testStep']>[0]) {
    this.calls.push('Module.testStep');
    super.testStep(batch);
  }
  override predictStep(batch: Parameters<BoringModule['predictStep']>[0], i: number) {
    this.calls.push('Module.predictStep');
    return super.predictStep(batch, i);
  }
  override configureOptimizers() {
    this.calls.push('Module.configureOptimizers');
    return super.configureOptimizers();
  }
}

const both = (hook: string) => [`Callback.${hook}`, `Module.${hook}`];
const trainBatch = [
  ...both('onTrainBatchStart'),
  'Module.trainingStep',
  ...both('onBeforeBackward'),
  ...both('onAfterBackward'),
  ...both('onBeforeOptimizerStep'),
  ...both('onTrainBatchEnd'),
];
const valBatch = [...both('onValidationBatchStart'), 'Module.validationStep', ...both('onValidationBatchEnd')];
const validation = (batches: number) => [
  ...both('onValidationStart'),
  ...both('onValidationEpochStart'),
  ...Array.from({ length: batches }, () => valBatch).flat(),
  ...both('onValidationEpochEnd'),
  ...both('onValidationEnd'),
];

function setup() {
  const calls: string[] = [];
  const module = new RecordingModule(calls);
  const ds = randomClassificationDataset({ n: 8, features: 4, classes: 2, seed: 1 });
  const loader = new DataLoader(ds, { batchSize: 4 });
  const trainer = new Trainer({
    maxEpochs: 2,
    numSanityValSteps: 1,
    logger: false,
    enableProgressBar: false,
    enableModelSummary: false,
    enableCheckpointing: false,
    callbacks: [new RecordingCallback(calls)],
  });
  return { calls, module, loader, trainer, ds };
}

describe('hook order (golden)', () => {
  it('fit calls every hook in the documented order', async () => {
    const { calls, module, loader, trainer, ds } = setup();
    await expectNoLeak(() => trainer.fit(module, loader, loader), 'fit');
    const epoch = [
      ...both('onTrainEpochStart'),
      ...trainBatch,
      ...trainBatch,
      ...validation(2),
      ...both('onTrainEpochEnd'),
    ];
    expect(calls).toEqual([
      'Callback.setup:fit',
      'Module.setup:fit',
      'Module.configureOptimizers',
      ...both('onFitStart'),
      ...both('onSanityCheckStart'),
      ...validation(1),
      ...both('onSanityCheckEnd'),
      ...both('onTrainStart'),
      ...epoch,
      ...epoch,
      ...both('onTrainEnd'),
      ...both('onFitEnd'),
      'Callback.teardown:fit',
      'Module.teardown:fit',
    ]);
    ds.dispose();
  });

  it('validate, test and predict call their hooks in order', async () => {
    const { calls, module, loader, trainer, ds } = setup();
    await expectNoLeak(() => trainer.validate(module, loader), 'validate');
    expect(calls).toEqual(['Callback.setup:validate', 'Module.setup:validate', ...validation(2), 'Callback.teardown:validate', 'Module.teardown:validate']);
    calls.length = 0;
    await expectNoLeak(() => trainer.test(module, loader), 'test');
    const testBatch = [...both('onTestBatchStart'), 'Module.testStep', ...both('onTestBatchEnd')];
    expect(calls).toEqual([
      'Callback.setup:test',
      'Module.setup:test',
      ...both('onTestStart'),
      ...both('onTestEpochStart'),
      ...testBatch,
      ...testBatch,
      ...both('onTestEpochEnd'),
      ...both('onTestEnd'),
      'Callback.teardown:test',
      'Module.teardown:test',
    ]);
    calls.length = 0;
    const before = tf.memory().numTensors;
    const predictions = await trainer.predict(module, loader);
    const predictBatch = [...both('onPredictBatchStart'), 'Module.predictStep', ...both('onPredictBatchEnd')];
    expect(calls).toEqual([
      'Callback.setup:predict',
      'Module.setup:predict',
      ...both('onPredictStart'),
      ...both('onPredictEpochStart'),
      ...predictBatch,
      ...predictBatch,
      ...both('onPredictEpochEnd'),
      ...both('onPredictEnd'),
      'Callback.teardown:predict',
      'Module.teardown:predict',
    ]);
    expect(predictions).toHaveLength(2);
    tf.dispose(predictions);
    expect(tf.memory().numTensors).toBe(before);
    ds.dispose();
  });

  it('calls onException, then teardown, when a step throws', async () => {
    const { calls, module, loader, trainer, ds } = setup();
    module.trainingStep = () => {
      throw new Error('boom');
    };
    await expect(trainer.fit(module, loader)).rejects.toThrow(/^boom\n\[Flint\] in RecordingModule\.trainingStep on batch 0 of epoch 0 /);
    expect(calls.slice(-4)).toEqual(['Callback.onException', 'Module.onException', 'Callback.teardown:fit', 'Module.teardown:fit']);
    ds.dispose();
  });
});
