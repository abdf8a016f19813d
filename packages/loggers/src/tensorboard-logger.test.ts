import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointError, LoggerError, MisconfigurationError, type TrainerContext } from '@flint/core';
import { crc32c } from '@aws-crypto/crc32c';
import { decode as decodePng } from 'fast-png';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TensorBoardLogger } from './index.js';
import { exitFlushInstalled } from './internal/exit-flush.js';
import { histogramBuckets } from './internal/histogram.js';
import { encodeEvent } from './internal/proto.js';
import { encodeRecord, maskedCrc32c } from './internal/tfrecord.js';
import { decodeEvent, readLogDir, readRecords, type Event } from './testing/event-reader.js';
import { FIXTURES_DIR, loadExpected } from './testing/fixtures.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const f32 = (x: number): number => Math.fround(x);

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-tb-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The events of each writer session's file in `dir` (not the experiment-summary file). */
function eventsOf(dir: string): Event[][] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.includes('tfevents') && !n.endsWith('.flint-hparams'))
    .sort()
    .map((n) => readRecords(fs.readFileSync(path.join(dir, n))).records.map(decodeEvent));
}

/** A fake trainer context: what a logger sees of the trainer. */
function fakeTrainer(over: Partial<TrainerContext> = {}): TrainerContext & { printed: string[]; stops: unknown[] } {
  const printed: string[] = [];
  const stops: unknown[] = [];
  return {
    currentEpoch: 0,
    globalStep: 0,
    fastDevRun: false,
    print: (m: string) => printed.push(m),
    requestStop: (r: unknown) => stops.push(r),
    printed,
    stops,
    ...over,
  } as unknown as TrainerContext & { printed: string[]; stops: unknown[] };
}

describe('CRC32C and record framing (format doc test vectors)', () => {
  it('computes crc32c and its mask', () => {
    const digits = new TextEncoder().encode('123456789');
    expect(crc32c(digits).toString(16)).toBe('e3069283');
    expect(maskedCrc32c(digits).toString(16)).toBe('c78ab0e5');
    expect(maskedCrc32c(new Uint8Array(0)).toString(16)).toBe('a282ead8');
  });

  it('frames the file-version event byte for byte', () => {
    const rec = encodeRecord(encodeEvent({ wallTime: 1700000000, fileVersion: 'brain.Event:2' }));
    expect(hex(rec)).toBe('1800000000000000' + 'a37f4b22' + '0900000040fc54d9411a0d627261696e2e4576656e743a32' + 'eced8f9d');
  });

  it('frames a simple_value scalar event byte for byte', () => {
    const rec = encodeRecord(encodeEvent({ wallTime: 1700000001, step: 1, values: [{ tag: 'loss', simpleValue: 0.5 }] }));
    expect(hex(rec)).toBe('1a00000000000000' + '129bd82d' + '0900004040fc54d94110012a0d0a0b0a046c6f7373150000003f' + '97d67404');
  });
});

describe('options', () => {
  it('rejects unknown options and bad values, naming them', () => {
    expect(() => new TensorBoardLogger({ flushSecond: 3 } as never)).toThrow(MisconfigurationError);
    expect(() => new TensorBoardLogger({ flushSecond: 3 } as never)).toThrow(/TensorBoardLogger option '\(options\)': Unrecognized key: "flushSecond"/);
    expect(() => new TensorBoardLogger({ flushSecs: 0 })).toThrow(/TensorBoardLogger option 'flushSecs': Too small: expected number to be >0 \(received 0\)/);
    expect(() => new TensorBoardLogger({ onWriteError: 'ignore' as never })).toThrow(
      /TensorBoardLogger option 'onWriteError': Invalid option: expected one of "stop"\|"continue" \(received "ignore"\)/,
    );
    expect(() => new TensorBoardLogger({ version: -1 })).toThrow(/TensorBoardLogger option 'version'/);
  });

  it('has the defaults in the schema', () => {
    const o = new TensorBoardLogger().options;
    expect(o).toMatchObject({ saveDir: '.', name: 'flint_logs', flushSecs: 120, maxQueue: 10, onWriteError: 'stop', histogramEveryNEpochs: 0 });
  });
});

describe('folders', () => {
  it('takes version_0, version_1, ... as Lightning, and logDir follows', () => {
    const a = new TensorBoardLogger({ saveDir: tmp });
    expect(a.version).toBe(0);
    expect(a.logDir).toBe(path.join(tmp, 'flint_logs', 'version_0'));
    a.logMetrics({ loss: 1 }, 0);
    a.finalize('success');
    const b = new TensorBoardLogger({ saveDir: tmp });
    expect(b.version).toBe(1);
    expect(b.name).toBe('flint_logs');
    expect(b.rootDir).toBe(path.join(tmp, 'flint_logs'));
  });

  it('uses an explicit version, a string version, a subDir, and no name level for name ""', () => {
    expect(new TensorBoardLogger({ saveDir: tmp, version: 7 }).logDir).toBe(path.join(tmp, 'flint_logs', 'version_7'));
    expect(new TensorBoardLogger({ saveDir: tmp, version: 'baseline' }).logDir).toBe(path.join(tmp, 'flint_logs', 'baseline'));
    expect(new TensorBoardLogger({ saveDir: tmp, name: 'mnist', subDir: 'train' }).logDir).toBe(path.join(tmp, 'mnist', 'version_0', 'train'));
    expect(new TensorBoardLogger({ saveDir: tmp, name: '' }).logDir).toBe(path.join(tmp, 'version_0'));
  });

  it('prints the command that opens the experiment', () => {
    expect(new TensorBoardLogger({ saveDir: tmp }).tensorboardCommand).toBe(`tensorboard --logdir ${path.join(tmp, 'flint_logs')}`);
    expect(new TensorBoardLogger({ saveDir: path.join(tmp, 'my runs') }).tensorboardCommand).toBe(`tensorboard --logdir '${path.join(tmp, 'my runs', 'flint_logs')}'`);
  });

  it('ignores empty hparams (a module without any)', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    l.logHyperparams({});
    l.logMetrics({ a: 1 }, 0);
    l.finalize('success');
    expect(fs.readdirSync(l.logDir).filter((n) => !n.includes('tfevents'))).toEqual([]);
    expect(readLogDir(l.rootDir).hparams_dashboard).toBeNull();
  });

  it('creates nothing until something is written', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    void l.logDir;
    l.finalize('success');
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});

