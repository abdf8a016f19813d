import type { Metrics, TrainerContext } from '@flint/core';
import { z } from 'zod';

/**
 * Lightning-style state keys: the class name plus the options that tell two instances apart, so
 * that two EarlyStoppings on different metrics keep separate states in a checkpoint
 * (`EarlyStopping{"monitor":"val_loss","mode":"min"}`).
 */
export function stateKeyOf(name: string, parts: Readonly<Record<string, unknown>>): string {
  const defined = Object.fromEntries(Object.entries(parts).filter(([, v]) => v !== undefined));
  return `${name}${JSON.stringify(defined)}`;
}

/**
 * Sends values a callback computed (learning rates, dropout rates, the generalization gap) to the
 * loggers at the current global step through `trainer.logMetrics` (so that they also appear in
 * `trainer.loggedMetrics`).
 */
export async function logToLoggers(trainer: TrainerContext, metrics: Readonly<Record<string, number>>): Promise<void> {
  if (Object.keys(metrics).length === 0) return;
  await trainer.logMetrics(metrics, trainer.globalStep);
}

const part = z.number({ error: 'must be a number >= 0' }).nonnegative({ error: 'must be a number >= 0' }).optional();

const DURATION_ERROR = 'must be seconds (a number > 0), "DD:HH:MM:SS" (e.g. "00:12:00:00") or { days, hours, minutes, seconds } adding up to more than 0';

/** A duration: seconds (> 0), "DD:HH:MM:SS", or { days, hours, minutes, seconds }. */
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

/** Formats a number for messages: 4 significant decimals, or as is when it is an integer or not finite. */
export function fmt(value: number): string {
  if (!Number.isFinite(value) || Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e5) ? value.toExponential(3) : String(Number(value.toPrecision(4)));
}

/** "a, b, c", or "(none logged yet)". */
export function listKeys(metrics: Metrics): string {
  const keys = Object.keys(metrics).sort();
  return keys.length > 0 ? keys.join(', ') : '(none logged yet)';
}
