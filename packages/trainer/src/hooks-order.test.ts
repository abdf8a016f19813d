import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Callback, DataLoader, type CallbackHooks, type LightningModule, type Logger, type Metrics, type RunStatus, type TrainerContext } from '@flint/core';
import { BoringModule, expectNoLeak, randomClassificationDataset } from '@flint/core/testing';
import { describe, expect, it } from 'vitest';
import { Trainer } from './index.js';

const HOOKS: Array<keyof CallbackHooks> = [
  'setup', 'teardown', 'onFitStart', 'onFitEnd', 'onSanityCheckStart', 'onSanityCheckEnd', 'onTrainStart', 'onTrainEnd',
  'onTrainEpochStart', 'onTrainEpochEnd', 'onTrainBatchStart', 'onTrainBatchEnd', 'onValidationStart', 'onValidationEnd',
  'onValidationEpochStart', 'onValidationEpochEnd', 'onValidationBatchStart', 'onValidationBatchEnd', 'onTestStart',
  'onTestEnd', 'onTestEpochStart', 'onTestEpochEnd', 'onTestBatchStart', 'onTestBatchEnd', 'onPredictStart', 'onPredictEnd',
  'onPredictEpochStart', 'onPredictEpochEnd', 'onPredictBatchStart', 'onPredictBatchEnd', 'onBeforeBackward',
  'onAfterBackward', 'onBeforeOptimizerStep', 'onBeforeZeroGrad', 'onException', 'onSaveCheckpoint', 'onLoadCheckpoint',
];

