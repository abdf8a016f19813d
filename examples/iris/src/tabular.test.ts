import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataError } from '@flint/core';
import { describe, expect, it } from 'vitest';
import { featureStats, IRIS_CSV, readLabelledCsv, standardizeRows, stratifiedSplit } from './index.js';

describe('tabular helpers', () => {
  it('reads the count line and 150 rows of Iris', async () => {
    const table = await readLabelledCsv(IRIS_CSV);
    expect(table.rows).toBe(150);
    expect(table.numFeatures).toBe(4);
    expect(table.classNames).toEqual(['setosa', 'versicolor', 'virginica']);
    expect([...table.features.slice(0, 4)].map((v) => Number(v.toFixed(2)))).toEqual([5.1, 3.5, 1.4, 0.2]);
    expect([0, 1, 2].map((c) => table.labels.filter((l) => l === c).length)).toEqual([50, 50, 50]);
  });

  it('names the line that does not fit', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-tabular-'));
    try {
      const file = path.join(dir, 'bad.csv');
      await fs.writeFile(file, '2,2,a,b\n1,2,0\n1,x,1\n');
      await expect(readLabelledCsv(file)).rejects.toThrow(new DataError(`${file}: line 3, field 2 is 'x', not a number.`));
      await fs.writeFile(file, 'sepal,petal\n1,2,0\n');
      await expect(readLabelledCsv(file)).rejects.toThrow(/line 1 is 'sepal,petal'; expected a count line/);
      await fs.writeFile(file, '3,2,a,b\n1,2,0\n');
      await expect(readLabelledCsv(file)).rejects.toThrow('the count line announces 3 rows but the file has 1.');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('splits by class into disjoint parts that cover every row, the same for the same seed', async () => {
    const { labels } = await readLabelledCsv(IRIS_CSV);
    const parts = stratifiedSplit(labels, [0.6, 0.2, 0.2], 42);
    expect(parts.map((p) => p.length)).toEqual([90, 30, 30]);
    for (const part of parts) {
      expect([0, 1, 2].map((c) => part.filter((r) => labels[r] === c).length)).toEqual([part.length / 3, part.length / 3, part.length / 3]);
    }
    expect(new Set(parts.flatMap((p) => [...p])).size).toBe(150);
    expect(stratifiedSplit(labels, [0.6, 0.2, 0.2], 42)).toEqual(parts);
    expect(stratifiedSplit(labels, [0.6, 0.2, 0.2], 43)[0]).not.toEqual(parts[0]);
  });

  it('standardizes with the statistics of the rows given: those rows get mean 0 and std 1, the others not exactly', async () => {
    const table = await readLabelledCsv(IRIS_CSV);
    const [train, , test] = stratifiedSplit(table.labels, [0.6, 0.2, 0.2], 1) as [Int32Array, Int32Array, Int32Array];
    const stats = featureStats(table, train);
    const moments = (x: Float32Array, n: number) =>
      [0, 1, 2, 3].map((f) => {
        const col = Array.from({ length: n }, (_, i) => x[i * 4 + f]!);
        const mean = col.reduce((a, b) => a + b, 0) / n;
        return [mean, Math.sqrt(col.reduce((a, b) => a + (b - mean) ** 2, 0) / n)];
      });
    for (const [mean, std] of moments(standardizeRows(table, train, stats).x, train.length)) {
      expect(mean).toBeCloseTo(0, 5);
      expect(std).toBeCloseTo(1, 5);
    }
    const testMoments = moments(standardizeRows(table, test, stats).x, test.length);
    expect(testMoments.some(([mean]) => Math.abs(mean!) > 1e-3)).toBe(true);
  });
});
