/**
 * The largest element-wise difference between two lists of tensors' values, relative to the
 * reference's magnitude: for each tensor, |a - b| / max(1e-3, RMS of a). Used by the tests that
 * compare one implementation with another (backends, fused kernels) where values near zero would
 * make a plain relative error meaningless.
 */
export function worstRelativeDifference(reference: readonly ArrayLike<number>[], other: readonly ArrayLike<number>[]): number {
  if (reference.length !== other.length) throw new Error(`worstRelativeDifference: ${reference.length} reference tensors against ${other.length}`);
  let worst = 0;
  reference.forEach((a, i) => {
    const b = other[i]!;
    if (a.length !== b.length) throw new Error(`worstRelativeDifference: tensor ${i} has ${a.length} values against ${b.length}`);
    let sumSq = 0;
    for (let j = 0; j < a.length; j++) sumSq += a[j]! * a[j]!;
    const rms = Math.max(1e-3, Math.sqrt(sumSq / Math.max(1, a.length)));
    for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - b[j]!) / rms);
  });
  return worst;
}
