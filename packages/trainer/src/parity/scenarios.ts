/**
 * The Flint side of the differential test against PyTorch Lightning (see parity.test.ts): runs each
 * scenario of specs.ts through the public API (a real Trainer, callbacks and schedulers), recording
 * hook calls with a Callback and module overrides, logger calls with a small Logger, and returns
 * the same observations as scenarios.py.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  Callback,
  DataLoader,
  getLearningRate,
  getMomentum,
  LightningModule,
  Linear,
  type CallbackHooks,
  type LogOptions,
  type Logger,
  type Metrics,
  type OptimizersReturn,
  type OptimizerWrapper,
  type TrainerContext,
} from '@flint/core';
import { EarlyStopping, ModelCheckpoint } from '@flint/callbacks';
import { buildScheduler } from '../../../callbacks/src/test-utils/scheduler-specs.js';
import { Trainer } from '../index.js';
import { PARITY_DATA, type LogSpec, type ParityData, type ScenarioSpec } from './specs.js';

/** Every hook Flint calls on callbacks (and on the module), in Flint's spelling. */
export const FLINT_HOOKS: ReadonlyArray<keyof CallbackHooks> = [
  'setup', 'teardown', 'onFitStart', 'onFitEnd', 'onSanityCheckStart', 'onSanityCheckEnd', 'onTrainStart', 'onTrainEnd',
  'onTrainEpochStart', 'onTrainEpochEnd', 'onTrainBatchStart', 'onTrainBatchEnd', 'onValidationStart', 'onValidationEnd',
  'onValidationEpochStart', 'onValidationEpochEnd', 'onValidationBatchStart', 'onValidationBatchEnd', 'onTestStart',
  'onTestEnd', 'onTestEpochStart', 'onTestEpochEnd', 'onTestBatchStart', 'onTestBatchEnd', 'onPredictStart', 'onPredictEnd',
  'onPredictEpochStart', 'onPredictEpochEnd', 'onPredictBatchStart', 'onPredictBatchEnd', 'onBeforeBackward',
  'onAfterBackward', 'onBeforeOptimizerStep', 'onBeforeZeroGrad', 'onSaveCheckpoint', 'onLoadCheckpoint', 'onException',
];

/** The module-only hooks Lightning's LightningModule has and Flint calls (recorded on the module only). */
export const MODULE_ONLY_HOOKS: readonly string[] = [
  'prepareData', 'configureModel', 'configureCallbacks', 'onBeforeBatchTransfer', 'onAfterBatchTransfer', 'optimizerStep',
  'optimizerZeroGrad', 'backward', 'configureGradientClipping', 'onValidationModelEval', 'onValidationModelTrain',
  'onTestModelEval', 'onTestModelTrain', 'onPredictModelEval',
];

/** A number as JSON carries it: non-finite values as strings, as scenarios.py writes them. */
export type Num = number | string;

/** What one scenario observed (the same shape on both sides). */
export interface Observations {
  error: string | null;
  hooks: string[];
  trainBatches: Array<[number, number, number]>;
  validations: Array<[number, number]>;
  sanityBatches: number;
  final: { epoch: number; globalStep: number };
  logs: Array<{ step: number; metrics: Record<string, Num> }>;
  lrs: number[];
  /** The optimizer's momentum (SGD's momentum) at every step; null for plain SGD. */
  momentums: Array<number | null>;
  saves: Array<[number, number]>;
  results: Array<Record<string, Num>>;
  callbackMetrics: Record<string, Num>;
  weights: number[];
  checkpoint?: { files: string[]; best: string | null; bestScore: Num | null; last: string | null };
  earlyStopping?: { wait: number; stoppedEpoch: number };
}

function plain(v: number): Num {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  return v;
}

function plainDict(m: Metrics): Record<string, Num> {
  return Object.fromEntries(Object.keys(m).sort().map((k) => [k, plain(m[k]!)]));
}

const num = (v: Num): number => (typeof v === 'string' ? Number(v.replace('inf', 'Infinity')) : v);

class Rec {
  hooks: string[] = [];
  trainBatches: Array<[number, number, number]> = [];
  validations: Array<[number, number]> = [];
  sanityBatches = 0;
  saves: Array<[number, number]> = [];
  lrs: number[] = [];
  momentums: Array<number | null> = [];
  logs: Array<{ step: number; metrics: Record<string, Num> }> = [];
  valRuns = 0;
}

