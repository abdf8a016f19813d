import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { encode as encodePng } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TensorBoardLogger } from './index.js';
import { histogramBuckets } from './internal/histogram.js';

// Flint-written runs read by the real TensorBoard 2.21.0 (pip, in a venv made by
// scripts/tensorboard-venv.sh), with both of its readers: the Python loader (event multiplexer +
// data provider) and the Rust data server, plus the hparams plugin's backend on each. Skips, saying
// why, where pip cannot get TensorBoard.

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const venvScript = path.join(repo, 'scripts', 'tensorboard-venv.sh');
const reader = fileURLToPath(new URL('../scripts/read_tensorboard.py', import.meta.url));
const f32 = (x: number): number => Math.fround(x);

type Scalars = Record<string, Array<[number, number, number]>>;
interface ReaderRun {
  scalars: Scalars;
  histograms: Record<string, Array<{ step: number; buckets: number[][] }>>;
  text: Record<string, Array<{ step: number; shape: number[]; value: unknown }>>;
  images: Record<string, Array<{ step: number; width: string; height: string; pngs: string[] }>>;
}
interface ReaderOutput {
  runs: Record<string, ReaderRun>;
  hparams: { experiment: Record<string, unknown>; session_groups: { session_groups: Array<Record<string, unknown>> } };
}

let python: string | undefined;
let skipReason = '';
let tmp: string;
let root: string;
let readers: Record<'python' | 'rust', ReaderOutput>;

/** What was logged, to compare with: run -> tag -> [step, value]. */
const logged: Record<string, Record<string, Array<[number, number]>>> = {};
const note = (runName: string, tag: string, step: number, value: number): void => {
  ((logged[runName] ??= {})[tag] ??= []).push([step, value]);
};
const histValues = (step: number): number[] => Array.from({ length: 101 }, (_, i) => ((i - 50) / 50) ** 3 * (1 + step / 10));
const pixels = Uint8Array.from({ length: 4 * 3 * 3 }, (_, i) => (i * 37) % 256);
const png = encodePng({ width: 4, height: 3, channels: 3, depth: 8, data: pixels });
const notes = ['Hello **TensorBoard**: run started. Unicode check: éè ✓ 日本', 'second note at step 5'];

function writeRuns(): void {
  // version_0 and version_1: two runs with different hparams, scalars at the global step, the
  // epoch series, and in version_1 validation metrics on the epoch axis.
  const configs = [
    { hparams: { lr: 0.1, optimizer: 'sgd', layers: 2, use_bn: true }, scale: 1 },
    { hparams: { lr: 0.01, optimizer: 'adam', layers: 3, use_bn: false }, scale: 1.5 },
  ];
  configs.forEach(({ hparams, scale }, v) => {
    const name = `version_${v}`;
    const l = new TensorBoardLogger({ saveDir: tmp, epochAxisMetrics: v === 1 ? ['val/*'] : [], textSummaries: false });
    l.logHyperparams(hparams);
    for (let step = 0; step < 20; step++) {
      const epoch = Math.floor(step / 5);
      const m: Record<string, number> = { 'train/loss': (scale * 1) / (step + 1), epoch };
      // With stageRuns (default) the epoch counter is written as 'trainer/epoch'.
      for (const [k, val] of Object.entries(m)) note(name, k === 'epoch' ? 'trainer/epoch' : k, step, val);
      l.logMetrics(m, step);
      if (step % 5 === 4) {
        const valM = { 'val/loss': (scale * 1.2) / (step + 1) + 0.05, 'val/acc': 0.5 + 0.02 * step, epoch };
        l.logMetrics(valM, step);
        note(name, 'val/loss', v === 1 ? epoch : step, valM['val/loss']);
        note(name, 'val/acc', v === 1 ? epoch : step, valM['val/acc']);
      }
    }
    if (v === 0) {
      for (const step of [0, 10, 19]) l.logHistogram('weights/layer1', histValues(step), step, 10);
      l.logText('notes', notes[0]!, 0);
      l.logText('notes', notes[1]!, 5);
      l.logText('table', [
        ['a', 'b'],
        ['c', 'd'],
      ], 6);
      l.logImage('samples/gradient', { width: 4, height: 3, channels: 3, data: pixels }, 0);
    }
    l.finalize('success');
  });

  // version_2: a run resumed from a checkpoint taken at step 5, after the first process went on to
  // step 9 (and wrote a text at step 8) and died.
  const first = new TensorBoardLogger({ saveDir: tmp, textSummaries: false });
  first.logHyperparams({ lr: 0.5, optimizer: 'sgd', layers: 2, use_bn: true });
  let state: Record<string, unknown> = {};
  for (let step = 0; step < 10; step++) {
    first.logMetrics({ 'train/loss': 1 / (step + 1) }, step);
    if (step <= 5) note('version_2', 'train/loss', step, 1 / (step + 1));
    if (step === 5) state = JSON.parse(JSON.stringify(first.stateDict())) as Record<string, unknown>;
  }
  first.logText('stale', 'written after the checkpoint', 8);
  first.save();
  const resumed = new TensorBoardLogger({ saveDir: tmp, textSummaries: false });
  resumed.loadStateDict(state);
  resumed.logHyperparams({ lr: 0.5, optimizer: 'sgd', layers: 2, use_bn: true });
  for (let step = 6; step < 15; step++) {
    resumed.logMetrics({ 'train/loss': 2 / (step + 1) }, step);
    note('version_2', 'train/loss', step, 2 / (step + 1));
  }
  resumed.finalize('success');
  first.finalize('failed'); // the crashed process's logger: only releases its exit handlers (nothing is queued)

  // version_3: a process killed in the middle of writing its last record.
  const torn = new TensorBoardLogger({ saveDir: tmp });
  for (let step = 0; step < 10; step++) {
    torn.logMetrics({ 'train/loss': step }, step);
    if (step < 9) note('version_3', 'train/loss', step, step);
  }
  torn.finalize('interrupted');
  fs.truncateSync(torn.eventFile!, fs.statSync(torn.eventFile!).size - 5);
}

