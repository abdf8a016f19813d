import { existsSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  durationSchema,
  durationSeconds,
  InterruptedError,
  parseOptions,
  readCheckpointHeaderSync,
  removeStaleTempFiles,
  wholeNumber,
  writeFileAtomic,
  type LightningModule,
  type Metrics,
  type Stage,
  type TrainerContext,
} from '@flint/core';
import { z } from 'zod';
import { FilenameTemplate } from './internal/filename.js';
import { better, rankable } from './internal/monitor-logic.js';
import { fmt, stateKeyOf } from './internal/util.js';
import { isFitCheck, MonitorCallback, metricNameSchema, modeSchema } from './monitor-callback.js';

export const modelCheckpointOptionsSchema = z
  .strictObject({
    /** Folder of the checkpoints. Default: `<trainer.logDir>/checkpoints`, resolved when fit starts. */
    dirpath: z.string({ error: 'must be a folder path' }).min(1, { error: 'must be a folder path' }).optional(),
    /** File name template without '.ckpt': `{epoch}`, `{step}` and any logged metric, with optional formats (`{val_loss:.4f}`). */
    filename: z.string({ error: 'must be a file name template' }).min(1, { error: 'must be a file name template' }).default('{epoch}-{step}'),
    /** Metric that ranks checkpoints for saveTopK. Without it, saveTopK 1 keeps the latest checkpoint. */
    monitor: metricNameSchema.optional(),
    /** 'min' (default, as in Lightning): lower is better; 'max': higher is better. Never guessed from the name. */
    mode: modeSchema.default('min'),
    /** Keep the k best checkpoints (deleting those that fall out), 0 none, -1 all. */
    saveTopK: z.number({ error: 'must be -1 (all), 0 (none) or a whole number k' }).int({ error: 'must be -1 (all), 0 (none) or a whole number k' }).min(-1, { error: 'must be -1 (all), 0 (none) or a whole number k' }).default(1),
    /** Also write `last.ckpt` at every save. */
    saveLast: z.boolean({ error: 'must be true or false' }).default(false),
    /** Write the weights only (enough for loadFromCheckpoint and test, not to resume a fit). */
    saveWeightsOnly: z.boolean({ error: 'must be true or false' }).default(false),
    /** Save at the end of every N-th training epoch. Default: 1 unless everyNTrainSteps or trainTimeInterval is set; 0 never. */
    everyNEpochs: wholeNumber.optional(),
    /** Save after every N-th optimizer step, mid-epoch (a resume continues at the next batch). */
    everyNTrainSteps: wholeNumber.optional(),
    /** Save after a batch when this much time passed since the last save: seconds, "DD:HH:MM:SS" or { hours, minutes, ... }. */
    trainTimeInterval: durationSchema.optional(),
    /** `{epoch}` becomes `epoch=3` (true, Lightning's naming) or `3` (false). */
    autoInsertMetricName: z.boolean({ error: 'must be true or false' }).default(true),
    /** A missing monitored metric throws, listing the metrics that exist (true), or is reported once and skipped (false). */
    strict: z.boolean({ error: 'must be true or false' }).default(true),
    /** Print a line at each save. */
    verbose: z.boolean({ error: 'must be true or false' }).default(false),
  })
  .superRefine((o, ctx) => {
    const triggers = [o.everyNEpochs !== undefined && o.everyNEpochs > 0, o.everyNTrainSteps !== undefined && o.everyNTrainSteps > 0, o.trainTimeInterval !== undefined];
    if (triggers.filter(Boolean).length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `everyNEpochs (${String(o.everyNEpochs)}), everyNTrainSteps (${String(o.everyNTrainSteps)}) and trainTimeInterval (${JSON.stringify(o.trainTimeInterval)}) are mutually exclusive: set one of them`,
      });
    }
    if (o.monitor === undefined && o.saveTopK > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['saveTopK'],
        message: `saveTopK ${o.saveTopK} needs a 'monitor' to rank checkpoints by; without one use saveTopK 1 (the latest), -1 (all) or 0 (none)`,
      });
    }
  })
  .transform((o) => ({
    ...o,
    everyNEpochs: o.everyNEpochs ?? ((o.everyNTrainSteps ?? 0) === 0 && o.trainTimeInterval === undefined ? 1 : 0),
    everyNTrainSteps: o.everyNTrainSteps ?? 0,
  }));

