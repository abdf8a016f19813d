import { MisconfigurationError } from '../errors.js';
import { getGlobalSeed, permutation } from '../seed.js';
import type { TensorBatch } from './batch.js';
import { TensorDataset, type TensorDatasetSource } from './tensor-dataset.js';

/**
 * Splits a data set into disjoint random subsets, as torch's `random_split`. `lengths` are row
 * counts summing to the number of rows n, or fractions summing to 1 (each split gets
 * floor(fraction * n) rows, then the remaining rows go one by one to the first splits). Every split
 * must get at least one row.
 *
 * The rows are shuffled with `permutation(n, seed)`; the default seed is the one given to
 * `seedEverything`, else 0, so a split is the same from run to run unless you ask otherwise.
 *
 * The splits are views sharing the source's tensors. For a raw source (arrays, records) the
 * tensors created for it are freed once every split is disposed; a `TensorDataset` you pass stays
 * yours to dispose (its tensors live until it and every split are disposed).
 */
export function randomSplit<B extends TensorBatch = TensorBatch, const L extends readonly number[] = readonly number[]>(
  source: TensorDataset<B> | TensorDatasetSource,
  lengths: L,
  seed?: number,
): { -readonly [K in keyof L]: TensorDataset<B> } {
  const created = !(source instanceof TensorDataset);
  const dataset = source instanceof TensorDataset ? source : (TensorDataset.from(source) as unknown as TensorDataset<B>);
  try {
    const n = dataset.length;
    const counts = splitCounts(lengths, n);
    const s = seed ?? getGlobalSeed() ?? 0;
    if (!Number.isInteger(s) || s < 0 || s > 0xffff_ffff) {
      throw new MisconfigurationError(`randomSplit: seed must be an integer in [0, 4294967295] (received ${s}).`);
    }
    const order = permutation(n, s);
    let offset = 0;
    // One split per entry of `lengths`: a tuple of lengths gives a tuple of splits.
    return counts.map((count) => {
      const split = dataset.subset(order.subarray(offset, offset + count));
      offset += count;
      return split;
    }) as { -readonly [K in keyof L]: TensorDataset<B> };
  } finally {
    // The splits hold their own reference to the tensors: releasing ours frees them with the last split.
    if (created) dataset.dispose();
  }
}

function splitCounts(lengths: readonly number[], n: number): number[] {
  const shown = `[${lengths.join(', ')}]`;
  const fail = (why: string): never => {
    throw new MisconfigurationError(
      `randomSplit: lengths ${shown} ${why} for a data set of ${n} rows; give row counts summing to ${n} ` +
        '(e.g. [train, val]) or fractions summing to 1 (e.g. [0.8, 0.2]), each split getting at least one row.',
    );
  };
  if (!Array.isArray(lengths) || lengths.length === 0) fail('are empty');
  if (!lengths.every((l) => typeof l === 'number' && Number.isFinite(l) && l >= 0)) fail('are not all finite numbers >= 0');
  const sum = lengths.reduce((a, b) => a + b, 0);
  let counts: number[];
  if (Math.abs(sum - 1) <= 1e-9 && lengths.every((l) => l <= 1)) {
    counts = lengths.map((f) => Math.floor(f * n));
    const remainder = n - counts.reduce((a, b) => a + b, 0);
    for (let i = 0; i < remainder; i++) counts[i % counts.length]! += 1;
  } else if (lengths.every((l) => Number.isInteger(l))) {
    if (sum !== n) fail(`sum to ${sum}`);
    counts = [...lengths];
  } else {
    fail(`are neither whole numbers nor fractions summing to 1 (they sum to ${sum})`);
  }
  const empty = counts!.findIndex((c) => c === 0);
  if (empty >= 0) fail(`leave split ${empty} empty (row counts [${counts!.join(', ')}])`);
  return counts!;
}
