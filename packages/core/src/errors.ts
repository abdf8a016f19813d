import type { RunningStage, Stage } from './stages.js';

/**
 * Flint's error family. Every error names the option or data at fault, the value received and what
 * would be valid; an underlying error travels in `cause`.
 */
export type FlintErrorCode =
  | 'FLINT_ERROR'
  | 'MISCONFIGURATION'
  | 'CHECKPOINT'
  | 'DATA'
  | 'BACKEND'
  | 'LOGGER'
  | 'INTERRUPTED'
  | 'EXPORT';

export class FlintError extends Error {
  override readonly name: string = 'FlintError';
  readonly code: FlintErrorCode;

  constructor(message: string, options?: { cause?: unknown; code?: FlintErrorCode }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = options?.code ?? 'FLINT_ERROR';
  }
}

/** An option, or a combination of options, that cannot work. */
export class MisconfigurationError extends FlintError {
  override readonly name = 'MisconfigurationError';
  override readonly code = 'MISCONFIGURATION' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'MISCONFIGURATION' });
  }
}

/** A checkpoint that is missing, damaged, foreign or does not fit the module. */
export class CheckpointError extends FlintError {
  override readonly name = 'CheckpointError';
  override readonly code = 'CHECKPOINT' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'CHECKPOINT' });
  }
}

/** Data that does not fit: ragged columns, a batch of the wrong shape, an empty data set. */
export class DataError extends FlintError {
  override readonly name = 'DataError';
  override readonly code = 'DATA' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'DATA' });
  }
}

/** A requested backend or accelerator that is not installed or does not work. */
export class BackendError extends FlintError {
  override readonly name = 'BackendError';
  override readonly code = 'BACKEND' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'BACKEND' });
  }
}

/** A logger that cannot write (folder not writable, disk full). */
export class LoggerError extends FlintError {
  override readonly name = 'LoggerError';
  override readonly code = 'LOGGER' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'LOGGER' });
  }
}

/**
 * A model that cannot be exported or imported: a module that TensorFlow.js layers cannot express, a
 * folder that cannot be written, a missing or malformed `model.json` or weights file, weights whose
 * names or shapes do not fit the module.
 */
export class ExportError extends FlintError {
  override readonly name = 'ExportError';
  override readonly code = 'EXPORT' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'EXPORT' });
  }
}

/** The signals that interrupt a run: Ctrl-C sends SIGINT, `kill` and process managers SIGTERM. */
export type InterruptSignal = 'SIGINT' | 'SIGTERM';

/** Where a run was when a signal interrupted it. */
export interface InterruptPosition {
  /** What the trainer was running: 'fit', 'validate', 'test' or 'predict'. */
  readonly stage: Stage;
  /** The loop inside it: 'train', 'sanity_check', 'validate', 'test', 'predict', or undefined outside the loops. */
  readonly runningStage: RunningStage | undefined;
  readonly epoch: number;
  /** Batches finished in the current loop (training batches of the epoch while training). */
  readonly batch: number;
  readonly globalStep: number;
}

/**
 * A run stopped by SIGINT or SIGTERM at a batch boundary. Callbacks and the module receive it in
 * `onException`, loggers finalize with status 'interrupted'; then the process exits with 130
 * (SIGINT) or 143 (SIGTERM), or, with the Trainer option `exitOnInterrupt: false`, the run rejects
 * with it.
 */
export class InterruptedError extends FlintError {
  override readonly name = 'InterruptedError';
  override readonly code = 'INTERRUPTED' as const;
  constructor(
    readonly signal: InterruptSignal,
    readonly position: InterruptPosition,
  ) {
    super(`${position.stage} was interrupted by ${signal} ${describePosition(position)}.`, { code: 'INTERRUPTED' });
  }
}

/** "at epoch 2, batch 17 (global step 57)", "in the validation of epoch 2, after batch 3 (global step 57)", "after test batch 5". */
function describePosition(p: InterruptPosition): string {
  const step = `(global step ${p.globalStep})`;
  if (p.stage !== 'fit') return p.runningStage === undefined ? 'after its last batch' : `after ${p.stage} batch ${p.batch}`;
  if (p.runningStage === 'train') return `at epoch ${p.epoch}, batch ${p.batch} ${step}`;
  if (p.runningStage === 'validate') return `in the validation of epoch ${p.epoch}, after batch ${p.batch} ${step}`;
  if (p.runningStage === 'sanity_check') return `in the sanity check, after batch ${p.batch}`;
  return `at epoch ${p.epoch} ${step}`;
}

/** Where a module's step failed; attached to the error it threw as `flintContext`. */
export interface StepErrorContext {
  /** The module's class name. */
  readonly module: string;
  readonly step: 'trainingStep' | 'validationStep' | 'testStep' | 'predictStep';
  readonly batchIdx: number;
  readonly epoch: number;
  /** The batch's structure with dtypes and shapes, as `[float32[8,4], int32[8]]`. */
  readonly batch: string;
}

/** The context the trainer attached to an error thrown inside a step, if any. */
export function stepErrorContext(error: unknown): StepErrorContext | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  return (error as { flintContext?: StepErrorContext }).flintContext;
}

/**
 * Attaches where a step failed to the error it threw, keeping the error itself (same object, class
 * and message first): `flintContext` holds the context, and a note naming module, step, batch and
 * epoch is added as the message's last line (and to the stack, when it was already printed into it).
 * A thrown value that is not an Error becomes a FlintError that holds it as `cause`.
 */
export function attachStepContext(error: unknown, context: StepErrorContext): Error {
  const note = `[Flint] in ${context.module}.${context.step} on batch ${context.batchIdx} of epoch ${context.epoch} (batch: ${context.batch})`;
  if (!(error instanceof Error)) {
    const shown = typeof error === 'string' ? JSON.stringify(error) : String(error);
    const wrapped = new FlintError(`${context.module}.${context.step} threw ${shown}, which is not an Error.\n${note}`, { cause: error });
    Object.defineProperty(wrapped, 'flintContext', { value: context, configurable: true, writable: true });
    return wrapped;
  }
  if (stepErrorContext(error) !== undefined) return error;
  try {
    const stack = error.stack; // formats the stack with the original message, if not done yet
    const original = error.message;
    Object.defineProperty(error, 'flintContext', { value: context, configurable: true, writable: true });
    error.message = `${original}\n${note}`;
    if (typeof stack === 'string') {
      const firstLine = stack.indexOf('\n    at ');
      error.stack = firstLine < 0 ? `${stack}\n${note}` : `${stack.slice(0, firstLine)}\n${note}${stack.slice(firstLine)}`;
    }
  } catch {
    // A frozen error keeps what it says.
  }
  return error;
}