beforeAll(async () => {
  try {
    const { stdout } = await run('bash', [venvScript], { cwd: repo, timeout: 15 * 60_000, maxBuffer: 1 << 20 });
    python = stdout.trim().split('\n').at(-1);
  } catch (error) {
    const e = error as { code?: number; stderr?: string; message: string };
    skipReason = `interop test skipped: scripts/tensorboard-venv.sh could not make a TensorBoard 2.21.0 venv (exit ${String(e.code)}): ${(e.stderr ?? e.message).trim()}`;
    console.warn(skipReason);
    return;
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-interop-'));
  writeRuns();
  root = path.join(tmp, 'flint_logs');
  const { stdout } = await run(python!, [reader, root, '--reader', 'both'], { timeout: 120_000, maxBuffer: 64 << 20 });
  const out = JSON.parse(stdout, (_k, v: unknown) => (v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v)) as {
    tensorboard_version: string;
    readers: Record<'python' | 'rust', ReaderOutput>;
  };
  expect(out.tensorboard_version).toBe('2.21.0');
  readers = out.readers;
}, 20 * 60_000);

afterAll(() => {
  if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
});

describe.each(['python', 'rust'] as const)('TensorBoard 2.21.0 %s reader', (which) => {
  it('shows every scalar as logged: tags, steps and float32 values (epoch axis, resume and torn tail included)', (ctx) => {
    if (python === undefined) ctx.skip(skipReason);
    const runs = readers[which].runs;
    let points = 0;
    for (const [runName, tags] of Object.entries(logged)) {
      expect(Object.keys(runs[runName]!.scalars).sort()).toEqual(Object.keys(tags).sort());
      for (const [tag, pts] of Object.entries(tags)) {
        expect(runs[runName]!.scalars[tag]!.map((p) => [p[0], p[1]])).toEqual(pts.map(([s, v]) => [s, f32(v)]));
        points += pts.length;
      }
    }
    expect(points).toBe(2 * (20 + 20 + 4 + 4) + 15 + 9);
  });

  it('shows the histogram buckets, the text and the image as written', (ctx) => {
    if (python === undefined) ctx.skip(skipReason);
    const r = readers[which].runs['version_0']!;
    expect(r.histograms['weights/layer1']!.map((h) => h.step)).toEqual([0, 10, 19]);
    r.histograms['weights/layer1']!.forEach((h, i) => {
      const rows = histogramBuckets(histValues([0, 10, 19][i]!), 10)!.rows;
      expect(h.buckets).toEqual(Array.from({ length: 10 }, (_, b) => [rows[b * 3]!, rows[b * 3 + 1]!, rows[b * 3 + 2]!]));
    });
    expect(r.text['notes']).toEqual([
      { step: 0, shape: [], value: notes[0] },
      { step: 5, shape: [], value: notes[1] },
    ]);
    expect(r.text['table']).toEqual([{ step: 6, shape: [2, 2], value: [['a', 'b'], ['c', 'd']] }]);
    expect(r.images['samples/gradient']).toEqual([{ step: 0, width: '4', height: '3', pngs: [createHash('sha256').update(png).digest('hex')] }]);
    expect(readers[which].runs['version_2']!.text['stale']).toBeUndefined();
  });

  it('shows the hparams of every run with their final metrics in one table', (ctx) => {
    if (python === undefined) ctx.skip(skipReason);
    const { experiment, session_groups } = readers[which].hparams;
    // Every run is a version: no empty run `.` for the experiment summary, which each run holds.
    expect(Object.keys(readers[which].runs).sort()).toEqual(['version_0', 'version_1', 'version_2', 'version_3']);
    expect(experiment['hparam_infos']).toEqual([
      { name: 'layers', type: 'DATA_TYPE_FLOAT64' },
      { name: 'lr', type: 'DATA_TYPE_FLOAT64' },
      { name: 'optimizer', type: 'DATA_TYPE_STRING' },
      { name: 'use_bn', type: 'DATA_TYPE_BOOL' },
    ]);
    expect(experiment['metric_infos']).toEqual([{ name: { tag: 'train/loss' } }, { name: { tag: 'val/loss' } }, { name: { tag: 'val/acc' } }]);
    const groups = session_groups.session_groups;
    expect(groups.map((g) => [g['name'], g['hparams']])).toEqual([
      ['version_0', { lr: 0.1, optimizer: 'sgd', layers: 2, use_bn: true }],
      ['version_1', { lr: 0.01, optimizer: 'adam', layers: 3, use_bn: false }],
      ['version_2', { lr: 0.5, optimizer: 'sgd', layers: 2, use_bn: true }],
    ]);
    const finals = groups.map((g) =>
      (g['metric_values'] as Array<{ name: { tag: string }; training_step: number; value: number }>).map((m) => [m.name.tag, m.training_step, m.value]),
    );
    const last = (runName: string, tag: string): [string, number, number] => {
      const [s, v] = logged[runName]![tag]!.at(-1)!;
      return [tag, s, f32(v)];
    };
    expect(finals).toEqual([
      [last('version_0', 'train/loss'), last('version_0', 'val/loss'), last('version_0', 'val/acc')],
      [last('version_1', 'train/loss'), last('version_1', 'val/loss'), last('version_1', 'val/acc')],
      [last('version_2', 'train/loss')],
    ]);
    expect(groups.map((g) => (g['sessions'] as Array<{ status?: string }>)[0]!.status)).toEqual(['STATUS_SUCCESS', 'STATUS_SUCCESS', 'STATUS_SUCCESS']);
  });
});

it('both TensorBoard readers show the same thing', (ctx) => {
  if (python === undefined) ctx.skip(skipReason);
  expect(readers.rust).toEqual(readers.python);
});

it('a TensorBoard left running while a killed run resumes shows, with both readers, the resumed series only, as does a fresh one', { timeout: 180_000 }, async (ctx) => {
  if (python === undefined) ctx.skip(skipReason);
  const liveDir = path.join(tmp, 'live');
  const opts = { saveDir: liveDir, textSummaries: false, maxQueue: 1 } as const;
  // The first process: logs steps 0..9, takes a checkpoint after step 5, and is killed after step 9.
  const first = new TensorBoardLogger(opts);
  first.logHyperparams({ lr: 0.5 });
  let state: Record<string, unknown> = {};
  for (let step = 0; step < 10; step++) {
    first.logMetrics({ 'train/loss': 1 / (step + 1) }, step);
    if (step === 5) state = JSON.parse(JSON.stringify(first.stateDict())) as Record<string, unknown>;
  }
  first.save();
  const expected: Array<[number, number]> = [];
  for (let step = 0; step <= 5; step++) expected.push([step, f32(1 / (step + 1))]);

  // TensorBoard is started and reads the first process's points, the stale 6..9 included.
  const root = path.join(liveDir, 'flint_logs');
  const live = spawn(python!, [reader, root, '--live'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  live.stdout.on('data', (d: Buffer) => (out += String(d)));
  live.stderr.on('data', (d: Buffer) => (err += String(d)));
  const waitFor = async (word: string): Promise<void> => {
    for (let i = 0; i < 1200 && !out.includes(word); i++) await new Promise((r) => setTimeout(r, 100));
    expect(out, err).toContain(word);
  };
  try {
    await waitFor('ready');
    // The resumed process continues from the checkpoint with other values.
    const resumed = new TensorBoardLogger(opts);
    resumed.loadStateDict(state);
    resumed.logHyperparams({ lr: 0.5 });
    for (let step = 6; step < 15; step++) {
      resumed.logMetrics({ 'train/loss': 2 / (step + 1) }, step);
      expected.push([step, f32(2 / (step + 1))]);
    }
    resumed.finalize('success');
    first.finalize('failed');
    live.stdin.write('reload\n');
    await waitFor('reloaded');
    live.stdin.write('read\n');
    await new Promise<void>((resolve) => live.on('exit', () => resolve()));
  } finally {
    live.kill();
  }
  const running = JSON.parse(out.slice(out.indexOf('{'))) as { readers: Record<'python' | 'rust', ReaderOutput> };
  const { stdout } = await run(python!, [reader, root, '--reader', 'both'], { timeout: 120_000, maxBuffer: 64 << 20 });
  const fresh = JSON.parse(stdout) as { readers: Record<'python' | 'rust', ReaderOutput> };
  for (const [label, view] of [
    ['running python', running.readers.python],
    ['running rust', running.readers.rust],
    ['fresh python', fresh.readers.python],
    ['fresh rust', fresh.readers.rust],
  ] as const) {
    expect(view.runs['version_0']!.scalars['train/loss']!.map((p) => [p[0], p[1]]), label).toEqual(expected);
    // The experiment summary written at the run's end is read by the running TensorBoard too.
    expect(Object.keys(view.runs), label).toEqual(['version_0']);
    expect(view.hparams.experiment['metric_infos'], label).toEqual([{ name: { tag: 'train/loss' } }]);
  }
});
