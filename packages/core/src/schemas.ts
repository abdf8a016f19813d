import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { MisconfigurationError } from './errors.js';

const WHOLE = 'must be a whole number >= 0';
const POSITIVE = 'must be a whole number >= 1';

/** A whole number >= 0 (a count, a patience, an epoch). */
export const wholeNumber = z.number({ error: WHOLE }).int({ error: WHOLE }).min(0, { error: WHOLE });

/** A whole number >= 1 (a period, a step size). */
export const positiveInt = z.number({ error: POSITIVE }).int({ error: POSITIVE }).min(1, { error: POSITIVE });

const part = z.number({ error: 'must be a number >= 0' }).nonnegative({ error: 'must be a number >= 0' }).optional();

const DURATION_ERROR = 'must be seconds (a number > 0), "DD:HH:MM:SS" (e.g. "00:12:00:00") or { days, hours, minutes, seconds } adding up to more than 0';

/** A duration: seconds (> 0), "DD:HH:MM:SS", or { days, hours, minutes, seconds } adding up to more than 0. */
export const durationSchema = z.union(
  [
    z.number().positive({ error: DURATION_ERROR }),
    z.string().regex(/^\d+:\d{1,2}:\d{1,2}:\d{1,2}$/, { error: DURATION_ERROR }),
    z
      .strictObject({ days: part, hours: part, minutes: part, seconds: part })
      .refine((d) => (d.days ?? 0) + (d.hours ?? 0) + (d.minutes ?? 0) + (d.seconds ?? 0) > 0, { error: DURATION_ERROR }),
  ],
  { error: DURATION_ERROR },
);

export type Duration = z.input<typeof durationSchema>;

/** A duration in seconds. */
export function durationSeconds(value: Duration): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') {
    const [d, h, m, s] = value.split(':').map(Number) as [number, number, number, number];
    return ((d * 24 + h) * 60 + m) * 60 + s;
  }
  return (((value.days ?? 0) * 24 + (value.hours ?? 0)) * 60 + (value.minutes ?? 0)) * 60 + (value.seconds ?? 0);
}

/**
 * A tfjs optimizer (`tf.train.adam(1e-3)`, or one of Flint's). Checked by shape (`applyGradients`,
 * `getConfig`), not `instanceof`, so that an optimizer of another copy of tfjs passes.
 */
export const tfOptimizerSchema = z.custom<tf.Optimizer>(
  (v) => v !== null && typeof v === 'object' && typeof (v as tf.Optimizer).applyGradients === 'function' && typeof (v as tf.Optimizer).getConfig === 'function',
  { error: 'must be a tfjs optimizer, e.g. tf.train.adam(1e-3)' },
);

/** `optimizer` when it is a tfjs optimizer; else a MisconfigurationError: `${owner}: the first argument must be ...`. */
export function checkTfOptimizer(owner: string, optimizer: unknown): tf.Optimizer {
  const parsed = tfOptimizerSchema.safeParse(optimizer);
  if (parsed.success) return parsed.data;
  throw new MisconfigurationError(
    `${owner}: the first argument must be the tfjs optimizer to schedule, e.g. tf.train.adam(1e-3) (received ${optimizer === null ? 'null' : typeof optimizer}).`,
  );
}

/**
 * A learning-rate scheduler, driven by the trainer according to its `LRSchedulerConfig`
 * (`interval`, `frequency`, `monitor`). Implementations live in `@flint/callbacks`.
 */
export interface LRScheduler {
  /** Advance one interval. `metric` is the monitored value when the config has `monitor`. */
  step(metric?: number): void;
  /** The learning rate(s) set by the last step. */
  getLastLr(): number[];
  stateDict(): Record<string, unknown>;
  loadStateDict(state: Readonly<Record<string, unknown>>): void;
}

/** An LR scheduler config as `configureOptimizers` returns it (`{ scheduler, interval, ... }`), with Lightning's defaults. */
export const lrSchedulerConfigSchema = z.strictObject({
  scheduler: z.custom<LRScheduler>((v) => v !== null && typeof v === 'object' && typeof (v as LRScheduler).step === 'function', {
    error: 'must be an LR scheduler (an object with a step() method)',
  }),
  /** Step the scheduler every epoch (default) or every optimizer step. */
  interval: z.enum(['epoch', 'step']).default('epoch'),
  /** Step the scheduler every `frequency` intervals. */
  frequency: positiveInt.default(1),
  /** Metric passed to `scheduler.step(metric)` (ReduceLROnPlateau). */
  monitor: z.string().min(1).optional(),
  /** With `monitor`: fail when the metric is missing (default) or skip the step. */
  strict: z.boolean().default(true),
  /** Name for LearningRateMonitor. */
  name: z.string().min(1).optional(),
});
