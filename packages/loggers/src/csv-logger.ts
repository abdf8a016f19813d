import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError, MisconfigurationError, parseOptions, writeFileAtomicSync } from '@flint/core';
import type { Metrics, RunStatus } from '@flint/core';
import { z } from 'zod';
import { AppendFile } from './internal/append-file.js';
import { formatCsvCell, formatCsvRow, parseCsv } from './internal/csv.js';
import { FileLogger, onWriteErrorSchema } from './internal/file-logger.js';
import { runDirOptionsShape } from './internal/run-dir.js';

export const csvLoggerOptionsSchema = z.strictObject({
  ...runDirOptionsShape,
  /** Rows kept in memory before they are appended to metrics.csv (besides epoch end, fit end, error and exit). */
  flushLogsEveryNSteps: z.number().int().positive().default(100),
  /** After a write error: 'stop' training, or 'continue' without this logger. Reported once either way. */
  onWriteError: onWriteErrorSchema.default('stop'),
});

export type CSVLoggerOptions = z.input<typeof csvLoggerOptionsSchema>;
type ParsedOptions = z.output<typeof csvLoggerOptionsSchema>;

const stateSchema = z.object({
  version: z.union([z.number().int().nonnegative(), z.string().min(1)]),
  /** Rows in metrics.csv when the checkpoint was taken. */
  rows: z.number().int().nonnegative(),
  /** The header of metrics.csv then. */
  columns: z.array(z.string()),
  /** Every column known then (the header, then columns only the rows in memory have). */
  knownColumns: z.array(z.string()).optional(),
  /** Rows still in memory then, as [column, cell text] pairs: a later call at their step may still join them. */
  pending: z.array(z.array(z.tuple([z.string(), z.string()]))).default([]),
  /** The largest step logged then (-1: none). */
  maxStep: z.number().int().min(-1).optional(),
  /** The step at which the training resumed from the checkpoint logs again (absent in older checkpoints: maxStep + 1). */
  resumeStep: z.number().int().nonnegative().optional(),
});

/** What `stateDict` returns (JSON). */
export type CSVLoggerState = z.output<typeof stateSchema>;

export const METRICS_FILE = 'metrics.csv';
const FIXED_COLUMNS = ['epoch', 'step'] as const;

