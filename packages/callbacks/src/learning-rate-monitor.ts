import { Callback, getLearningRate, getMomentum, parseOptions, type LightningModule, type OptimizerWrapper, type TrainerContext } from '@flint/core';
import { z } from 'zod';
import { logToLoggers } from './internal/util.js';

export const learningRateMonitorOptionsSchema = z.strictObject({
  /**
   * 'auto' (default): each optimizer at its scheduler's interval (every step for 'step'
   * schedulers, else every epoch); 'step' or 'epoch': all optimizers at that interval.
   */
  loggingInterval: z.enum(['auto', 'step', 'epoch'], { error: "must be 'auto', 'step' or 'epoch'" }).default('auto'),
  /** Also log the momentum (Momentum's and RMSProp's momentum, Adam's and Adamax's beta1) as `momentum-<name>`. */
  logMomentum: z.boolean({ error: 'must be true or false' }).default(false),
});

export type LearningRateMonitorOptions = z.input<typeof learningRateMonitorOptionsSchema>;

/**
 * Logs the learning rate each optimizer really uses, as Lightning's LearningRateMonitor:
 * `lr-<OptimizerClass>` (`lr-Adam`; `lr-Adam-1` for a second Adam), or `lr-<name>` when the
 * scheduler config has a `name`. The values are sent at the start of each step or epoch, so each
 * is the rate that step or epoch trains with. `lrs` keeps them for inspection.
 */
export class LearningRateMonitor extends Callback {
  readonly options: z.output<typeof learningRateMonitorOptionsSchema>;
  /** Every logged value by name, in order. */
  readonly lrs: Record<string, number[]> = {};

  constructor(options: LearningRateMonitorOptions = {}) {
    super();
    this.options = parseOptions('LearningRateMonitor', learningRateMonitorOptionsSchema, options);
  }

  override async onTrainEpochStart(trainer: TrainerContext, _module: LightningModule): Promise<void> {
    await this.log(trainer, 'epoch');
  }

  override async onTrainBatchStart(trainer: TrainerContext): Promise<void> {
    await this.log(trainer, 'step');
  }

  /** The names the rates are logged under, one per optimizer. */
  names(trainer: TrainerContext): string[] {
    const seen = new Map<string, number>();
    return trainer.optimizers.map((o) => {
      const config = trainer.lrSchedulers.find((c) => c.optimizer === o);
      const base = config?.name ?? `lr-${o.optimizer.getClassName()}`;
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      return n === 0 ? base : `${base}-${n}`;
    });
  }

  private async log(trainer: TrainerContext, now: 'epoch' | 'step'): Promise<void> {
    if (trainer.sanityChecking) return;
    const names = this.names(trainer);
    const metrics: Record<string, number> = {};
    trainer.optimizers.forEach((o, i) => {
      if (this.intervalOf(trainer, o) !== now) return;
      const name = names[i]!;
      const lr = getLearningRate(o.optimizer);
      metrics[name] = lr;
      (this.lrs[name] ??= []).push(lr);
      if (this.options.logMomentum) {
        const momentum = getMomentum(o.optimizer);
        if (momentum !== undefined) metrics[name.startsWith('lr-') ? `momentum-${name.slice(3)}` : `${name}-momentum`] = momentum;
      }
    });
    await logToLoggers(trainer, metrics);
  }

  private intervalOf(trainer: TrainerContext, o: OptimizerWrapper): 'epoch' | 'step' {
    if (this.options.loggingInterval !== 'auto') return this.options.loggingInterval;
    return trainer.lrSchedulers.find((c) => c.optimizer === o)?.interval ?? 'epoch';
  }
}