export type ModelCheckpointOptions = z.input<typeof modelCheckpointOptionsSchema>;

/** The file name of the last checkpoint inside `dirpath`. */
export const LAST_CHECKPOINT_NAME = 'last.ckpt';

/**
 * Saves checkpoints during fit: at epoch ends (every `everyNEpochs`), after every
 * `everyNTrainSteps` optimizer steps, or every `trainTimeInterval`; keeps the `saveTopK` best by
 * `monitor` (deleting those that fall out), optionally `last.ckpt`. Every write is atomic (a
 * temporary file, flushed, renamed). It answers `fit(..., { ckptPath: 'last' | 'best' })` and
 * `test(..., { ckptPath: 'best' })`, also in a new process when `dirpath` is the same.
 *
 * Epoch-end checkpoints are written in `onTrainEpochEnd` after the module's hook, once the epoch's
 * metrics and the epoch-interval LR schedulers have been computed, so a resume continues exactly
 * where the uninterrupted run would. A step save that falls on an epoch's last batch is written at
 * that epoch's end, for the same reason.
 */
export class ModelCheckpoint extends MonitorCallback {
  readonly options: z.output<typeof modelCheckpointOptionsSchema>;
  /** The folder checkpoints go to (resolved at setup when not given). */
  dirpath: string | undefined;
  /** Path of the best checkpoint by `monitor` (undefined without a monitor). */
  bestModelPath: string | undefined;
  /** The monitored value of the best checkpoint. */
  bestModelScore: number | undefined;
  /** The kept top-k checkpoints: path -> monitored value. */
  bestKModels: Record<string, number> = {};
  /** The worst of the kept top-k checkpoints (the next to go). */
  kthBestModelPath: string | undefined;
  kthValue: number;
  /** Path of `last.ckpt` once written (saveLast). */
  lastModelPath: string | undefined;
  /** The most recent checkpoint this callback wrote that is still on disk. */
  latestModelPath: string | undefined;
  private readonly template: FilenameTemplate;
  private lastStepSaved = -1;
  private lastTimeSaved = 0;
  private pendingSave = false;
  private resumed = false;
  private trainer: TrainerContext | undefined;

  constructor(options: ModelCheckpointOptions = {}) {
    const parsed = parseOptions('ModelCheckpoint', modelCheckpointOptionsSchema, options);
    super({ monitor: parsed.monitor, mode: parsed.mode, minDelta: 0, strict: parsed.strict });
    this.options = parsed;
    this.template = new FilenameTemplate(parsed.filename, parsed.autoInsertMetricName);
    this.dirpath = parsed.dirpath === undefined ? undefined : path.resolve(parsed.dirpath);
    this.kthValue = this.worstScore;
  }

  override get stateKey(): string {
    const o = this.options;
    return stateKeyOf('ModelCheckpoint', {
      monitor: this.monitor,
      mode: this.mode,
      everyNTrainSteps: o.everyNTrainSteps,
      everyNEpochs: o.everyNEpochs,
      trainTimeInterval: o.trainTimeInterval,
    });
  }

  override setup(trainer: TrainerContext, _module: LightningModule, _stage: Stage): void {
    this.trainer = trainer;
    this.dirpath ??= path.resolve(trainer.logDir, 'checkpoints');
  }

  override async onFitStart(trainer: TrainerContext): Promise<void> {
    this.lastTimeSaved = performance.now();
    this.pendingSave = false;
    if (trainer.fastDevRun || this.dirpath === undefined) return;
    const removed = removeStaleTempFiles(this.dirpath);
    if (removed.length > 0) {
      trainer.print(`ModelCheckpoint: removed ${removed.length} temporary file(s) that killed writers left in ${this.dirpath} (${listSome(removed)}).`);
    }
    if (this.resumed) await this.reportOrphans(trainer, this.dirpath);
    else if (this.latestModelPath === undefined) await this.warnIfNotEmpty(trainer, this.dirpath);
  }

