import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError, MisconfigurationError, parseOptions, writeFileAtomicSync } from '@flint/core';
import type { LightningModule, Metrics, RunStatus, TrainerContext } from '@flint/core';
import type * as tf from '@tensorflow/tfjs';
import { encode as encodePng } from 'fast-png';
import { z } from 'zod';
import { EventFileWriter, isEventFileName, nextEventFileName } from './internal/event-file-writer.js';
import { FileLogger, onWriteErrorSchema } from './internal/file-logger.js';
import { histogramBuckets } from './internal/histogram.js';
import {
  flattenHParams,
  hparamType,
  hparamsMarkdownTable,
  mergeExperimentIndex,
  readExperimentIndex,
  sameExperimentIndex,
  writeExperimentIndex,
  type ExperimentIndex,
  type MetricRef,
} from './internal/hparams.js';
import {
  DataType,
  encodeEvent,
  encodeExperiment,
  encodeSessionEndInfo,
  encodeSessionStartInfo,
  type HParamValue,
  type TensorInput,
  type ValueInput,
} from './internal/proto.js';
import { runDirOptionsShape } from './internal/run-dir.js';
import { decodeRecords, encodeRecord, outlineEvent } from './internal/tfrecord.js';

export const tensorBoardLoggerOptionsSchema = z.strictObject({
  ...runDirOptionsShape,
  /** A sub-folder of the version folder to write into (`<saveDir>/<name>/<version>/<subDir>`). */
  subDir: z.string().min(1).optional(),
  /** Seconds between flushes of buffered events to disk (besides epoch end, fit end, error and exit). */
  flushSecs: z.number().positive().default(120),
  /** Events buffered before a flush is forced. */
  maxQueue: z.number().int().positive().default(10),
  /** After a write error: 'stop' training, or 'continue' without this logger. Reported once either way. */
  onWriteError: onWriteErrorSchema.default('stop'),
  /**
   * Metrics written on an epoch axis (at step = the call's `epoch` value) instead of the global
   * step: exact names, or patterns with `*` (for instance `['val_*', '*_epoch']`).
   */
  epochAxisMetrics: z.array(z.string().min(1)).default([]),
  /**
   * Train, validation and test epoch metrics in the sub-runs `<version>/train`, `<version>/validation`
   * and `<version>/test` under one shared tag (`train_loss`, `val_loss` and `test_loss` all become
   * `epoch_loss`), so that TensorBoard draws them on one chart, as Keras does; the trainer's `epoch`
   * counter becomes `trainer/epoch`. Step metrics stay in the run itself. `false` writes every metric
   * under its own name in the run, as Lightning does.
   */
  stageRuns: z.boolean().default(true),
  /**
   * Metrics shown beside the hparams in the HParams tab, in this order, by the names the module
   * logged (`val_loss`, `test_acc`). Default: every scalar logged except `epoch`, validation
   * metrics first, then test metrics, then the monitored one (ModelCheckpoint/EarlyStopping's
   * `monitor`), then the rest. TensorBoard shows the first five columns until more are ticked.
   */
  hparamsMetrics: z.array(z.string().min(1)).optional(),
  /** Write the model summary (fit start) and a table of the hparams to the Text tab. */
  textSummaries: z.boolean().default(true),
  /** Histograms of every parameter at the end of every N-th epoch (epochs 0, N, 2N, ...); 0 turns them off. */
  histogramEveryNEpochs: z.number().int().nonnegative().default(0),
  /** Also histograms of the gradients (of the first batch of those epochs). */
  logGradients: z.boolean().default(false),
  /** Bins of each histogram. */
  histogramBins: z.number().int().positive().max(10_000).default(30),
});

export type TensorBoardLoggerOptions = z.input<typeof tensorBoardLoggerOptionsSchema>;
type ParsedOptions = z.output<typeof tensorBoardLoggerOptionsSchema>;

/** An image for `logImage`: row-major pixels, `channels` values per pixel (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA). */
export interface ImageInput {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 2 | 3 | 4;
  /** 0..255 integers (Uint8Array, Uint8ClampedArray), or 0..1 floats (Float32Array, number[]) that are scaled to 0..255. */
  readonly data: Uint8Array | Uint8ClampedArray | Float32Array | Float64Array | readonly number[];
}

const stateSchema = z.object({
  version: z.union([z.number().int().nonnegative(), z.string().min(1)]),
  eventFile: z.string().min(1).optional(),
  eventFileBytes: z.number().int().nonnegative().optional(),
  maxStep: z.number().int().min(-1),
  lastSteps: z.record(z.string(), z.number().int()),
  metricTags: z.array(z.string()),
  hparamsLogged: z.boolean(),
  summaryLogged: z.boolean(),
  /** Where each metric went: `[sub-run ('' for the run itself), tag]` by the name it was logged as. */
  metricPlaces: z.record(z.string(), z.tuple([z.string(), z.string()])).optional(),
  /** The event file of each sub-run (`train`, `validation`) and its length at the checkpoint. */
  stageFiles: z.record(z.string(), z.object({ eventFile: z.string().min(1), eventFileBytes: z.number().int().nonnegative() })).optional(),
  /** The step at which the training resumed from the checkpoint logs again (absent in older checkpoints: maxStep + 1). */
  resumeStep: z.number().int().nonnegative().optional(),
});

