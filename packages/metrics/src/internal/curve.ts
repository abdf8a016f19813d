/**
 * Exact ROC and precision-recall sums on the host in float64 (torchmetrics with thresholds=None,
 * scikit-learn's `_binary_clf_curve`): scores sorted high to low, one point per distinct score.
 */
export interface Curve {
  /** Cumulative true / false positives at each distinct threshold, highest first. */
  tps: number[];
  fps: number[];
}

export function clfCurve(scores: ArrayLike<number>, positive: (i: number) => boolean): Curve {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const tps: number[] = [];
  const fps: number[] = [];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    if (positive(i)) tp += 1;
    else fp += 1;
    if (k === n - 1 || scores[order[k + 1]!] !== scores[i]) {
      tps.push(tp);
      fps.push(fp);
    }
  }
  return { tps, fps };
}

/** Area under the ROC curve by the trapezoidal rule; 0 when there are no positives or no negatives (as torchmetrics). */
export function rocAuc({ tps, fps }: Curve): number {
  const p = tps.at(-1) ?? 0;
  const n = fps.at(-1) ?? 0;
  if (p <= 0 || n <= 0) return 0;
  let area = 0;
  let x0 = 0;
  let y0 = 0;
  for (let k = 0; k < tps.length; k++) {
    const x = fps[k]! / n;
    const y = tps[k]! / p;
    area += ((x - x0) * (y + y0)) / 2;
    x0 = x;
    y0 = y;
  }
  return area;
}

/** Average precision, Σ (Rₙ − Rₙ₋₁)·Pₙ; NaN when there are no positives. */
export function averagePrecision({ tps, fps }: Curve): number {
  const p = tps.at(-1) ?? 0;
  if (p <= 0) return Number.NaN;
  let ap = 0;
  let r0 = 0;
  for (let k = 0; k < tps.length; k++) {
    const r = tps[k]! / p;
    ap += (r - r0) * (tps[k]! / (tps[k]! + fps[k]!));
    r0 = r;
  }
  return ap;
}
