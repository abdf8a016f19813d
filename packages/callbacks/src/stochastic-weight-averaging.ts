import * as tf from '@tensorflow/tfjs';
import {
  BatchNorm1d,
  BatchNorm2d,
  Callback,
  getLearningRate,
  MisconfigurationError,
  parseOptions,
  setLearningRate,
  type LightningModule,
  type LRScheduler,
  type LRSchedulerConfig,
  type TrainerContext,
} from '@flint/core';
import { z } from 'zod';

const positive = z.number({ error: 'must be a number > 0' }).positive({ error: 'must be a number > 0' });

/** Schema of `StochasticWeightAveragingOptions`; defaults as Lightning's. */
export const stochasticWeightAveragingOptionsSchema = z.strictObject({
  /** The SWA learning rate the annealing reaches (a number, or a one-element list: a Flint optimizer has one parameter group). */
  swaLrs: z.union([positive, z.array(positive).length(1, { error: 'Flint optimizers have one parameter group: give one learning rate' })], {
    error: 'must be a number > 0 (or [number])',
  }),
  /** A whole number >= 1: start at that epoch (1-based, as Lightning); a fraction in [0, 1): at floor(fraction x maxEpochs). */
  swaEpochStart: z
    .number()
    .refine((v) => (v >= 0 && v < 1) || (Number.isInteger(v) && v >= 1), { error: 'must be a whole number >= 1 or a fraction in [0, 1)' })
    .default(0.8),
  /** Epochs over which the learning rate moves to swaLrs. */
  annealingEpochs: z.number().int({ error: 'must be a whole number >= 0' }).min(0, { error: 'must be a whole number >= 0' }).default(10),
  annealingStrategy: z.enum(['cos', 'linear'], { error: "must be 'cos' or 'linear'" }).default('cos'),
});

export type StochasticWeightAveragingOptions = z.input<typeof stochasticWeightAveragingOptionsSchema>;

/**
 * PyTorch's SWALR: from the learning rate at its start, `lr0`, to `swaLr` over `annealEpochs` epoch
 * steps: `lr_k = swaLr * a(k) + lr0 * (1 - a(k))`, `a(k) = anneal(min(1, k / annealEpochs))`, with
 * `anneal(t) = (1 - cos(pi t)) / 2` ('cos') or `t` ('linear').
 */
class SwaLr implements LRScheduler {
  steps = 0;
  constructor(
    private readonly optimizer: tf.Optimizer,
    readonly lr0: number,
    private readonly swaLr: number,
    private readonly annealEpochs: number,
    private readonly strategy: 'cos' | 'linear',
  ) {}

  lrAt(k: number): number {
    // torch's SWALR treats anneal_epochs 0 as step >= 1, i.e. swaLr from the first step.
    const t = Math.max(0, Math.min(1, k / Math.max(1, this.annealEpochs)));
    const a = this.annealEpochs === 0 && k >= 1 ? 1 : this.strategy === 'cos' ? (1 - Math.cos(Math.PI * t)) / 2 : t;
    return a === 1 ? this.swaLr : this.swaLr * a + this.lr0 * (1 - a);
  }

  step(): void {
    this.steps += 1;
    setLearningRate(this.optimizer, this.lrAt(this.steps));
  }

  getLastLr(): number[] {
    return [this.lrAt(this.steps)];
  }

  stateDict(): Record<string, unknown> {
    return { steps: this.steps, lr0: this.lr0 };
  }

  loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.steps = Number(state.steps ?? 0);
  }
}

function batchNorms(module: LightningModule): Array<BatchNorm1d | BatchNorm2d> {
  return module.namedModules().map((m) => m.value).filter((m): m is BatchNorm1d | BatchNorm2d => m instanceof BatchNorm1d || m instanceof BatchNorm2d);
}

/**
 * Lightning's StochasticWeightAveraging: from epoch `swaEpochStart` to the last, the weights at the
 * start of each epoch join an equally weighted running average, and the learning rate anneals to
 * `swaLrs` (PyTorch's SWALR, replacing the module's scheduler); when training ends the module gets
 * the averaged weights. A module with BatchNorm layers then gets its running statistics recomputed
 * with the averaged weights: reset, then one pass over the training batches in training mode with a
 * cumulative average (momentum null), no optimizer step, as Lightning's extra epoch does.
 * Needs `maxEpochs` (not -1 with a fractional start), one optimizer and at most one scheduler.
 */
export class StochasticWeightAveraging extends Callback {
  readonly options: z.output<typeof stochasticWeightAveragingOptionsSchema>;
  private swaStartEpoch: number | undefined;
  private maxEpochs = -1;
  private average: tf.Tensor[] | undefined;
  /** How many weight sets the average holds. */
  nAveraged = 0;
  private latestUpdateEpoch = -1;
  private scheduler: SwaLr | undefined;
  private schedulerState: Record<string, unknown> | undefined;

  constructor(options: StochasticWeightAveragingOptions) {
    super();
    this.options = parseOptions('StochasticWeightAveraging', stochasticWeightAveragingOptionsSchema, options);
  }

  /** 0-based first epoch whose starting weights are averaged. */
  get swaStart(): number {
    return Math.max((this.swaStartEpoch ?? 1) - 1, 0);
  }

  get swaEnd(): number {
    return this.maxEpochs === -1 ? Number.POSITIVE_INFINITY : this.maxEpochs - 1;
  }