/** What `stateDict` returns (JSON): where the run was when the checkpoint was taken. */
export type TensorBoardLoggerState = z.output<typeof stateSchema>;

/** The name ending of a run's experiment-summary file (see `refreshExperiment`). */
const EXPERIMENT_SUFFIX = '.flint-hparams';
/** The `msg` of the START event that opens a validate or test run's event file: a resume keeps its points at the resume step. */
const EVALUATION_SESSION = 'flint: validate or test';
/** The sub-runs of `stageRuns`, named as Keras names them. */
const STAGE_RUNS = ['train', 'validation', 'test'] as const;
type StageRun = (typeof STAGE_RUNS)[number];
const STAGE_PREFIX: Record<StageRun, RegExp> = { train: /^train_/, validation: /^(val|validation)_/, test: /^test_/ };
/** With `stageRuns`, the trainer's `epoch` counter goes here: its staircase chart no longer opens TensorBoard's Time Series. */
const EPOCH_TAG = 'trainer/epoch';

/** The tag a staged epoch metric gets: `train_loss_epoch` and `val_loss` both become `epoch_loss`. */
function stagedTag(run: StageRun, key: string): string {
  const base = key.replace(STAGE_PREFIX[run], '').replace(/_epoch$/, '');
  return `epoch_${base === '' ? key : base}`;
}
const SOURCE_WRITER = 'flint';
const textEncoder = new TextEncoder();

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

