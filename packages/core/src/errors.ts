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
  | 'LOGGER';

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
