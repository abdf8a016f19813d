import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { createRng, type Rng } from '@flint/core';
import { askPythonOracle, expectNoLeak } from '@flint/core/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  Accuracy,
  AUROC,
  AveragePrecision,
  ConfusionMatrix,
  F1Score,
  FBetaScore,
  MeanAbsoluteError,
  MeanSquaredError,
  Precision,
  R2Score,
  Recall,
  type Metric,
} from './index.js';

// Every metric against torchmetrics 1.9 and scikit-learn (pip, in a venv made by
// scripts/metrics-venv.sh), on seeded random cases: many shapes, 2..10 classes, probabilities,
// logits and labels, fed in uneven batches. Skips, saying why, where pip cannot get them.

const venvScript = fileURLToPath(new URL('../scripts/metrics-venv.sh', import.meta.url));
const oracle = fileURLToPath(new URL('../scripts/oracle.py', import.meta.url));
const repo = path.resolve(path.dirname(venvScript), '../../..');

interface HostTensor {
  data: number[];
  shape: number[];
  dtype: 'float32' | 'int32';
}
interface Case {
  id: string;
  metric: string;
  options: Record<string, unknown>;
  batches: Array<{ preds: HostTensor; target: HostTensor }>;
}
type Value = number | string | Array<number | string>;

const METRICS: Record<string, new (options: never) => Metric> = {
  Accuracy,
  Precision,
  Recall,
  F1Score,
  FBetaScore,
  ConfusionMatrix,
  AUROC,
  AveragePrecision,
  MeanSquaredError,
  MeanAbsoluteError,
  R2Score,
};

// ---- seeded random cases ----------------------------------------------------------------------

const rng: Rng = createRng(16);
const int = (lo: number, hi: number): number => lo + Math.floor(rng.next() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** Splits n rows into 1..4 batches of uneven sizes. */
function splits(n: number): number[] {
  const k = Math.min(n, int(1, 4));
  const cuts = new Set<number>();
  while (cuts.size < k - 1) cuts.add(int(1, n - 1));
  const sorted = [0, ...[...cuts].sort((a, b) => a - b), n];
  return sorted.slice(1).map((c, i) => c - sorted[i]!);
}

/** Rows [n, ...rest] cut into batches along axis 0. */
function batchesOf(preds: HostTensor, target: HostTensor): Case['batches'] {
  const n = preds.shape[0]!;
  const out: Case['batches'] = [];
  let at = 0;
  for (const size of splits(n)) {
    const slice = (t: HostTensor): HostTensor => {
      const row = prod(t.shape.slice(1));
      return { data: t.data.slice(at * row, (at + size) * row), shape: [size, ...t.shape.slice(1)], dtype: t.dtype };
    };
    out.push({ preds: slice(preds), target: slice(target) });
    at += size;
  }
  return out;
}

type Scores = 'probs' | 'logits' | 'labels';
const scores = (shape: number[], kind: Scores, classes: number): HostTensor =>
  kind === 'labels'
    ? { data: Array.from({ length: prod(shape) }, () => int(0, classes - 1)), shape, dtype: 'int32' }
    : { data: Array.from({ length: prod(shape) }, () => Math.fround(kind === 'probs' ? rng.next() : 3 * gauss())), shape, dtype: 'float32' };
const labels = (shape: number[], classes: number): HostTensor => scores(shape, 'labels', classes);

/** Every label of 0..classes-1 appears at least once (at the start of the flat target). */
function coverClasses(t: HostTensor, classes: number): HostTensor {
  const data = [...t.data];
  for (let k = 0; k < classes && k < data.length; k++) data[k] = k;
  return { ...t, data };
}

const cases: Case[] = [];
function add(metric: string, options: Record<string, unknown>, preds: HostTensor, target: HostTensor): void {
  cases.push({ id: `${metric}#${cases.length}`, metric, options, batches: batchesOf(preds, target) });
}

const AVERAGES = ['micro', 'macro', 'weighted', 'none'] as const;
for (const metric of ['Accuracy', 'Precision', 'Recall', 'F1Score', 'FBetaScore']) {
  const extra = (): Record<string, unknown> => (metric === 'FBetaScore' ? { beta: pick([0.5, 2, 3]) } : {});
  for (let i = 0; i < 6; i++) {
    const n = int(5, 120);
    const shape = pick([[n], [n, int(2, 5)]]);
    add(metric, { task: 'binary', threshold: pick([0.5, 0.3, 0.7]), ...extra() }, scores(shape, pick(['probs', 'logits', 'labels']), 2), labels(shape, 2));
  }
  for (const average of AVERAGES) {
    for (let i = 0; i < 4; i++) {
      const c = int(2, 10);
      const n = int(5, 150);
      const rest = pick([[], [int(2, 4)]]);
      const kind = pick<Scores>(['probs', 'logits', 'labels']);
      const topK = kind !== 'labels' && metric !== 'F1Score' && i === 3 && c > 2 ? int(2, Math.min(c - 1, 4)) : 1;
      const preds = kind === 'labels' ? scores([n, ...rest], kind, c) : scores([n, c, ...rest], kind, c);
      add(metric, { task: 'multiclass', numClasses: c, average, ...(topK > 1 ? { topK } : {}), ...extra() }, preds, labels([n, ...rest], c));
    }
    for (let i = 0; i < 2; i++) {
      const l = int(2, 10);
      const n = int(5, 150);
      const shape = pick([[n, l], [n, l, int(2, 3)]]);
      add(metric, { task: 'multilabel', numLabels: l, average, ...extra() }, scores(shape, pick(['probs', 'logits', 'labels']), 2), labels(shape, 2));
    }
  }
}
for (const normalize of ['none', 'true', 'pred', 'all'] as const) {
  const n = int(5, 150);
  add('ConfusionMatrix', { task: 'binary', normalize }, scores([n], pick(['probs', 'logits', 'labels']), 2), labels([n], 2));
  for (let i = 0; i < 2; i++) {
    const c = int(2, 10);
    const m = int(5, 150);
    const kind = pick<Scores>(['probs', 'logits', 'labels']);
    add('ConfusionMatrix', { task: 'multiclass', numClasses: c, normalize }, kind === 'labels' ? scores([m], kind, c) : scores([m, c], kind, c), labels([m], c));
  }
  const l = int(2, 10);
  const k = int(5, 100);
  add('ConfusionMatrix', { task: 'multilabel', numLabels: l, normalize }, scores([k, l], pick(['probs', 'logits']), 2), labels([k, l], 2));
}
for (const metric of ['AUROC', 'AveragePrecision']) {
  for (let i = 0; i < 5; i++) {
    const n = int(5, 200);
    const shape = pick([[n], [n, int(2, 3)]]);
    // Few distinct scores in some cases, to exercise ties.
    const preds = i === 4 ? { data: Array.from({ length: prod(shape) }, () => int(0, 4) / 4), shape, dtype: 'float32' as const } : scores(shape, pick(['probs', 'logits']), 2);
    add(metric, { task: 'binary' }, preds, coverClasses(labels(shape, 2), 2));
  }
  for (const average of ['macro', 'weighted', 'none'] as const) {
    for (let i = 0; i < 4; i++) {
      const c = int(2, 10);
      const n = int(c + 5, 200);
      const rest = i === 3 ? [2] : [];
      add(metric, { task: 'multiclass', numClasses: c, average }, scores([n, c, ...rest], pick(['probs', 'logits']), c), coverClasses(labels([n, ...rest], c), c));
    }
  }
}
const regression = (shape: number[]): [HostTensor, HostTensor] => {
  const t = Array.from({ length: prod(shape) }, () => Math.fround(2 * gauss() + 1));
  const p = t.map((v) => Math.fround(v + gauss()));
  return [
    { data: p, shape, dtype: 'float32' },
    { data: t, shape, dtype: 'float32' },
  ];
};
for (let i = 0; i < 6; i++) {
  const n = int(2, 150);
  add('MeanSquaredError', { squared: i % 2 === 0 }, ...regression(pick([[n], [n, int(2, 4)]])));
  add('MeanSquaredError', { numOutputs: 3, squared: i % 2 === 0 }, ...regression([n, 3]));
  add('MeanAbsoluteError', {}, ...regression(pick([[n], [n, int(2, 4)]])));
  add('MeanAbsoluteError', { numOutputs: 2 }, ...regression([n, 2]));
  const m = int(8, 150);
  add('R2Score', i < 3 ? {} : { adjusted: int(1, 3) }, ...regression(pick([[m], [m, 1]])));
  add('R2Score', { numOutputs: 3, multioutput: pick(['raw_values', 'uniform_average', 'variance_weighted']) }, ...regression([m, 3]));
}

// ---- Flint and the oracle --------------------------------------------------------------------

function flint(c: Case): number[] {
  const metric = new METRICS[c.metric]!(c.options as never);
  try {
    for (const b of c.batches) {
      tf.tidy(() => metric.update(tf.tensor(b.preds.data, b.preds.shape, b.preds.dtype), tf.tensor(b.target.data, b.target.shape, b.target.dtype)));
    }
    const value = metric.compute();
    const out = Array.from(value.dataSync());
    value.dispose();
    return out;
  } finally {
    metric.dispose();
  }
}

const flat = (v: Value): number[] => (Array.isArray(v) ? v : [v]).map((x) => (x === 'NaN' ? Number.NaN : (x as number)));
const close = (a: number, b: number): boolean => (Number.isNaN(a) && Number.isNaN(b)) || Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));