describe('scalars', () => {
  it('reads back what was logged, at the global step, as float32, with the epoch series', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    for (let step = 0; step < 20; step++) l.logMetrics({ 'train/loss': 1 / (step + 1), 'val/acc': 0.5 + 0.02 * step, epoch: Math.floor(step / 5) }, step);
    l.finalize('success');
    const run = readLogDir(l.rootDir).runs['version_0']!;
    expect(run.file_version).toBe(2);
    expect(run.source_writer).toBe('flint');
    // With stageRuns (default), the epoch counter is 'trainer/epoch'.
    expect(run.plugins).toEqual({ scalars: ['train/loss', 'trainer/epoch', 'val/acc'] });
    expect(run.scalars['train/loss']!.points.map((p) => [p[0], p[1]])).toEqual(Array.from({ length: 20 }, (_, s) => [s, f32(1 / (s + 1))]));
    expect(run.scalars['val/acc']!.points.map((p) => p[1])).toEqual(Array.from({ length: 20 }, (_, s) => f32(0.5 + 0.02 * s)));
    expect(run.scalars['trainer/epoch']!.points.map((p) => p[1])).toEqual(Array.from({ length: 20 }, (_, s) => Math.floor(s / 5)));
    expect(run.scalars['train/loss']!.tensor_dtype_after_compat).toBe('DT_FLOAT');
  });

  it('keeps NaN and ±Infinity, and stores a double beyond float32 as Infinity', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    l.logMetrics({ a: NaN, b: Infinity, c: -Infinity, d: 1e39 }, 0);
    l.finalize('success');
    const s = readLogDir(l.rootDir).runs['version_0']!.scalars;
    expect([s['a']!.points[0]![1], s['b']!.points[0]![1], s['c']!.points[0]![1], s['d']!.points[0]![1]]).toEqual([NaN, Infinity, -Infinity, Infinity]);
  });

  it('begins the writer session with the file version, then SessionLog START at its first step', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    l.logMetrics({ loss: 1 }, 3);
    l.finalize('success');
    const [events] = eventsOf(l.logDir);
    expect(events![0]).toMatchObject({ fileVersion: 'brain.Event:2', sourceWriter: 'flint' });
    expect(events![1]).toMatchObject({ step: 0, sessionLog: { status: 1 } });
    expect(events![2]).toMatchObject({ step: 3, values: [{ tag: 'loss', simpleValue: 1 }] });
  });

  it('puts epochAxisMetrics at the epoch, the rest at the global step', () => {
    const l = new TensorBoardLogger({ saveDir: tmp, epochAxisMetrics: ['val_*', 'train_loss_epoch'] });
    for (let epoch = 0; epoch < 3; epoch++) {
      l.logMetrics({ train_loss_step: epoch, epoch }, epoch * 10 + 9);
      l.logMetrics({ val_loss: 1 / (epoch + 1), train_loss_epoch: 2 * epoch, epoch }, epoch * 10 + 9);
    }
    l.finalize('success');
    const s = readLogDir(l.rootDir).runs['version_0']!.scalars;
    expect(s['val_loss']!.points.map((p) => p[0])).toEqual([0, 1, 2]);
    expect(s['train_loss_epoch']!.points.map((p) => p[0])).toEqual([0, 1, 2]);
    expect(s['train_loss_step']!.points.map((p) => p[0])).toEqual([9, 19, 29]);
    expect(s['trainer/epoch']!.points.map((p) => p[0])).toEqual([9, 19, 29]);
  });

  it('needs an integer epoch key for epoch-axis metrics', () => {
    const l = new TensorBoardLogger({ saveDir: tmp, epochAxisMetrics: ['val_loss'] });
    expect(() => l.logMetrics({ val_loss: 1 }, 3)).toThrow(
      "TensorBoardLogger: metric 'val_loss' goes on the epoch axis (option 'epochAxisMetrics') but logMetrics got no integer 'epoch' key (keys: val_loss).",
    );
  });

  it('rejects a bad step or a non-number metric', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    expect(() => l.logMetrics({ a: 1 }, 1.5)).toThrow('TensorBoardLogger.logMetrics(metrics, step): step must be a non-negative integer (the global step), received 1.5.');
    expect(() => l.logMetrics({ a: '1' as unknown as number }, 1)).toThrow("TensorBoardLogger.logMetrics: metric 'a' must be a number, received string (1).");
  });

  it('writes strictly increasing steps per tag: drops a repeat silently, reports a conflicting point once', () => {
    const trainer = fakeTrainer();
    const l = new TensorBoardLogger({ saveDir: tmp });
    l.setup(trainer, {} as never, 'fit');
    l.logMetrics({ loss: 1, epoch: 0 }, 5);
    l.logMetrics({ acc: 0.5, epoch: 0 }, 5); // 'epoch' repeats with the same value: silent
    l.logMetrics({ nan: NaN }, 5);
    l.logMetrics({ nan: NaN }, 5); // a repeated NaN too
    l.logMetrics({ loss: 2 }, 5);
    l.logMetrics({ loss: 3 }, 4);
    l.logMetrics({ loss: 4 }, 6);
    l.finalize('success');
    expect(trainer.printed).toEqual([
      "TensorBoardLogger: 'loss' at step 5 is not written: its last point is at step 5, and TensorBoard needs strictly increasing steps per tag (its two readers show repeated steps differently). Reported once per tag.",
    ]);
    const s = readLogDir(l.rootDir).runs['version_0']!.scalars;
    expect(s['loss']!.points.map((p) => [p[0], p[1]])).toEqual([
      [5, 1],
      [6, 4],
    ]);
    expect(s['trainer/epoch']!.points.length).toBe(1);
  });

  it('puts several values in one event per step', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    l.logMetrics({ a: 1, b: 2, c: 3 }, 0);
    l.finalize('success');
    const [events] = eventsOf(l.logDir);
    expect(events![2]!.values!.map((v) => v.tag)).toEqual(['a', 'b', 'c']);
  });
});