/** The module-only hooks (Lightning's LightningModule hooks that callbacks do not get). */
const MODULE_HOOKS = [
  'prepareData', 'configureModel', 'configureCallbacks', 'onBeforeBatchTransfer', 'onAfterBatchTransfer', 'optimizerStep',
  'optimizerZeroGrad', 'backward', 'configureGradientClipping', 'onValidationModelEval', 'onValidationModelTrain',
  'onTestModelEval', 'onTestModelTrain', 'onPredictModelEval',
] as const;

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
    // Recorded in place: LightningModule's own behaviour still runs.
    for (const hook of MODULE_HOOKS) {
      const base = (BoringModule.prototype as unknown as Record<string, (...a: unknown[]) => unknown>)[hook]!;
      (this as Record<string, unknown>)[hook] = (...args: unknown[]) => {
        this.calls.push(`Module.${hook}`);
        return base.apply(this, args);
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
const transfer = ['Module.onBeforeBatchTransfer', 'Module.onAfterBatchTransfer'];
const trainBatch = [
  ...transfer,
  ...both('onTrainBatchStart'),
  'Module.optimizerStep',
  'Module.trainingStep',
  ...both('onBeforeZeroGrad'),
  'Module.optimizerZeroGrad',
  ...both('onBeforeBackward'),
  'Module.backward',
  ...both('onAfterBackward'),
  ...both('onBeforeOptimizerStep'),
  'Module.configureGradientClipping',
  ...both('onTrainBatchEnd'),
];
const valBatch = [...transfer, ...both('onValidationBatchStart'), 'Module.validationStep', ...both('onValidationBatchEnd')];
const validation = (batches: number) => [
  'Module.onValidationModelEval',
  ...both('onValidationStart'),
  ...both('onValidationEpochStart'),
  ...Array.from({ length: batches }, () => valBatch).flat(),
  ...both('onValidationEpochEnd'),
  ...both('onValidationEnd'),
  'Module.onValidationModelTrain',
];
/** A run's start: the module's callbacks, its data, the setup hooks, configureModel. */
const start = (stage: string) => ['Module.configureCallbacks', 'Module.prepareData', `Callback.setup:${stage}`, `Module.setup:${stage}`, 'Module.configureModel'];

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
      ...start('fit'),
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
    expect(calls).toEqual([...start('validate'), ...validation(2), 'Callback.teardown:validate', 'Module.teardown:validate']);
    calls.length = 0;
    await expectNoLeak(() => trainer.test(module, loader), 'test');
    const testBatch = [...transfer, ...both('onTestBatchStart'), 'Module.testStep', ...both('onTestBatchEnd')];
    expect(calls).toEqual([
      ...start('test'),
      'Module.onTestModelEval',
      ...both('onTestStart'),
      ...both('onTestEpochStart'),
      ...testBatch,
      ...testBatch,
      ...both('onTestEpochEnd'),
      ...both('onTestEnd'),
      'Module.onTestModelTrain',
      'Callback.teardown:test',
      'Module.teardown:test',
    ]);
    calls.length = 0;
    const before = tf.memory().numTensors;
    const predictions = await trainer.predict(module, loader);
    const predictBatch = [...transfer, ...both('onPredictBatchStart'), 'Module.predictStep', ...both('onPredictBatchEnd')];
    expect(calls).toEqual([
      ...start('predict'),
      'Module.onPredictModelEval',
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

/** A callback that reads epoch metrics (as EarlyStopping does): it runs after them, and saves a checkpoint at one epoch's end. */
class EpochReader extends Callback {
  override readonly readsEpochMetrics = true;
  readonly seen: Array<[string, number, number | undefined]> = [];
  constructor(
    private readonly calls: string[],
    private readonly saveAt?: { epoch: number; file: string },
  ) {
    super();
  }
  override async onTrainEpochEnd(trainer: TrainerContext) {
    this.calls.push('Reader.onTrainEpochEnd');
    this.seen.push(['train_loss', trainer.currentEpoch, trainer.callbackMetrics.train_loss]);
    if (this.saveAt?.epoch === trainer.currentEpoch) await trainer.saveCheckpoint(this.saveAt.file);
  }
  override onValidationEpochEnd(trainer: TrainerContext) {
    this.calls.push('Reader.onValidationEpochEnd');
    if (!trainer.sanityChecking) this.seen.push(['val_loss', trainer.currentEpoch, trainer.callbackMetrics.val_loss]);
  }
  override onValidationEnd() {
    this.calls.push('Reader.onValidationEnd');
  }
}

/** A logger that records what it receives, and a few hooks (loggers get hooks after the callbacks). */
class RecordingLogger implements Logger {
  readonly name = 'recording';
  readonly version = 0;
  readonly logDir = undefined;
  constructor(private readonly calls: string[]) {}
  logHyperparams() {
    this.calls.push('Logger.logHyperparams');
  }
  logMetrics(metrics: Metrics, step: number) {
    this.calls.push(`Logger.logMetrics ${Object.keys(metrics).sort().join(',')} @${step}`);
  }
  save() {
    this.calls.push('Logger.save');
  }
  finalize(status: RunStatus) {
    this.calls.push(`Logger.finalize:${status}`);
  }
  onTrainEpochEnd() {
    this.calls.push('Logger.onTrainEpochEnd');
  }
  onValidationEpochEnd() {
    this.calls.push('Logger.onValidationEpochEnd');
  }
  onSaveCheckpoint() {
    this.calls.push('Logger.onSaveCheckpoint');
  }
  onLoadCheckpoint() {
    this.calls.push('Logger.onLoadCheckpoint');
  }
}

describe('hook order with a callback that reads epoch metrics, a logger and checkpoints (golden)', () => {
  // Two batches per epoch, logged every 2 optimizer steps: at each epoch's second batch.
  const quiet = { numSanityValSteps: 1, logEveryNSteps: 2, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false } as const;
  /** Callbacks and loggers in list order, then the module; an epoch-end hook's readers after the epoch's metrics. */
  const early = (hook: string) => [`Callback.${hook}`, `Logger.${hook}`, `Module.${hook}`];
  const validationEnd = (logged: string[]) => [
    ...early('onValidationEpochEnd'),
    ...logged,
    'Reader.onValidationEpochEnd',
    ...both('onValidationEnd'),
    'Reader.onValidationEnd',
  ];
  const validation = (batches: number, logged: string[]) => [
    'Module.onValidationModelEval',
    ...both('onValidationStart'),
    ...both('onValidationEpochStart'),
    ...Array.from({ length: batches }, () => valBatch).flat(),
    ...validationEnd(logged),
    'Module.onValidationModelTrain',
  ];
  const epoch = (n: number, checkpoint: string[]) => [
    ...both('onTrainEpochStart'),
    ...trainBatch,
    ...trainBatch,
    // Lightning's steps: the optimizer steps before the batch (and the epoch's end at its last batch's).
    `Logger.logMetrics epoch,train_loss_step @${2 * n + 1}`,
    ...validation(2, [`Logger.logMetrics epoch,val_acc,val_loss @${2 * n + 1}`]),
    ...early('onTrainEpochEnd'),
    `Logger.logMetrics epoch,train_loss_epoch @${2 * n + 1}`,
    'Reader.onTrainEpochEnd',
    ...checkpoint,
    'Logger.save',
  ];
  const saved = ['Callback.onSaveCheckpoint', 'Logger.onSaveCheckpoint', 'Module.onSaveCheckpoint'];

  it('fit: epoch metrics are logged between the two parts of each epoch-end hook; a resume calls onLoadCheckpoint after configureOptimizers', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-hooks-'));
    const file = path.join(dir, 'epoch0.ckpt');
    const calls: string[] = [];
    const module = new RecordingModule(calls);
    const ds = randomClassificationDataset({ n: 8, features: 4, classes: 2, seed: 1 });
    const loader = new DataLoader(ds, { batchSize: 4 });
    const reader = new EpochReader(calls, { epoch: 0, file });
    const trainer = new Trainer({ ...quiet, maxEpochs: 2, callbacks: [new RecordingCallback(calls), reader], logger: new RecordingLogger(calls) });
    await expectNoLeak(() => trainer.fit(module, loader, loader), 'fit');
    expect(calls).toEqual([
      ...start('fit'),
      'Module.configureOptimizers',
      'Logger.logHyperparams',
      ...both('onFitStart'),
      ...both('onSanityCheckStart'),
      ...validation(1, []),
      ...both('onSanityCheckEnd'),
      ...both('onTrainStart'),
      ...epoch(0, saved),
      ...epoch(1, []),
      ...both('onTrainEnd'),
      ...both('onFitEnd'),
      'Callback.teardown:fit',
      'Module.teardown:fit',
      'Logger.finalize:success',
    ]);
    // What the reader saw at each epoch end is that epoch's value, as the history holds it.
    expect(reader.seen).toEqual(
      trainer.history.flatMap((r) => [
        ['val_loss', r.epoch, r.metrics.val_loss],
        ['train_loss', r.epoch, r.metrics.train_loss],
      ]),
    );
    expect(reader.seen.every(([, , v]) => Number.isFinite(v))).toBe(true);

    const resumedCalls: string[] = [];
    const resumed = new Trainer({ ...quiet, maxEpochs: 2, callbacks: [new RecordingCallback(resumedCalls), new EpochReader(resumedCalls)], logger: new RecordingLogger(resumedCalls) });
    const resumedModule = new RecordingModule(resumedCalls);
    await expectNoLeak(() => resumed.fit(resumedModule, loader, loader, { ckptPath: file }), 'resumed fit');
    expect(resumedCalls.slice(0, 13)).toEqual([
      ...start('fit'),
      'Module.configureOptimizers',
      'Callback.onLoadCheckpoint',
      'Logger.onLoadCheckpoint',
      'Module.onLoadCheckpoint',
      'Logger.logHyperparams',
      ...both('onFitStart'),
      'Callback.onTrainStart',
    ]);
    ds.dispose();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('trainer.hookTimings counts every call of each owner and hook, and its time', async () => {
    const { module, loader, trainer, ds } = setup();
    const busyMs = 15;
    module.onTrainEpochEnd = () => {
      const until = performance.now() + busyMs;
      while (performance.now() < until);
    };
    expect(trainer.hookTimings.size).toBe(0);
    await expectNoLeak(() => trainer.fit(module, loader, loader), 'fit');
    const t = trainer.hookTimings;
    // 2 epochs of 2 batches; the sanity check's validation, then one per epoch.
    expect(t.get('RecordingCallback.onTrainBatchEnd')?.calls).toBe(4);
    expect(t.get('RecordingModule.onTrainBatchEnd')?.calls).toBe(4);
    expect(t.get('RecordingCallback.onValidationEpochEnd')?.calls).toBe(3);
    expect(t.get('RecordingModule.onBeforeBackward')?.calls).toBe(4);
    expect(t.get('RecordingModule.onTrainEpochEnd')?.calls).toBe(2);
    expect(t.get('RecordingModule.onTrainEpochEnd')!.totalMs).toBeGreaterThanOrEqual(2 * busyMs);
    expect(t.has('RecordingCallback.onPredictStart')).toBe(false);
    // A new run starts new timings.
    await trainer.validate(module, loader);
    expect(trainer.hookTimings.get('RecordingCallback.onValidationEpochEnd')?.calls).toBe(1);
    expect(trainer.hookTimings.has('RecordingCallback.onTrainBatchEnd')).toBe(false);
    ds.dispose();
  });
});
