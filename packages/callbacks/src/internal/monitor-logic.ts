/** Whether lower ('min') or higher ('max') values of a monitored metric are better. */
export type MonitorMode = 'min' | 'max';

/**
 * The comparison EarlyStopping, ModelCheckpoint and ReduceLROnPlateau share: `current` improves on
 * `reference` when it is better by more than `minDelta` (an absolute amount, or with
 * `thresholdMode: 'rel'` a fraction of `reference`). NaN never improves; anything finite improves on
 * the worst value (Infinity for 'min', -Infinity for 'max').
 */
export function isImprovement(
  mode: MonitorMode,
  minDelta: number,
  current: number,
  reference: number,
  thresholdMode: 'abs' | 'rel' = 'abs',
): boolean {
  if (Number.isNaN(current)) return false;
  if (Number.isNaN(reference)) return true;
  if (thresholdMode === 'rel') {
    return mode === 'min' ? current < reference * (1 - minDelta) : current > reference * (1 + minDelta);
  }
  return mode === 'min' ? current < reference - minDelta : current > reference + minDelta;
}

/** The value every real score improves on. */
export function worstValue(mode: MonitorMode): number {
  return mode === 'min' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
}

/** A score for ranking: NaN counts as the worst value. */
export function rankable(mode: MonitorMode, value: number): number {
  return Number.isNaN(value) ? worstValue(mode) : value;
}

/** True when `a` is strictly better than `b`. */
export function better(mode: MonitorMode, a: number, b: number): boolean {
  return mode === 'min' ? a < b : a > b;
}
