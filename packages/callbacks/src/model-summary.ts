import { Callback, parseOptions, type LightningModule, type TrainerContext } from '@flint/core';
import { z } from 'zod';

export const modelSummaryOptionsSchema = z.strictObject({});

export type ModelSummaryOptions = z.input<typeof modelSummaryOptionsSchema>;

/** Prints `module.summary()` (layers, parameter counts, size) at the start of fit, as Lightning's ModelSummary. */
export class ModelSummary extends Callback {
  /** The last summary printed. */
  summary: string | undefined;

  constructor(options: ModelSummaryOptions = {}) {
    super();
    parseOptions('ModelSummary', modelSummaryOptionsSchema, options);
  }

  override onFitStart(trainer: TrainerContext, module: LightningModule): void {
    if (trainer.fastDevRun) return;
    this.summary = module.summary();
    trainer.print(this.summary);
  }
}
