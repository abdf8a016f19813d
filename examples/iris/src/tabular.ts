/**
 * Small tabular-data helpers: read a CSV that starts with a count line, split it by class with a
 * seed, and standardize the features with statistics of the training rows only.
 *
 * examples/breast-cancer uses them too (through `@flint/example-iris/tabular`).
 */
import { readFile } from 'node:fs/promises';
import { DataError, deriveSeed, permutation } from '@flint/core';

/** A table of float features with an integer class per row. */
export interface LabelledTable {
  readonly rows: number;
  readonly numFeatures: number;
  /** Row-major, `rows * numFeatures` values. */
  readonly features: Float32Array;
  /** The class of each row, in [0, classNames.length). */
  readonly labels: Int32Array;
  readonly classNames: readonly string[];
}

/**
 * Reads a CSV whose first line is a count line, not column names: `rows,features,class0,class1,...`
 * (`150,4,setosa,versicolor,virginica`), then one row per line: the features, then the class as an
 * integer. Anything that does not fit is a DataError naming the line.
 */
export async function readLabelledCsv(path: string | URL): Promise<LabelledTable> {
  const text = await readFile(path, 'utf8');
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  const where = typeof path === 'string' ? path : path.pathname;
  const header = lines[0]?.split(',') ?? [];
  const rows = Number(header[0]);
  const numFeatures = Number(header[1]);
  const classNames = header.slice(2);
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(numFeatures) || numFeatures < 1 || classNames.length < 2) {
    throw new DataError(
      `${where}: line 1 is '${lines[0] ?? ''}'; expected a count line 'rows,features,class0,class1,...' such as '150,4,setosa,versicolor,virginica'.`,
    );
  }
  if (lines.length - 1 !== rows) {
    throw new DataError(`${where}: the count line announces ${rows} rows but the file has ${lines.length - 1}.`);
  }
  const features = new Float32Array(rows * numFeatures);
  const labels = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const fields = lines[r + 1]!.split(',');
    if (fields.length !== numFeatures + 1) {
      throw new DataError(`${where}: line ${r + 2} has ${fields.length} fields; expected ${numFeatures} features and a class.`);
    }
    for (let f = 0; f < numFeatures; f++) {
      const v = Number(fields[f]);
      if (fields[f]!.trim() === '' || !Number.isFinite(v)) {
        throw new DataError(`${where}: line ${r + 2}, field ${f + 1} is '${fields[f]}', not a number.`);
      }
      features[r * numFeatures + f] = v;
    }
    const label = Number(fields[numFeatures]);
    if (!Number.isInteger(label) || label < 0 || label >= classNames.length) {
      throw new DataError(
        `${where}: line ${r + 2} has class '${fields[numFeatures]}'; expected an integer in [0, ${classNames.length - 1}] (${classNames.join(', ')}).`,
      );
    }
    labels[r] = label;
  }
  return { rows, numFeatures, features, labels, classNames };
}

/**
 * Splits row indices into parts of the given fractions (summing to 1), class by class, so that
 * every part has the classes in the data's proportions (sklearn's `train_test_split(stratify=y)`).
 * Each class is shuffled with its own seed derived from `seed`; its rows are shared out by floor,
 * the remainder going one by one to the first parts (as `randomSplit` does).
 */
export function stratifiedSplit(labels: Int32Array, fractions: readonly number[], seed: number): Int32Array[] {
  const sum = fractions.reduce((a, b) => a + b, 0);
  if (fractions.length === 0 || fractions.some((f) => !(f > 0)) || Math.abs(sum - 1) > 1e-9) {
    throw new DataError(`stratifiedSplit: fractions [${fractions.join(', ')}] must be > 0 and sum to 1.`);
  }
  const parts: number[][] = fractions.map(() => []);
  const classes = [...new Set(labels)].sort((a, b) => a - b);
  for (const c of classes) {
    const rows: number[] = [];
    labels.forEach((label, i) => {
      if (label === c) rows.push(i);
    });
    const order = permutation(rows.length, deriveSeed(seed, c));
    const counts = fractions.map((f) => Math.floor(f * rows.length));
    let remainder = rows.length - counts.reduce((a, b) => a + b, 0);
    for (let p = 0; remainder > 0; p = (p + 1) % counts.length, remainder--) counts[p]! += 1;
    let offset = 0;
    counts.forEach((count, p) => {
      for (let k = offset; k < offset + count; k++) parts[p]!.push(rows[order[k]!]!);
      offset += count;
    });
  }
  parts.forEach((part, p) => {
    if (part.length === 0) throw new DataError(`stratifiedSplit: part ${p} (fraction ${fractions[p]}) gets no rows.`);
  });
  return parts.map((part) => Int32Array.from(part));
}

/** Per-feature mean and standard deviation. */
export interface FeatureStats {
  readonly mean: Float64Array;
  readonly std: Float64Array;
}

/**
 * The mean and (population) standard deviation of each feature over the given rows only: pass the
 * training rows, so that nothing about the validation and test rows leaks into training. A
 * constant feature gets std 1 (it then becomes 0 everywhere).
 */
export function featureStats(table: LabelledTable, rows: Int32Array): FeatureStats {
  const d = table.numFeatures;
  const mean = new Float64Array(d);
  const std = new Float64Array(d);
  for (const r of rows) for (let f = 0; f < d; f++) mean[f]! += table.features[r * d + f]! / rows.length;
  for (const r of rows) for (let f = 0; f < d; f++) std[f]! += (table.features[r * d + f]! - mean[f]!) ** 2 / rows.length;
  for (let f = 0; f < d; f++) std[f] = std[f]! > 0 ? Math.sqrt(std[f]!) : 1;
  return { mean, std };
}

/** The given rows' features as `(x - mean) / std`, row-major, and their labels. */
export function standardizeRows(table: LabelledTable, rows: Int32Array, stats: FeatureStats): { x: Float32Array; y: Int32Array } {
  const d = table.numFeatures;
  const x = new Float32Array(rows.length * d);
  const y = new Int32Array(rows.length);
  rows.forEach((r, i) => {
    for (let f = 0; f < d; f++) x[i * d + f] = (table.features[r * d + f]! - stats.mean[f]!) / stats.std[f]!;
    y[i] = table.labels[r]!;
  });
  return { x, y };
}