function isInteger(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/**
 * Lightning's CSVLogger: `<saveDir>/<name>/version_<n>/metrics.csv`, one row per logging step (calls
 * at the same step are merged into one row), a column per metric, added as new metrics appear (the
 * file is then rewritten atomically with the wider header), and `hparams.yaml`.
 */
export class CSVLogger extends FileLogger {
  protected readonly kind = 'CSVLogger';
  readonly options: Readonly<ParsedOptions>;
  private file: AppendFile | undefined;
  /** Columns in metrics.csv on disk (what its header says). */
  private diskColumns: string[] = [];
  /** Every column known, in order: epoch, step, then metrics as they first appeared. */
  private columns: string[] = [...FIXED_COLUMNS];
  private pending: Map<string, number>[] = [];
  private rowsOnDisk = 0;
  /** Largest step logged (-1: none). */
  private maxStep = -1;
  private resume: CSVLoggerState | undefined;
  private exiting = false;
  /** Rows of metrics.csv (0-based, after the header) that a validate or test run of this logger wrote. */
  private evaluationRows = new Set<number>();

  constructor(options: CSVLoggerOptions = {}) {
    const parsed = parseOptions('CSVLogger', csvLoggerOptionsSchema, options);
    super(parsed.saveDir, parsed.name, parsed.version, parsed.onWriteError);
    this.options = parsed;
  }

  /** Path of metrics.csv. */
  get metricsFile(): string {
    return path.join(this.logDir, METRICS_FILE);
  }

  logMetrics(metrics: Metrics, step: number): void {
    if (!isInteger(step)) {
      throw new MisconfigurationError(`CSVLogger.logMetrics(metrics, step): step must be a non-negative integer (the global step), received ${String(step)}.`);
    }
    const row = new Map<string, number>();
    for (const [key, value] of Object.entries(metrics)) {
      if (typeof value !== 'number') {
        throw new MisconfigurationError(`CSVLogger.logMetrics: metric '${key}' must be a number, received ${typeof value} (${String(value)}).`);
      }
      if (key === 'step') {
        throw new MisconfigurationError(`CSVLogger.logMetrics: a metric may not be named 'step': that column holds the logging step. Rename the metric.`);
      }
      row.set(key, value);
    }
    row.set('step', step);
    if (this.writeError !== undefined) return;
    this.maxStep = Math.max(this.maxStep, step);
    for (const key of row.keys()) if (!this.columns.includes(key)) this.columns.push(key);
    const last = this.pending.at(-1);
    if (last !== undefined && last.get('step') === step && [...row].every(([k, v]) => !last.has(k) || Object.is(last.get(k), v))) {
      for (const [k, v] of row) last.set(k, v);
    } else {
      this.pending.push(row);
    }
    if (!this.opened) this.armExitFlush();
    if (this.pending.length > this.options.flushLogsEveryNSteps) this.write(() => this.flushRows(1));
  }

  onValidationEnd(): void {
    this.save();
  }

  /**
   * JSON state for checkpoints: the version, the rows written (flushed first, but for the last row,
   * which a later call at its step may still join) and the rows still in memory.
   */
  stateDict(): CSVLoggerState {
    // A resumed logger that has written nothing yet applies its checkpoint's rows first (opening the
    // file does), so that this state counts them: a kill before the next checkpoint must not leave a
    // state that says the file is empty.
    if (this.resume !== undefined || this.pending.length > 1) this.write(() => this.flushRows(1));
    return {
      version: this.version,
      rows: this.rowsOnDisk,
      columns: [...this.diskColumns],
      knownColumns: [...this.columns],
      pending: this.pending.map((r) => [...r].map(([k, v]): [string, string] => [k, formatCsvCell(v)])),
      maxStep: this.maxStep,
      resumeStep: this.resumeStepNow(this.maxStep),
    };
  }

  /**
   * Continues the run of a checkpoint in the same version folder (unless the `version` option says
   * otherwise). metrics.csv keeps the rows of the checkpoint, with the rows it held in memory; of
   * what was written after it, the rows below the step the resumed training logs again (the
   * validation after a mid-epoch checkpoint) stay, and so do the rows this logger wrote in a
   * validate or test run at steps up to it (a test after the fit); the other rows, from the training
   * the resume replaces, are dropped. Call it before anything is logged.
   */
  loadStateDict(state: Readonly<Record<string, unknown>>): void {
    const parsed = stateSchema.safeParse(state);
    if (!parsed.success) {
      throw new CheckpointError(
        `CSVLogger.loadStateDict: the logger state in the checkpoint is not one CSVLogger.stateDict() wrote: ${parsed.error.issues
          .map((i) => `'${i.path.join('.')}' ${i.message}`)
          .join('; ')}.`,
      );
    }
    if (this.opened || this.pending.length > 0) {
      throw new MisconfigurationError(
        `CSVLogger.loadStateDict must be called before anything is logged in this session: ${this.opened ? `${this.metricsFile} is open` : `${this.pending.length} row(s) for ${this.metricsFile} wait to be written`} (a finished fit or test closes it).`,
      );
    }
    this.resume = parsed.data;
    this.maxStep = Math.max(this.maxStep, parsed.data.maxStep ?? -1);
    if (this.explicitVersion === undefined) this.runDir.setVersion(parsed.data.version);
  }

  // ---- FileLogger ----

  protected currentPath(): string {
    return this.metricsFile;
  }

  /**
   * Rows wait in memory, or a checkpoint's rows do (`loadStateDict`): a resume with nothing left to
   * log (its checkpoint was taken after the last step) still writes the rows the checkpoint held.
   */
  protected override hasPending(): boolean {
    return this.pending.length > 0 || this.resume !== undefined;
  }

  protected openFiles(): void {
    fs.mkdirSync(this.logDir, { recursive: true });
    const file = this.metricsFile;
    const resume = this.resume !== undefined && String(this.resume.version) === String(this.version) ? this.resume : undefined;
    this.resume = undefined;
    if (resume !== undefined) {
      this.restoreRows(file, resume);
    } else if (fs.existsSync(file)) {
      // Resume, or a second session (test after fit) of this logger: keep the rows of the checkpoint.
      const rows = parseCsv(fs.readFileSync(file, 'utf8'));
      const header = rows[0] ?? [];
      let data = rows.slice(1);
      if (this.rowsOnDisk > 0) data = data.slice(0, this.rowsOnDisk);
      this.columns = [...header, ...this.columns.filter((c) => !header.includes(c))];
      if (header.length > 0 && data.length !== rows.length - 1) {
        writeFileAtomicSync(file, formatCsvRow(header) + data.map((r) => formatCsvRow(r)).join(''));
      }
      this.diskColumns = header;
      this.rowsOnDisk = data.length;
    }
    this.file = new AppendFile(file);
  }

  /**
   * metrics.csv as of the checkpoint: its rows, then the rows it held in memory (or their version on
   * disk, which later calls at their step may have completed), then the rows written after it below
   * the resume step, or at it and below from a validate or test run of this logger; the other rows
   * are dropped. Rewritten atomically.
   */
  private restoreRows(file: string, resume: CSVLoggerState): void {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    const parsed = parseCsv(text);
    const header = parsed[0] ?? [];
    const data = parsed.slice(1);
    const stepAt = header.indexOf('step');
    const asRecord = (r: readonly string[]): Map<string, string> => {
      const m = new Map<string, string>();
      header.forEach((c, i) => {
        const v = r[i];
        if (v !== undefined && v !== '') m.set(c, v);
      });
      return m;
    };
    const kept = data.slice(0, resume.rows).map(asRecord);
    // Rows after the checkpoint, with their place in the file.
    const after = data.slice(resume.rows).map((r, i) => ({ row: asRecord(r), at: resume.rows + i }));
    const pending = resume.pending.map((r) => new Map(r));
    const maxStep = resume.maxStep ?? Math.max(-1, ...pending.map((r) => Number(r.get('step'))));
    const resumeStep = resume.resumeStep ?? maxStep + 1;
    // The rows in memory at the checkpoint were written first after it, when the process got that far.
    for (const row of pending) {
      const disk = after[0]?.row;
      const same = disk !== undefined && [...row].every(([k, v]) => disk.get(k) === v);
      kept.push(same ? disk : row);
      if (same) after.shift();
    }
    const evaluation = new Set<number>();
    if (stepAt >= 0) {
      for (const { row, at } of after) {
        const step = Number(row.get('step'));
        const fromEvaluation = this.evaluationRows.has(at);
        if (step < resumeStep || (fromEvaluation && step <= resumeStep)) {
          if (fromEvaluation) evaluation.add(kept.length);
          kept.push(row);
        }
      }
    }
    this.evaluationRows = evaluation;
    const columns = [...(resume.knownColumns ?? resume.columns)];
    for (const c of header) if (!columns.includes(c) && kept.some((r) => r.has(c))) columns.push(c);
    for (const r of kept) for (const c of r.keys()) if (!columns.includes(c)) columns.push(c);
    writeFileAtomicSync(file, formatCsvRow(columns) + kept.map((r) => formatCsvRow(columns.map((c) => r.get(c)))).join(''));
    this.columns = [...columns, ...this.columns.filter((c) => !columns.includes(c))];
    this.diskColumns = columns;
    this.rowsOnDisk = kept.length;
  }

  /**
   * At save and epoch ends the last row stays in memory, as a later call at its step (the train epoch
   * metrics come after validation's) still belongs in it; finalize, exit and stateDict write it.
   */
  protected flushFiles(): void {
    this.flushRows(1);
  }

  override flushOnExit(reason: 'exit' | NodeJS.Signals): void {
    this.exiting = true;
    super.flushOnExit(reason);
  }

  protected closeFiles(_status: RunStatus): void {
    this.flushRows(0);
    this.file?.close();
  }

  protected abandonFiles(): void {
    this.pending = [];
    this.file?.abandon();
  }

  /** Writes pending rows, keeping the last `keep` in memory (a later call at the same step may still merge into it). */
  private flushRows(keepLast: number): void {
    const keep = this.exiting ? 0 : keepLast;
    const count = this.pending.length - keep;
    if (count <= 0 || this.file === undefined) return;
    const rows = this.pending.slice(0, count);
    const grows = this.columns.length !== this.diskColumns.length;
    if (grows) {
      // New columns: rewrite the file with the wider header (atomically), then keep appending.
      const file = this.metricsFile;
      const existing = this.diskColumns.length > 0 ? parseCsv(fs.readFileSync(file, 'utf8')).slice(1, 1 + this.rowsOnDisk) : [];
      const remap = existing.map((r) => this.columns.map((c) => {
        const i = this.diskColumns.indexOf(c);
        return i < 0 ? undefined : r[i];
      }));
      const text = formatCsvRow(this.columns) + remap.map((r) => formatCsvRow(r)).join('') + rows.map((r) => this.formatRow(r)).join('');
      this.file.close();
      writeFileAtomicSync(file, text);
      this.file = new AppendFile(file);
      this.diskColumns = [...this.columns];
    } else {
      this.file.append(Buffer.from(rows.map((r) => this.formatRow(r)).join(''), 'utf8'));
    }
    this.pending = this.pending.slice(count);
    if (!this.writingTraining) for (let i = 0; i < rows.length; i++) this.evaluationRows.add(this.rowsOnDisk + i);
    this.rowsOnDisk += rows.length;
  }

  private formatRow(row: ReadonlyMap<string, number>): string {
    return formatCsvRow(this.columns.map((c) => row.get(c)));
  }
}
