import { describe, expect, it } from 'vitest';
import { worstRelativeDifference } from './compare.js';

describe('worstRelativeDifference', () => {
  it('is 0 for equal values and scales each difference by the reference tensor RMS', () => {
    expect(worstRelativeDifference([[1, 2, 3]], [[1, 2, 3]])).toBe(0);
    // RMS of [3, 4] is sqrt(12.5); a difference of 0.5 in the second tensor dominates.
    const d = worstRelativeDifference([[1, 1], [3, 4]], [[1, 1.01], [3, 4.5]]);
    expect(d).toBeCloseTo(0.5 / Math.sqrt(12.5), 12);
  });

  it('uses 1e-3 as the smallest scale, so values near zero do not blow up', () => {
    expect(worstRelativeDifference([new Float32Array([0, 0])], [new Float32Array([0, 1e-6])])).toBeCloseTo(1e-3, 9);
  });

  it('throws when the lists or tensors differ in length, naming both counts', () => {
    expect(() => worstRelativeDifference([[1]], [])).toThrow('1 reference tensors against 0');
    expect(() => worstRelativeDifference([[1, 2]], [[1]])).toThrow('tensor 0 has 2 values against 1');
  });
});
