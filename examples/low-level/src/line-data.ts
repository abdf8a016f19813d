import { createRng } from '@flint/core';

export interface LineData {
  readonly x: Float32Array;
  readonly y: Float32Array;
}

/**
 * The lesson's data: `points` x evenly spaced in [0, 3], y = 2x + 0.9 plus Gaussian noise
 * (standard deviation `noise`), seeded.
 */
export function makeLineData(seed: number, points = 120, noise = 0.5): LineData {
  const rng = createRng(seed);
  // Box-Muller: a standard normal from two uniforms.
  const normal = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  const x = Float32Array.from({ length: points }, (_, i) => (3 * i) / (points - 1));
  const y = x.map((v) => 2 * v + 0.9 + noise * normal());
  return { x, y };
}

/** The slope and intercept that minimize the mean squared error, in closed form: what gradient descent should find. */
export function leastSquares({ x, y }: LineData): { slope: number; intercept: number } {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
  }
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx };
}