describe('hparams', () => {
  it('shows two runs with different hparams and their final metrics in one table', () => {
    for (const [lr, optimizer, finalLoss] of [
      [0.1, 'sgd', 0.3],
      [0.01, 'adam', 0.2],
    ] as const) {
      const l = new TensorBoardLogger({ saveDir: tmp });
      l.logHyperparams({ lr, optimizer, model: { layers: 2, bn: true }, tags: ['a', 'b'] });
      for (let step = 0; step < 10; step++) l.logMetrics({ train_loss: 1 - step / 10, epoch: 0 }, step);
      l.logMetrics({ val_loss: finalLoss, epoch: 0 }, 9);
      l.finalize('success');
    }
    const root = path.join(tmp, 'flint_logs');
    const data = readLogDir(root);
    // No run `.`: the experiment summary lives in the runs' own folders.
    expect(Object.keys(data.runs).sort()).toEqual(['version_0', 'version_1']);
    const d = data.hparams_dashboard!;
    expect(d.experiment['hparam_infos']).toEqual([
      { name: 'lr', type: 'DATA_TYPE_FLOAT64' },
      { name: 'model/bn', type: 'DATA_TYPE_BOOL' },
      { name: 'model/layers', type: 'DATA_TYPE_FLOAT64' },
      { name: 'optimizer', type: 'DATA_TYPE_STRING' },
      { name: 'tags', type: 'DATA_TYPE_STRING' },
    ]);
    // Validation metrics come first (TensorBoard shows five metric columns until more are ticked).
    expect(d.experiment['metric_infos']).toEqual([{ name: { tag: 'val_loss' } }, { name: { tag: 'train_loss' } }]);
    const groups = d.session_groups.session_groups;
    expect(groups.map((g) => [g['name'], g['hparams']])).toEqual([
      ['version_0', { lr: 0.1, optimizer: 'sgd', 'model/layers': 2, 'model/bn': true, tags: '["a","b"]' }],
      ['version_1', { lr: 0.01, optimizer: 'adam', 'model/layers': 2, 'model/bn': true, tags: '["a","b"]' }],
    ]);
    expect(groups.map((g) => (g['metric_values'] as Array<{ value: number; training_step: number }>).map((m) => [m.training_step, m.value]))).toEqual([
      [
        [9, f32(0.3)],
        [9, f32(0.1)],
      ],
      [
        [9, f32(0.2)],
        [9, f32(0.1)],
      ],
    ]);
    expect(groups.map((g) => (g['sessions'] as Array<Record<string, unknown>>)[0]!['status'])).toEqual(['STATUS_SUCCESS', 'STATUS_SUCCESS']);
    // Every run holds the same experiment summary (TensorBoard takes the first it finds), none at the root.
    const summaries = Object.entries(data.runs).map(([n, r]) => [n, r.hparams_plugin_data['_hparams_/experiment']]);
    expect(summaries.map(([n]) => n)).toEqual(['version_0', 'version_1']);
    expect(summaries[0]![1]).toEqual(summaries[1]![1]);
    expect(fs.readdirSync(root).filter((n) => n.includes('tfevents'))).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'version_1', 'hparams.yaml'), 'utf8')).toBe('lr: 0.01\noptimizer: adam\nmodel:\n  layers: 2\n  bn: true\ntags:\n  - a\n  - b\n');
  });

  it('keeps every run\'s copy of the experiment summary the same as runs are added one after another', () => {
    const root = path.join(tmp, 'flint_logs');
    // Logs written by an earlier version: the summary in a file of its own at the experiment folder (a run `.`).
    fs.mkdirSync(root, { recursive: true });
    const old = path.join(root, 'events.out.tfevents.1700000000.host.1.0.flint-hparams');
    fs.copyFileSync(path.join(FIXTURES_DIR, 'tf_summary', fs.readdirSync(path.join(FIXTURES_DIR, 'tf_summary')).find((n) => n.includes('tfevents'))!), old);
    const copies = (): string[] =>
      fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((n) => n.endsWith('.flint-hparams')).sort();
    const oneRun = (hparams: Record<string, unknown>, metrics: Record<string, number>): TensorBoardLogger => {
      const l = new TensorBoardLogger({ saveDir: tmp, textSummaries: false });
      l.logHyperparams(hparams);
      for (let step = 0; step < 3; step++) l.logMetrics({ train_loss: 1 / (step + 1) }, step);
      l.logMetrics(metrics, 2);
      l.finalize('success');
      return l;
    };
    oneRun({ lr: 0.1 }, { val_loss: 0.5 });
    expect(fs.existsSync(old)).toBe(false);
    const first = copies();
    expect(first).toHaveLength(1);
    const firstBytes = fs.readFileSync(path.join(root, first[0]!));
    // A second run with the same lists leaves the first copy alone.
    oneRun({ lr: 0.2 }, { val_loss: 0.4 });
    expect(fs.readFileSync(path.join(root, first[0]!))).toEqual(firstBytes);
    // A third run adds an hparam and a metric: every copy is rewritten under its name.
    oneRun({ lr: 0.3, layers: 2 }, { val_loss: 0.3, test_acc: 0.9 });
    const all = copies();
    expect(all.map((f) => path.dirname(f))).toEqual(['version_0', 'version_1', 'version_2']);
    expect(all[0]).toBe(first[0]);
    // Each copy sorts after its run's event file, so a resume's next file sorts after it.
    for (const f of all) {
      const names = fs.readdirSync(path.join(root, path.dirname(f))).filter((n) => n.includes('tfevents')).sort();
      expect(names.at(-1)).toBe(path.basename(f));
    }
    let data = readLogDir(root);
    expect(Object.keys(data.runs).sort()).toEqual(['version_0', 'version_1', 'version_2']);
    const expected = [
      { name: { tag: 'val_loss' } },
      { name: { tag: 'test_acc' } },
      { name: { tag: 'train_loss' } },
    ];
    for (const run of Object.values(data.runs)) {
      expect((run.hparams_plugin_data['_hparams_/experiment']!['experiment'] as Record<string, unknown>)['metric_infos']).toEqual(expected);
    }
    expect(data.hparams_dashboard!.experiment['hparam_infos']).toEqual([
      { name: 'layers', type: 'DATA_TYPE_FLOAT64' },
      { name: 'lr', type: 'DATA_TYPE_FLOAT64' },
    ]);
    expect(data.hparams_dashboard!.session_groups.session_groups.map((g) => g['name'])).toEqual(['version_0', 'version_1', 'version_2']);

  });

  it('a resumed run keeps its one copy of the experiment summary, and its series continue across it', () => {
    const opts = { saveDir: tmp, name: 'resumed', textSummaries: false } as const;
    const a = new TensorBoardLogger(opts);
    a.logHyperparams({ lr: 0.1 });
    let state: Record<string, unknown> = {};
    for (let step = 0; step < 4; step++) {
      a.logMetrics({ train_loss: step }, step);
      if (step === 1) state = JSON.parse(JSON.stringify(a.stateDict())) as Record<string, unknown>;
    }
    a.finalize('failed');
    const b = new TensorBoardLogger(opts);
    b.loadStateDict(state);
    b.logHyperparams({ lr: 0.1 });
    for (let step = 2; step < 5; step++) b.logMetrics({ train_loss: 10 * step, val_loss: step }, step);
    b.finalize('success');
    const names = fs.readdirSync(b.logDir).filter((n) => n.includes('tfevents')).sort();
    expect(names.filter((n) => n.endsWith('.flint-hparams'))).toHaveLength(1);
    const data = readLogDir(b.rootDir);
    expect(Object.keys(data.runs)).toEqual(['version_0']);
    expect(data.runs['version_0']!.scalars['train_loss']!.points.map((p) => [p[0], p[1]])).toEqual([
      [0, 0],
      [1, 1],
      [2, 20],
      [3, 30],
      [4, 40],
    ]);
    // The copy was rewritten when the resumed run added val_loss.
    expect(data.hparams_dashboard!.experiment['metric_infos']).toEqual([{ name: { tag: 'val_loss' } }, { name: { tag: 'train_loss' } }]);
    expect(data.hparams_dashboard!.session_groups.session_groups.map((g) => (g['metric_values'] as Array<{ value: number }>).map((m) => m.value))).toEqual([[4, 40]]);
  });

  it('writes a table of the hparams to the Text tab, and session_end_info only on success', () => {
    const l = new TensorBoardLogger({ saveDir: tmp, hparamsMetrics: ['val_loss'] });
    l.logHyperparams({ lr: 0.1, name: 'a|b' });
    l.logMetrics({ val_loss: 1 }, 0);
    l.finalize('failed');
    const data = readLogDir(l.rootDir);
    expect(data.runs['version_0']!.text['hparams']![0]!.value).toBe('| hparam | value |\n|---|---|\n| lr | 0.1 |\n| name | a\\|b |');
    expect(data.runs['version_0']!.hparams_plugin_data['_hparams_/session_end_info']).toBeUndefined();
    expect(data.hparams_dashboard!.experiment['metric_infos']).toEqual([{ name: { tag: 'val_loss' } }]);
  });

  it('ranks the HParams metrics: validation, test, monitored, the other epoch metrics, then step metrics; hparamsMetrics chooses', () => {
    const epochOfRun = (options: ConstructorParameters<typeof TensorBoardLogger>[0]) => {
      const l = new TensorBoardLogger({ saveDir: tmp, ...options });
      const trainer = fakeTrainer({ callbacks: [{ monitor: 'train_acc_epoch' }] } as never);
      const module = { summary: () => 'Net\n  dense 10' } as never;
      l.onFitStart(trainer, module);
      l.logHyperparams({ lr: 0.1 });
      l.onTrainEpochStart(trainer, module);
      l.logMetrics({ train_loss_step: 0.9, epoch: 0 }, 5);
      l.onValidationEpochEnd(trainer, module);
      l.logMetrics({ val_loss: 0.7, val_acc: 0.6, epoch: 0 }, 10);
      l.onValidationEnd();
      void l.onTrainEpochEnd(trainer, { namedParameters: () => [] } as never);
      l.logMetrics({ train_loss_epoch: 0.8, train_acc_epoch: 0.5, l2_penalty: 0.1, epoch: 0 }, 10);
      l.onTrainEnd(trainer, module);
      l.onTestStart(trainer, module);
      l.onTestEpochEnd(trainer, module);
      l.logMetrics({ test_acc: 0.55, epoch: 1 }, 10);
      l.onTestEnd(trainer, module);
      l.finalize('success');
      return readLogDir(l.rootDir);
    };
    const staged = epochOfRun({ name: 'staged' });
    expect(Object.keys(staged.runs).sort()).toEqual(['version_0', 'version_0/test', 'version_0/train', 'version_0/validation']);
    expect(Object.keys(staged.runs['version_0']!.scalars).sort()).toEqual(['train_loss_step', 'trainer/epoch']);
    expect(Object.keys(staged.runs['version_0/test']!.scalars)).toEqual(['epoch_acc']);
    expect(Object.keys(staged.runs['version_0/train']!.scalars).sort()).toEqual(['epoch_acc', 'epoch_l2_penalty', 'epoch_loss']);
    expect(Object.keys(staged.runs['version_0/validation']!.scalars).sort()).toEqual(['epoch_acc', 'epoch_loss']);
    expect(staged.runs['version_0/validation']!.scalars['epoch_loss']!.points.map((p) => [p[0], p[1]])).toEqual([[10, f32(0.7)]]);
    // Text at step 0, where the Text tab shows it first.
    expect(staged.runs['version_0']!.text['hparams']!.map((t) => t.step)).toEqual([0]);
    expect(staged.runs['version_0']!.text['model/summary']!.map((t) => t.step)).toEqual([0]);
    const d = staged.hparams_dashboard!;
    expect(d.experiment['metric_infos']).toEqual([
      { name: { group: 'validation', tag: 'epoch_loss' }, display_name: 'val_loss' },
      { name: { group: 'validation', tag: 'epoch_acc' }, display_name: 'val_acc' },
      { name: { group: 'test', tag: 'epoch_acc' }, display_name: 'test_acc' },
      { name: { group: 'train', tag: 'epoch_acc' }, display_name: 'train_acc_epoch' },
      { name: { group: 'train', tag: 'epoch_loss' }, display_name: 'train_loss_epoch' },
      { name: { group: 'train', tag: 'epoch_l2_penalty' }, display_name: 'l2_penalty' },
      { name: { tag: 'train_loss_step' } },
    ]);
    const values = (d.session_groups.session_groups[0]!['metric_values'] as Array<{ value: number }>).map((m) => m.value);
    expect(values).toEqual([0.7, 0.6, 0.55, 0.5, 0.8, 0.1, 0.9].map(f32));

    const flat = epochOfRun({ name: 'flat', stageRuns: false });
    expect(Object.keys(flat.runs).sort()).toEqual(['version_0']);
    expect(Object.keys(flat.runs['version_0']!.scalars).sort()).toEqual(['epoch', 'l2_penalty', 'test_acc', 'train_acc_epoch', 'train_loss_epoch', 'train_loss_step', 'val_acc', 'val_loss']);
    expect((flat.hparams_dashboard!.experiment['metric_infos'] as Array<{ name: { tag: string } }>).map((m) => m.name.tag)).toEqual([
      'val_loss', 'val_acc', 'test_acc', 'train_acc_epoch', 'train_loss_epoch', 'l2_penalty', 'train_loss_step',
    ]);

    const chosen = epochOfRun({ name: 'chosen', hparamsMetrics: ['test_acc', 'val_loss'] });
    expect(chosen.hparams_dashboard!.experiment['metric_infos']).toEqual([
      { name: { group: 'test', tag: 'epoch_acc' }, display_name: 'test_acc' },
      { name: { group: 'validation', tag: 'epoch_loss' }, display_name: 'val_loss' },
    ]);
  });

  it('rejects params that are not an object', () => {
    expect(() => new TensorBoardLogger({ saveDir: tmp }).logHyperparams([1] as never)).toThrow(
      'TensorBoardLogger.logHyperparams(params): params must be a plain object of hyper-parameters, received [1].',
    );
  });
});

