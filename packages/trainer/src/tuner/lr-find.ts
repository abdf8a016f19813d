import * as tf from '@tensorflow/tfjs';
import {
  Callback,
  MisconfigurationError,
  parseOptions,
  setLearningRate,
  writeFileAtomic,
  type LightningModule,
  type LRSchedulerConfig,
  type TrainerContext,
} from '@flint/core';
import { z } from 'zod';
import type { DataInput } from '../internal/data-connect.js';
import { Trainer } from '../trainer.js';
import { renderLrPlot } from './plot.js';
import { findAttr, tuningTrainerOptions, WeightSnapshot, writeAttr } from './shared.js';

/** Options of `lrFind`; the defaults are those of Lightning's `Tuner.lr_find`. */
export const lrFindOptionsSchema = z.strictObject({
  /** The learning rate of the first step. */
  minLr: z.number().positive().default(1e-8),
  /** The learning rate reached at step `numTraining`. */
  maxLr: z.number().positive().default(1),
  /** Steps of the range test (learning rates tried). */
  numTraining: z.number().int().min(2).default(100),
  /** How the learning rate grows from step to step. */
  mode: z.enum(['exponential', 'linear']).default('exponential'),
  /** Stop once the smoothed loss exceeds this many times the best smoothed loss; null: never stop early. */
  earlyStopThreshold: z.number().positive().nullable().default(4),
  /** Set the module's learning rate attribute (`attrName`) to the suggestion. */
  updateAttr: z.boolean().default(true),
  /** Attribute holding the learning rate (on the module or its hparams); '' finds `lr` or `learningRate`. */
  attrName: z.string().default(''),
  /** Send the curve to the trainer's loggers (scalars `lr_find/lr` and `lr_find/loss`, one step per learning rate). */
  logCurve: z.boolean().default(true),
}).refine((o) => o.maxLr > o.minLr, { message: 'maxLr must be greater than minLr', path: ['maxLr'] });

export type LrFindOptions = z.input<typeof lrFindOptionsSchema>;

/** Options of `LRFinderResult.suggestion`, as Lightning's. */
export interface SuggestionOptions {
  /** Points skipped at the start (default 10). */
  skipBegin?: number;
  /** Points skipped at the end (default 1). */
  skipEnd?: number;
}

/** Options of `LRFinderResult.plot`. */
export interface LrPlotOptions {
  /** Mark the suggested learning rate (default true). */
  suggest?: boolean;
  width?: number;
  height?: number;
  /** Also write the PNG to this file (atomically). */
  path?: string;
}

/** The learning rate of step `k` of the range test, exactly as Lightning's `_ExponentialLR` / `_LinearLR` schedule it. */
export function rangeTestLr(k: number, mode: 'exponential' | 'linear', minLr: number, maxLr: number, numTraining: number): number {
  // Lightning's schedulers give the base rate at step 0, then r = (k + 1) / numTraining from step 1 on.
  if (k === 0) return minLr;
  const r = (k + 1) / numTraining;
  return mode === 'exponential' ? minLr * (maxLr / minLr) ** r : minLr + r * (maxLr - minLr);
}

/**
 * `torch.gradient(values, spacing=[coords])` (edge_order 1): second-order central differences on
 * uneven spacing inside, one-sided differences at both ends.
 */
export function gradientAlong(values: readonly number[], coords: readonly number[]): number[] {
  const n = values.length;
  if (n < 2) throw new MisconfigurationError('gradientAlong needs at least 2 points.');
  const out = new Array<number>(n);
  out[0] = (values[1]! - values[0]!) / (coords[1]! - coords[0]!);
  out[n - 1] = (values[n - 1]! - values[n - 2]!) / (coords[n - 1]! - coords[n - 2]!);
  for (let i = 1; i < n - 1; i++) {
    const hl = coords[i]! - coords[i - 1]!;
    const hr = coords[i + 1]! - coords[i]!;
    out[i] = (hl * hl * values[i + 1]! - hr * hr * values[i - 1]! + (hr * hr - hl * hl) * values[i]!) / (hl * hr * (hl + hr));
  }
  return out;
}

/** What `lrFind` measured: the curve, a suggestion and a plot (Lightning's `_LRFinder`). */
export class LRFinderResult {
  /** Index of the suggested point in `results` after the last `suggestion()` (undefined when none). */
  optimalIndex: number | undefined;

