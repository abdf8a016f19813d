import * as tf from '@tensorflow/tfjs';
import { MisconfigurationError, type LightningModule } from '@flint/core';
import type { Trainer } from '../trainer.js';
import type { TrainerOptions } from '../trainer-options.js';

/**
 * A copy of every parameter of the module (trainable and not: batch-norm statistics too), kept
 * outside any tidy scope, so that a tuning run can be undone exactly (`restore`, then `dispose`).
 */
export class WeightSnapshot {
  private readonly saved: Array<{ variable: tf.Variable; copy: tf.Tensor }>;

  constructor(module: LightningModule) {
    this.saved = module.namedParameters().map((p) => ({ variable: p.variable, copy: tf.keep(p.variable.clone()) }));
  }

  /** Puts every saved value back into its variable. */
  restore(): void {
    for (const { variable, copy } of this.saved) {
      if (!variable.isDisposed) variable.assign(copy);
    }
  }

  dispose(): void {
    for (const { copy } of this.saved) copy.dispose();
  }
}

/**
 * Options of the private trainer a tuning run uses: the user's trainer's backend, determinism,
 * optimization settings and train-batch limit; no loggers, no checkpoints, no progress bar, no
 * validation. The user's trainer itself is not touched, so that nothing of its state needs undoing.
 */
export function tuningTrainerOptions(trainer: Trainer, overrides: TrainerOptions): TrainerOptions {
  const o = trainer.options;
  return {
    accelerator: o.accelerator,
    ...(o.backend === undefined ? {} : { backend: o.backend }),
    wasm: o.wasm,
    deterministic: o.deterministic,
    accumulateGradBatches: o.accumulateGradBatches,
    ...(o.gradientClipVal === undefined ? {} : { gradientClipVal: o.gradientClipVal }),
    gradientClipAlgorithm: o.gradientClipAlgorithm,
    ...(o.limitTrainBatches === undefined ? {} : { limitTrainBatches: o.limitTrainBatches }),
    exitOnInterrupt: o.exitOnInterrupt,
    ...(o.defaultRootDir === undefined ? {} : { defaultRootDir: o.defaultRootDir }),
    logger: false,
    enableCheckpointing: false,
    enableProgressBar: false,
    enableModelSummary: false,
    numSanityValSteps: 0,
    limitValBatches: 0,
    ...overrides,
  };
}

type Holder = Record<string, unknown>;

/** Where an attribute lives, as Lightning's `lightning_hasattr` looks: the module, its hparams, then the DataModule. */
export function findAttr(name: string, module: LightningModule, datamodule?: object): Holder[] {
  const out: Holder[] = [];
  const m = module as unknown as Holder;
  if (name in m) out.push(m);
  if (module.hparams !== undefined && name in module.hparams) out.push(module.hparams);
  if (datamodule !== undefined && name in datamodule) out.push(datamodule as Holder);
  return out;
}

/** Reads the first holder's value of `name`, checked to be a number. */
export function readNumberAttr(name: string, holders: Holder[], what: string): number {
  const v = holders[0]?.[name];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new MisconfigurationError(`${what}: the attribute '${name}' must hold a finite number (received ${typeof v === 'number' ? v : typeof v}).`);
  }
  return v;
}

/** Sets `name` on every holder (Lightning's `lightning_setattr`). */
export function writeAttr(name: string, holders: Holder[], value: number): void {
  for (const h of holders) h[name] = value;
}
