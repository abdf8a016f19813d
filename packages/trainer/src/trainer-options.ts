import { BACKEND_NAMES, wasmImprovementsOptionsSchema } from '@flint/backends';
import { Callback, durationSchema, durationSeconds, MisconfigurationError, type Logger } from '@flint/core';
import { z } from 'zod';

/** A whole number of batches (>= 0), or a fraction of the data in (0, 1). */
const batchLimit = z
  .number()
  .refine((v) => (v > 0 && v < 1) || (Number.isInteger(v) && v >= 0), {
    message: 'must be a whole number of batches (>= 0) or a fraction in (0, 1); omit it for all batches',
  });

const isLogger = (v: unknown): v is Logger =>
  v !== null && typeof v === 'object' && typeof (v as Logger).logMetrics === 'function' && typeof (v as Logger).finalize === 'function';

export const trainerOptionsSchema = z.strictObject({
  /** Stop after this many epochs; -1 for no limit. Default: 1000 when maxSteps is -1 (Lightning's default). */
  maxEpochs: z.number().int().min(-1).optional(),
  /** Train at least this many epochs, even if a callback asks to stop. */
  minEpochs: z.number().int().min(0).default(0),
  /** Stop after this many optimizer steps; -1 for no limit. */
  maxSteps: z.number().int().min(-1).default(-1),
  /** Stop after this much training time. */
  maxTime: durationSchema.optional(),
  limitTrainBatches: batchLimit.optional(),
  limitValBatches: batchLimit.optional(),
  limitTestBatches: batchLimit.optional(),
  limitPredictBatches: batchLimit.optional(),
  /** Validate every N training epochs; null: every `valCheckInterval` batches counted across epochs (Lightning's `None`). */
  checkValEveryNEpoch: z.number().int().min(1).nullable().default(1),
  /** Also validate within the epoch: every N batches (whole number) or every fraction (0, 1) of the epoch. Default: at epoch end only. */
  valCheckInterval: batchLimit.refine((v) => v !== 0, { message: 'must not be 0' }).optional(),
  /** Validation batches run before training as a sanity check; -1 for all; 0 to skip. */
  numSanityValSteps: z.number().int().min(-1).default(2),
  /** true or N: run N (1) batches of train, validation and test, then stop; no loggers, no checkpoints. */
  fastDevRun: z.union([z.boolean(), z.number().int().min(0)]).default(false),
  /** Train (and validate) on the same few batches each epoch: a whole number of batches or a fraction. */
  overfitBatches: batchLimit.default(0),
  /** Clip gradients at this value (by global norm or by value). */
  gradientClipVal: z.number().positive().optional(),
  gradientClipAlgorithm: z.enum(['norm', 'value']).default('norm'),
  /** Accumulate gradients over N batches before each optimizer step. */
  accumulateGradBatches: z.number().int().min(1).default(1),
  accelerator: z.enum(['auto', 'cpu', 'gpu']).default('auto'),
  /** Pin the tfjs backend. Default: chosen by `accelerator` (or the FLINT_BACKEND environment variable). */
  backend: z.enum(BACKEND_NAMES).optional(),
  /** Flint's improvements of the wasm backend (see docs/wasm-backend.md), or false for stock tfjs-backend-wasm. */
  wasm: z.union([z.literal(false), wasmImprovementsOptionsSchema.partial()]).default({}),
  /**
   * Run each automatic-optimization training step as one TensorFlow call on the native backend (see
   * docs/performance.md#compiled-training-steps): trainingStep's JavaScript runs only while the step
   * is traced (its first calls), so it must do the same thing at every step. Steps that cannot be
   * compiled run eagerly, and the trainer says why once.
   */
  compile: z.boolean().default(false),
  /**
   * Between training epochs, ask V8 for a full garbage collection when the JavaScript heap's old
   * generation has grown by 8 MB (or 10%) since the last one, at most 2% of the wall-clock time (see docs/trainer.md#memory-between-epochs):
   * an eager step's garbage otherwise stays until V8 collects it by itself, often many epochs later.
   * Node only; false leaves it to V8.
   */
  releaseHeap: z.boolean().default(true),
  /** Require seedEverything() to have been called, so that the same seed gives the same run on the same backend. */
  deterministic: z.boolean().default(false),
  callbacks: z
    .array(z.custom<Callback>((v) => v instanceof Callback, { message: 'each callback must extend Callback from @flint/core' }))
    .default([]),
  /** true: a TensorBoardLogger under defaultRootDir; false: none; or your logger(s). */
  logger: z
    .union([
      z.boolean(),
      z.custom<Logger>(isLogger, { message: 'must be a Logger (logMetrics, logHyperparams, save, finalize)' }),
      z.array(z.custom<Logger>(isLogger, { message: 'must be a Logger (logMetrics, logHyperparams, save, finalize)' })),
    ])
    .default(true),
  /** Send step-level metrics to the loggers every N optimizer steps. */
  logEveryNSteps: z.number().int().min(1).default(50),
  enableProgressBar: z.boolean().default(true),
  /** Add a ModelCheckpoint({ saveLast: true, saveTopK: 0 }) (one last.ckpt under <logDir>/checkpoints) when no callback offers checkpoints. */
  enableCheckpointing: z.boolean().default(true),
  /** Print the module's summary at fit start. */
  enableModelSummary: z.boolean().default(true),
  /** Say why the backend was chosen, with what was skipped and where it looked (also FLINT_VERBOSE=1). Default: one short line. */
  verbose: z.boolean().default(false),
  /**
   * After a SIGINT (Ctrl-C) or SIGTERM has stopped a run and its clean-up ran (onException,
   * teardown, loggers finalized, last.ckpt written), end the process with 130 / 143 (true), or make
   * fit/validate/test/predict reject with the InterruptedError (false).
   */
  exitOnInterrupt: z.boolean().default(true),
  /** Root folder for logs and checkpoints when loggers/callbacks do not say otherwise. */
  defaultRootDir: z.string().min(1).optional(),
})
  .superRefine((o, ctx) => {
    const maxEpochs = maxEpochsOf(o);
    if (o.checkValEveryNEpoch === null && (o.valCheckInterval === undefined || !Number.isInteger(o.valCheckInterval))) {
      ctx.addIssue({
        code: 'custom',
        path: ['valCheckInterval'],
        message: `must be a whole number of batches with checkValEveryNEpoch: null, which validates every valCheckInterval batches counted across epochs (received ${String(o.valCheckInterval)})`,
      });
    }
    if (maxEpochs !== -1 && o.minEpochs > maxEpochs) {
      ctx.addIssue({
        code: 'custom',
        path: ['minEpochs'],
        message: `must not exceed maxEpochs (${maxEpochs}${o.maxEpochs === undefined ? ', the default without maxSteps' : ''}): training stops at maxEpochs`,
      });
    }
  })
  .transform((o) => ({ ...o, maxEpochs: maxEpochsOf(o), defaultRootDir: o.defaultRootDir ?? process.cwd() }));