  constructor(
    readonly mode: 'exponential' | 'linear',
    readonly minLr: number,
    readonly maxLr: number,
    readonly numTraining: number,
    /** The learning rate of each step and the smoothed loss after it. */
    readonly results: { readonly lr: readonly number[]; readonly loss: readonly number[] },
  ) {}

  /**
   * The learning rate where the smoothed loss falls fastest (the most negative gradient of loss
   * with respect to learning rate), skipping `skipBegin` points at the start and `skipEnd` at the
   * end and non-finite losses; undefined when fewer than 2 points remain.
   */
  suggestion(options: SuggestionOptions = {}): number | undefined {
    const skipBegin = options.skipBegin ?? 10;
    const skipEnd = options.skipEnd ?? 1;
    const { lr, loss } = this.results;
    const idx: number[] = [];
    for (let i = skipBegin; i < loss.length - skipEnd; i++) if (Number.isFinite(loss[i])) idx.push(i);
    if (idx.length < 2) {
      this.optimalIndex = undefined;
      return undefined;
    }
    const grads = gradientAlong(
      idx.map((i) => loss[i]!),
      idx.map((i) => lr[i]!),
    );
    let best = 0;
    for (let i = 1; i < grads.length; i++) if (grads[i]! < grads[best]!) best = i;
    this.optimalIndex = idx[best]!;
    return lr[this.optimalIndex];
  }

  /** The curve as a PNG (loss against learning rate, log axis in exponential mode), drawn with Chart.js. */
  async plot(options: LrPlotOptions = {}): Promise<Uint8Array> {
    const suggestIdx = options.suggest === false ? undefined : (this.suggestion(), this.optimalIndex);
    const png = await renderLrPlot({
      lr: this.results.lr,
      loss: this.results.loss,
      logX: this.mode === 'exponential',
      suggestIdx,
      width: options.width ?? 640,
      height: options.height ?? 400,
    });
    if (options.path !== undefined) await writeFileAtomic(options.path, png);
    return png;
  }
}

/**
 * Lightning's `_LRCallback`: sets each step's learning rate before the batch, records the smoothed
 * loss after it, and stops once the loss diverges.
 */
class LrRangeCallback extends Callback {
  readonly lrs: number[] = [];
  readonly losses: number[] = [];
  private avgLoss = 0;
  private bestLoss = 0;
  private readonly beta = 0.98;
  private pendingLoss: tf.Scalar | undefined;

  constructor(private readonly o: z.output<typeof lrFindOptionsSchema>) {
    super();
  }

  /** The finder's schedule replaces the module's schedulers (Lightning exchanges them too). */
  override onTrainStart(trainer: TrainerContext): void {
    if (trainer.optimizers.length !== 1) {
      throw new MisconfigurationError(`lrFind: configureOptimizers returned ${trainer.optimizers.length} optimizers; the learning rate finder works with one.`);
    }
    (trainer.lrSchedulers as LRSchedulerConfig[]).length = 0;
  }

  private stepping(trainer: TrainerContext, batchIdx: number): boolean {
    return (batchIdx + 1) % (trainer.accumulateGradBatches ?? 1) === 0;
  }

  override onTrainBatchStart(trainer: TrainerContext, _module: unknown, _batch: unknown, batchIdx: number): void {
    const lr = rangeTestLr(trainer.globalStep, this.o.mode, this.o.minLr, this.o.maxLr, this.o.numTraining);
    setLearningRate(trainer.optimizers[0]!.optimizer, lr);
    if (this.stepping(trainer, batchIdx)) this.lrs.push(lr);
  }

  /** The loss the step differentiates (divided by accumulateGradBatches, as Lightning's step output). */
  override onBeforeBackward(_trainer: TrainerContext, _module: unknown, loss: tf.Scalar): void {
    this.pendingLoss?.dispose();
    this.pendingLoss = tf.keep(loss.clone());
  }

