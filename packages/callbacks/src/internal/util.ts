import type { Metrics, TrainerContext } from '@flint/core';

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
