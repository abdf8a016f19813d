import { BACKEND_NAMES, wasmImprovementsOptionsSchema } from '@flint/backends';
import { Callback, type Logger } from '@flint/core';
import { z } from 'zod';

/** A whole number of batches (>= 0), or a fraction of the data in (0, 1). */
const batchLimit = z
  .number()
  .refine((v) => (v > 0 && v < 1) || (Number.isInteger(v) && v >= 0), {
    message: 'must be a whole number of batches (>= 0) or a fraction in (0, 1); omit it for all batches',
  });

const durationParts = z.strictObject({
  days: z.number().nonnegative().optional(),
  hours: z.number().nonnegative().optional(),
  minutes: z.number().nonnegative().optional(),
  seconds: z.number().nonnegative().optional(),
});

/** `maxTime`: "DD:HH:MM:SS", { days, hours, minutes, seconds }, or seconds as a number. */
const maxTime = z.union([
  z.number().positive(),
  z.string().regex(/^\d+:\d{1,2}:\d{1,2}:\d{1,2}$/, { message: 'must look like "DD:HH:MM:SS", e.g. "00:12:00:00"' }),
  durationParts,
]);

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
  maxTime: maxTime.optional(),
  limitTrainBatches: batchLimit.optional(),
  limitValBatches: batchLimit.optional(),
  limitTestBatches: batchLimit.optional(),
  limitPredictBatches: batchLimit.optional(),
  /** Validate every N training epochs. */
  checkValEveryNEpoch: z.number().int().min(1).default(1),
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
}).superRefine((o, ctx) => {
  // maxEpochs is 1000 when omitted with maxSteps -1 (Lightning's default), unlimited when omitted with a maxSteps.
  const maxEpochs = o.maxEpochs ?? (o.maxSteps === -1 ? 1000 : -1);
  if (maxEpochs !== -1 && o.minEpochs > maxEpochs) {
    ctx.addIssue({
      code: 'custom',
      path: ['minEpochs'],
      message: `must not exceed maxEpochs (${maxEpochs}${o.maxEpochs === undefined ? ', the default without maxSteps' : ''}): training stops at maxEpochs`,
    });
  }
});

/** What users pass to `new Trainer(...)`. */
export type TrainerOptions = z.input<typeof trainerOptionsSchema>;
/** The options after defaults. */
export type ResolvedTrainerOptions = z.output<typeof trainerOptionsSchema>;

/** Converts `maxTime` to milliseconds. */
export function maxTimeMs(value: ResolvedTrainerOptions['maxTime']): number {
  if (value === undefined) return Number.POSITIVE_INFINITY;
  if (typeof value === 'number') return value * 1000;
  if (typeof value === 'string') {
    const [d, h, m, s] = value.split(':').map(Number) as [number, number, number, number];
    return (((d * 24 + h) * 60 + m) * 60 + s) * 1000;
  }
  return ((((value.days ?? 0) * 24 + (value.hours ?? 0)) * 60 + (value.minutes ?? 0)) * 60 + (value.seconds ?? 0)) * 1000;
}

/** Applies a batch limit (count or fraction) to a number of batches. */
export function applyLimit(limit: number | undefined, available: number): number {
  if (limit === undefined) return available;
  if (limit > 0 && limit < 1) {
    if (!Number.isFinite(available)) return available;
    return Math.max(1, Math.floor(available * limit));
  }
  return Math.min(limit, available);
}

/** The options' limits, resolved once per run: fastDevRun and overfitBatches applied. */
export interface Limits {
  /** Batches per loop under fastDevRun (0: off). */
  readonly fastDevRunBatches: number;
  /** -1: no limit. */
  readonly maxEpochs: number;
  /** -1: no limit. */
  readonly maxSteps: number;
  /** Milliseconds (Infinity: no limit). */
  readonly maxTimeMs: number;
  /** A count or a fraction of the loader's batches (undefined: all), per loop. */
  readonly batches: {
    readonly train: number | undefined;
    /** The validation inside fit (overfitBatches validates on the same batches it trains on). */
    readonly fitValidation: number | undefined;
    readonly validate: number | undefined;
    readonly test: number | undefined;
    readonly predict: number | undefined;
  };
}

export function resolveLimits(o: ResolvedTrainerOptions): Limits {
  const fast = o.fastDevRun === true ? 1 : o.fastDevRun === false ? 0 : o.fastDevRun;
  const overfit = o.overfitBatches > 0 ? o.overfitBatches : undefined;
  const or = (limit: number | undefined) => (fast > 0 ? fast : limit);
  return {
    fastDevRunBatches: fast,
    maxEpochs: fast > 0 ? 1 : (o.maxEpochs ?? (o.maxSteps === -1 ? 1000 : -1)),
    maxSteps: fast > 0 ? fast : o.maxSteps,
    maxTimeMs: maxTimeMs(o.maxTime),
    batches: {
      train: or(overfit ?? o.limitTrainBatches),
      fitValidation: or(overfit ?? o.limitValBatches),
      validate: or(o.limitValBatches),
      test: or(o.limitTestBatches),
      predict: or(o.limitPredictBatches),
    },
  };
}