let skipReason = '';
let results: Record<string, { torchmetrics: Value; sklearn: Value | null }> = {};
const ours: Record<string, number[]> = {};

beforeAll(async () => {
  await expectNoLeak(() => {
    for (const c of cases) ours[c.id] = flint(c);
  }, 'computing every case');
  const got = await askPythonOracle<{ versions: Record<string, string>; results: typeof results }>({ venvScript, script: oracle, input: { cases }, cwd: repo, what: 'metrics oracle test' });
  if (got.skipReason !== undefined) {
    skipReason = got.skipReason;
    return;
  }
  expect(got.answer.versions['torchmetrics']).toMatch(/^1\.9\./);
  results = got.answer.results;
}, 25 * 60_000);

describe.each(Object.keys(METRICS))('%s', (metric) => {
  it('equals torchmetrics and scikit-learn to 1e-6 on every random case, fed in uneven batches', (ctx) => {
    if (skipReason !== '') ctx.skip(skipReason);
    const mine = cases.filter((c) => c.metric === metric);
    let sklearnCompared = 0;
    const wrong: string[] = [];
    for (const c of mine) {
      const got = ours[c.id]!;
      const { torchmetrics, sklearn } = results[c.id]!;
      for (const [who, ref] of [['torchmetrics', torchmetrics], ['scikit-learn', sklearn]] as const) {
        if (ref === null) continue;
        if (who === 'scikit-learn') sklearnCompared += 1;
        const want = flat(ref);
        if (want.length !== got.length || want.some((w, i) => !close(got[i]!, w))) {
          wrong.push(`${c.id} ${JSON.stringify(c.options)} batches ${c.batches.map((b) => b.preds.shape.join('x')).join(', ')}: Flint ${JSON.stringify(got)}, ${who} ${JSON.stringify(want)}`);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(mine.length).toBeGreaterThanOrEqual(10);
    expect(sklearnCompared).toBeGreaterThanOrEqual(mine.length / 2);
  });
});