  /**
   * A SIGINT or SIGTERM stopped the fit at a batch boundary: with saveLast, write last.ckpt now, so
   * that `fit(..., { ckptPath: 'last' })` continues from this very batch.
   */
  override async onException(trainer: TrainerContext, _module: LightningModule, error: unknown): Promise<void> {
    if (!(error instanceof InterruptedError) || !this.options.saveLast || !isFitCheck(trainer)) return;
    const loop = error.position.runningStage;
    if (loop !== 'train' && loop !== 'validate') return; // before the first epoch or after the last one
    const dir = this.dirpath ?? path.resolve(trainer.logDir, 'checkpoints');
    this.dirpath = dir;
    const last = path.join(dir, LAST_CHECKPOINT_NAME);
    try {
      await trainer.saveCheckpoint(last, this.options.saveWeightsOnly);
    } catch (writeError) {
      // The other onException hooks (loggers, the module) must still run.
      trainer.print(`ModelCheckpoint: could not write ${last} at the ${error.signal}: ${(writeError as Error).message}`);
      return;
    }
    this.lastModelPath = last;
    if (this.options.verbose) trainer.print(`ModelCheckpoint: saved ${last} (${error.signal}).`);
  }

  override onTrainBatchEnd(trainer: TrainerContext, module: LightningModule, _outputs: Metrics, _batch: unknown, batchIdx: number): Promise<void> | void {
    if (!isFitCheck(trainer)) return;
    const o = this.options;
    const step = trainer.globalStep;
    let due = false;
    if (o.everyNTrainSteps > 0 && step > 0 && step % o.everyNTrainSteps === 0 && step !== this.lastStepSaved) due = true;
    if (o.trainTimeInterval !== undefined && (performance.now() - this.lastTimeSaved) / 1000 >= durationSeconds(o.trainTimeInterval)) due = true;
    if (!due) return;
    this.lastStepSaved = step;
    this.lastTimeSaved = performance.now();
    // The last batch's checkpoint would say "epoch complete" before validation, the epoch metrics
    // and the epoch schedulers ran: write it at the epoch end instead.
    if (batchIdx + 1 >= trainer.numTrainingBatches) {
      this.pendingSave = true;
      return;
    }
    return this.save(trainer, module, 'step');
  }

  override async onTrainEpochEnd(trainer: TrainerContext, module: LightningModule): Promise<void> {
    if (!isFitCheck(trainer)) return;
    const n = this.options.everyNEpochs;
    const due = n > 0 && (trainer.currentEpoch + 1) % n === 0;
    if (!due && !this.pendingSave) return;
    this.pendingSave = false;
    await this.save(trainer, module, 'epoch');
  }

  override checkpointPath(which: 'last' | 'best'): string | undefined {
    const exists = (p: string | undefined): p is string => p !== undefined && existsSync(p);
    if (which === 'best') {
      if (this.monitor === undefined) return undefined;
      if (exists(this.bestModelPath)) return this.bestModelPath;
      // A new process: the best path is in the state this callback wrote into last.ckpt.
      if (this.dirpath === undefined) return undefined;
      const state = readCallbackStateSync(path.join(this.dirpath, LAST_CHECKPOINT_NAME), this.stateKey);
      const best = state?.bestModelPath;
      return typeof best === 'string' && exists(best) ? best : undefined;
    }
    if (exists(this.lastModelPath)) return this.lastModelPath;
    if (this.dirpath !== undefined && exists(path.join(this.dirpath, LAST_CHECKPOINT_NAME))) return path.join(this.dirpath, LAST_CHECKPOINT_NAME);
    return exists(this.latestModelPath) ? this.latestModelPath : undefined;
  }

