import type * as tf from '@tensorflow/tfjs';
import { DataLoader, DataModule, MisconfigurationError, randomSplit, TensorDataset, type Stage } from '@flint/core';
import { makeClassification, type MakeClassificationOptions } from './make-classification.js';

/** A batch: features [n, features] and the class [n] (0 or 1). */
export type ClassificationBatch = [tf.Tensor2D, tf.Tensor1D];

export interface SyntheticDataOptions extends MakeClassificationOptions {
  /** Training batch size. Default 32. */
  batchSize?: number;
  /** Train / validation / test fractions. Default [0.7, 0.15, 0.15]. */
  split?: [number, number, number];
}

/**
 * A DataModule over `makeClassification`: everything about the data in one place, so that
 * `trainer.fit(model, data)` and `trainer.test(model, data)` need nothing else. Copy it for your own
 * data: load or generate in `setup`, hand out loaders, free the tensors in `teardown`.
 */
export class SyntheticClassificationData extends DataModule<ClassificationBatch> {
  readonly options: Readonly<SyntheticDataOptions>;
  /** Features per row, known once `setup` ran. */
  numFeatures = 0;
  private full: TensorDataset<ClassificationBatch> | undefined;
  private train: TensorDataset<ClassificationBatch> | undefined;
  private val: TensorDataset<ClassificationBatch> | undefined;
  private test: TensorDataset<ClassificationBatch> | undefined;

  constructor(options: SyntheticDataOptions = {}) {
    super();
    this.options = { ...options };
  }

  /**
   * Runs once per process before `setup`: download files or write caches here (nothing to do for
   * generated data). Do not keep state on `this`: with several processes only one runs it.
   */
  override prepareData(): void {}

  /**
   * Builds the data sets. The trainer calls it for every stage ('fit' before training, 'test'
   * before testing, ...), so it builds them once and keeps them.
   */
  override setup(_stage: Stage): void {
    if (this.full !== undefined) return;
    const { batchSize: _batchSize, split = [0.7, 0.15, 0.15], ...generator } = this.options;
    const seed = generator.seed ?? 0;
    const data = makeClassification({ ...generator, seed });
    this.numFeatures = data.features;
    this.full = TensorDataset.from([
      { data: data.x, shape: [data.samples, data.features] },
      { data: data.y, shape: [data.samples], dtype: 'int32' },
    ]) as TensorDataset<ClassificationBatch>;
    // Split with the data's seed: the same options always give the same three splits.
    [this.train, this.val, this.test] = randomSplit(this.full, split, seed) as [
      TensorDataset<ClassificationBatch>,
      TensorDataset<ClassificationBatch>,
      TensorDataset<ClassificationBatch>,
    ];
  }

  /** Shuffled every epoch (seeded). */
  override trainDataloader(): DataLoader<ClassificationBatch> {
    return new DataLoader(this.built('train', this.train), { batchSize: this.options.batchSize ?? 32, shuffle: true, seed: this.options.seed ?? 0 });
  }

  /** One batch: the validation set is small. */
  override valDataloader(): DataLoader<ClassificationBatch> {
    const val = this.built('val', this.val);
    return new DataLoader(val, { batchSize: val.length });
  }

  override testDataloader(): DataLoader<ClassificationBatch> {
    const test = this.built('test', this.test);
    return new DataLoader(test, { batchSize: test.length });
  }

  /** Frees the tensors `setup` made. */
  override teardown(_stage: Stage): void {
    for (const dataset of [this.train, this.val, this.test, this.full]) dataset?.dispose();
    this.full = this.train = this.val = this.test = undefined;
  }

  /** Rows per split (after `setup`). */
  get sizes(): { train: number; val: number; test: number } {
    return { train: this.train?.length ?? 0, val: this.val?.length ?? 0, test: this.test?.length ?? 0 };
  }

  /** The data are regenerated from the options, so they are all a checkpoint needs to hold. */
  override stateDict(): Record<string, unknown> {
    return { options: structuredClone(this.options) };
  }

  private built(name: string, dataset: TensorDataset<ClassificationBatch> | undefined): TensorDataset<ClassificationBatch> {
    if (dataset === undefined) throw new MisconfigurationError(`SyntheticClassificationData: the ${name} split does not exist yet; call setup(stage) first.`);
    return dataset;
  }
}