class RecordingLogger implements Logger {
  readonly name = 'recording';
  readonly version = 0;
  readonly logDir = undefined;
  constructor(private readonly rec: Rec) {}
  logHyperparams(): void {}
  logMetrics(metrics: Metrics, step: number): void {
    this.rec.logs.push({ step, metrics: plainDict(metrics) });
  }
  save(): void {}
  finalize(): void {}
}

const suffix = (hook: string, args: unknown[]): string => (hook === 'setup' || hook === 'teardown' ? `:${String(args[0])}` : '');

class RecordingCallback extends Callback {
  constructor(rec: Rec, recordHooks: boolean) {
    super();
    for (const hook of FLINT_HOOKS) {
      (this as Record<string, unknown>)[hook] = (trainer: TrainerContext, _m: LightningModule, ...args: unknown[]) => {
        if (recordHooks) rec.hooks.push(`Callback.${hook}${suffix(hook, args)}`);
        if (hook === 'onValidationEnd' && !trainer.sanityChecking) {
          rec.validations.push([trainer.currentEpoch, trainer.globalStep]);
          rec.valRuns += 1;
        }
        const last = rec.saves.at(-1);
        if (hook === 'onSaveCheckpoint' && (last?.[0] !== trainer.currentEpoch || last[1] !== trainer.globalStep)) {
          rec.saves.push([trainer.currentEpoch, trainer.globalStep]);
        }
        if (hook === 'onBeforeOptimizerStep') {
          const optimizer = (args[0] as OptimizerWrapper).optimizer;
          rec.lrs.push(getLearningRate(optimizer));
          rec.momentums.push(getMomentum(optimizer) ?? null);
        }
      };
    }
  }
}

type Batch = [tf.Tensor2D, tf.Tensor1D];

const DEFAULT_LOGS: LogSpec[] = [
  { hook: 'train', name: 'loss', value: 'loss' },
  { hook: 'val', name: 'val_loss', value: 'loss' },
  { hook: 'test', name: 'test_loss', value: 'loss' },
];

/**
 * The module hooks recorded: those Lightning's LightningModule has too (scenarios.py records the
 * same set there). Flint also calls onSanityCheckStart/End and onException on the module, which
 * Lightning only calls on callbacks; that extension is not compared.
 */
export const LIGHTNING_MODULE_HOOKS: ReadonlySet<string> = new Set([
  ...FLINT_HOOKS.filter((h) => !['onSanityCheckStart', 'onSanityCheckEnd', 'onException'].includes(h)),
  ...MODULE_ONLY_HOOKS,
]);

class ParityModule extends LightningModule<Batch> {
  readonly layer = new Linear(2, 1);

  constructor(
    private readonly spec: ScenarioSpec,
    private readonly rec: Rec,
    data: ParityData,
  ) {
    super();
    tf.tidy(() => {
      this.layer.weight.assign(tf.tensor2d(data.initialWeight, [2, 1]));
      this.layer.bias!.assign(tf.tensor1d(data.initialBias));
    });
    if (spec.recordHooks) {
      // Recorded in place: the module's own behaviour (LightningModule's defaults) still runs.
      for (const hook of LIGHTNING_MODULE_HOOKS) {
        if (['optimizerStep', 'onBeforeBatchTransfer', 'configureCallbacks'].includes(hook)) continue; // the methods above record themselves
        const base = (LightningModule.prototype as unknown as Record<string, ((...a: unknown[]) => unknown) | undefined>)[hook];
        (this as Record<string, unknown>)[hook] = (...args: unknown[]) => {
          rec.hooks.push(`Module.${hook}${suffix(hook, args)}`);
          return base?.apply(this, args);
        };
      }
    }
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return tf.squeeze(this.layer.forward(x), [-1]);
  }

  private loss([x, y]: Batch): tf.Scalar {
    return tf.mean(tf.square(tf.sub(this.forward(x), y)));
  }

