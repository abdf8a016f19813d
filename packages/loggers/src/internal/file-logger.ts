import { LoggerError, MisconfigurationError, writeFileAtomicSync } from '@flint/core';
import type { HParams, LightningModule, Logger, Metrics, RunStatus, Stage, TrainerContext } from '@flint/core';
import { stringify } from 'yaml';
import * as path from 'node:path';
import { z } from 'zod';
import { registerExitFlush, unregisterExitFlush, type ExitFlushable } from './exit-flush.js';
import { RunDir, type VersionInput } from './run-dir.js';

export const onWriteErrorSchema = z.enum(['stop', 'continue']);
export type OnWriteError = z.output<typeof onWriteErrorSchema>;

/** The message of an error a file operation threw, for `FileLogger`'s one report. */
function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function errorPath(error: unknown): string | undefined {
  if (error !== null && typeof error === 'object' && 'path' in error && typeof error.path === 'string') return error.path;
  return undefined;
}

/**
 * What TensorBoardLogger and CSVLogger share: the `<saveDir>/<name>/<version>` folder, files opened on
 * the first write (so that `loadStateDict` can pin the version first), hparams.yaml, flushing at
 * process exit, and the one-time report of a write error.
 *
 * A write error (folder not writable, disk full) is reported once, naming the path, and the logger
 * then does nothing more. With `onWriteError: 'stop'` it also stops training: through
 * `trainer.requestStop` when a trainer has run the logger's hooks, or else by throwing the
 * `LoggerError` from the call that failed. With 'continue' training goes on without it.
 */
export abstract class FileLogger implements Logger, ExitFlushable {
  /** Class name used in messages. */
  protected abstract readonly kind: string;
  protected readonly runDir: RunDir;
  protected trainer: TrainerContext | undefined;
  /** The flattened-or-not hparams given to `logHyperparams`, waiting for the files to open. */
  protected hparams: Readonly<Record<string, unknown>> | undefined;
  private hparamsYamlPending = false;
  private failure: LoggerError | undefined;
  private pendingThrow: LoggerError | undefined;
  private isOpen = false;
  private isFinalized = false;

  /** The `version` option as given (undefined: the next free `version_<n>`, or the checkpoint's on resume). */
  protected readonly explicitVersion: number | string | undefined;

  protected constructor(
    saveDir: string,
    name: string,
    version: VersionInput,
    protected readonly onWriteError: OnWriteError,
  ) {
    this.runDir = new RunDir(saveDir, name, version);
    this.explicitVersion = version;
  }

  /** The experiment name (the folder under saveDir), as Lightning's `logger.name`. */
  get name(): string {
    return this.runDir.name;
  }

  /** The run's version: the integer of `version_<n>`, or the folder name given as a string. */
  get version(): number | string {
    return this.runDir.version;
  }

  /** The run's folder: `<saveDir>/<name>/<version>` (TensorBoardLogger adds its `subDir`). */
  get logDir(): string {
    return this.runDir.logDir;
  }

  /** `<saveDir>/<name>`, the folder that holds every version of this experiment. */
  get rootDir(): string {
    return this.runDir.root;
  }

  /**
   * Identifies this logger's state in a checkpoint: the class name plus the options that tell two
   * loggers apart, as given (`CSVLogger{"saveDir":"runs","name":"flint_logs"}`), so that the same
   * code finds its state again in a new process. The version is not part of it: a resume may pin
   * `version` where the first run let it be chosen. The trainer refuses two loggers with one key.
   */
  get stateKey(): string {
    return `${this.kind}${JSON.stringify(this.stateKeyParts())}`;
  }

  /** The options that tell two loggers of this class apart. */
  protected stateKeyParts(): Record<string, unknown> {
    return { saveDir: this.runDir.saveDir, name: this.runDir.name };
  }

  /** The write error that disabled this logger, if any. */
  get writeError(): LoggerError | undefined {
    return this.failure;
  }

  protected get opened(): boolean {
    return this.isOpen;
  }

  // ---- what subclasses provide ----

  /** Opens the files of this writer session (called once, inside the error guard). */
  protected abstract openFiles(): void;
  /** Writes buffered output (inside the error guard). */
  protected abstract flushFiles(): void;
  /** Flushes and closes (inside the error guard). */
  protected abstract closeFiles(status: RunStatus): void;
  /** Closes without writing, ignoring errors. */
  protected abstract abandonFiles(): void;
  /** The file being written, for messages. */
  protected abstract currentPath(): string;
  /** Whether data waits in memory while no file is open yet. */
  protected hasPending(): boolean {
    return false;
  }

  // ---- hooks ----

  /** The run's context, kept from `setup` (the first hook of every run) for the write-error report. */
  setup(trainer: TrainerContext, _module: LightningModule, stage: Stage): void {
    this.trainer = trainer;
    this.stage = stage;
  }

  /** The stage of the trainer's current (or last) run, from `setup`; undefined without a trainer. */
  private stage: Stage | undefined;

  /**
   * Whether what is written now may belong to training (a fit, or no trainer: a logger driven by hand):
   * a resume replaces such rows from its step on. A validate or test run's rows are not replaced.
   */
  protected get writingTraining(): boolean {
    return this.stage === undefined || this.stage === 'fit';
  }

  /**
   * For a checkpoint's logger state: the step at which the training resumed from it logs again (the
   * trainer's global step: the optimizer steps taken, as Lightning's loggers number them), or, without
   * a trainer, the step after the last one logged.
   */
  protected resumeStepNow(maxStep: number): number {
    return this.trainer?.globalStep ?? maxStep + 1;
  }