describe('histograms, text and images', () => {
  it('bins as TensorBoard does: the tf_summary fixture histogram from its 101 values', () => {
    const expected = loadExpected('tf_summary').runs['run_a']!.histograms['weights/layer1'] as Array<{ step: number; buckets: number[][] }>;
    const l = new TensorBoardLogger({ saveDir: tmp });
    for (const step of [0, 10, 19]) {
      const values = Array.from({ length: 101 }, (_, i) => ((i - 50) / 50) ** 3 * (1 + step / 10));
      l.logHistogram('weights/layer1', values, step, 10);
    }
    l.finalize('success');
    const got = readLogDir(l.rootDir).runs['version_0']!.histograms['weights/layer1']!;
    expect(got.map((h) => h.step)).toEqual([0, 10, 19]);
    got.forEach((h, i) => {
      const want = expected[i]!.buckets;
      expect(h.buckets.map((b) => b[2])).toEqual(want.map((b) => b[2]));
      h.buckets.forEach((b, j) => {
        expect(b[0]).toBeCloseTo(want[j]![0]!, 12);
        expect(b[1]).toBeCloseTo(want[j]![1]!, 12);
      });
    });
  });

  it('writes the TF2 tensor form: DT_DOUBLE [k,3] with the histograms plugin on every value', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    l.logHistogram('w', [1, 2, 3, NaN], 0, 3);
    l.logHistogram('w', [5, 5], 1, 2);
    l.finalize('success');
    const [events] = eventsOf(l.logDir);
    const v = events![2]!.values![0]!;
    expect(v.tensor).toMatchObject({ dtype: 2, shape: [3, 3] });
    expect(v.metadata!.pluginName).toBe('histograms');
    const got = readLogDir(l.rootDir).runs['version_0']!.histograms['w']!;
    expect(got[0]!.buckets).toEqual([
      [1, 1 + 2 / 3, 1],
      [1 + 2 / 3, 1 + 4 / 3, 1],
      [1 + 4 / 3, 3, 1],
    ]);
    expect(got[1]!.buckets).toEqual([
      [5, 5, 0],
      [5, 5, 2],
    ]);
  });

  it('histogramBuckets leaves out non-finite values and gives nothing for no finite value', () => {
    expect(histogramBuckets([NaN, Infinity], 3)).toBeUndefined();
    expect(histogramBuckets([0, 1, Infinity], 2)!.nonFinite).toBe(1);
  });

  it('writes text (Markdown, and tables) as DT_STRING tensors with the text plugin', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    l.logText('notes', 'Hello **TensorBoard**: éè ✓ 日本', 0);
    l.logText('table', [
      ['a', 'b'],
      ['c', 'd'],
    ], 1);
    l.finalize('success');
    const text = readLogDir(l.rootDir).runs['version_0']!.text;
    expect(text['notes']).toEqual([{ shape: [], step: 0, value: 'Hello **TensorBoard**: éè ✓ 日本', wall_time: expect.any(Number) }]);
    expect(text['table']![0]).toMatchObject({ shape: [2, 2], value: [['a', 'b'], ['c', 'd']] });
    expect(() => l.logText('t', [['a'], ['b', 'c']], 2)).toThrow("TensorBoardLogger.logText('t'): a table must be a non-empty array of rows of strings, all rows as long as the first (1 cells).");
  });

  it('writes PNG images TensorBoard decodes to the same pixels', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    const rgb = Uint8Array.from({ length: 4 * 3 * 3 }, (_, i) => (i * 23) % 256);
    l.logImage('samples/gradient', { width: 4, height: 3, channels: 3, data: rgb }, 0);
    l.logImage('samples/grey', { width: 2, height: 1, channels: 1, data: new Float32Array([0, 1]) }, 0);
    l.finalize('success');
    const images = readLogDir(l.rootDir).runs['version_0']!.images;
    expect(images['samples/gradient']![0]).toMatchObject({ width: '4', height: '3', step: 0, images: [{ png_wh: [4, 3] }] });
    const [events] = eventsOf(l.logDir);
    const png = events!.flatMap((e) => e.values ?? []).find((v) => v.tag === 'samples/gradient')!.tensor!.stringVal[2]!;
    const decoded = decodePng(png);
    expect([decoded.width, decoded.height, decoded.channels]).toEqual([4, 3, 3]);
    expect([...decoded.data]).toEqual([...rgb]);
    const grey = decodePng(events!.flatMap((e) => e.values ?? []).find((v) => v.tag === 'samples/grey')!.tensor!.stringVal[2]!);
    expect([...grey.data]).toEqual([0, 255]);
    expect(() => l.logImage('x', { width: 2, height: 2, channels: 3, data: new Uint8Array(3) }, 1)).toThrow(
      "TensorBoardLogger.logImage('x'): data has 3 values, expected width*height*channels = 2*2*3 = 12.",
    );
  });

  it('logs weight histograms every N epochs, and gradients of the first batch of those epochs', async () => {
    const tf = await import('@tensorflow/tfjs');
    const w = tf.variable(tf.tensor1d([0, 1, 2, 3]), true, 'w');
    const module = { namedParameters: () => [{ name: 'fc.kernel', variable: w, trainable: true }], summary: () => 'Net | 4 params' } as never;
    const l = new TensorBoardLogger({ saveDir: tmp, histogramEveryNEpochs: 2, logGradients: true, histogramBins: 2 });
    for (let epoch = 0; epoch < 4; epoch++) {
      const trainer = fakeTrainer({ currentEpoch: epoch, globalStep: (epoch + 1) * 10 });
      if (epoch === 0) l.onFitStart(trainer, module);
      for (let b = 0; b < 2; b++) {
        const g = tf.tensor1d([epoch, b]);
        l.onAfterBackward(trainer, module, { [w.name]: g });
        g.dispose();
      }
      await l.onTrainEpochEnd(trainer, module);
    }
    l.finalize('success');
    w.dispose();
    const run = readLogDir(l.rootDir).runs['version_0']!;
    // Weights at the epoch's end go at the step of its metrics (its last batch's: the global step less one).
    expect(run.histograms['weights/fc.kernel']!.map((h) => h.step)).toEqual([9, 29]);
    expect(run.histograms['gradients/fc.kernel']!.map((h) => [h.step, h.buckets])).toEqual([
      [10, [[0, 0, 0], [0, 0, 2]]],
      [30, [[0, 1, 1], [1, 2, 1]]],
    ]);
    expect(run.text['model/summary']![0]!.value).toBe('    Net | 4 params');
  });
});