  private logAll(where: LogSpec['hook'], loss: tf.Scalar, batchIdx: number): void {
    const script = this.spec.script ?? [];
    for (const entry of this.spec.logs ?? DEFAULT_LOGS) {
      if (entry.hook !== where) continue;
      const kind = entry.value ?? 'loss';
      let value: tf.Scalar | number = loss;
      if (kind === 'batch') value = batchIdx + 1;
      else if (kind === 'script') {
        const index = where === 'train' ? this.trainer!.globalStep : this.rec.valRuns;
        value = num(script[Math.min(index, script.length - 1)]!);
      }
      const options: LogOptions = {};
      if (entry.onStep !== undefined) options.onStep = entry.onStep;
      if (entry.onEpoch !== undefined) options.onEpoch = entry.onEpoch;
      if (entry.reduce !== undefined) options.reduce = entry.reduce;
      this.log(entry.name, value, options);
    }
  }

  override optimizerStep(epoch: number, batchIdx: number, optimizer: OptimizerWrapper, closure: () => Promise<void>): void | Promise<void> {
    const how = this.spec.optimizerStep;
    if (this.spec.recordHooks) this.rec.hooks.push('Module.optimizerStep');
    if (how === 'every-2nd') return batchIdx % 2 === 0 ? optimizer.step(closure) : closure();
    if (how === 'warmup') optimizer.lr = (this.spec.lr ?? 0.1) * Math.min(1, (this.trainer!.globalStep + 1) / 4);
    return super.optimizerStep(epoch, batchIdx, optimizer, closure);
  }

  override onBeforeBatchTransfer(batch: Batch, dataloaderIdx: number): Batch {
    if (this.spec.recordHooks) this.rec.hooks.push('Module.onBeforeBatchTransfer');
    return this.spec.doubleInputs ? [tf.mul(batch[0], 2), batch[1]] : super.onBeforeBatchTransfer(batch, dataloaderIdx);
  }

  override configureCallbacks(): Callback[] {
    if (this.spec.recordHooks) this.rec.hooks.push('Module.configureCallbacks');
    return (this.spec.moduleCallbacks ?? []).map((cb) => new EarlyStopping(cb.options as never));
  }

  trainingStep(batch: Batch, batchIdx: number): tf.Scalar {
    const t = this.trainer!;
    if (this.spec.recordHooks) this.rec.hooks.push('Module.trainingStep');
    this.rec.trainBatches.push([t.currentEpoch, batchIdx, t.globalStep]);
    const at = this.spec.raiseAt;
    if (at !== undefined && at[0] === t.currentEpoch && at[1] === batchIdx) throw new Error('scenario: trainingStep fails here');
    const loss = this.loss(batch);
    this.logAll('train', loss, batchIdx);
    return loss;
  }

  override validationStep(batch: Batch, batchIdx: number): void {
    if (this.spec.recordHooks) this.rec.hooks.push('Module.validationStep');
    if (this.trainer!.sanityChecking) this.rec.sanityBatches += 1;
    this.logAll('val', this.loss(batch), batchIdx);
  }

  override testStep(batch: Batch, batchIdx: number): void {
    if (this.spec.recordHooks) this.rec.hooks.push('Module.testStep');
    this.logAll('test', this.loss(batch), batchIdx);
  }

  override predictStep(batch: Batch): tf.Tensor {
    if (this.spec.recordHooks) this.rec.hooks.push('Module.predictStep');
    return this.forward(batch[0]);
  }

  configureOptimizers(): OptimizersReturn {
    if (this.spec.recordHooks) this.rec.hooks.push('Module.configureOptimizers');
    const lr = this.spec.lr ?? 0.1;
    const optimizer = this.spec.momentum === undefined ? tf.train.sgd(lr) : tf.train.momentum(lr, this.spec.momentum);
    const s = this.spec.scheduler;
    if (s === undefined) return optimizer;
    const scheduler = buildScheduler(optimizer, s);
    const { type: _type, options: _options, torch: _torch, ...config } = s;
    return { optimizer, lrScheduler: { scheduler, ...config } };
  }
}

function loader(data: ParityData, key: 'train' | 'val'): DataLoader<Batch> {
  const { x, y } = data[key];
  const columns = [
    { data: x.flat(), shape: [x.length, 2] },
    { data: y, shape: [y.length] },
  ];
  return new DataLoader(columns, { batchSize: data.batchSize }) as unknown as DataLoader<Batch>;
}

