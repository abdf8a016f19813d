/**
 * Histogram buckets in TensorBoard's TF2 form: rows `[left, right, count]`, as
 * `tensorboard.plugins.histogram.summary_v2` builds them (equal-width bins between min and max, the
 * last bin closed; all values in one zero-width bin when min equals max). Non-finite values are left
 * out (they have no bin); `nonFinite` tells how many.
 */
export interface HistogramBuckets {
  /** k rows of [left, right, count], row-major, float64. */
  readonly rows: Float64Array;
  readonly bucketCount: number;
  readonly nonFinite: number;
}

export function histogramBuckets(values: ArrayLike<number>, bins: number): HistogramBuckets | undefined {
  let min = Infinity;
  let max = -Infinity;
  let finite = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    finite++;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const nonFinite = values.length - finite;
  if (finite === 0) return undefined;
  const rows = new Float64Array(bins * 3);
  if (min === max) {
    for (let b = 0; b < bins; b++) {
      rows[b * 3] = min;
      rows[b * 3 + 1] = max;
    }
    rows[(bins - 1) * 3 + 2] = finite;
    return { rows, bucketCount: bins, nonFinite };
  }
  const width = (max - min) / bins;
  const counts = new Float64Array(bins);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    const b = Math.min(Math.floor((v - min) / width), bins - 1);
    counts[b]!++;
  }
  for (let b = 0; b < bins; b++) {
    rows[b * 3] = min + b * width;
    rows[b * 3 + 1] = b === bins - 1 ? max : min + (b + 1) * width;
    rows[b * 3 + 2] = counts[b]!;
  }
  return { rows, bucketCount: bins, nonFinite };
}
