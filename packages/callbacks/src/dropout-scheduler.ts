import { Callback, CheckpointError, Dropout, MisconfigurationError, parseOptions, positiveInt, type LightningModule, type TrainerContext } from '@flint/core';
import { z } from 'zod';
import { logToLoggers, stateKeyOf } from './internal/util.js';

const RATE_ERROR = 'must be a dropout rate in [0, 1)';
const rate = z.number({ error: RATE_ERROR }).min(0, { error: RATE_ERROR }).lt(1, { error: RATE_ERROR });
const count = positiveInt;
const gamma = z.number({ error: 'must be a factor in (0, 1]' }).gt(0, { error: 'must be a factor in (0, 1]' }).max(1, { error: 'must be a factor in (0, 1]' });

/** A user schedule: the rate for this epoch and global step (both 0-based). */
export type DropoutScheduleFn = (epoch: number, step: number) => number;

/**
 * The shapes of a dropout schedule. `t` counts intervals from 0: epochs with `interval: 'epoch'`,
 * optimizer steps with `interval: 'step'`.
 */
export const dropoutScheduleSchema = z.union(
  [
    z.custom<DropoutScheduleFn>((v) => typeof v === 'function'),
    z.discriminatedUnion('type', [
      /** The same rate throughout. */
      z.strictObject({ type: z.literal('constant'), rate }),
      /** From `start` to `end` in a straight line over `duration` intervals, then `end`. */
      z.strictObject({ type: z.literal('linear'), start: rate, end: rate, duration: count }),
      /** `start * gamma^floor(t / stepSize)`. */
      z.strictObject({ type: z.literal('step'), start: rate, gamma, stepSize: count }),
      /** `start * gamma^t`. */
      z.strictObject({ type: z.literal('exponential'), start: rate, gamma }),
      /** From `start` to `end` along half a cosine over `duration` intervals, then `end`. */
      z.strictObject({ type: z.literal('cosine'), start: rate, end: rate, duration: count }),
      /** Linear warm-up from `start` to `peak` over `warmup` intervals, then decay to `end` at `duration`. */
      z
        .strictObject({
          type: z.literal('warmup'),
          start: rate.default(0),
          peak: rate,
          end: rate,
          warmup: count,
          duration: count,
          decay: z.enum(['cosine', 'linear'], { error: "must be 'cosine' or 'linear'" }).default('cosine'),
        })
        .refine((s) => s.duration > s.warmup, { error: 'duration must be larger than warmup (both count intervals from the start)' }),
    ]),
  ],
  {
    error:
      "must be a function (epoch, step) => rate or { type: 'constant' | 'linear' | 'step' | 'exponential' | 'cosine' | 'warmup', ... } (see docs/callbacks.md)",
  },
);

export type DropoutSchedule = z.input<typeof dropoutScheduleSchema>;

export const dropoutSchedulerOptionsSchema = z.strictObject({
  /** How the rate changes. */
  schedule: dropoutScheduleSchema,
  /** Recompute the rate at every epoch start (default) or before every optimizer step. */
  interval: z.enum(['epoch', 'step'], { error: "must be 'epoch' or 'step'" }).default('epoch'),
  /** 'all' dropout layers of the module, or these names (from module.namedModules() / namedLayers()). */
  layers: z
    .union([z.literal('all'), z.array(z.string().min(1), { error: "must be 'all' or a list of layer names" }).min(1, { error: "must be 'all' or a non-empty list of layer names" })], {
      error: "must be 'all' or a list of layer names",
    })
    .default('all'),
  /** Send the rates to the loggers as `dropout/<name>` whenever they are set. */
  logRates: z.boolean({ error: 'must be true or false' }).default(true),
});

export type DropoutSchedulerOptions = z.input<typeof dropoutSchedulerOptionsSchema>;

type ParsedSchedule = z.output<typeof dropoutScheduleSchema>;

/** Something whose dropout rate can be set: Flint's Dropout, or a tfjs-layers Dropout/SpatialDropout1D/GaussianDropout/AlphaDropout. */
interface RateHolder {
  rate: number;
}

const TFJS_DROPOUTS: ReadonlySet<string> = new Set(['Dropout', 'SpatialDropout1D', 'GaussianDropout', 'AlphaDropout']);

/** Every dropout layer of a module with its dotted name. */
export function findDropoutLayers(module: LightningModule): Map<string, RateHolder> {
  const found = new Map<string, RateHolder>();
  for (const { name, value } of module.namedModules()) if (value instanceof Dropout) found.set(name, value);
  for (const { name, value } of module.namedLayers()) {
    if (TFJS_DROPOUTS.has(value.getClassName()) && typeof (value as unknown as RateHolder).rate === 'number') found.set(name, value as unknown as RateHolder);
  }
  return found;
}