  override onFitStart(trainer: TrainerContext): void {
    if (trainer.optimizers.length !== 1) throw new MisconfigurationError(`StochasticWeightAveraging works with 1 optimizer (configureOptimizers returned ${trainer.optimizers.length}).`);
    if (trainer.lrSchedulers.length > 1) throw new MisconfigurationError(`StochasticWeightAveraging works with at most 1 LR scheduler (received ${trainer.lrSchedulers.length}).`);
    const maxEpochs = trainer.maxEpochs;
    if (maxEpochs === undefined) throw new MisconfigurationError('StochasticWeightAveraging needs a trainer that tells its maxEpochs.');
    const start = this.options.swaEpochStart;
    if (!Number.isInteger(start) || start === 0) {
      if (maxEpochs === -1) {
        throw new MisconfigurationError('StochasticWeightAveraging option swaEpochStart as a fraction needs maxEpochs; with maxEpochs -1 give swaEpochStart as a whole epoch number.');
      }
      this.swaStartEpoch = Math.floor(maxEpochs * start);
    } else this.swaStartEpoch = start;
    this.maxEpochs = maxEpochs;
  }

  override onTrainEpochStart(trainer: TrainerContext, module: LightningModule): void {
    const epoch = trainer.currentEpoch;
    const inWindow = this.swaStart <= epoch && epoch <= this.swaEnd;
    if (this.scheduler === undefined && inWindow) {
      const opt = trainer.optimizers[0]!;
      const swaLr = Array.isArray(this.options.swaLrs) ? this.options.swaLrs[0]! : this.options.swaLrs;
      const lr0 = this.schedulerState !== undefined ? Number(this.schedulerState.lr0) : getLearningRate(opt.optimizer);
      this.scheduler = new SwaLr(opt.optimizer, lr0, swaLr, this.options.annealingEpochs, this.options.annealingStrategy);
      if (this.schedulerState !== undefined) this.scheduler.loadStateDict(this.schedulerState);
      const config: LRSchedulerConfig = { scheduler: this.scheduler, interval: 'epoch', frequency: 1, monitor: undefined, strict: true, name: undefined, optimizer: opt };
      // The SWA schedule replaces the module's scheduler, as in Lightning.
      const configs = trainer.lrSchedulers as LRSchedulerConfig[];
      if (configs.length > 0) configs[0] = config;
      else configs.push(config);
    }
    if (inWindow && epoch > this.latestUpdateEpoch) {
      this.updateAverage(module);
      this.latestUpdateEpoch = epoch;
    }
  }

  override async onTrainEnd(trainer: TrainerContext, module: LightningModule): Promise<void> {
    if (this.average === undefined) return;
    if (!(trainer.currentEpoch - 1 === this.swaEnd || this.maxEpochs === -1)) return;
    const params = module.parameters();
    params.forEach((p, i) => p.assign(this.average![i]!));
    const norms = batchNorms(module);
    if (norms.length > 0) await this.recomputeBatchNorm(trainer, module, norms);
  }

  override teardown(): void {
    tf.dispose(this.average);
    this.average = undefined;
    this.scheduler = undefined;
  }

  private updateAverage(module: LightningModule): void {
    const params = module.parameters();
    const n = this.nAveraged;
    const next = tf.tidy(() => params.map((p, i) => (n === 0 || this.average === undefined ? p.clone() : tf.add(this.average[i]!, tf.div(tf.sub(p, this.average[i]!), n + 1)))));
    tf.dispose(this.average);
    this.average = next.map((t) => tf.keep(t));
    this.nAveraged = n + 1;
  }

  /** Batch-norm statistics for the averaged weights: reset, then a cumulative average over one pass of the training batches. */
  private async recomputeBatchNorm(trainer: TrainerContext, module: LightningModule, norms: Array<BatchNorm1d | BatchNorm2d>): Promise<void> {
    const loader = trainer.trainDataloader;
    if (loader === undefined) throw new MisconfigurationError('StochasticWeightAveraging: the trainer does not expose its training loader, so batch-norm statistics cannot be recomputed.');
    const momenta = norms.map((bn) => bn.momentum);
    for (const bn of norms) {
      tf.tidy(() => {
        bn.running_mean?.assign(tf.zerosLike(bn.running_mean));
        bn.running_var?.assign(tf.onesLike(bn.running_var));
        bn.num_batches_tracked?.assign(tf.scalar(0, 'int32'));
      });
      (bn as { momentum: number | null }).momentum = null;
    }
    const wasTraining = module.training;
    module.train();
    // trainingStep computes the forward pass; what it logs is dropped (no step of the loop runs).
    const m = module as unknown as { log: unknown };
    m.log = () => undefined;
    try {
      let i = 0;
      const limit = trainer.numTrainingBatches;
      for await (const batch of loader.batches(trainer.currentEpoch)) {
        try {
          if (i < limit) tf.tidy(() => void module.trainingStep(batch as never, i));
        } finally {
          tf.dispose(batch as tf.TensorContainer);
        }
        i += 1;
        if (i >= limit) break;
      }
    } finally {
      delete m.log;
      norms.forEach((bn, k) => ((bn as { momentum: number | null }).momentum = momenta[k]!));
      module.train(wasTraining);
    }
  }

  override stateDict(): Record<string, unknown> {
    return {
      nAveraged: this.nAveraged,
      latestUpdateEpoch: this.latestUpdateEpoch,
      schedulerState: this.scheduler?.stateDict(),
      average: this.average?.map((t) => ({ shape: t.shape, data: Array.from(t.dataSync()) })),
    };
  }

  override loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.nAveraged = Number(state.nAveraged ?? 0);
    this.latestUpdateEpoch = Number(state.latestUpdateEpoch ?? -1);
    this.schedulerState = state.schedulerState as Record<string, unknown> | undefined;
    const avg = state.average as Array<{ shape: number[]; data: number[] }> | undefined;
    tf.dispose(this.average);
    this.average = avg?.map((a) => tf.keep(tf.tensor(a.data, a.shape)));
  }
}