describe('flushing', () => {
  it('buffers up to maxQueue events, flushes at save (the trainer calls it once per epoch) and finalize, then removes its exit handlers', async () => {
    const l = new TensorBoardLogger({ saveDir: tmp, maxQueue: 100 });
    l.logMetrics({ a: 1 }, 0);
    expect(fs.statSync(l.eventFile!).size).toBe(0);
    expect(exitFlushInstalled()).toBe(true);
    l.save();
    const size = fs.statSync(l.eventFile!).size;
    expect(size).toBeGreaterThan(0);
    l.logMetrics({ a: 2 }, 1);
    l.save();
    expect(fs.statSync(l.eventFile!).size).toBeGreaterThan(size);
    l.logMetrics({ a: 3 }, 2);
    l.finalize('success');
    expect(readLogDir(l.rootDir).runs['version_0']!.scalars['a']!.points).toHaveLength(3);
    expect(exitFlushInstalled()).toBe(false);
  });

  it('flushes every flushSecs', () => {
    vi.useFakeTimers();
    try {
      const l = new TensorBoardLogger({ saveDir: tmp, maxQueue: 100, flushSecs: 5 });
      l.logMetrics({ a: 1 }, 0);
      expect(fs.statSync(l.eventFile!).size).toBe(0);
      vi.advanceTimersByTime(5000);
      expect(fs.statSync(l.eventFile!).size).toBeGreaterThan(0);
      l.finalize('success');
    } finally {
      vi.useRealTimers();
    }
  });

  it('flushes once maxQueue events wait', () => {
    const l = new TensorBoardLogger({ saveDir: tmp, maxQueue: 3 });
    l.logMetrics({ a: 1 }, 0); // file version, START, a@0: three records
    expect(readRecords(fs.readFileSync(l.eventFile!)).records).toHaveLength(3);
    l.finalize('success');
  });

  it('opens a new writer session for writes after finalize (test after fit)', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    l.logMetrics({ loss: 1 }, 10);
    l.finalize('success');
    l.logMetrics({ test_acc: 0.9 }, 10);
    l.finalize('success');
    const files = eventsOf(l.logDir);
    expect(files).toHaveLength(2);
    expect(files[1]![1]).toMatchObject({ step: 11, sessionLog: { status: 1 } });
    const s = readLogDir(l.rootDir).runs['version_0']!.scalars;
    expect(s['loss']!.points.map((p) => p[0])).toEqual([10]);
    expect(s['test_acc']!.points.map((p) => p[0])).toEqual([10]);
  });

});