  override stateDict(): Record<string, unknown> {
    return {
      monitor: this.monitor ?? null,
      mode: this.mode,
      dirpath: this.dirpath ?? null,
      bestModelPath: this.bestModelPath ?? null,
      bestModelScore: this.bestModelScore ?? null,
      bestKModels: { ...this.bestKModels },
      kthBestModelPath: this.kthBestModelPath ?? null,
      kthValue: this.kthValue,
      lastModelPath: this.lastModelPath ?? null,
      latestModelPath: this.latestModelPath ?? null,
      lastStepSaved: this.lastStepSaved,
    };
  }

  override loadStateDict(state: Readonly<Record<string, unknown>>): void {
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    this.resumed = true;
    this.bestModelPath = str(state.bestModelPath);
    this.bestModelScore = typeof state.bestModelScore === 'number' ? state.bestModelScore : undefined;
    this.lastStepSaved = typeof state.lastStepSaved === 'number' ? state.lastStepSaved : -1;
    // Without a dirpath option the folder follows the loggers, which a resume has just moved back to
    // the checkpoint's version folder: the resumed run keeps its checkpoints beside its logs.
    if (this.options.dirpath === undefined && this.trainer !== undefined) this.dirpath = path.resolve(this.trainer.logDir, 'checkpoints');
    const sameDir = this.dirpath === undefined || str(state.dirpath) === this.dirpath;
    if (!sameDir) return; // Another folder: do not rank (or delete) files of that folder.
    this.bestKModels = { ...((state.bestKModels ?? {}) as Record<string, number>) };
    this.kthBestModelPath = str(state.kthBestModelPath);
    this.kthValue = typeof state.kthValue === 'number' ? state.kthValue : this.worstScore;
    this.lastModelPath = str(state.lastModelPath);
    this.latestModelPath = str(state.latestModelPath);
  }

  /** The path the template gives for these metrics (with '.ckpt'), before any '-vN' suffix. */
  formatCheckpointName(metrics: Metrics): string {
    return `${this.template.format(metrics)}.ckpt`;
  }

  private async save(trainer: TrainerContext, _module: LightningModule, when: 'epoch' | 'step'): Promise<void> {
    const dir = this.dirpath ?? path.resolve(trainer.logDir, 'checkpoints');
    this.dirpath = dir;
    const o = this.options;
    const metrics: Metrics = { ...trainer.callbackMetrics, epoch: trainer.currentEpoch, step: trainer.globalStep };
    let target: string | undefined;
    const evicted: string[] = [];
    if (o.saveTopK !== 0) {
      if (this.monitor === undefined) {
        const previous = o.saveTopK === 1 ? this.latestModelPath : undefined;
        target = await this.freePath(dir, this.template.format(metrics), previous);
        if (previous !== undefined && previous !== target) evicted.push(previous);
      } else {
        // Not logged yet (a step save before the first validation, an epoch without one so far): not ranked.
        const current = this.readMonitor(trainer, when === 'epoch');
        if (current !== undefined && this.entersTopK(current)) {
          const full = o.saveTopK > 0 && Object.keys(this.bestKModels).length >= o.saveTopK;
          const out = full ? this.kthBestModelPath : undefined;
          target = await this.freePath(dir, this.template.format(metrics), out);
          if (out !== undefined) {
            delete this.bestKModels[out];
            if (out !== target) evicted.push(out);
          }
          this.bestKModels[target] = current;
          this.rank();
        }
      }
    }
    const last = o.saveLast ? path.join(dir, LAST_CHECKPOINT_NAME) : undefined;
    if (last !== undefined) this.lastModelPath = last;
    if (target !== undefined) this.latestModelPath = target;
    if (target === undefined && last === undefined) return;
    // The state written into the file is the state after this save.
    if (target !== undefined) {
      await trainer.saveCheckpoint(target, o.saveWeightsOnly);
      if (o.verbose) trainer.print(`ModelCheckpoint: saved ${target}${this.monitor === undefined ? '' : ` (${this.monitor}=${fmt(this.bestKModels[target]!)})`}.`);
    }
    if (last !== undefined) {
      if (target !== undefined) await writeFileAtomic(last, await fs.readFile(target));
      else await trainer.saveCheckpoint(last, o.saveWeightsOnly);
      if (o.verbose) trainer.print(`ModelCheckpoint: saved ${last}.`);
    }
    for (const file of evicted) {
      if (file === last || file in this.bestKModels) continue;
      await fs.rm(file, { force: true });
    }
  }

