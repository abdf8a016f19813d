import { createRng, DataError, type Rng } from '@flint/core';

export interface MakeClassificationOptions {
  /** Rows. Default 1000. */
  samples?: number;
  /** Features that carry the class: the clusters live in their space. Default 2. */
  informative?: number;
  /** Random linear combinations of the informative features (correlated, no new information). Default 2. */
  redundant?: number;
  /** Pure-noise features. Default 1. */
  useless?: number;
  /** Gaussian clusters per class, each at its own corner of a hypercube. Default 2. */
  clustersPerClass?: number;
  /** Half the side of the hypercube whose corners hold the clusters: larger is easier. Default 1. */
  classSep?: number;
  /** Fraction of labels replaced by a random class (label noise). Default 0.01. */
  flipY?: number;
  /** Default 0. */
  seed?: number;
}

export interface ClassificationData {
  /** Row-major [samples, features]: informative, then redundant, then useless columns. */
  readonly x: Float32Array;
  /** 0 or 1, one per row. */
  readonly y: Int32Array;
  readonly samples: number;
  readonly features: number;
}

/**
 * A two-class data set like scikit-learn's `make_classification`: each class is a few Gaussian
 * clusters centred on distinct corners of a hypercube of side `2 * classSep` in the informative
 * features, each cluster stretched by its own random linear map; redundant features are random
 * linear combinations of the informative ones, useless features are noise, and a fraction `flipY`
 * of labels is randomized. Rows alternate between clusters, so the classes are balanced. The same
 * seed always gives the same data.
 */
export function makeClassification(options: MakeClassificationOptions = {}): ClassificationData {
  const {
    samples = 1000,
    informative = 2,
    redundant = 2,
    useless = 1,
    clustersPerClass = 2,
    classSep = 1,
    flipY = 0.01,
    seed = 0,
  } = options;
  const clusters = 2 * clustersPerClass;
  const wholeAtLeast = (name: string, value: number, min: number) => {
    if (!Number.isInteger(value) || value < min) throw new DataError(`makeClassification: ${name} must be a whole number >= ${min} (received ${value}).`);
  };
  wholeAtLeast('samples', samples, clusters);
  wholeAtLeast('informative', informative, 1);
  wholeAtLeast('redundant', redundant, 0);
  wholeAtLeast('useless', useless, 0);
  wholeAtLeast('clustersPerClass', clustersPerClass, 1);
  if (2 ** informative < clusters) {
    throw new DataError(
      `makeClassification: ${clusters} clusters (2 classes x clustersPerClass ${clustersPerClass}) need ${clusters} corners, ` +
        `but ${informative} informative features give a hypercube of ${2 ** informative}; raise informative or lower clustersPerClass.`,
    );
  }
  if (!(classSep > 0)) throw new DataError(`makeClassification: classSep must be > 0 (received ${classSep}).`);
  if (!(flipY >= 0 && flipY <= 1)) throw new DataError(`makeClassification: flipY must be in [0, 1] (received ${flipY}).`);

  const rng = createRng(seed);
  const normal = gaussian(rng);
  const features = informative + redundant + useless;

  // Distinct random corners of the hypercube {-classSep, +classSep}^informative, one per cluster.
  const corners = new Set<number>();
  while (corners.size < clusters) corners.add(Math.floor(rng.next() * 2 ** informative));
  const centroids = [...corners].map((corner) => Array.from({ length: informative }, (_, f) => ((corner >> f) & 1 ? classSep : -classSep)));
  // Each cluster's random linear map (a random covariance), entries uniform in [-1, 1].
  const maps = centroids.map(() => Array.from({ length: informative * informative }, () => 2 * rng.next() - 1));
  // Redundant features = informative features times a random matrix [informative, redundant].
  const mix = Array.from({ length: informative * redundant }, () => 2 * rng.next() - 1);

  const x = new Float32Array(samples * features);
  const y = new Int32Array(samples);
  const z = new Float64Array(informative);
  for (let i = 0; i < samples; i++) {
    const cluster = i % clusters;
    y[i] = cluster % 2; // clusters alternate between the classes
    for (let f = 0; f < informative; f++) z[f] = normal();
    const row = i * features;
    for (let f = 0; f < informative; f++) {
      let v = centroids[cluster]![f]!;
      for (let k = 0; k < informative; k++) v += z[k]! * maps[cluster]![k * informative + f]!;
      x[row + f] = v;
    }
    for (let r = 0; r < redundant; r++) {
      let v = 0;
      for (let f = 0; f < informative; f++) v += x[row + f]! * mix[f * redundant + r]!;
      x[row + informative + r] = v;
    }
    for (let u = 0; u < useless; u++) x[row + informative + redundant + u] = normal();
    if (rng.next() < flipY) y[i] = rng.next() < 0.5 ? 0 : 1;
  }
  return { x, y, samples, features };
}

/** Standard normal numbers from a seeded generator (Box-Muller). */
function gaussian(rng: Rng): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
}