/** The rate a built-in schedule gives at interval `t`. */
export function scheduledRate(schedule: Exclude<ParsedSchedule, DropoutScheduleFn>, t: number): number {
  const cosine = (from: number, to: number, progress: number) => to + ((from - to) * (1 + Math.cos(Math.PI * Math.min(1, progress)))) / 2;
  switch (schedule.type) {
    case 'constant':
      return schedule.rate;
    case 'linear':
      return schedule.start + (schedule.end - schedule.start) * Math.min(1, t / schedule.duration);
    case 'step':
      return schedule.start * schedule.gamma ** Math.floor(t / schedule.stepSize);
    case 'exponential':
      return schedule.start * schedule.gamma ** t;
    case 'cosine':
      return cosine(schedule.start, schedule.end, t / schedule.duration);
    case 'warmup': {
      if (t < schedule.warmup) return schedule.start + ((schedule.peak - schedule.start) * t) / schedule.warmup;
      const progress = (t - schedule.warmup) / (schedule.duration - schedule.warmup);
      if (schedule.decay === 'linear') return schedule.peak + (schedule.end - schedule.peak) * Math.min(1, progress);
      return cosine(schedule.peak, schedule.end, progress);
    }
  }
}

/**
 * Changes the rate of the module's dropout layers during training (no anchor framework has it):
 * a constant, linear, step, exponential, cosine or warm-up-then-decay schedule, or your function
 * of (epoch, step); per epoch or per optimizer step; for all dropout layers or the ones you name.
 * Works with Flint's `Dropout` and the tfjs-layers dropout layers (their `rate` is read at every
 * call). Eval mode is untouched: dropout layers do nothing there, whatever the rate. The rates
 * are logged as `dropout/<name>` and saved in checkpoints.
 */
export class DropoutScheduler extends Callback {
  readonly options: z.output<typeof dropoutSchedulerOptionsSchema>;
  /** The rates last set, by layer name. */
  readonly rates: Record<string, number> = {};
  private layers = new Map<string, RateHolder>();
  private pending: Record<string, number> | undefined;

  constructor(options: DropoutSchedulerOptions) {
    super();
    this.options = parseOptions('DropoutScheduler', dropoutSchedulerOptionsSchema, options);
  }

  override get stateKey(): string {
    return stateKeyOf('DropoutScheduler', { layers: this.options.layers });
  }

  /** The rate the schedule gives for this epoch and step. */
  rateAt(epoch: number, step: number): number {
    const s = this.options.schedule;
    const value = typeof s === 'function' ? s(epoch, step) : scheduledRate(s, this.options.interval === 'epoch' ? epoch : step);
    if (typeof value !== 'number' || !(value >= 0 && value < 1)) {
      throw new MisconfigurationError(`DropoutScheduler: the schedule gave the rate ${String(value)} at epoch ${epoch}, step ${step}; a dropout rate must be in [0, 1).`);
    }
    return value;
  }

  override async onFitStart(trainer: TrainerContext, module: LightningModule): Promise<void> {
    const all = findDropoutLayers(module);
    const wanted = this.options.layers;
    if (all.size === 0) {
      throw new MisconfigurationError(`DropoutScheduler: ${module.constructor.name} has no dropout layers (Flint's Dropout or tfjs-layers Dropout).`);
    }
    if (wanted === 'all') this.layers = all;
    else {
      const missing = wanted.filter((n) => !all.has(n));
      if (missing.length > 0) {
        throw new MisconfigurationError(
          `DropoutScheduler option 'layers': ${missing.map((n) => `'${n}'`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not a dropout layer of ${module.constructor.name}; its dropout layers are: ${[...all.keys()].join(', ')}.`,
        );
      }
      this.layers = new Map(wanted.map((n) => [n, all.get(n)!]));
    }
    if (this.pending !== undefined) {
      const unknown = Object.keys(this.pending).filter((n) => !this.layers.has(n));
      if (unknown.length > 0) {
        throw new CheckpointError(`DropoutScheduler: the checkpoint holds rates for ${unknown.join(', ')}, which are not among the scheduled dropout layers (${[...this.layers.keys()].join(', ')}).`);
      }
      await this.apply(trainer, this.pending);
      this.pending = undefined;
    }
  }

  override async onTrainEpochStart(trainer: TrainerContext): Promise<void> {
    if (this.options.interval !== 'epoch') return;
    await this.set(trainer);
  }

  override async onTrainBatchStart(trainer: TrainerContext): Promise<void> {
    if (this.options.interval !== 'step') return;
    await this.set(trainer);
  }

  override stateDict(): Record<string, unknown> {
    return { rates: { ...this.rates } };
  }

  override loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.pending = { ...((state.rates ?? {}) as Record<string, number>) };
  }

  private async set(trainer: TrainerContext): Promise<void> {
    const value = this.rateAt(trainer.currentEpoch, trainer.globalStep);
    await this.apply(trainer, Object.fromEntries([...this.layers.keys()].map((n) => [n, value])));
  }

  private async apply(trainer: TrainerContext, rates: Readonly<Record<string, number>>): Promise<void> {
    for (const [name, value] of Object.entries(rates)) {
      this.layers.get(name)!.rate = value;
      this.rates[name] = value;
    }
    if (this.options.logRates && !trainer.sanityChecking) {
      await logToLoggers(trainer, Object.fromEntries(Object.entries(rates).map(([n, v]) => [`dropout/${n}`, v])));
    }
  }
}
