import type { Stage } from '../hooks.js';
import type { TensorBatch } from './batch.js';
import type { DataLoader } from './data-loader.js';

const DATA_MODULE = Symbol.for('flint.DataModule');

/**
 * Everything about a data set in one place, as Lightning's `LightningDataModule`: download or
 * write files once in `prepareData`, build data sets in `setup(stage)`, hand out loaders in
 * `trainDataloader` / `valDataloader` / `testDataloader` / `predictDataloader`, free them in
 * `teardown(stage)`. Every hook is optional; the trainer calls those that exist. Give the trainer
 * the module instead of loaders: `trainer.fit(model, dataModule)`.
 *
 * ```ts
 * class MnistData extends DataModule<[tf.Tensor, tf.Tensor]> {
 *   setup(stage: Stage) { ... }
 *   trainDataloader() { return new DataLoader(this.train, { batchSize: 64, shuffle: true }); }
 * }
 * ```
 */
export abstract class DataModule<B = TensorBatch> {
  /** State saved in checkpoints (e.g. a vocabulary built in setup). Default: nothing. */
  stateDict(): Record<string, unknown> {
    return {};
  }

  /** Restores `stateDict()` from a checkpoint. Default: nothing to restore. */
  loadStateDict(_state: Readonly<Record<string, unknown>>): void {}
}

// A brand that `isDataModule` checks, so that a module from another copy of Flint is recognised too.
Object.defineProperty(DataModule.prototype, DATA_MODULE, { value: true });

/** The optional hooks of a DataModule. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface DataModule<B = TensorBatch> {
  /** Download or preprocess once (files, caches); called before `setup`. Do not keep state here. */
  prepareData?(): void | Promise<void>;
  /** Build the data sets the stage needs ('fit': train and val, 'validate', 'test', 'predict'). */
  setup?(stage: Stage): void | Promise<void>;
  /** The training loader (stage 'fit'). */
  trainDataloader?(): DataLoader<B>;
  /** The validation loader (stages 'fit' and 'validate'). */
  valDataloader?(): DataLoader<B>;
  /** The test loader (stage 'test'). */
  testDataloader?(): DataLoader<B>;
  /** The prediction loader (stage 'predict'). */
  predictDataloader?(): DataLoader<B>;
  /** Free what `setup` built (dispose data sets and loaders). */
  teardown?(stage: Stage): void | Promise<void>;
}

/** True for a DataModule (an instance of a subclass, also from another copy of Flint). */
export function isDataModule(x: unknown): x is DataModule<unknown> {
  return x instanceof DataModule || (x !== null && typeof x === 'object' && (x as Record<symbol, unknown>)[DATA_MODULE] === true);
}
