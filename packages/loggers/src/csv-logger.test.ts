import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointError, LoggerError } from '@flint/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CSVLogger, TensorBoardLogger } from './index.js';
import { formatCsvRow, parseCsv } from './internal/csv.js';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flint-csv-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const read = (l: CSVLogger): string => fs.readFileSync(l.metricsFile, 'utf8');

describe('CSVLogger', () => {
  it('writes one row per logging step, merging calls at the same step, with columns added as metrics appear', () => {
    const l = new CSVLogger({ saveDir: tmp });
    l.logMetrics({ train_loss: 0.5, epoch: 0 }, 0);
    l.logMetrics({ train_loss: 0.25, epoch: 0 }, 1);
    l.logMetrics({ val_loss: 0.75, val_acc: 0.5, epoch: 0 }, 1);
    l.logMetrics({ train_loss: 0.125, epoch: 1 }, 2);
    l.finalize('success');
    expect(l.metricsFile).toBe(path.join(tmp, 'flint_logs', 'version_0', 'metrics.csv'));
    expect(read(l)).toBe('epoch,step,train_loss,val_loss,val_acc\n0,0,0.5,,\n0,1,0.25,0.75,0.5\n1,2,0.125,,\n');
  });

  it('rewrites the file with the wider header when a metric appears after rows were flushed', () => {
    const l = new CSVLogger({ saveDir: tmp, flushLogsEveryNSteps: 1 });
    l.logMetrics({ a: 1, epoch: 0 }, 0);
    l.logMetrics({ a: 2, epoch: 0 }, 1);
    l.logMetrics({ a: 3, epoch: 0 }, 2);
    expect(read(l)).toBe('epoch,step,a\n0,0,1\n0,1,2\n'); // the last row waits: a call at its step may add to it
    l.logMetrics({ b: 4, epoch: 1 }, 3);
    l.save(); // keeps the last row: a later call at step 3 may add to it
    expect(read(l)).toBe('epoch,step,a,b\n0,0,1,\n0,1,2,\n0,2,3,\n');
    l.logMetrics({ c: 5, epoch: 1 }, 3);
    l.finalize('success');
    expect(read(l)).toBe('epoch,step,a,b,c\n0,0,1,,\n0,1,2,,\n0,2,3,,\n1,3,,4,5\n');
  });

  it('writes numbers as Python does, and quotes names that need it', () => {
    const l = new CSVLogger({ saveDir: tmp });
    l.logMetrics({ 'loss, "smoothed"': NaN, inf: Infinity, ninf: -Infinity, small: 1e-7 }, 0);
    l.finalize('success');
    expect(read(l)).toBe('epoch,step,"loss, ""smoothed""",inf,ninf,small\n,0,nan,inf,-inf,1e-7\n');
    expect(parseCsv(read(l))[0]).toEqual(['epoch', 'step', 'loss, "smoothed"', 'inf', 'ninf', 'small']);
  });

  it('writes hparams.yaml, and shares the version folder logic with TensorBoardLogger', () => {
    const tb = new TensorBoardLogger({ saveDir: tmp });
    const csv = new CSVLogger({ saveDir: tmp });
    // Created together, they share version_0 whichever writes first.
    tb.logMetrics({ a: 1 }, 0);
    tb.finalize('success');
    expect(csv.logDir).toBe(tb.logDir);
    csv.logHyperparams({ lr: 0.1, net: { width: 8 } });
    csv.logMetrics({ a: 1 }, 0);
    csv.finalize('success');
    expect(fs.readFileSync(path.join(csv.logDir, 'hparams.yaml'), 'utf8')).toBe('lr: 0.1\nnet:\n  width: 8\n');
    expect(new CSVLogger({ saveDir: tmp }).version).toBe(1);
  });

  it('resumes: cuts metrics.csv back to the rows of the checkpoint and appends', () => {
    const a = new CSVLogger({ saveDir: tmp });
    let state: Record<string, unknown> = {};
    for (let step = 0; step < 6; step++) {
      a.logMetrics({ loss: step, epoch: 0 }, step);
      if (step === 2) state = JSON.parse(JSON.stringify(a.stateDict())) as Record<string, unknown>;
    }
    a.save();
    // The last row stays in memory (a later call at step 2 may still join it) and in the state.
    expect(state).toEqual({
      version: 0,
      rows: 2,
      columns: ['epoch', 'step', 'loss'],
      knownColumns: ['epoch', 'step', 'loss'],
      pending: [[['loss', '2'], ['epoch', '0'], ['step', '2']]],
      maxStep: 2,
      resumeStep: 3,
    });
    const b = new CSVLogger({ saveDir: tmp });
    b.loadStateDict(state);
    b.logMetrics({ loss: 30, epoch: 1 }, 3);
    b.finalize('success');
    a.finalize('failed');
    expect(read(b)).toBe('epoch,step,loss\n0,0,0\n0,1,1\n0,2,2\n1,3,30\n');
    expect(() => new CSVLogger({ saveDir: tmp }).loadStateDict({ rows: -1 })).toThrow(CheckpointError);
  });

  it('a resume from a checkpoint taken after the last step, with nothing left to log, still writes the rows the checkpoint held in memory', () => {
    // A process logs 4 steps, checkpoints at the end of training (its last row still in memory) and
    // is killed before it finalizes: the row of step 3 exists only in the checkpoint.
    const a = new CSVLogger({ saveDir: tmp });
    for (let step = 0; step < 4; step++) a.logMetrics({ loss: step, epoch: 0 }, step);
    const state = JSON.parse(JSON.stringify(a.stateDict())) as Record<string, unknown>;
    expect(state).toMatchObject({ rows: 3, pending: [[['loss', '3'], ['epoch', '0'], ['step', '3']]] });
    // The resumed process has no step left: it logs nothing and finalizes.
    const b = new CSVLogger({ saveDir: tmp });
    b.loadStateDict(state);
    b.finalize('success');
    expect(read(b)).toBe('epoch,step,loss\n0,0,0\n0,1,1\n0,2,2\n0,3,3\n');
  });

  it('a resumed logger that checkpoints before it wrote anything counts the rows of its checkpoint (a kill then does not duplicate them)', () => {
    const a = new CSVLogger({ saveDir: tmp });
    for (let step = 1; step <= 3; step++) a.logMetrics({ loss: step, epoch: 0 }, step);
    const first = JSON.parse(JSON.stringify(a.stateDict())) as Record<string, unknown>;
    a.finalize('failed');
    // A new process resumes, logs one step and checkpoints it before anything was written (then is killed).
    const b = new CSVLogger({ saveDir: tmp });
    b.loadStateDict(first);
    b.logMetrics({ loss: 4, epoch: 0 }, 4);
    const second = JSON.parse(JSON.stringify(b.stateDict())) as Record<string, unknown>;
    expect(second).toMatchObject({ rows: 3, pending: [[['loss', '4'], ['epoch', '0'], ['step', '4']]] });
    const c = new CSVLogger({ saveDir: tmp });
    c.loadStateDict(second);
    c.logMetrics({ loss: 5, epoch: 0 }, 5);
    c.finalize('success');
    expect(read(c)).toBe('epoch,step,loss\n0,1,1\n0,2,2\n0,3,3\n0,4,4\n0,5,5\n');
  });

  it('resumes: of the rows written after the checkpoint, keeps those at its step or before (the completed last row, a test row) and drops later ones', () => {
    const dir = path.join(tmp, 'after');
    const a = new CSVLogger({ saveDir: dir });
    a.logMetrics({ loss: 0 }, 0);
    a.logMetrics({ loss: 1 }, 1);
    const state = JSON.parse(JSON.stringify(a.stateDict())) as Record<string, unknown>;
    a.logMetrics({ lr: 0.5 }, 1); // joins the row of step 1 after the checkpoint
    a.logMetrics({ loss: 2 }, 2);
    a.finalize('success');
    a.logMetrics({ test_loss: 9 }, 1); // a test run at the checkpoint's step
    a.finalize('success');
    expect(read(a)).toBe('epoch,step,loss,lr,test_loss\n,0,0,,\n,1,1,0.5,\n,2,2,,\n,1,,,9\n');
    const b = new CSVLogger({ saveDir: dir });
    b.loadStateDict(state);
    b.logMetrics({ loss: 20 }, 2);
    b.finalize('success');
    expect(read(b)).toBe('epoch,step,loss,lr,test_loss\n,0,0,,\n,1,1,0.5,\n,1,,,9\n,2,20,,\n');
  });

  it('reports a write error once, naming the path', () => {
    const file = path.join(tmp, 'file');
    fs.writeFileSync(file, '');
    const l = new CSVLogger({ saveDir: file, flushLogsEveryNSteps: 1 });
    l.logMetrics({ a: 1 }, 0);
    expect(() => l.logMetrics({ a: 2 }, 1)).toThrow(LoggerError);
    const reported = l.writeError;
    // Once: the logger is off, a later row is dropped without a second error, and the first stays.
    l.logMetrics({ a: 3 }, 2);
    expect(l.writeError).toBe(reported);
    expect(l.writeError!.message).toMatch(new RegExp(`^CSVLogger could not write '${file}/flint_logs/version_0': ENOTDIR`));
    l.finalize('failed');
  });

  it('its first write into a folder removes the temporary files that killed writers left there, not those of a live writer', () => {
    const dir = path.join(tmp, 'flint_logs', 'version_0');
    fs.mkdirSync(dir, { recursive: true });
    const gone = spawnSync(process.execPath, ['-e', '']).pid!; // a process that has ended
    const dead = `.flint-tmp.${gone}.0badc0de.tmp`;
    const live = `.flint-tmp.${process.ppid}.0badc0de.tmp`;
    for (const name of [dead, live]) fs.writeFileSync(path.join(dir, name), 'half a file');
    const l = new CSVLogger({ saveDir: tmp, version: 0 });
    l.logHyperparams({ lr: 0.1 });
    l.logMetrics({ a: 1 }, 0);
    l.finalize('success');
    expect(fs.readdirSync(dir).sort()).toEqual([live, 'hparams.yaml', 'metrics.csv']);
  });

  it('rejects a metric named step', () => {
    expect(() => new CSVLogger({ saveDir: tmp }).logMetrics({ step: 1 }, 0)).toThrow(
      "CSVLogger.logMetrics: a metric may not be named 'step': that column holds the logging step. Rename the metric.",
    );
  });
});

describe('csv helpers', () => {
  it('round-trips quoted cells with commas, quotes and line breaks', () => {
    const rows = [
      ['a', 'b,c', 'd"e'],
      ['line\nbreak', '', ' padded '],
    ];
    expect(parseCsv(rows.map((r) => formatCsvRow(r)).join(''))).toEqual(rows);
  });
});