  override async onTrainBatchEnd(trainer: TrainerContext, _module: unknown, _outputs: unknown, _batch: unknown, batchIdx: number): Promise<void> {
    const pending = this.pendingLoss;
    this.pendingLoss = undefined;
    if (!this.stepping(trainer, batchIdx)) {
      pending?.dispose();
      return;
    }
    if (pending === undefined) {
      this.losses.push(Number.NaN);
      return;
    }
    const current = (await pending.data())[0]!;
    pending.dispose();
    const step = trainer.globalStep;
    this.avgLoss = this.beta * this.avgLoss + (1 - this.beta) * current;
    const smoothed = this.avgLoss / (1 - this.beta ** (step + 1));
    const threshold = this.o.earlyStopThreshold;
    if (threshold !== null && step > 1 && smoothed > threshold * this.bestLoss) {
      trainer.requestStop({ rule: 'lr_find_diverged', message: `lrFind: the smoothed loss ${smoothed} exceeds ${threshold} x the best ${this.bestLoss}`, source: 'lrFind' });
    }
    if (smoothed < this.bestLoss || step === 1) this.bestLoss = smoothed;
    this.losses.push(smoothed);
  }

  override onException(): void {
    this.pendingLoss?.dispose();
    this.pendingLoss = undefined;
  }
}

/** The attribute lrFind updates: `attrName`, or the first of `lr`, `learningRate` found (Lightning's `_determine_lr_attr_name`). */
function lrAttrName(module: LightningModule, attrName: string): string {
  if (attrName !== '') {
    if (findAttr(attrName, module).length === 0) {
      throw new MisconfigurationError(`lrFind option 'attrName': '${attrName}' is neither a field of ${module.constructor.name} nor of its hparams.`);
    }
    return attrName;
  }
  for (const name of ['lr', 'learningRate']) if (findAttr(name, module).length > 0) return name;
  throw new MisconfigurationError(
    `lrFind with updateAttr: ${module.constructor.name} and its hparams have no field 'lr' or 'learningRate': add one (read it in configureOptimizers), name yours with the option 'attrName', or set updateAttr: false.`,
  );
}

/**
 * Lightning's learning-rate range test: trains `numTraining` steps with a learning rate growing
 * from `minLr` to `maxLr` (exponentially or linearly), records the smoothed loss of each step and
 * stops early once it diverges. Afterwards the module's weights (batch-norm statistics included)
 * are as before and the trainer's state is untouched (the test runs in a private trainer with the
 * same backend and optimization options, and its optimizers are freed). Returns the curve with a
 * suggestion; with `updateAttr` (default) the module's learning-rate field is set to it. Under
 * `fastDevRun` nothing runs and the result is undefined, as in Lightning.
 */
export async function lrFind<B>(trainer: Trainer, module: LightningModule<B>, data: DataInput<B>, options: LrFindOptions = {}): Promise<LRFinderResult | undefined> {
  const o = parseOptions('lrFind', lrFindOptionsSchema, options);
  if (trainer.fastDevRun) {
    trainer.print('Flint: lrFind skipped: fastDevRun is on.');
    return undefined;
  }
  const m = module as LightningModule;
  if (!m.automaticOptimization) {
    throw new MisconfigurationError(`lrFind needs automatic optimization: ${m.constructor.name} sets automaticOptimization = false.`);
  }
  const attr = o.updateAttr ? lrAttrName(m, o.attrName) : undefined;
  const callback = new LrRangeCallback(o);
  const tuning = new Trainer(tuningTrainerOptions(trainer, { maxSteps: o.numTraining, callbacks: [callback] }));
  const previousTrainer = m.trainer;
  const snapshot = new WeightSnapshot(m);
  try {
    await tuning.fit(module, data);
  } finally {
    snapshot.restore();
    snapshot.dispose();
    m.trainer = previousTrainer;
  }
  const result = new LRFinderResult(o.mode, o.minLr, o.maxLr, o.numTraining, { lr: [...callback.lrs], loss: [...callback.losses] });
  if (callback.lrs.length < o.numTraining) trainer.print(`Flint: lrFind stopped early after ${callback.lrs.length} steps: the loss diverged.`);
  if (o.logCurve && trainer.loggers.length > 0) {
    for (let i = 0; i < result.results.lr.length; i++) {
      const loss = result.results.loss[i]!;
      const metrics: Record<string, number> = Number.isFinite(loss) ? { 'lr_find/lr': result.results.lr[i]!, 'lr_find/loss': loss } : { 'lr_find/lr': result.results.lr[i]! };
      for (const logger of trainer.loggers) await logger.logMetrics(metrics, i);
    }
    for (const logger of trainer.loggers) await logger.save();
  }
  if (attr !== undefined) {
    const lr = result.suggestion();
    if (lr !== undefined) {
      writeAttr(attr, findAttr(attr, m), lr);
      trainer.print(`Flint: learning rate set to ${lr} (${m.constructor.name}.${attr}).`);
    }
  }
  return result;
}