/** maxEpochs is 1000 when omitted with maxSteps -1 (Lightning's default), unlimited (-1) when omitted with a maxSteps. */
function maxEpochsOf(o: { maxEpochs?: number | undefined; maxSteps: number }): number {
  return o.maxEpochs ?? (o.maxSteps === -1 ? 1000 : -1);
}

/** What users pass to `new Trainer(...)`. */
export type TrainerOptions = z.input<typeof trainerOptionsSchema>;
/** The options after defaults. */
export type ResolvedTrainerOptions = z.output<typeof trainerOptionsSchema>;

/** The run-wide limits, resolved once per trainer: fastDevRun applied. */
export interface Limits {
  /** Batches per loop under fastDevRun (0: off). */
  readonly fastDevRunBatches: number;
  /** -1: no limit. */
  readonly maxEpochs: number;
  /** -1: no limit. */
  readonly maxSteps: number;
  /** Milliseconds (Infinity: no limit). */
  readonly maxTimeMs: number;
}

export function runLimits(o: ResolvedTrainerOptions): Limits {
  const fast = o.fastDevRun === true ? 1 : o.fastDevRun === false ? 0 : o.fastDevRun;
  return {
    fastDevRunBatches: fast,
    maxEpochs: fast > 0 ? 1 : o.maxEpochs,
    maxSteps: fast > 0 ? fast : o.maxSteps,
    maxTimeMs: o.maxTime === undefined ? Number.POSITIVE_INFINITY : durationSeconds(o.maxTime) * 1000,
  };
}

/** How many batches each loop of a stage runs (Infinity: all of a loader of unknown length). */
export interface BatchLimits {
  /** Training batches per epoch (fit). */
  readonly train: number;
  /** Validation batches: per validation inside fit (overfitBatches validates on the batches it trains on), or of validate(). */
  readonly val: number;
  /** Validation batches of the sanity check before training (fit). */
  readonly sanity: number;
  readonly test: number;
  readonly predict: number;
}

/** The loaders' lengths (batches; Infinity when unknown) of one stage. */
export interface LoaderLengths {
  train?: number;
  val?: number;
  test?: number;
  predict?: number;
}

/**
 * Resolves the batch limits of one stage from the options (fastDevRun, overfitBatches, the
 * limit*Batches options, numSanityValSteps) and the loaders' lengths, once, when the stage starts.
 * A fraction that leaves no batch of a non-empty loader is an error, as in Lightning.
 */
export function resolveLimits(o: ResolvedTrainerOptions, loaders: LoaderLengths): BatchLimits {
  const fast = runLimits(o).fastDevRunBatches;
  const overfit = o.overfitBatches > 0;
  const limit = (length: number | undefined, value: number | undefined, option: string, loader: string): number => {
    if (length === undefined) return 0;
    if (fast > 0) return Math.min(fast, length);
    return applyLimit(value, length, option, loader);
  };
  const train = limit(loaders.train, overfit ? o.overfitBatches : o.limitTrainBatches, overfit ? 'overfitBatches' : 'limitTrainBatches', 'training');
  const val = overfit && loaders.train !== undefined
    ? limit(loaders.train, o.overfitBatches, 'overfitBatches', 'training')
    : limit(loaders.val, o.limitValBatches, 'limitValBatches', 'validation');
  const sanity = fast > 0 || o.numSanityValSteps === 0 ? 0 : o.numSanityValSteps === -1 ? val : Math.min(o.numSanityValSteps, val);
  return {
    train,
    val,
    sanity,
    test: limit(loaders.test, o.limitTestBatches, 'limitTestBatches', 'test'),
    predict: limit(loaders.predict, o.limitPredictBatches, 'limitPredictBatches', 'predict'),
  };
}

/** Applies a batch limit (a count, or a fraction in (0, 1)) to a loader of `length` batches. */
function applyLimit(limit: number | undefined, length: number, option: string, loader: string): number {
  if (limit === undefined) return length;
  if (limit > 0 && limit < 1) {
    if (!Number.isFinite(length)) return length;
    const batches = Math.floor(length * limit);
    if (batches === 0 && length > 0) {
      throw new MisconfigurationError(
        `Trainer option '${option}': you requested ${limit} of the ${loader} loader's ${length} batches, but ${limit} * ${length} < 1 batch. ` +
          `Increase '${option}': try at least ${option}=${1 / length}, or give a whole number of batches.`,
      );
    }
    return batches;
  }
  return Math.min(limit, length);
}
