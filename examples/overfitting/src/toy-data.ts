import { createRng, DataError } from '@flint/core';

export interface ToyDataOptions {
  /** Seed of the x positions and the noise. */
  seed: number;
  /** Training points. Default 7: as many as the polynomial has parameters, so that it can pass through all of them. */
  trainPoints?: number;
  /** Validation points, drawn from the same distribution. Default 50. */
  valPoints?: number;
  /** Standard deviation of the noise added to y. Default 0.5. */
  noise?: number;
  /** Smallest distance between two training x (so that no two points sit on top of each other). Default 0.15. */
  minGap?: number;
}

export interface ToyData {
  readonly xTrain: Float32Array;
  readonly yTrain: Float32Array;
  readonly xVal: Float32Array;
  readonly yVal: Float32Array;
}

/** The noiseless truth: a line. */
export const truth = (x: number): number => 2 * x + 1;

/**
 * The lesson's toy: a few noisy points of the line y = 2x + 1, x uniform in [-1, 1] (training x at
 * least `minGap` apart), y plus Gaussian noise; validation points drawn the same way.
 */
export function makeToyData(options: ToyDataOptions): ToyData {
  const { seed, trainPoints = 7, valPoints = 50, noise = 0.5, minGap = 0.15 } = options;
  if (trainPoints < 2 || (trainPoints - 1) * minGap >= 2) {
    throw new DataError(`makeToyData: ${trainPoints} training points at least ${minGap} apart do not fit in [-1, 1].`);
  }
  const rng = createRng(seed);
  const uniform = () => -1 + 2 * rng.next();
  // Box-Muller: a standard normal from two uniforms.
  const normal = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  let xs: number[];
  do {
    xs = Array.from({ length: trainPoints }, uniform).sort((a, b) => a - b);
  } while (xs.some((x, i) => i > 0 && x - xs[i - 1]! < minGap));
  const xTrain = Float32Array.from(xs);
  const yTrain = xTrain.map((x) => truth(x) + noise * normal());
  const xVal = Float32Array.from({ length: valPoints }, uniform);
  const yVal = xVal.map((x) => truth(x) + noise * normal());
  return { xTrain, yTrain, xVal, yVal };
}