  onException(): void {
    this.save();
  }

  // ---- Logger ----

  logHyperparams(params: HParams): void {
    this.throwPending();
    if (params === null || typeof params !== 'object' || Array.isArray(params)) {
      throw new MisconfigurationError(
        `${this.kind}.logHyperparams(params): params must be a plain object of hyper-parameters, received ${JSON.stringify(params)}.`,
      );
    }
    // Nothing to show (a module without hparams): no hparams.yaml, no row in the HParams tab.
    if (Object.keys(params).length === 0) return;
    this.hparams = params;
    this.hparamsYamlPending = true;
    if (this.isOpen) this.guard(() => this.writePendingHparams());
  }

  abstract logMetrics(metrics: Metrics, step: number): void;

  save(): void {
    this.throwPending();
    if (this.failure !== undefined || (!this.isOpen && !this.hasPending())) return;
    this.write(() => this.flushFiles());
  }

  /**
   * Flushes and closes the files (never throws for a write error: that is reported). A later write
   * (say, `trainer.test()` after `fit`) opens a new writer session in the same folder.
   */
  finalize(status: RunStatus): void {
    // Rows buffered since the last finalize (a test after fit) open a new session: write them.
    if (this.isFinalized && !this.isOpen && !this.hasPending()) return;
    this.isFinalized = true;
    unregisterExitFlush(this);
    if (this.failure !== undefined) return;
    if (!this.isOpen) {
      // Nothing written yet: open only for buffered data, or to leave hparams.yaml behind.
      if (this.hparams === undefined && !this.hasPending()) return;
      this.guard(() => this.ensureOpen(), false);
      if (this.failure !== undefined) return;
    }
    this.guard(() => this.closeFiles(status), false);
    this.isOpen = false;
  }

  flushOnExit(_reason: 'exit' | NodeJS.Signals): void {
    if (this.failure !== undefined || (!this.isOpen && !this.hasPending())) return;
    this.guard(() => {
      this.ensureOpen();
      this.flushFiles();
    }, false);
  }

  // ---- for subclasses ----

  /** Data waits in memory before any file is open: have it flushed at process exit too. */
  protected armExitFlush(): void {
    registerExitFlush(this);
  }

  /**
   * Runs a write: opens the files on first use, and turns any error into the one report. Returns
   * false when the logger is disabled (after a write error).
   */
  protected write(fn: () => void): boolean {
    this.throwPending();
    if (this.failure !== undefined) return false;
    this.isFinalized = false;
    return this.guard(() => {
      this.ensureOpen();
      fn();
    });
  }

  /** Opens the files once (inside a guard). */
  protected ensureOpen(): void {
    if (this.isOpen) return;
    this.openFiles();
    this.isOpen = true;
    this.isFinalized = false;
    registerExitFlush(this);
    this.writePendingHparams();
  }

  /** Writes hparams.yaml (and what the subclass adds) once the folder is known. */
  protected writePendingHparams(): void {
    if (!this.hparamsYamlPending || this.hparams === undefined) return;
    this.hparamsYamlPending = false;
    writeFileAtomicSync(path.join(this.logDir, 'hparams.yaml'), stringify(toYamlSafe(this.hparams)));
    this.onHparams(this.hparams);
  }

  /** Subclass hook: hparams are known and the files are open. */
  protected onHparams(_params: Readonly<Record<string, unknown>>): void {}

  /** Guards a write. `mayThrow` false: never throws (timers, exit, finalize). */
  protected guard(fn: () => void, mayThrow = true): boolean {
    if (this.failure !== undefined) return false;
    try {
      fn();
      return true;
    } catch (error) {
      if (error instanceof MisconfigurationError) throw error;
      this.fail(error, mayThrow);
      return false;
    }
  }

  private fail(error: unknown, mayThrow: boolean): void {
    const where = errorPath(error) ?? this.currentPath();
    const code = error !== null && typeof error === 'object' && 'code' in error && typeof error.code === 'string' ? `${error.code}: ` : '';
    const detail = errorText(error).startsWith(code) ? errorText(error) : `${code}${errorText(error)}`;
    const then =
      this.onWriteError === 'continue'
        ? `${this.kind} is disabled for the rest of the run and training continues without it (onWriteError: 'continue').`
        : `Training stops (onWriteError: 'stop'; pass onWriteError: 'continue' to train on without this logger).`;
    const message = `${this.kind} could not write '${where}': ${detail}. Check that the folder is writable and the disk has space (option 'saveDir' is '${this.runDir.saveDir}'). ${then}`;
    const err = new LoggerError(message, { cause: error });
    this.failure = err;
    this.abandonFiles();
    unregisterExitFlush(this);
    const trainer = this.trainer;
    if (trainer !== undefined) {
      trainer.print(message);
      if (this.onWriteError === 'stop') trainer.requestStop({ rule: 'logger_error', message, source: this.kind });
      return;
    }
    if (this.onWriteError === 'continue') {
      console.warn(message);
      return;
    }
    if (mayThrow) throw err;
    console.warn(message);
    this.pendingThrow = err;
  }

  private throwPending(): void {
    const err = this.pendingThrow;
    if (err === undefined) return;
    this.pendingThrow = undefined;
    throw err;
  }
}

/** Plain data for yaml: drops functions, keeps what JSON keeps. */
function toYamlSafe(value: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))) as unknown;
  } catch {
    return String(value);
  }
}