async function runScenario(spec: ScenarioSpec, data: ParityData, tmp: string): Promise<Observations> {
  const rec = new Rec();
  const module = new ParityModule(spec, rec, data);
  const callbacks: Callback[] = [];
  let checkpoint: ModelCheckpoint | undefined;
  let early: EarlyStopping | undefined;
  const dirpath = join(tmp, spec.name);
  for (const cb of spec.callbacks ?? []) {
    if (cb.type === 'EarlyStopping') callbacks.push((early = new EarlyStopping(cb.options as never)));
    else if (cb.type === 'ModelCheckpoint') callbacks.push((checkpoint = new ModelCheckpoint({ dirpath, ...cb.options })));
    else callbacks.push(new RecordingCallback(rec, spec.recordHooks ?? false));
  }
  if (!(spec.callbacks ?? []).some((cb) => cb.type === 'Recorder')) callbacks.push(new RecordingCallback(rec, spec.recordHooks ?? false));
  const trainer = new Trainer({
    ...(spec.trainer as Record<string, never>),
    backend: 'cpu',
    enableProgressBar: false,
    enableModelSummary: false,
    enableCheckpointing: checkpoint !== undefined,
    logger: new RecordingLogger(rec),
    defaultRootDir: tmp,
    callbacks,
  });
  const train = loader(data, 'train');
  const val = spec.val === false ? undefined : loader(data, 'val');
  const evalData = loader(data, 'val');
  const results: Array<Record<string, Num>> = [];
  let error: string | null = null;
  try {
    for (const action of spec.run ?? ['fit']) {
      if (action === 'fit') await trainer.fit(module, train, val);
      else if (action === 'validate') results.push(plainDict(await trainer.validate(module, evalData)));
      else if (action === 'test') results.push(plainDict(await trainer.test(module, evalData)));
      else {
        const preds = await trainer.predict(module, evalData);
        results.push({ batches: preds.length, rows: preds.reduce((n, p) => n + (p as tf.Tensor).shape[0]!, 0) });
        tf.dispose(preds);
      }
    }
  } catch (e) {
    error = `${(e as Error).name}: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    train.dispose();
    val?.dispose();
    evalData.dispose();
  }
  const weights = [...(module.layer.weight.dataSync() as Float32Array), ...(module.layer.bias!.dataSync() as Float32Array)];
  tf.dispose(module.parameters());
  const out: Observations = {
    error,
    hooks: rec.hooks,
    trainBatches: rec.trainBatches,
    validations: rec.validations,
    sanityBatches: rec.sanityBatches,
    final: { epoch: trainer.currentEpoch, globalStep: trainer.globalStep },
    logs: rec.logs,
    lrs: rec.lrs,
    momentums: rec.momentums,
    saves: rec.saves,
    results,
    callbackMetrics: plainDict(trainer.callbackMetrics),
    weights,
  };
  if (checkpoint !== undefined) {
    const files = await readdir(dirpath).catch(() => [] as string[]);
    out.checkpoint = {
      files: files.filter((f) => !f.startsWith('.')).sort(),
      best: checkpoint.bestModelPath === undefined ? null : basename(checkpoint.bestModelPath),
      bestScore: checkpoint.bestModelScore === undefined ? null : plain(checkpoint.bestModelScore),
      last: checkpoint.lastModelPath === undefined ? null : basename(checkpoint.lastModelPath),
    };
  }
  if (early !== undefined) out.earlyStopping = { wait: early.wait, stoppedEpoch: early.stoppedEpoch };
  return out;
}

/** Runs the scenarios (all, or those named) in this process on the cpu backend. */
export async function runFlintScenarios(specs: readonly ScenarioSpec[], data: ParityData = PARITY_DATA): Promise<Record<string, Observations>> {
  const tmp = await mkdtemp(join(tmpdir(), 'flint-parity-'));
  const results: Record<string, Observations> = {};
  try {
    for (const spec of specs) {
      const before = tf.memory().numTensors;
      results[spec.name] = await runScenario(spec, data, tmp);
      const leaked = tf.memory().numTensors - before;
      if (leaked !== 0) console.warn(`parity scenario ${spec.name} leaked ${leaked} tensor(s)`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return results;
}