  /** Whether a checkpoint with this value belongs among the top k. */
  private entersTopK(current: number): boolean {
    const k = this.options.saveTopK;
    if (k === -1 || Object.keys(this.bestKModels).length < k) return true;
    return better(this.mode, rankable(this.mode, current), rankable(this.mode, this.kthValue));
  }

  /** Recomputes best and k-th from bestKModels. */
  private rank(): void {
    const entries = Object.entries(this.bestKModels).sort((a, b) => {
      const x = rankable(this.mode, a[1]);
      const y = rankable(this.mode, b[1]);
      return x === y ? 0 : better(this.mode, x, y) ? -1 : 1;
    });
    const best = entries[0];
    const kth = entries[entries.length - 1];
    this.bestModelPath = best?.[0];
    this.bestModelScore = best?.[1];
    this.kthBestModelPath = kth?.[0];
    this.kthValue = kth?.[1] ?? this.worstScore;
  }

  /** `dir/name.ckpt`, or `name-v1.ckpt`, `-v2`... when another file has that name (`replacing` may be overwritten). */
  private async freePath(dir: string, name: string, replacing: string | undefined): Promise<string> {
    let candidate = path.join(dir, `${name}.ckpt`);
    for (let version = 1; ; version++) {
      const taken = candidate === path.join(dir, LAST_CHECKPOINT_NAME) || (candidate !== replacing && (candidate in this.bestKModels || (await fileExists(candidate))));
      if (!taken) return candidate;
      candidate = path.join(dir, `${name}-v${version}.ckpt`);
    }
  }

  private async warnIfNotEmpty(trainer: TrainerContext, dir: string): Promise<void> {
    const files = (await fs.readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.ckpt'));
    if (files.length > 0) {
      trainer.print(`ModelCheckpoint: the folder ${dir} already holds ${files.length} checkpoint(s) (${listSome(files)}); new files get a '-vN' suffix when a name is taken, and old ones are not deleted.`);
    }
  }

  /**
   * After a resume: checkpoints named like this callback's top-k files that the resumed state does
   * not know (a run killed between writing a new top-k file and deleting the one it replaced, or an
   * earlier run in the same folder) are reported in one line, and kept.
   */
  private async reportOrphans(trainer: TrainerContext, dir: string): Promise<void> {
    const known = new Set([...Object.keys(this.bestKModels), this.bestModelPath, this.latestModelPath].filter((p) => p !== undefined).map((p) => path.basename(p)));
    const orphans = (await fs.readdir(dir).catch(() => [] as string[])).filter((f) => f !== LAST_CHECKPOINT_NAME && !known.has(f) && this.template.matches(f));
    if (orphans.length > 0) {
      trainer.print(
        `ModelCheckpoint: ${dir} holds ${orphans.length} checkpoint(s) that look like top-k files of an earlier run but are not among those this resumed run keeps (${listSome(orphans)}); they are not ranked and not deleted: remove them if they are not needed.`,
      );
    }
  }
}

function listSome(names: readonly string[]): string {
  return `${names.slice(0, 3).join(', ')}${names.length > 3 ? ', ...' : ''}`;
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads one callback's state from a checkpoint's JSON header without loading its tensors. Undefined
 * when the file is missing, foreign or damaged.
 */
export function readCallbackStateSync(file: string, stateKey: string): Record<string, unknown> | undefined {
  try {
    return readCheckpointHeaderSync(file).callbacks?.[stateKey];
  } catch {
    return undefined;
  }
}