function isInteger(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function emptyTensor(): TensorInput {
  // What TF writes as the payload of hparams summaries: an empty float tensor of shape [0].
  return { dtype: DataType.DT_FLOAT, shape: [0] };
}

/**
 * Writes TensorBoard event files, read alike by TensorBoard's Rust data server and its Python loader:
 * scalars (`simple_value`), hyper-parameters with the run's final metrics in the HParams tab,
 * histograms (TF2 tensor form), text and PNG images. Layout and behaviour are Lightning's:
 * `<saveDir>/<name>/version_<n>[/<subDir>]`.
 *
 * ```ts
 * const logger = new TensorBoardLogger({ saveDir: 'runs', histogramEveryNEpochs: 5 });
 * const trainer = new Trainer({ logger, maxEpochs: 20 });
 * // then: tensorboard --logdir runs/flint_logs
 * ```
 */
export class TensorBoardLogger extends FileLogger {
  protected readonly kind = 'TensorBoardLogger';
  readonly options: Readonly<ParsedOptions>;
  private readonly epochPatterns: readonly RegExp[];
  private writer: EventFileWriter | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Last step written per tag in this run (steps per tag strictly increase). */
  private readonly lastSteps = new Map<string, number>();
  /** Scalar tags in the order they were first logged. */
  private readonly metricTags: string[] = [];
  /** Largest step written to any tag (-1: none). */
  private maxStep = -1;
  private readonly warnedTags = new Set<string>();
  /** Last scalar value per tag, to recognise a repeated point. */
  private readonly lastValue = new Map<string, number>();
  private hparamsLogged = false;
  private summaryLogged = false;
  private pendingSummary: string | undefined;
  private flatHparams: Map<string, HParamValue> | undefined;
  private experimentIndexWritten: string | undefined;
  private resume: TensorBoardLoggerState | undefined;
  private gradientsCapturedEpoch = -1;
  /** Writers of the sub-runs (`stageRuns`), opened on their first metric. */
  private readonly stageWriters = new Map<StageRun, EventFileWriter>();
  /** The sub-runs' event files of closed writer sessions (or the checkpoint's), with their lengths. */
  private readonly stageFiles = new Map<string, { eventFile: string; eventFileBytes: number }>();
  /** Metric names logged at the end of a train or validation epoch (ranked as such in HParams). */
  private readonly epochMetrics = new Set<string>();
  /** Where each metric name went: sub-run ('' for the run itself) and tag. */
  private readonly metricPlaces = new Map<string, [string, string]>();
  /** Which part of the loop the trainer is in, from its hooks: where epoch metrics of train and validation arrive. */
  private phase: StageRun | undefined;
  /** The first step of this writer session (the START event of every file it opens). */
  private sessionStart = 0;
  /** Names monitored by callbacks (ModelCheckpoint, EarlyStopping), ranked before the other metrics. */
  private monitored: string[] = [];

  constructor(options: TensorBoardLoggerOptions = {}) {
    const parsed = parseOptions('TensorBoardLogger', tensorBoardLoggerOptionsSchema, options);
    super(parsed.saveDir, parsed.name, parsed.version, parsed.onWriteError);
    this.options = parsed;
    this.epochPatterns = parsed.epochAxisMetrics.map(globToRegExp);
  }

  override get logDir(): string {
    const dir = super.logDir;
    return this.options.subDir === undefined ? dir : path.join(dir, this.options.subDir);
  }

  protected override stateKeyParts(): Record<string, unknown> {
    const parts = super.stateKeyParts();
    if (this.options.subDir !== undefined) parts.subDir = this.options.subDir;
    return parts;
  }

  /** The command that opens this experiment (every version of it) in TensorBoard. */
  get tensorboardCommand(): string {
    const dir = this.rootDir;
    const quoted = /^[A-Za-z0-9_./:@%+=,-]+$/.test(dir) ? dir : `'${dir.replace(/'/g, `'\\''`)}'`;
    return `tensorboard --logdir ${quoted}`;
  }

  /** The event file of the current writer session, once something was written. */
  get eventFile(): string | undefined {
    return this.writer?.path;
  }

  // ---- Logger ----

  /**
   * Writes scalars at `step` (the global step). Metrics listed in `epochAxisMetrics` go at the call's
   * `epoch` value instead. A point at a step not above its tag's last step is not written (both
   * TensorBoard readers would show it differently); a differing value there is reported once per tag.
   */
  logMetrics(metrics: Metrics, step: number): void {
    if (!isInteger(step)) {
      throw new MisconfigurationError(
        `TensorBoardLogger.logMetrics(metrics, step): step must be a non-negative integer (the global step), received ${String(step)}.`,
      );
    }
    const byStep = new Map<string, { run: string; at: number; values: ValueInput[]; ids: string[] }>();
    for (const [key, value] of Object.entries(metrics)) {
      if (typeof value !== 'number') {
        throw new MisconfigurationError(
          `TensorBoardLogger.logMetrics: metric '${key}' must be a number, received ${typeof value} (${String(value)}).`,
        );
      }
      let at = step;
      if (this.epochPatterns.some((p) => p.test(key))) {
        const epoch = metrics['epoch'];
        if (!isInteger(epoch)) {
          throw new MisconfigurationError(
            `TensorBoardLogger: metric '${key}' goes on the epoch axis (option 'epochAxisMetrics') but logMetrics got no integer 'epoch' key (keys: ${Object.keys(metrics).join(', ')}).`,
          );
        }
        at = epoch;
      }
      const [run, tag] = this.placeOf(key);
      const id = run === '' ? tag : `${run}/${tag}`;
      // The trainer sends `epoch` with every call: one point per step, later calls at a step are not repeats to report.
      if (key === 'epoch' && at <= (this.lastSteps.get(id) ?? -1)) continue;
      if (!this.acceptStep(id, at, value)) continue;
      const stepKey = `${run}\u0000${at}`;
      let entry = byStep.get(stepKey);
      if (entry === undefined) byStep.set(stepKey, (entry = { run, at, values: [], ids: [] }));
      entry.values.push({ tag, simpleValue: value });
      entry.ids.push(id);
    }
    if (byStep.size === 0) return;
    this.write(() => {
      for (const { run, at, values } of byStep.values()) this.addEvent(at, values, run);
    });
    for (const { at, values, ids } of byStep.values()) {
      for (const [i, id] of ids.entries()) {
        this.lastSteps.set(id, at);
        this.lastValue.set(id, values[i]!.simpleValue!);
        if (!this.metricTags.includes(id)) this.metricTags.push(id);
      }
      this.maxStep = Math.max(this.maxStep, at);
    }
  }

  /**
   * Where a metric goes: with `stageRuns`, a metric logged at the end of a train or validation epoch
   * goes to that sub-run under its shared tag; anything else stays in the run under its own name.
   * A name keeps its place for the whole run (and across a resume).
   */
  private placeOf(key: string): [string, string] {
    const known = this.metricPlaces.get(key);
    if (known !== undefined) return known;
    let place: [string, string] = ['', key === 'epoch' && this.options.stageRuns ? EPOCH_TAG : key];
    const run = this.phase;
    if (run !== undefined) this.epochMetrics.add(key);
    if (this.options.stageRuns && run !== undefined && key !== 'epoch') {
      let tag = stagedTag(run, key);
      const taken = (t: string): boolean => [...this.metricPlaces.values()].some(([r, x]) => r === run && x === t);
      if (taken(tag)) tag = `epoch_${key}`; // two names that would share a tag in one sub-run: the later keeps its name
      if (!taken(tag)) place = [run, tag];
    }
    this.metricPlaces.set(key, place);
    return place;
  }

  /**
   * Text for the Text tab, rendered as Markdown: a string, or a table as rows of cells.
   */
  logText(tag: string, text: string | readonly (readonly string[])[], step: number): void {
    this.checkTagAndStep('logText', tag, step);
    let tensor: TensorInput;
    if (typeof text === 'string') {
      tensor = { dtype: DataType.DT_STRING, shape: [], stringVal: [textEncoder.encode(text)] };
    } else {
      const cols = text[0]?.length ?? 0;
      if (text.length === 0 || cols === 0 || text.some((row) => row.length !== cols || row.some((c) => typeof c !== 'string'))) {
        throw new MisconfigurationError(
          `TensorBoardLogger.logText('${tag}'): a table must be a non-empty array of rows of strings, all rows as long as the first (${cols} cells).`,
        );
      }
      tensor = { dtype: DataType.DT_STRING, shape: [text.length, cols], stringVal: text.flat().map((c) => textEncoder.encode(c)) };
    }
    this.writeTensor(tag, step, tensor, 'text');
  }

  /** An image for the Images tab, PNG-encoded. */
  logImage(tag: string, image: ImageInput, step: number): void {
    this.checkTagAndStep('logImage', tag, step);
    const { width, height, channels, data } = image;
    if (!isInteger(width) || !isInteger(height) || width === 0 || height === 0) {
      throw new MisconfigurationError(`TensorBoardLogger.logImage('${tag}'): width and height must be positive integers, received ${String(width)}x${String(height)}.`);
    }
    if (![1, 2, 3, 4].includes(channels)) {
      throw new MisconfigurationError(`TensorBoardLogger.logImage('${tag}'): channels must be 1, 2, 3 or 4, received ${String(channels)}.`);
    }
    const expected = width * height * channels;
    if (data.length !== expected) {
      throw new MisconfigurationError(
        `TensorBoardLogger.logImage('${tag}'): data has ${data.length} values, expected width*height*channels = ${width}*${height}*${channels} = ${expected}.`,
      );
    }
    let pixels: Uint8Array;
    if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) {
      pixels = new Uint8Array(data.buffer, data.byteOffset, data.length);
    } else {
      pixels = new Uint8Array(expected);
      for (let i = 0; i < expected; i++) {
        const v = data[i]!;
        pixels[i] = Number.isFinite(v) ? Math.round(Math.min(1, Math.max(0, v)) * 255) : 0;
      }
    }
    const png = encodePng({ width, height, channels, depth: 8, data: pixels });
    this.writeTensor(tag, step, {
      dtype: DataType.DT_STRING,
      shape: [3],
      stringVal: [textEncoder.encode(String(width)), textEncoder.encode(String(height)), png],
    }, 'images');
  }

  /** A histogram of `values` for the Histograms and Distributions tabs. Non-finite values are left out. */
  logHistogram(tag: string, values: ArrayLike<number>, step: number, bins = this.options.histogramBins): void {
    this.checkTagAndStep('logHistogram', tag, step);
    if (!isInteger(bins) || bins === 0) {
      throw new MisconfigurationError(`TensorBoardLogger.logHistogram('${tag}'): bins must be a positive integer, received ${String(bins)}.`);
    }
    const h = histogramBuckets(values, bins);
    if (h === undefined) return;
    this.writeTensor(tag, step, {
      dtype: DataType.DT_DOUBLE,
      shape: [h.bucketCount, 3],
      tensorContent: new Uint8Array(h.rows.buffer, h.rows.byteOffset, h.rows.byteLength),
    }, 'histograms');
  }

  // ---- hooks ----

  onFitStart(trainer: TrainerContext, module: LightningModule): void {
    // The Trainer (the context hooks get) lists its callbacks: the metrics they monitor rank early in HParams.
    const callbacks = (trainer as { callbacks?: unknown }).callbacks;
    if (Array.isArray(callbacks)) {
      this.monitored = callbacks
        .map((c: unknown) => (c !== null && typeof c === 'object' ? (c as { monitor?: unknown }).monitor : undefined))
        .filter((m): m is string => typeof m === 'string');
    }
    if (!this.options.textSummaries || this.summaryLogged) return;
    let summary: string;
    try {
      summary = module.summary();
    } catch {
      return; // A module that cannot summarize itself yet (unbuilt layers) gets no summary.
    }
    this.pendingSummary = `    ${summary.split('\n').join('\n    ')}`;
    if (this.opened) this.writePendingSummary();
  }

  onTrainEpochStart(_trainer: TrainerContext, _module: LightningModule): void {
    this.phase = undefined;
  }

  onValidationEpochEnd(trainer: TrainerContext, _module: LightningModule): void {
    this.phase = trainer.sanityChecking ? undefined : 'validation';
  }

  onTestStart(_trainer: TrainerContext, _module: LightningModule): void {
    this.phase = undefined;
  }

  onTestEpochEnd(_trainer: TrainerContext, _module: LightningModule): void {
    this.phase = 'test';
  }

  onTestEnd(_trainer: TrainerContext, _module: LightningModule): void {
    this.phase = undefined;
  }

  onTrainEnd(_trainer: TrainerContext, _module: LightningModule): void {
    this.phase = undefined;
  }

  async onTrainEpochEnd(trainer: TrainerContext, module: LightningModule): Promise<void> {
    // The train epoch's metrics are logged right after this hook (loggers do not read epoch metrics).
    this.phase = 'train';
    if (this.histogramEpoch(trainer.currentEpoch)) {
      for (const p of module.namedParameters()) {
        const values = await p.variable.data();
        // At the step of this epoch's metrics (the epoch's last batch), as the trainer logs them.
        this.logHistogram(`weights/${p.name}`, values as Float32Array, Math.max(0, trainer.globalStep - 1));
      }
    }
  }

  onValidationEnd(): void {
    this.phase = undefined;
    this.save();
  }

  onAfterBackward(trainer: TrainerContext, module: LightningModule, grads: Readonly<Record<string, tf.Tensor>>): void {
    if (!this.options.logGradients || !this.histogramEpoch(trainer.currentEpoch)) return;
    if (this.gradientsCapturedEpoch === trainer.currentEpoch) return;
    this.gradientsCapturedEpoch = trainer.currentEpoch;
    // Gradients come keyed by tfjs variable name; tag them with the parameter's dotted name.
    const dotted = new Map<string, string>();
    for (const p of module.namedParameters()) dotted.set(p.variable.name, p.name);
    for (const [key, grad] of Object.entries(grads)) {
      this.logHistogram(`gradients/${dotted.get(key) ?? key}`, grad.dataSync() as Float32Array, trainer.globalStep);
    }
  }

  // ---- state ----

  /** JSON state for checkpoints: the version and how far the event file was written. Flushes first. */
  stateDict(): TensorBoardLoggerState {
    if (this.opened) this.guard(() => this.flushWriters(), false);
    const state: TensorBoardLoggerState = {
      version: this.version,
      maxStep: this.maxStep,
      lastSteps: Object.fromEntries(this.lastSteps),
      metricTags: [...this.metricTags],
      hparamsLogged: this.hparamsLogged,
      summaryLogged: this.summaryLogged,
      metricPlaces: Object.fromEntries(this.metricPlaces),
      resumeStep: this.resumeStepNow(this.maxStep),
    };
    if (this.writeError === undefined) {
      const files = { ...Object.fromEntries(this.stageFiles), ...this.stageFilesNow() };
      if (Object.keys(files).length > 0) state.stageFiles = files;
    } else if (this.resume?.stageFiles !== undefined && this.writer === undefined) {
      state.stageFiles = this.resume.stageFiles;
    }
    if (this.writer !== undefined && this.writeError === undefined) {
      state.eventFile = path.basename(this.writer.path);
      state.eventFileBytes = this.writer.bytesWritten;
    } else if (this.resume?.eventFile !== undefined && this.writer === undefined) {
      state.eventFile = this.resume.eventFile;
      if (this.resume.eventFileBytes !== undefined) state.eventFileBytes = this.resume.eventFileBytes;
    }
    return state;
  }

  /**
   * Continues the run of a checkpoint: the same version folder (unless the `version` option says
   * otherwise), whose event file is cut back to where it was when the checkpoint was taken (of what
   * was written after it, only points below the resume step stay, and a validate or test run's
   * points up to it), then a new writer session that starts with SessionLog START at the step the
   * resumed training logs first. Call it before anything is logged.
   */
  loadStateDict(state: Readonly<Record<string, unknown>>): void {
    const parsed = stateSchema.safeParse(state);
    if (!parsed.success) {
      throw new CheckpointError(
        `TensorBoardLogger.loadStateDict: the logger state in the checkpoint is not one TensorBoardLogger.stateDict() wrote: ${parsed.error.issues
          .map((i) => `'${i.path.join('.')}' ${i.message}`)
          .join('; ')}.`,
      );
    }
    if (this.opened) {
      throw new MisconfigurationError(
        `TensorBoardLogger.loadStateDict must be called before anything is logged: this run already writes ${this.eventFile ?? this.logDir}. Restore loggers from the checkpoint before logMetrics/logHyperparams write.`,
      );
    }
    const s = parsed.data;
    this.resume = s;
    if (this.explicitVersion === undefined) this.runDir.setVersion(s.version);
    this.lastSteps.clear();
    for (const [tag, step] of Object.entries(s.lastSteps)) this.lastSteps.set(tag, step);
    this.metricTags.splice(0, this.metricTags.length, ...s.metricTags);
    this.metricPlaces.clear();
    for (const [name, place] of Object.entries(s.metricPlaces ?? {})) this.metricPlaces.set(name, place);
    this.maxStep = s.maxStep;
  }

  // ---- FileLogger ----

  protected currentPath(): string {
    return this.writer?.path ?? this.logDir;
  }

  protected openFiles(): void {
    const dir = this.logDir;
    fs.mkdirSync(dir, { recursive: true });
    const resume = this.resume;
    this.resume = undefined;
    let continuing = false;
    const resumeStep = resume === undefined ? undefined : (resume.resumeStep ?? resume.maxStep + 1);
    if (resume?.eventFile !== undefined && resume.eventFileBytes !== undefined && String(resume.version) === String(this.version)) {
      continuing = this.cutBackTo(dir, resume.eventFile, resume.eventFileBytes, resumeStep!);
      // The sub-runs likewise; one that the checkpoint did not know yet only keeps what a test run wrote.
      for (const run of STAGE_RUNS) {
        const sub = path.join(dir, run);
        if (!fs.existsSync(sub)) continue;
        const f = resume.stageFiles?.[run];
        this.cutBackTo(sub, f?.eventFile, f?.eventFileBytes ?? 0, resumeStep!);
      }
    }
    if (continuing && resume !== undefined) {
      for (const [run, f] of Object.entries(resume.stageFiles ?? {})) this.stageFiles.set(run, f);
      this.hparamsLogged = resume.hparamsLogged;
      this.summaryLogged = resume.summaryLogged;
    }
    this.writer = new EventFileWriter(dir, { maxQueue: this.options.maxQueue, sourceWriter: SOURCE_WRITER });
    // Every writer session begins with START at its first step: then both TensorBoard readers drop the
    // same stale points after a resume (Python purges from this step on, Rust replaces re-logged steps).
    this.sessionStart = Math.max(this.maxStep + 1, resumeStep ?? 0);
    this.writer.add({ wallTime: this.writer.wallTime(), step: this.sessionStart, sessionLog: this.startLog() });
    this.timer = setInterval(() => this.flushOnExit('exit'), this.options.flushSecs * 1000);
    this.timer.unref();
    this.writePendingSummary();
  }

  protected flushFiles(): void {
    this.flushWriters();
    this.refreshExperiment();
  }

  private stageFilesNow(): Record<string, { eventFile: string; eventFileBytes: number }> {
    return Object.fromEntries([...this.stageWriters].map(([run, w]) => [run, { eventFile: path.basename(w.path), eventFileBytes: w.bytesWritten }]));
  }

  private flushWriters(): void {
    this.writer?.flush();
    for (const w of this.stageWriters.values()) w.flush();
  }

  protected closeFiles(status: RunStatus): void {
    this.stopTimer();
    const writer = this.writer;
    if (writer === undefined) return;
    if (this.hparamsLogged && status === 'success') {
      // Only success is recorded: TensorBoard keeps the first session_end_info of a run, and a run
      // that failed or was interrupted may still be resumed and succeed.
      this.addEvent(Math.max(this.maxStep, 0), [
        {
          tag: '_hparams_/session_end_info',
          tensor: emptyTensor(),
          metadata: { pluginName: 'hparams', content: encodeSessionEndInfo('SUCCESS', writer.wallTime()) },
        },
      ]);
    }
    for (const w of this.stageWriters.values()) w.close();
    for (const [run, f] of Object.entries(this.stageFilesNow())) this.stageFiles.set(run, f);
    this.stageWriters.clear();
    writer.close();
    this.refreshExperiment();
  }

  protected abandonFiles(): void {
    this.stopTimer();
    for (const w of this.stageWriters.values()) w.abandon();
    this.stageWriters.clear();
    this.writer?.abandon();
  }

  protected override onHparams(params: Readonly<Record<string, unknown>>): void {
    this.flatHparams = flattenHParams(params);
    if (this.hparamsLogged) return;
    this.hparamsLogged = true;
    const step = this.maxStep + 1;
    const writer = this.writer!;
    this.addEvent(step, [
      {
        tag: '_hparams_/session_start_info',
        tensor: emptyTensor(),
        metadata: { pluginName: 'hparams', content: encodeSessionStartInfo(this.flatHparams, writer.wallTime()) },
      },
    ]);
    // Text goes at step 0, where TensorBoard's Text tab shows it first.
    if (this.options.textSummaries && this.flatHparams.size > 0 && this.acceptStep('hparams', 0, undefined)) {
      this.addTensorEvent('hparams', 0, {
        dtype: DataType.DT_STRING,
        shape: [],
        stringVal: [textEncoder.encode(hparamsMarkdownTable(this.flatHparams))],
      }, 'text');
    }
    writer.flush();
  }

  // ---- internals ----

  private histogramEpoch(epoch: number): boolean {
    const n = this.options.histogramEveryNEpochs;
    return n > 0 && epoch % n === 0;
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private checkTagAndStep(method: string, tag: string, step: number): void {
    if (typeof tag !== 'string' || tag === '') {
      throw new MisconfigurationError(`TensorBoardLogger.${method}: tag must be a non-empty string, received ${JSON.stringify(tag)}.`);
    }
    if (!isInteger(step)) {
      throw new MisconfigurationError(`TensorBoardLogger.${method}('${tag}'): step must be a non-negative integer, received ${String(step)}.`);
    }
  }

  /**
   * Whether a point at `step` may be written to `tag`: steps per tag must strictly increase. A repeat
   * of the last point (same step, same value) is dropped silently; anything else is reported once.
   */
  private acceptStep(tag: string, step: number, value: number | undefined): boolean {
    const last = this.lastSteps.get(tag);
    if (last === undefined || step > last) return true;
    if (step === last && value !== undefined && Object.is(this.lastValue.get(tag), value)) return false;
    if (!this.warnedTags.has(tag)) {
      this.warnedTags.add(tag);
      const message =
        `TensorBoardLogger: '${tag}' at step ${step} is not written: its last point is at step ${last}, and TensorBoard ` +
        `needs strictly increasing steps per tag (its two readers show repeated steps differently). Reported once per tag.`;
      if (this.trainer !== undefined) this.trainer.print(message);
      else console.warn(message);
    }
    return false;
  }

  private writeTensor(tag: string, step: number, tensor: TensorInput, plugin: string): void {
    if (!this.acceptStep(tag, step, undefined)) return;
    const ok = this.write(() => this.addTensorEvent(tag, step, tensor, plugin));
    if (ok) {
      this.lastSteps.set(tag, step);
      this.maxStep = Math.max(this.maxStep, step);
    }
  }

  private addTensorEvent(tag: string, step: number, tensor: TensorInput, plugin: string): void {
    this.addEvent(step, [{ tag, tensor, metadata: { pluginName: plugin } }]);
    this.lastSteps.set(tag, step);
    this.maxStep = Math.max(this.maxStep, step);
  }

  /** Adds one event to the run, or to its sub-run `run` (opened on first use, beginning with START). */
  private addEvent(step: number, values: ValueInput[], run = ''): void {
    let writer = this.writer!;
    if (run !== '') {
      const stage = run as StageRun;
      let w = this.stageWriters.get(stage);
      if (w === undefined) {
        w = new EventFileWriter(path.join(this.logDir, stage), { maxQueue: this.options.maxQueue, sourceWriter: SOURCE_WRITER });
        w.add({ wallTime: w.wallTime(), step: Math.min(this.sessionStart, step), sessionLog: this.startLog() });
        this.stageWriters.set(stage, w);
      }
      writer = w;
    }
    writer.add({ wallTime: writer.wallTime(), step, values });
  }

  /** The START event's session log: a validate or test run's files say so (a resume keeps their points at its step). */
  private startLog(): { status: 'START'; msg?: string } {
    return this.writingTraining ? { status: 'START' } : { status: 'START', msg: EVALUATION_SESSION };
  }

  private writePendingSummary(): void {
    const text = this.pendingSummary;
    if (text === undefined || this.summaryLogged) return;
    this.pendingSummary = undefined;
    this.summaryLogged = true;
    if (!this.acceptStep('model/summary', 0, undefined)) return;
    this.addTensorEvent('model/summary', 0, { dtype: DataType.DT_STRING, shape: [], stringVal: [textEncoder.encode(text)] }, 'text');
  }

  /**
   * Brings the folder back to the checkpoint: its event file keeps the bytes written when the
   * checkpoint was taken, and of what was written after it (there and in later event files) only the
   * summaries below `resumeStep` stay (the validation after a mid-epoch checkpoint), and those of a
   * validate or test run's files up to it (a test after the fit); the rest belongs to the training
   * the resume replaces. Each file is rewritten atomically, so a resume killed halfway is redone
   * alike. Returns false when the file is gone or shorter (logs copied without it): then nothing is
   * changed.
   */
  private cutBackTo(dir: string, file: string | undefined, bytes: number, resumeStep: number): boolean {
    const full = file === undefined ? undefined : path.join(dir, file);
    let size = 0;
    if (full !== undefined) {
      try {
        size = fs.statSync(full).size;
      } catch {
        return false;
      }
      if (size < bytes) return false;
    }
    const keep = (records: Uint8Array[], evaluation: boolean): Uint8Array[] =>
      records.filter((r) => {
        const e = outlineEvent(r);
        return e.summary && (e.step < resumeStep || (evaluation && e.step === resumeStep)) && !e.tags.every((t) => t.startsWith('_hparams_/'));
      });
    if (full !== undefined && size > bytes) {
      const buf = fs.readFileSync(full);
      const tail = keep(decodeRecords(buf.subarray(bytes)), false);
      if (tail.length === 0) fs.truncateSync(full, bytes);
      else writeFileAtomicSync(full, Buffer.concat([buf.subarray(0, bytes), ...tail.map(encodeRecord)]));
    }
    for (const name of fs.readdirSync(dir).sort()) {
      if (!isEventFileName(name) || (file !== undefined && name <= file) || name.endsWith(EXPERIMENT_SUFFIX)) continue;
      const later = path.join(dir, name);
      const records = decodeRecords(fs.readFileSync(later));
      // records[0] is the file version; records[1] the START that says whose session wrote the file.
      const evaluation = records[1] !== undefined && outlineEvent(records[1]).sessionMsg === EVALUATION_SESSION;
      const kept = keep(records.slice(1), evaluation);
      if (kept.length === 0) fs.rmSync(later, { force: true });
      else if (kept.length !== records.length - 1) writeFileAtomicSync(later, Buffer.concat([records[0]!, ...kept].map(encodeRecord)));
    }
    return true;
  }

  /**
   * Keeps the experiment summary (the list of hparams and metrics of every run in the experiment
   * folder `<saveDir>/<name>`, so that all runs compare in one HParams table) in each run's own
   * folder, in a file of its own beside the run's event files: a folder holding an event file is a
   * run to TensorBoard, so a summary at the experiment folder would be listed as an empty run `.`.
   * TensorBoard takes the summary of whichever run it finds first, so every run's copy is the same:
   * when a run adds an hparam or a metric, every copy is rewritten (atomically, under its name).
   * TensorBoard reads the new lists when it restarts.
   */
  private refreshExperiment(): void {
    const flat = this.flatHparams;
    if (flat === undefined || !this.hparamsLogged) return;
    const metrics = this.hparamsMetricRefs();
    const mine = JSON.stringify([[...flat.entries()].map(([k, v]) => [k, hparamType(v)]), metrics]);
    if (mine === this.experimentIndexWritten) return;
    const root = this.rootDir;
    const before = readExperimentIndex(root);
    const merged = mergeExperimentIndex(before, flat, metrics);
    const copies = experimentCopies(root);
    const own = copies.find((f) => path.dirname(f) === this.logDir);
    const changed = !sameExperimentIndex(before, merged);
    if (changed || own === undefined) {
      // Unchanged lists: the new copy is byte for byte an existing one.
      const records = !changed && copies.length > 0 ? fs.readFileSync(copies[0]!) : experimentRecords(merged);
      for (const f of changed ? copies : []) writeFileAtomicSync(f, records);
      if (own === undefined) {
        fs.mkdirSync(this.logDir, { recursive: true });
        // After the run's event files: TensorBoard's Python loader reads a run's files in name order
        // and never goes back, and the next writer session of this run (a resume) sorts after it.
        writeFileAtomicSync(path.join(this.logDir, nextEventFileName(fs.readdirSync(this.logDir), Date.now() / 1000, EXPERIMENT_SUFFIX)), records);
      }
      writeExperimentIndex(root, merged);
    }
    // Logs written by earlier versions keep the summary at the experiment folder itself (a run `.`).
    for (const old of fs.readdirSync(root)) if (isEventFileName(old) && old.endsWith(EXPERIMENT_SUFFIX)) fs.rmSync(path.join(root, old), { force: true });
    this.experimentIndexWritten = mine;
  }

  /**
   * The HParams metrics of this run, ranked: the `hparamsMetrics` option in its order, or else
   * validation metrics, test metrics, the monitored ones, the other epoch metrics, then the rest.
   */
  private hparamsMetricRefs(): MetricRef[] {
    const places = new Map<string, [string, string]>();
    for (const id of this.metricTags) {
      const name = [...this.metricPlaces].find(([, [r, t]]) => (r === '' ? t : `${r}/${t}`) === id)?.[0] ?? id;
      if (name === 'epoch') continue;
      places.set(name, this.metricPlaces.get(name) ?? ['', id]);
    }
    const ref = (name: string, rank: number): MetricRef => {
      const [group, tag] = places.get(name) ?? ['', name];
      return { group, tag, name, rank };
    };
    const chosen = this.options.hparamsMetrics;
    // A chosen metric is listed once logged: its place (sub-run or not) is known from then on.
    if (chosen !== undefined) return chosen.flatMap((name, i) => (places.has(name) ? [ref(name, i - chosen.length)] : []));
    const rank = (name: string): number => {
      const [group] = places.get(name)!;
      if (group === 'validation' || /^(val|validation)_/.test(name)) return 0;
      if (group === 'test' || /^test_/.test(name)) return 1;
      if (this.monitored.includes(name)) return 2;
      if (group !== '' || this.epochMetrics.has(name) || /_epoch$/.test(name)) return 3;
      return 4;
    };
    return [...places.keys()].map((name) => ref(name, rank(name)));
  }
}

/**
 * The experiment-summary files of the runs in an experiment folder (the runs are its sub-folders,
 * a few levels deep: `<version>[/<subDir>]`).
 */
function experimentCopies(root: string, depth = 3): string[] {
  const found: string[] = [];
  const walk = (dir: string, level: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) {
        if (level < depth) walk(path.join(dir, e.name), level + 1);
      } else if (level > 0 && isEventFileName(e.name) && e.name.endsWith(EXPERIMENT_SUFFIX)) {
        found.push(path.join(dir, e.name));
      }
    }
  };
  walk(root, 0);
  return found.sort();
}

/**
 * An experiment-summary file: the file version, then the `_hparams_/experiment` summary. No
 * SessionLog START: the file sits among the run's own files and must not cut its series.
 */
function experimentRecords(index: ExperimentIndex): Buffer {
  const now = Date.now() / 1000;
  const content = encodeExperiment(
    Object.entries(index.hparams).map(([name, type]) => ({ name, type })),
    index.metrics.map(({ group, tag, name }) => (group === '' && name === tag ? { tag } : { group, tag, displayName: name })),
    now,
  );
  return Buffer.concat(
    [
      encodeEvent({ wallTime: now, fileVersion: 'brain.Event:2', sourceWriter: SOURCE_WRITER }),
      encodeEvent({
        wallTime: now,
        step: 0,
        values: [{ tag: '_hparams_/experiment', tensor: emptyTensor(), metadata: { pluginName: 'hparams', content } }],
      }),
    ].map(encodeRecord),
  );
}
