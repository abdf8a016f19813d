import { Callback, MisconfigurationError, type LightningModule, type TrainerContext } from '@flint/core';

/**
 * Lightning's GradientAccumulationScheduler: `{ epoch: factor }` (`{ 0: 8, 4: 4, 8: 1 }`: 8 batches
 * per optimizer step from epoch 0, 4 from epoch 4, 1 from epoch 8); epochs before the first key
 * accumulate nothing (factor 1). At each training epoch's start it sets
 * `trainer.accumulateGradBatches` to the factor of that epoch. The trainer's own
 * `accumulateGradBatches` option must stay 1, and the module must use automatic optimization.
 */
export class GradientAccumulationScheduler extends Callback {
  /** The schedule, epochs ascending, with epoch 0 present. */
  readonly scheduling: ReadonlyArray<readonly [epoch: number, factor: number]>;

  constructor(scheduling: Readonly<Record<number, number>>) {
    super();
    const entries = Object.entries(scheduling ?? {});
    if (entries.length === 0) {
      throw new MisconfigurationError('GradientAccumulationScheduler: the schedule is empty; give { epoch: factor }, e.g. { 0: 4, 10: 1 }.');
    }
    const parsed: Array<[number, number]> = [];
    for (const [key, factor] of entries) {
      const epoch = Number(key);
      if (!Number.isInteger(epoch) || epoch < 0) {
        throw new MisconfigurationError(`GradientAccumulationScheduler: epoch '${key}' must be a whole number >= 0 (the schedule maps epochs to factors, e.g. { 0: 4, 10: 1 }).`);
      }
      if (typeof factor !== 'number' || !Number.isInteger(factor) || factor < 1) {
        throw new MisconfigurationError(`GradientAccumulationScheduler: the factor of epoch ${epoch} must be a whole number >= 1 (received ${String(factor)}).`);
      }
      parsed.push([epoch, factor]);
    }
    parsed.sort((a, b) => a[0] - b[0]);
    if (parsed[0]![0] !== 0) parsed.unshift([0, 1]);
    this.scheduling = parsed;
  }

  /** The factor of `epoch`: that of the last scheduled epoch at or before it. */
  getAccumulateGradBatches(epoch: number): number {
    let factor = 1;
    for (const [e, f] of this.scheduling) if (e <= epoch) factor = f;
    return factor;
  }

  override onTrainStart(trainer: TrainerContext, module: LightningModule): void {
    if (!module.automaticOptimization) {
      throw new MisconfigurationError(`GradientAccumulationScheduler works with automatic optimization; ${module.constructor.name} sets automaticOptimization = false (accumulate in your trainingStep).`);
    }
    if (trainer.accumulateGradBatches === undefined) {
      throw new MisconfigurationError('GradientAccumulationScheduler needs a trainer whose accumulateGradBatches can be set per epoch (the Trainer of @flint/trainer).');
    }
    if (trainer.accumulateGradBatches !== 1) {
      throw new MisconfigurationError(
        `GradientAccumulationScheduler and the Trainer option accumulateGradBatches=${trainer.accumulateGradBatches} both set the accumulation: keep the option at 1 and put every factor in the schedule.`,
      );
    }
  }

  override onTrainEpochStart(trainer: TrainerContext): void {
    trainer.accumulateGradBatches = this.getAccumulateGradBatches(trainer.currentEpoch);
  }
}
