import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, DataModule, TensorDataset, permutation, type Stage } from '@flint/core';

/** A batch: standardized features [n, 4] and the class index [n]. */
export type Batch = [tf.Tensor2D, tf.Tensor1D];

export const CLASSES = ['setosa', 'versicolor', 'virginica'] as const;

export interface IrisDataOptions {
  /** The CSV: a header line, then sepal_length, sepal_width, petal_length, petal_width, species. */
  csvPath: string;
  batchSize?: number;
  /** Seed of the train/validation/test split. */
  seed?: number;
}

/** Reads the CSV into feature rows and class indices, with a clear error for a bad line. */
export function readIrisCsv(csvPath: string): { features: number[][]; labels: number[] } {
  const lines = readFileSync(csvPath, 'utf8').trim().split(/\r?\n/);
  const features: number[][] = [];
  const labels: number[] = [];
  lines.slice(1).forEach((line, i) => {
    const cells = line.split(',');
    const values = cells.slice(0, 4).map(Number);
    const label = CLASSES.indexOf(cells[4]?.trim() as (typeof CLASSES)[number]);
    if (cells.length !== 5 || values.some((v) => !Number.isFinite(v)) || label < 0) {
      throw new Error(`${csvPath} line ${i + 2}: expected 4 numbers and one of ${CLASSES.join(', ')}, got '${line}'`);
    }
    features.push(values);
    labels.push(label);
  });
  return { features, labels };
}

/**
 * Iris from a CSV: 150 flowers, split 60/20/20 into train, validation and test, standardized with
 * the training rows' mean and standard deviation.
 */
export class IrisData extends DataModule<Batch> {
  private readonly options: Required<IrisDataOptions>;
  private train: TensorDataset<Batch> | undefined;
  private val: TensorDataset<Batch> | undefined;
  private test: TensorDataset<Batch> | undefined;
  private tensors: tf.Tensor[] = [];

  constructor(options: IrisDataOptions) {
    super();
    this.options = { batchSize: 16, seed: 42, ...options };
  }

  override setup(_stage: Stage): void {
    if (this.train !== undefined) return;
    const { features, labels } = readIrisCsv(this.options.csvPath);
    const n = labels.length;
    // A seeded shuffle, then 60% train, 20% validation, 20% test.
    const order = Array.from(permutation(n, this.options.seed));
    const nTrain = Math.round(n * 0.6);
    const nVal = Math.round(n * 0.2);
    const trainIdx = order.slice(0, nTrain);
    const valIdx = order.slice(nTrain, nTrain + nVal);
    const testIdx = order.slice(nTrain + nVal);
    // Standardize with the training rows only, so that nothing leaks from validation and test.
    const mean = [0, 1, 2, 3].map((j) => trainIdx.reduce((s, i) => s + features[i]![j]!, 0) / trainIdx.length);
    const std = [0, 1, 2, 3].map((j) => Math.sqrt(trainIdx.reduce((s, i) => s + (features[i]![j]! - mean[j]!) ** 2, 0) / trainIdx.length));
    const make = (idx: number[]): TensorDataset<Batch> => {
      const x = tf.tensor2d(idx.map((i) => features[i]!.map((v, j) => (v - mean[j]!) / std[j]!)));
      const y = tf.tensor1d(idx.map((i) => labels[i]!), 'int32');
      this.tensors.push(x, y);
      return TensorDataset.from([x, y]) as TensorDataset<Batch>;
    };
    this.train = make(trainIdx);
    this.val = make(valIdx);
    this.test = make(testIdx);
  }

  override trainDataloader(): DataLoader<Batch> {
    return new DataLoader(this.need(this.train), { batchSize: this.options.batchSize, shuffle: true, seed: this.options.seed });
  }
  override valDataloader(): DataLoader<Batch> {
    return new DataLoader(this.need(this.val), { batchSize: 64 });
  }
  override testDataloader(): DataLoader<Batch> {
    return new DataLoader(this.need(this.test), { batchSize: 64 });
  }

  /** The Trainer calls this when fit, validate or test ends: free the tensors (`setup` reads the CSV again when needed). */
  override teardown(_stage: Stage): void {
    this.dispose();
  }

  /** Frees the data's tensors. */
  dispose(): void {
    tf.dispose(this.tensors);
    this.tensors = [];
    this.train = this.val = this.test = undefined;
  }

  private need(ds: TensorDataset<Batch> | undefined): TensorDataset<Batch> {
    if (ds === undefined) throw new Error('IrisData: call setup() first (the Trainer does it)');
    return ds;
  }
}