describe('resume', () => {
  it('continues the version folder, drops what was logged after the checkpoint, and starts with START', () => {
    const a = new TensorBoardLogger({ saveDir: tmp });
    a.logHyperparams({ lr: 0.1 });
    let state: Record<string, unknown> = {};
    for (let step = 0; step < 10; step++) {
      a.logMetrics({ loss: 1 / (step + 1), epoch: 0 }, step);
      if (step === 5) state = JSON.parse(JSON.stringify(a.stateDict())) as Record<string, unknown>;
    }
    a.logText('late', 'after the checkpoint', 8);
    a.save(); // crash: no finalize
    expect(state).toMatchObject({ version: 0, maxStep: 5, hparamsLogged: true, lastSteps: { loss: 5, 'trainer/epoch': 5 } });

    const b = new TensorBoardLogger({ saveDir: tmp });
    b.loadStateDict(state);
    b.logHyperparams({ lr: 0.1 });
    for (let step = 6; step < 15; step++) b.logMetrics({ loss: 2 / (step + 1), epoch: 1 }, step);
    b.finalize('success');
    a.finalize('failed'); // the crashed process's logger: only releases its exit handlers (nothing is queued)

    expect(b.logDir).toBe(a.logDir);
    const files = eventsOf(b.logDir);
    expect(files).toHaveLength(2);
    expect(files[1]![1]).toMatchObject({ step: 6, sessionLog: { status: 1 } });
    const run = readLogDir(b.rootDir).runs['version_0']!;
    expect(run.scalars['loss']!.points.map((p) => [p[0], p[1]])).toEqual(
      Array.from({ length: 15 }, (_, s) => [s, f32((s < 6 ? 1 : 2) / (s + 1))]),
    );
    expect(run.text['late']).toBeUndefined();
    expect(run.plugins['hparams']).toEqual(['_hparams_/experiment', '_hparams_/session_end_info', '_hparams_/session_start_info']);
    // session_start_info was not written twice
    expect(files[1]!.flatMap((e) => e.values ?? []).filter((v) => v.tag === '_hparams_/session_start_info')).toHaveLength(0);
  });

  it('refuses a malformed state and a load after writing started', () => {
    const l = new TensorBoardLogger({ saveDir: tmp });
    expect(() => l.loadStateDict({ version: 'x' })).toThrow(CheckpointError);
    expect(() => l.loadStateDict({ version: 'x' })).toThrow(/TensorBoardLogger.loadStateDict: the logger state in the checkpoint is not one TensorBoardLogger.stateDict\(\) wrote: 'maxStep'/);
    l.logMetrics({ a: 1 }, 0);
    expect(() => l.loadStateDict(l.stateDict())).toThrow(/TensorBoardLogger.loadStateDict must be called before anything is logged/);
    l.finalize('success');
  });
});

