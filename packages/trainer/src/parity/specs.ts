/**
 * The scenarios of the differential test against PyTorch Lightning (issue 13), as data: the same
 * specs run through the real Lightning (scenarios.py) and through Flint (scenarios.ts). Every
 * scenario trains a 2-feature linear model with MSE and SGD from the same initial weights on the
 * same tiny data, and says which of its observations are compared (`observe`).
 */

import type { SchedulerData } from '../../../callbacks/src/test-utils/scheduler-specs.js';

/** One `self.log` / `this.log` call made by the module. */
export interface LogSpec {
  /** Where it is logged: in trainingStep, validationStep or testStep. */
  hook: 'train' | 'val' | 'test';
  name: string;
  /** 'loss': the batch loss; 'batch': batchIdx + 1; 'script': `script[globalStep]` in training, `script[validation run]` in validation. */
  value?: 'loss' | 'batch' | 'script';
  onStep?: boolean;
  onEpoch?: boolean;
  reduce?: 'mean' | 'sum' | 'max' | 'min';
}

/** A scheduler (built by callbacks' test-utils/scheduler-specs.ts and torch_schedulers.py) and its config. */
export interface SchedulerSpec extends SchedulerData {
  /** What Lightning runs when it differs (Flint's CosineAnnealingLR warm-up is torch's SequentialLR of LinearLR and CosineAnnealingLR). */
  torch?: SchedulerData;
  interval?: 'epoch' | 'step';
  frequency?: number;
  monitor?: string;
  strict?: boolean;
}

export interface CallbackSpec {
  type: 'EarlyStopping' | 'ModelCheckpoint' | 'Recorder';
  options?: Record<string, number | string | boolean>;
}

/** What a scenario can compare (views of scenarios.ts's Observations); `observe` picks them. */
export type Observation =
  | 'error'
  | 'hooks'
  | 'trainBatches'
  | 'validations'
  | 'sanityBatches'
  | 'final'
  | 'logSteps'
  | 'logMetrics'
  | 'logValues'
  | 'lrs'
  | 'momentums'
  | 'saves'
  | 'results'
  | 'callbackMetrics'
  | 'weights'
  | 'ckptFiles'
  | 'ckptBest'
  | 'earlyStopping';

export interface ScenarioSpec {
  name: string;
  /** Trainer options in Flint's spelling (the Python side converts them to snake_case). */
  trainer?: Record<string, number | string | boolean | null>;
  /** Default: loss in training, val_loss in validation, test_loss in test (Lightning's defaults for on_step / on_epoch). */
  logs?: LogSpec[];
  /** Scripted metric values ('nan' / 'inf' for the non-finite ones). */
  script?: Array<number | string>;
  scheduler?: SchedulerSpec;
  /** Callbacks in list order; a Recorder is appended when none is listed. */
  callbacks?: CallbackSpec[];
  /** Default ['fit']. validate/test/predict run on the validation data. */
  run?: Array<'fit' | 'validate' | 'test' | 'predict'>;
  /** Pass validation data to fit (default true). */
  val?: boolean;
  /** trainingStep throws at [epoch, batchIdx]. */
  raiseAt?: [number, number];
  /** Record every hook call (callbacks and module). */
  recordHooks?: boolean;
  lr?: number;
  /** SGD with this momentum (`tf.train.momentum`; torch's SGD(momentum=...)) instead of plain SGD. */
  momentum?: number;
  /**
   * The module overrides optimizerStep: 'every-2nd' runs the closure on every batch but updates the
   * weights on even batch indices only; 'warmup' sets the rate to lr * min(1, (globalStep + 1) / 4)
   * before each step.
   */
  optimizerStep?: 'every-2nd' | 'warmup';
  /** The module's onBeforeBatchTransfer doubles the inputs (x) of every batch. */
  doubleInputs?: boolean;
  /** Callbacks the module's configureCallbacks returns. */
  moduleCallbacks?: CallbackSpec[];
  observe: Observation[];
}

