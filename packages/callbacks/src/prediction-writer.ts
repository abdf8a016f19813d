import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Callback, parseOptions, writeFileAtomic, type LightningModule, type TrainerContext } from '@flint/core';
import { z } from 'zod';

/** A prediction read back to the host: one tensor, or the tensors a predictStep returned as an array. */
export interface HostPrediction {
  readonly shape: number[];
  readonly dtype: tf.DataType;
  readonly data: number[];
}
export type Prediction = HostPrediction | HostPrediction[];

/** Schema of `BasePredictionWriterOptions`. */
export const basePredictionWriterOptionsSchema = z.strictObject({
  /** When to write: after each batch, once after the epoch (all batches), or both (Lightning's `write_interval`). */
  writeInterval: z.enum(['batch', 'epoch', 'batch_and_epoch'], { error: "must be 'batch', 'epoch' or 'batch_and_epoch'" }).default('batch'),
});

export type BasePredictionWriterOptions = z.input<typeof basePredictionWriterOptionsSchema>;

async function toHost(out: unknown): Promise<Prediction> {
  if (Array.isArray(out)) return Promise.all(out.map(async (t) => (await toHost(t)) as HostPrediction));
  const t = out as tf.Tensor;
  return { shape: t.shape.slice(), dtype: t.dtype, data: Array.from(await t.data()) };
}

/**
 * Lightning's BasePredictionWriter: during `trainer.predict`, hands each batch's prediction (read
 * back to the host) to `writeOnBatchEnd`, and all of them with their batch indices to
 * `writeOnEpochEnd`, as `writeInterval` says. Subclass it and write where you like; `writeFile`
 * writes atomically (a temporary file, flushed, renamed), so that a reader never sees half a file.
 * `JsonPredictionWriter` is a ready one.
 */
export abstract class BasePredictionWriter extends Callback {
  readonly options: z.output<typeof basePredictionWriterOptionsSchema>;
  private predictions: Prediction[] = [];
  private batchIndices: number[] = [];

  constructor(options: BasePredictionWriterOptions = {}) {
    super();
    this.options = parseOptions(new.target.name, basePredictionWriterOptionsSchema, options);
  }

  /** Writes one batch's prediction (writeInterval 'batch' or 'batch_and_epoch'). */
  writeOnBatchEnd?(trainer: TrainerContext, module: LightningModule, prediction: Prediction, batchIdx: number): void | Promise<void>;

  /** Writes every prediction of the run, with their batch indices (writeInterval 'epoch' or 'batch_and_epoch'). */
  writeOnEpochEnd?(trainer: TrainerContext, module: LightningModule, predictions: readonly Prediction[], batchIndices: readonly number[]): void | Promise<void>;

  /** Writes a file atomically (folders created). */
  protected async writeFile(file: string, contents: string | Uint8Array): Promise<void> {
    await writeFileAtomic(file, contents);
  }

  override onPredictEpochStart(): void {
    this.predictions = [];
    this.batchIndices = [];
  }

  override async onPredictBatchEnd(trainer: TrainerContext, module: LightningModule, outputs: unknown, _batch: unknown, batchIdx: number): Promise<void> {
    const interval = this.options.writeInterval;
    const prediction = await toHost(outputs);
    if (interval !== 'batch') {
      this.predictions.push(prediction);
      this.batchIndices.push(batchIdx);
    }
    if (interval !== 'epoch') await this.writeOnBatchEnd?.(trainer, module, prediction, batchIdx);
  }

  override async onPredictEpochEnd(trainer: TrainerContext, module: LightningModule): Promise<void> {
    if (this.options.writeInterval === 'batch') return;
    const predictions = this.predictions;
    const indices = this.batchIndices;
    this.predictions = [];
    this.batchIndices = [];
    await this.writeOnEpochEnd?.(trainer, module, predictions, indices);
  }
}

/** Schema of `JsonPredictionWriterOptions`. */
export const jsonPredictionWriterOptionsSchema = basePredictionWriterOptionsSchema.extend({
  /** The folder the files go to. */
  outputDir: z.string({ error: 'must be a folder path' }).min(1, { error: 'must be a folder path' }),
});

export type JsonPredictionWriterOptions = z.input<typeof jsonPredictionWriterOptionsSchema>;

/**
 * A BasePredictionWriter that writes JSON (`{ shape, dtype, data }` per tensor): `batch-<idx>.json`
 * per batch, `predictions.json` (`{ batchIndices, predictions }`) per epoch, under `outputDir`.
 */
export class JsonPredictionWriter extends BasePredictionWriter {
  readonly outputDir: string;

  constructor(options: JsonPredictionWriterOptions) {
    const o = parseOptions('JsonPredictionWriter', jsonPredictionWriterOptionsSchema, options);
    super({ writeInterval: o.writeInterval });
    this.outputDir = o.outputDir;
  }

  override async writeOnBatchEnd(_t: TrainerContext, _m: LightningModule, prediction: Prediction, batchIdx: number): Promise<void> {
    await this.writeFile(path.join(this.outputDir, `batch-${batchIdx}.json`), JSON.stringify(prediction));
  }

  override async writeOnEpochEnd(_t: TrainerContext, _m: LightningModule, predictions: readonly Prediction[], batchIndices: readonly number[]): Promise<void> {
    await this.writeFile(path.join(this.outputDir, 'predictions.json'), JSON.stringify({ batchIndices, predictions }));
  }
}