describe('write errors', () => {
  it("with 'stop' and no trainer: throws one LoggerError naming the path, then does nothing", () => {
    const file = path.join(tmp, 'not-a-folder');
    fs.writeFileSync(file, '');
    const l = new TensorBoardLogger({ saveDir: file });
    let error: unknown;
    try {
      l.logMetrics({ a: 1 }, 0);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LoggerError);
    expect((error as Error).message).toMatch(
      new RegExp(`^TensorBoardLogger could not write '${file}/flint_logs/version_0': ENOTDIR: not a directory, mkdir '.*'\\. Check that the folder is writable and the disk has space \\(option 'saveDir' is '${file}'\\)\\. Training stops \\(onWriteError: 'stop'; pass onWriteError: 'continue' to train on without this logger\\)\\.$`),
    );
    // Once: later writes and finalize are dropped without a second error; the first stays.
    l.logMetrics({ a: 2 }, 1);
    l.finalize('failed');
    expect(l.writeError).toBe(error);
    expect(fs.statSync(file).size).toBe(0);
  });

  it("with a trainer: prints once and asks the trainer to stop ('stop') or just goes on ('continue')", () => {
    const file = path.join(tmp, 'not-a-folder');
    fs.writeFileSync(file, '');
    for (const onWriteError of ['stop', 'continue'] as const) {
      const trainer = fakeTrainer();
      const l = new TensorBoardLogger({ saveDir: file, onWriteError });
      l.setup(trainer, {} as never, 'fit');
      l.logHyperparams({ lr: 1 });
      l.logMetrics({ a: 1 }, 0);
      l.logMetrics({ a: 2 }, 1);
      l.finalize('success');
      expect(trainer.printed).toHaveLength(1);
      expect(trainer.printed[0]).toContain(`TensorBoardLogger could not write '${file}`);
      expect(trainer.stops).toEqual(onWriteError === 'stop' ? [{ rule: 'logger_error', message: trainer.printed[0], source: 'TensorBoardLogger' }] : []);
    }
  });

  it("with 'continue' and no trainer: warns once and goes on", () => {
    const file = path.join(tmp, 'not-a-folder');
    fs.writeFileSync(file, '');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const l = new TensorBoardLogger({ saveDir: file, onWriteError: 'continue' });
      l.logMetrics({ a: 1 }, 0);
      l.logMetrics({ a: 2 }, 1);
      l.finalize('success');
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toContain("training continues without it (onWriteError: 'continue')");
    } finally {
      warn.mockRestore();
    }
  });
});

