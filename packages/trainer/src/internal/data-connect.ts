import * as tf from '@tensorflow/tfjs';
import { DataLoader, describeBatch, isDataModule, MisconfigurationError, type DataModule, type Stage } from '@flint/core';
import { limitedBatches } from './batches.js';
import type { RunContext } from './run-state.js';
import { checkSync, stepError } from './step-errors.js';

/** Training data: a DataLoader, a DataModule, or anything a DataLoader accepts (with its default options). */
export type DataInput<B> = DataLoader<B> | DataModule<B>;

/**
 * The loaders of a stage. A DataModule's are made by its prepareData, setup and *Dataloader(); the
 * trainer tears the DataModule down when the stage ends (also when this fails).
 */
export interface Connected<B> {
  readonly loader: DataLoader<B>;
  /** fit's validation data. */
  readonly val?: DataLoader<B> | undefined;
}

/** The module's data preparation, where no DataModule comes first. */
interface Preparing {
  prepareData?(): void | Promise<void>;
}

/**
 * A DataModule's prepareData, the module's prepareData, then the DataModule's setup (Lightning's
 * order: before the callbacks' and the module's setup).
 */
async function prepare<B>(dm: DataModule<B>, stage: Stage, module: Preparing | undefined): Promise<void> {
  await dm.prepareData?.();
  await module?.prepareData?.();
  await dm.setup?.(stage);
}

/** fit's data: a DataModule's train and validation loaders (validation data passed to fit wins), or the loaders given. */
export async function connectFitData<B>(train: DataInput<B>, val: DataLoader<B> | undefined, module?: Preparing): Promise<Connected<B>> {
  if (isDataModule(train)) {
    const dm = train as DataModule<B>;
    await prepare(dm, 'fit', module);
    const t = dm.trainDataloader?.();
    if (t === undefined) throw new MisconfigurationError(`trainer.fit: the DataModule ${dm.constructor.name} has no trainDataloader().`);
    return { loader: t, val: val ?? dm.valDataloader?.() };
  }
  if (!(train instanceof DataLoader)) {
    throw new MisconfigurationError(`trainer.fit: training data must be a DataLoader or a DataModule (received ${describeBatch(train)}).`);
  }
  if (val !== undefined && !(val instanceof DataLoader)) {
    throw new MisconfigurationError(`trainer.fit: validation data must be a DataLoader (received ${describeBatch(val)}).`);
  }
  await module?.prepareData?.();
  return { loader: train, val };
}

/** validate/test/predict's data: the DataModule's loader of that stage, or the loader given. */
export async function connectEvalData<B>(data: DataInput<B>, stage: 'validate' | 'test' | 'predict', module?: Preparing): Promise<Connected<B>> {
  if (isDataModule(data)) {
    const dm = data as DataModule<B>;
    await prepare(dm, stage, module);
    const loader = stage === 'validate' ? dm.valDataloader?.() : stage === 'test' ? dm.testDataloader?.() : dm.predictDataloader?.();
    if (loader === undefined) throw new MisconfigurationError(`trainer.${stage}: the DataModule ${dm.constructor.name} has no ${stage === 'validate' ? 'val' : stage}Dataloader().`);
    return { loader };
  }
  if (!(data instanceof DataLoader)) {
    throw new MisconfigurationError(`trainer.${stage}: data must be a DataLoader or a DataModule (received ${describeBatch(data)}).`);
  }
  await module?.prepareData?.();
  return { loader: data };
}

/**
 * tfjs layers created without an input shape get their weights on their first call. They are
 * built before the optimizer and the gradient tape see the module: from the input shapes the
 * module knows and its `exampleInputArray` (`module.buildLayers()`), else by one muted dry run of
 * `trainingStep` on the first batch.
 */
export async function materializeLayers(run: RunContext, loader: DataLoader<unknown>): Promise<void> {
  const { module } = run;
  if (module.unbuiltLayers().length === 0 || module.buildLayers().length === 0) return;
  for await (const [, batch] of limitedBatches(loader, 1)) {
    try {
      run.collector.runMuted(() =>
        tf.tidy(() => {
          checkSync(module, 'trainingStep', module.trainingStep(batch, 0));
        }),
      );
    } catch (error) {
      throw stepError(run, 'trainingStep', batch, 0, error);
    }
    break;
  }
  const unbuilt = module.unbuiltLayers();
  if (unbuilt.length > 0) {
    throw new MisconfigurationError(
      `${module.constructor.name}: the layers ${unbuilt.join(', ')} are not built after running trainingStep once: use them in trainingStep, ` +
        `or set exampleInputArray (an input for forward, e.g. tf.zeros([1, 3])) so that forward builds them.`,
    );
  }
}

/** The setup hooks of a stage (callbacks, loggers, module), then the module's configureModel, as Lightning's. */
export async function setupStage(run: RunContext, stage: Stage): Promise<void> {
  await run.dispatcher.call('setup', [stage]);
  await run.module.configureModel();
}