export interface ParityData {
  batchSize: number;
  initialWeight: number[];
  initialBias: number[];
  train: { x: number[][]; y: number[] };
  val: { x: number[][]; y: number[] };
}

function rows(n: number, offset: number): { x: number[][]; y: number[] } {
  const x: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = (((i + offset) * 7) % 11) / 10 - 0.5;
    const b = (((i + offset) * 3) % 5) / 4 - 0.5;
    x.push([a, b]);
    y.push(2 * a - 3 * b + 0.5 + (((i + offset) % 3) - 1) / 10);
  }
  return { x, y };
}

/** 5 training batches of 4 rows, 2 validation batches of 4 rows. */
export const PARITY_DATA: ParityData = {
  batchSize: 4,
  initialWeight: [0.1, -0.2],
  initialBias: [0.05],
  train: rows(20, 0),
  val: rows(8, 20),
};

const counts: Observation[] = ['error', 'trainBatches', 'validations', 'sanityBatches', 'final'];
const fit2 = { maxEpochs: 2 };
const val = (name = 'val_loss'): LogSpec => ({ hook: 'val', name, value: 'loss' });
const train = (name = 'loss'): LogSpec => ({ hook: 'train', name, value: 'loss' });
/** The validation metric `score` follows `script` run by run. */
const scoreLogs: LogSpec[] = [train(), val(), { hook: 'val', name: 'score', value: 'script' }];
const es = (options: Record<string, number | string | boolean>): CallbackSpec => ({ type: 'EarlyStopping', options: { monitor: 'score', ...options } });
const ckpt = (options: Record<string, number | string | boolean>): CallbackSpec => ({ type: 'ModelCheckpoint', options });
const ckptObs: Observation[] = ['error', 'saves', 'ckptFiles', 'ckptBest'];
const esObs: Observation[] = ['error', 'earlyStopping', 'final', 'validations'];
const lrObs: Observation[] = ['error', 'lrs'];

const s = (type: SchedulerData['type'], options: SchedulerData['options'] = {}): SchedulerData => ({ type, options });
/** A scheduler stepped per epoch (6 epochs) and per optimizer step (10 steps): the rate used at every step. */
const lrBoth = (name: string, scheduler: SchedulerSpec, extra: Partial<ScenarioSpec> = {}): ScenarioSpec[] => [
  { name: `lr-${name}-epoch`, trainer: { maxEpochs: 6 }, scheduler, observe: lrObs, ...extra },
  { name: `lr-${name}-step`, trainer: { maxEpochs: 2 }, scheduler: { ...scheduler, interval: 'step' }, observe: lrObs, ...extra },
];