describe('golden fixture comparison', () => {
  it('writes a run the test reader reads like the tf_summary fixture run_a (same scalars, text and hparams)', () => {
    const expected = loadExpected('tf_summary');
    const runA = expected.runs['run_a']!;
    const l = new TensorBoardLogger({ saveDir: tmp, name: 'exp', version: 'run_a', textSummaries: false, hparamsMetrics: ['val/loss', 'val/acc'] });
    l.logHyperparams({ lr: 0.001, batch_size: 32, optimizer: 'adam', use_bn: true });
    for (let step = 0; step < 20; step++) {
      l.logMetrics({ 'train/loss': 1 / (step + 1), 'val/loss': 1.2 / (step + 1) + 0.05, 'val/acc': 0.5 + 0.02 * step }, step);
      if (step === 0 || step === 5) l.logText('notes', step === 0 ? 'Hello **TensorBoard**: run started. Unicode check: éè ✓ 日本' : 'second note at step 5', step);
    }
    l.finalize('success');
    const got = readLogDir(l.rootDir).runs['run_a']!;
    for (const tag of ['train/loss', 'val/loss', 'val/acc']) {
      expect(got.scalars[tag]!.points.map((p) => [p[0], p[1]])).toEqual(runA.scalars[tag]!.points.map((p) => [p[0], p[1]]));
    }
    expect((got.text['notes'] as Array<{ value: unknown; step: number }>).map((t) => [t.step, t.value])).toEqual(
      (runA.text['notes'] as Array<{ value: unknown; step: number }>).map((t) => [t.step, t.value]),
    );
    expect((got.hparams_plugin_data['_hparams_/session_start_info']!['session_start_info'] as Record<string, unknown>)['hparams']).toEqual(
      ((runA.hparams_plugin_data['_hparams_/session_start_info'] as Record<string, unknown>)['session_start_info'] as Record<string, unknown>)['hparams'],
    );
    void FIXTURES_DIR;
  });
});
