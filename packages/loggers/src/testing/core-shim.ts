// Test-only: what the loggers take from @flint/core at run time, without loading tfjs, for child
// processes started through ts-loader.mjs (they start in a fraction of the time).
export { CheckpointError, LoggerError, MisconfigurationError } from '../../../core/src/errors.js';
export { parseOptions } from '../../../core/src/options.js';
export { atomicTempPath, removeStaleTempFiles, writeFileAtomicSync } from '../../../core/src/atomic-write.js';