export const SCENARIOS: ScenarioSpec[] = [
  // ---- hooks ----
  { name: 'hooks-fit', trainer: { maxEpochs: 2, limitTrainBatches: 4, valCheckInterval: 2 }, recordHooks: true, observe: ['error', 'hooks'] },
  { name: 'hooks-validate', run: ['validate'], recordHooks: true, observe: ['error', 'hooks', 'results'] },
  { name: 'hooks-test', run: ['test'], recordHooks: true, observe: ['error', 'hooks', 'results'] },
  { name: 'hooks-predict', run: ['predict'], recordHooks: true, observe: ['error', 'hooks', 'results'] },
  { name: 'hooks-exception', trainer: fit2, raiseAt: [0, 1], recordHooks: true, observe: ['error', 'hooks'] },
  {
    name: 'hooks-checkpoint-runs-last',
    trainer: { maxEpochs: 1, limitTrainBatches: 2, numSanityValSteps: 0 },
    callbacks: [ckpt({ monitor: 'val_loss' }), { type: 'Recorder' }],
    recordHooks: true,
    observe: ['error', 'hooks'],
  },
  {
    name: 'hooks-checkpoint-steps-runs-last',
    trainer: { maxEpochs: 1, limitTrainBatches: 3, maxSteps: 2, numSanityValSteps: 0 },
    callbacks: [ckpt({ everyNTrainSteps: 1, saveTopK: -1 }), { type: 'Recorder' }],
    recordHooks: true,
    observe: ['error', 'hooks', 'saves'],
  },
  {
    name: 'hooks-checkpoint-step-save-at-epoch-end',
    trainer: { maxEpochs: 1, limitTrainBatches: 3, numSanityValSteps: 0 },
    callbacks: [ckpt({ everyNTrainSteps: 1, saveTopK: -1 }), { type: 'Recorder' }],
    recordHooks: true,
    observe: ['error', 'hooks', 'saves'],
  },
  {
    name: 'hooks-checkpoint-listed-first',
    trainer: { maxEpochs: 2, limitTrainBatches: 2, numSanityValSteps: 0 },
    logs: scoreLogs,
    script: [1, 2, 3],
    callbacks: [ckpt({ monitor: 'score', saveTopK: -1 }), es({ patience: 0 }), { type: 'Recorder' }],
    recordHooks: true,
    observe: ['error', 'hooks', 'saves', 'final'],
  },
  {
    name: 'hooks-optimizer-step-every-2nd',
    trainer: { maxEpochs: 2 },
    optimizerStep: 'every-2nd',
    recordHooks: true,
    observe: ['error', 'hooks', 'weights', 'lrs', 'trainBatches', 'final'],
  },
  { name: 'hooks-optimizer-step-warmup', trainer: { maxEpochs: 2 }, optimizerStep: 'warmup', observe: ['error', 'weights', 'lrs', 'final'] },
  {
    name: 'hooks-optimizer-step-accumulate',
    trainer: { maxEpochs: 1, accumulateGradBatches: 2 },
    optimizerStep: 'every-2nd',
    recordHooks: true,
    observe: ['error', 'hooks', 'weights', 'final'],
  },
  {
    name: 'hooks-batch-transfer',
    trainer: { maxEpochs: 2 },
    doubleInputs: true,
    run: ['fit', 'validate', 'predict'],
    observe: ['error', 'weights', 'callbackMetrics', 'results'],
  },
  {
    name: 'hooks-configure-callbacks',
    trainer: { maxEpochs: 10 },
    logs: scoreLogs,
    script: [1, 2, 3, 4, 5, 6, 7, 8],
    callbacks: [es({ patience: 8 })],
    moduleCallbacks: [es({ patience: 1 })],
    observe: ['error', 'final', 'validations'],
  },
  // ---- log(): keys, values, reductions, logger steps ----
  {
    name: 'log-every-n-steps',
    trainer: { maxEpochs: 2, logEveryNSteps: 2 },
    logs: [train(), { hook: 'train', name: 'w', value: 'loss', onStep: true, onEpoch: true }, val()],
    observe: ['error', 'logSteps', 'logMetrics'],
  },
  {
    name: 'log-val-on-step',
    trainer: { maxEpochs: 1, logEveryNSteps: 1 },
    logs: [train(), { hook: 'val', name: 'vs', value: 'loss', onStep: true, onEpoch: true }],
    observe: ['error', 'logSteps', 'logMetrics', 'logValues', 'callbackMetrics'],
  },
  {
    name: 'log-every-n-steps-accumulate',
    trainer: { maxEpochs: 2, logEveryNSteps: 2, accumulateGradBatches: 2, valCheckInterval: 2 },
    logs: [train(), { hook: 'train', name: 'w', value: 'loss', onStep: true, onEpoch: true }, val()],
    observe: ['error', 'logSteps', 'logMetrics'],
  },
  {
    name: 'log-stop-requested',
    trainer: { maxEpochs: 10, logEveryNSteps: 50 },
    logs: scoreLogs,
    script: [1, 2, 3],
    callbacks: [es({ patience: 0, checkOnTrainEpochEnd: true })],
    observe: ['error', 'logSteps', 'logMetrics'],
  },
  {
    name: 'log-reductions',
    trainer: { maxEpochs: 1, logEveryNSteps: 1 },
    logs: (['mean', 'sum', 'max', 'min'] as const).flatMap((reduce) => [
      { hook: 'train' as const, name: `t_${reduce}`, value: 'batch' as const, onStep: false, onEpoch: true, reduce },
      { hook: 'val' as const, name: `v_${reduce}`, value: 'batch' as const, reduce },
    ]),
    observe: ['error', 'logSteps', 'logMetrics', 'callbackMetrics'],
  },
  {
    name: 'log-validate-after-fit',
    trainer: { maxEpochs: 1 },
    logs: [train(), { hook: 'train', name: 'w', value: 'loss', onStep: true, onEpoch: true }, val()],
    run: ['fit', 'validate'],
    observe: ['error', 'results', 'callbackMetrics', 'logSteps', 'logValues'],
  },
  {
    name: 'log-validate-on-step',
    logs: [{ hook: 'val', name: 'vs', value: 'loss', onStep: true, onEpoch: true }],
    run: ['validate'],
    observe: ['error', 'results', 'callbackMetrics', 'logSteps', 'logMetrics', 'logValues'],
  },
  { name: 'log-test', run: ['test'], observe: ['error', 'results', 'logSteps', 'logMetrics', 'callbackMetrics'] },
  // ---- EarlyStopping ----
  { name: 'es-patience', trainer: { maxEpochs: 10 }, logs: scoreLogs, script: [1, 0.9, 0.95, 0.96, 0.5], callbacks: [es({ patience: 2 })], observe: esObs },
  {
    name: 'es-min-delta-max',
    trainer: { maxEpochs: 10 },
    logs: scoreLogs,
    script: [0.5, 0.6, 0.65, 0.69, 0.7, 0.9],
    callbacks: [es({ mode: 'max', minDelta: 0.06, patience: 1 })],
    observe: esObs,
  },
  { name: 'es-stopping-threshold', trainer: { maxEpochs: 10 }, logs: scoreLogs, script: [1, 0.8, 0.4, 0.3], callbacks: [es({ stoppingThreshold: 0.5 })], observe: esObs },
  { name: 'es-divergence-threshold', trainer: { maxEpochs: 10 }, logs: scoreLogs, script: [1, 0.8, 5, 0.3], callbacks: [es({ divergenceThreshold: 2 })], observe: esObs },
  { name: 'es-check-finite', trainer: { maxEpochs: 10 }, logs: scoreLogs, script: [1, 0.8, 'nan', 0.3], callbacks: [es({ patience: 5 })], observe: esObs },
  { name: 'es-check-on-train-epoch-end', trainer: { maxEpochs: 10 }, logs: scoreLogs, script: [1, 2, 3, 4], callbacks: [es({ patience: 1, checkOnTrainEpochEnd: true })], observe: esObs },
  {
    name: 'es-check-val-every-2',
    trainer: { maxEpochs: 12, checkValEveryNEpoch: 2 },
    logs: scoreLogs,
    script: [1, 2, 3, 4],
    callbacks: [es({ patience: 2 })],
    observe: esObs,
  },
  { name: 'es-min-epochs', trainer: { maxEpochs: 10, minEpochs: 4 }, logs: scoreLogs, script: [1, 2, 3, 4, 5, 6], callbacks: [es({ patience: 1 })], observe: esObs },
  // ---- ModelCheckpoint ----
  { name: 'ckpt-top0-last', trainer: { maxEpochs: 3 }, callbacks: [ckpt({ saveTopK: 0, saveLast: true })], observe: ckptObs },
  { name: 'ckpt-top1-no-monitor', trainer: { maxEpochs: 3 }, callbacks: [ckpt({})], observe: ckptObs },
  { name: 'ckpt-top1', trainer: { maxEpochs: 4 }, logs: scoreLogs, script: [3, 1, 2, 4], callbacks: [ckpt({ monitor: 'score' })], observe: ckptObs },
  { name: 'ckpt-top2', trainer: { maxEpochs: 4 }, logs: scoreLogs, script: [3, 1, 2, 0.5], callbacks: [ckpt({ monitor: 'score', saveTopK: 2, saveLast: true })], observe: ckptObs },
  { name: 'ckpt-top-all', trainer: { maxEpochs: 3 }, logs: scoreLogs, script: [3, 1, 2], callbacks: [ckpt({ monitor: 'score', saveTopK: -1 })], observe: ckptObs },
  { name: 'ckpt-every-2-epochs', trainer: { maxEpochs: 5 }, callbacks: [ckpt({ saveTopK: -1, everyNEpochs: 2 })], observe: ckptObs },
  { name: 'ckpt-every-2-train-steps', trainer: { maxEpochs: 2 }, callbacks: [ckpt({ saveTopK: -1, everyNTrainSteps: 2 })], observe: ckptObs },
  {
    name: 'ckpt-check-val-every-2',
    trainer: { maxEpochs: 6, checkValEveryNEpoch: 2 },
    callbacks: [ckpt({ monitor: 'val_loss', saveTopK: -1 })],
    observe: ckptObs,
  },
  { name: 'ckpt-same-name', trainer: { maxEpochs: 3 }, callbacks: [ckpt({ filename: 'model', saveTopK: -1 })], observe: ckptObs },
  // ---- learning-rate schedulers: the rate used at every step ----
  { name: 'lr-step-epoch', trainer: { maxEpochs: 4 }, scheduler: { type: 'StepLR', options: { stepSize: 2, gamma: 0.5 } }, observe: lrObs },
  { name: 'lr-step-epoch-freq2', trainer: { maxEpochs: 5 }, scheduler: { type: 'StepLR', options: { stepSize: 1, gamma: 0.5 }, frequency: 2 }, observe: lrObs },
  { name: 'lr-exp-step', trainer: { maxEpochs: 2 }, scheduler: { type: 'ExponentialLR', options: { gamma: 0.9 }, interval: 'step' }, observe: lrObs },
  {
    name: 'lr-exp-step-freq2',
    trainer: { maxEpochs: 3 },
    scheduler: { type: 'ExponentialLR', options: { gamma: 0.5 }, interval: 'step', frequency: 2 },
    observe: lrObs,
  },
  {
    name: 'lr-exp-step-freq3-accumulate',
    trainer: { maxEpochs: 3, accumulateGradBatches: 2 },
    scheduler: { type: 'ExponentialLR', options: { gamma: 0.5 }, interval: 'step', frequency: 3 },
    observe: lrObs,
  },
  { name: 'lr-cosine-past-tmax', trainer: { maxEpochs: 6 }, scheduler: { type: 'CosineAnnealingLR', options: { tMax: 3, etaMin: 0.01 } }, observe: lrObs },
  {
    name: 'lr-onecycle-step',
    trainer: { maxEpochs: 2 },
    scheduler: { type: 'OneCycleLR', options: { maxLr: 0.5, totalSteps: 10, cycleMomentum: false }, interval: 'step' },
    observe: lrObs,
  },
  {
    name: 'lr-plateau-epoch',
    trainer: { maxEpochs: 6 },
    logs: scoreLogs,
    script: [1, 1, 1, 1, 1, 1],
    scheduler: { type: 'ReduceLROnPlateau', options: { patience: 1, factor: 0.5 }, monitor: 'score' },
    observe: lrObs,
  },
  {
    name: 'lr-plateau-step',
    trainer: { maxEpochs: 2 },
    logs: [{ hook: 'train', name: 'ts', value: 'script', onStep: true }],
    script: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    scheduler: { type: 'ReduceLROnPlateau', options: { patience: 1, factor: 0.5 }, monitor: 'ts', interval: 'step' },
    observe: lrObs,
  },
  {
    name: 'lr-plateau-step-not-strict',
    trainer: { maxEpochs: 2 },
    logs: [{ hook: 'train', name: 'ts', value: 'script', onStep: true }],
    script: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    scheduler: { type: 'ReduceLROnPlateau', options: { patience: 1, factor: 0.5 }, monitor: 'ts', interval: 'step', strict: false },
    observe: lrObs,
  },
  {
    name: 'lr-plateau-check-val-every-2',
    trainer: { maxEpochs: 6, checkValEveryNEpoch: 2 },
    logs: scoreLogs,
    script: [1, 1, 1],
    scheduler: { type: 'ReduceLROnPlateau', options: { patience: 0, factor: 0.5 }, monitor: 'score' },
    observe: lrObs,
  },
  {
    name: 'lr-plateau-check-val-every-2-not-strict',
    trainer: { maxEpochs: 6, checkValEveryNEpoch: 2 },
    logs: scoreLogs,
    script: [1, 1, 1],
    scheduler: { type: 'ReduceLROnPlateau', options: { patience: 0, factor: 0.5 }, monitor: 'score', strict: false },
    observe: lrObs,
  },
  {
    name: 'lr-plateau-default-threshold',
    trainer: { maxEpochs: 6 },
    logs: scoreLogs,
    script: [1, 0.99995, 0.99985, 0.9997, 0.9, 0.89995],
    scheduler: { type: 'ReduceLROnPlateau', options: { patience: 0, factor: 0.5 }, monitor: 'score' },
    observe: lrObs,
  },
  ...lrBoth('multistep', s('MultiStepLR', { milestones: [1, 3, 4], gamma: 0.5 })),
  ...lrBoth('constant', s('ConstantLR', { factor: 0.5, totalIters: 3 })),
  ...lrBoth('linear', s('LinearLR', { totalIters: 4 })),
  ...lrBoth('polynomial', s('PolynomialLR', { totalIters: 8, power: 2 })),
  ...lrBoth('lambda', s('LambdaLR', { lrLambda: 'inverse' })),
  ...lrBoth('multiplicative', s('MultiplicativeLR', { lrLambda: 'wobble' })),
  ...lrBoth('warm-restarts', s('CosineAnnealingWarmRestarts', { t0: 2, tMult: 2, etaMin: 0.01 })),
  ...lrBoth('cyclic', s('CyclicLR', { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 2, stepSizeDown: 3, mode: 'triangular2' }), { momentum: 0.9, observe: [...lrObs, 'momentums', 'weights'] }),
  ...lrBoth('sequential', s('SequentialLR', { schedulers: [s('LinearLR', { totalIters: 2 }), s('ExponentialLR', { gamma: 0.7 })], milestones: [2] })),
  ...lrBoth('chained', s('ChainedScheduler', { schedulers: [s('ConstantLR', { factor: 0.5, totalIters: 2 }), s('ExponentialLR', { gamma: 0.8 })] })),
  ...lrBoth('cosine-warmup', {
    ...s('CosineAnnealingLR', { tMax: 8, warmup: 2 }),
    torch: s('SequentialLR', { schedulers: [s('LinearLR', { totalIters: 2 }), s('CosineAnnealingLR', { tMax: 8 })], milestones: [2] }),
  }),
  {
    name: 'lr-onecycle-momentum-epoch',
    trainer: { maxEpochs: 6 },
    momentum: 0.9,
    scheduler: { type: 'OneCycleLR', options: { maxLr: 0.5, totalSteps: 6 } },
    observe: [...lrObs, 'momentums', 'weights'],
  },
  {
    name: 'lr-onecycle-momentum-step',
    trainer: { maxEpochs: 2 },
    momentum: 0.9,
    scheduler: { type: 'OneCycleLR', options: { maxLr: 0.5, totalSteps: 10, threePhase: true }, interval: 'step' },
    observe: [...lrObs, 'momentums', 'weights'],
  },
  // ---- loop limits: training steps and validation runs ----
  { name: 'loop-default', trainer: fit2, observe: counts },
  { name: 'loop-limit-train-int', trainer: { maxEpochs: 2, limitTrainBatches: 2 }, observe: counts },
  { name: 'loop-limit-train-fraction', trainer: { maxEpochs: 2, limitTrainBatches: 0.5 }, observe: counts },
  { name: 'loop-limit-train-too-small', trainer: { maxEpochs: 1, limitTrainBatches: 0.1 }, observe: ['error'] },
  { name: 'loop-limit-val-int', trainer: { maxEpochs: 2, limitValBatches: 1 }, logs: [train(), { hook: 'val', name: 'vb', value: 'batch', reduce: 'sum' }], observe: [...counts, 'callbackMetrics'] },
  { name: 'loop-limit-val-fraction', trainer: { maxEpochs: 2, limitValBatches: 0.5 }, logs: [train(), { hook: 'val', name: 'vb', value: 'batch', reduce: 'sum' }], observe: [...counts, 'callbackMetrics'] },
  { name: 'loop-val-check-int', trainer: { maxEpochs: 2, valCheckInterval: 2 }, observe: counts },
  { name: 'loop-val-check-fraction', trainer: { maxEpochs: 2, valCheckInterval: 0.5 }, observe: counts },
  { name: 'loop-check-val-every-2', trainer: { maxEpochs: 5, checkValEveryNEpoch: 2 }, observe: counts },
  { name: 'loop-check-val-every-none', trainer: { maxEpochs: 3, checkValEveryNEpoch: null, valCheckInterval: 3 }, observe: counts },
  { name: 'loop-val-check-every-batch', trainer: { maxEpochs: 1, valCheckInterval: 1 }, observe: counts },
  { name: 'loop-max-steps-on-val-check', trainer: { maxSteps: 4, valCheckInterval: 2 }, observe: counts },
  { name: 'loop-max-steps', trainer: { maxSteps: 7 }, observe: counts },
  { name: 'loop-max-steps-accumulate', trainer: { maxSteps: 4, accumulateGradBatches: 2 }, observe: counts },
  { name: 'loop-min-epochs', trainer: { maxEpochs: 5, minEpochs: 3 }, logs: scoreLogs, script: [1, 2, 3], callbacks: [es({ patience: 0 })], observe: counts },
  { name: 'loop-fast-dev-run', trainer: { maxEpochs: 3, fastDevRun: true }, observe: counts },
  { name: 'loop-fast-dev-run-2', trainer: { maxEpochs: 3, fastDevRun: 2 }, observe: counts },
  { name: 'loop-overfit-batches', trainer: { maxEpochs: 2, overfitBatches: 2 }, observe: [...counts, 'callbackMetrics'] },
  { name: 'loop-accumulate', trainer: { maxEpochs: 2, accumulateGradBatches: 2 }, observe: [...counts, 'weights'] },
  { name: 'loop-no-sanity', trainer: { maxEpochs: 1, numSanityValSteps: 0 }, observe: counts },
  // ---- weights after N steps ----
  { name: 'weights-plain', trainer: { maxEpochs: 2 }, observe: ['error', 'weights'] },
  { name: 'weights-clip-norm', trainer: { maxEpochs: 2, gradientClipVal: 0.1 }, observe: ['error', 'weights'] },
  { name: 'weights-clip-value', trainer: { maxEpochs: 2, gradientClipVal: 0.05, gradientClipAlgorithm: 'value' }, observe: ['error', 'weights'] },
  {
    name: 'weights-clip-accumulate',
    trainer: { maxEpochs: 2, gradientClipVal: 0.1, accumulateGradBatches: 2 },
    observe: ['error', 'weights'],
  },
];

