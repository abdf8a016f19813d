import * as tf from '@tensorflow/tfjs';
import {
  BatchNorm1d,
  BatchNorm2d,
  Callback,
  getLearningRate,
  MisconfigurationError,
  Module,
  parseOptions,
  setLearningRate,
  type LightningModule,
  type OptimizerWrapper,
  type TrainerContext,
} from '@flint/core';
import { z } from 'zod';

/** Schema of `BackboneFinetuningOptions`; defaults as Lightning's. */
export const backboneFinetuningOptionsSchema = z.strictObject({
  /** The epoch (0-based) at which the backbone starts to train. */
  unfreezeBackboneAtEpoch: z.number().int({ error: 'must be a whole number >= 0' }).min(0, { error: 'must be a whole number >= 0' }).default(10),
  /** The factor the backbone's learning rate is multiplied by each epoch after unfreezing, given the epoch (Lightning's `lambda_func`). Default: 1.5. */
  lambdaFunc: z.custom<(epoch: number) => number>((v) => typeof v === 'function', { error: 'must be a function (epoch) => factor' }).optional(),
  /** The backbone's first learning rate as a fraction of the optimizer's current one (unless backboneInitialLr). */
  backboneInitialRatioLr: z.number().positive().default(0.1),
  /** The backbone's first learning rate; default: backboneInitialRatioLr x the optimizer's. */
  backboneInitialLr: z.number().positive().optional(),
  /** Never let the backbone's learning rate exceed the optimizer's. */
  shouldAlign: z.boolean().default(true),
  /** Keep BatchNorm layers of the backbone trainable while it is frozen. */
  trainBn: z.boolean().default(true),
  /** Print the learning rates when they change. */
  verbose: z.boolean().default(false),
  /** Digits the printed learning rates are rounded to. */
  rounding: z.number().int().min(0).default(12),
});

export type BackboneFinetuningOptions = z.input<typeof backboneFinetuningOptionsSchema>;

/**
 * Lightning's BackboneFinetuning: the module's `backbone` (a Module) is frozen until
 * `unfreezeBackboneAtEpoch`; from then on it trains with a learning rate of its own, starting at
 * `backboneInitialLr` (or `backboneInitialRatioLr` x the optimizer's), multiplied by
 * `lambdaFunc(epoch + 1)` (1.5) each later epoch and, with `shouldAlign`, never above the optimizer's.
 * Lightning gives the backbone a second parameter group of the same optimizer; a tfjs optimizer has
 * one learning rate, so the backbone gets a second optimizer of the same class and settings, which
 * applies the backbone's gradients (before the main step; gradient clipping applies to the rest).
 */
export class BackboneFinetuning extends Callback {
  readonly options: z.output<typeof backboneFinetuningOptionsSchema>;
  /** The backbone's learning rate of the current epoch (undefined while frozen). */
  backboneLr: number | undefined;
  private backboneOptimizer: tf.Optimizer | undefined;
  private backboneNames = new Set<string>();

  constructor(options: BackboneFinetuningOptions = {}) {
    super();
    this.options = parseOptions('BackboneFinetuning', backboneFinetuningOptionsSchema, options);
  }

  private backbone(module: LightningModule): Module {
    const b = (module as unknown as { backbone?: unknown }).backbone;
    if (!(b instanceof Module)) {
      throw new MisconfigurationError(`BackboneFinetuning: ${module.constructor.name} must have a 'backbone' field holding a Module (the layers to freeze and fine-tune).`);
    }
    return b;
  }

  /** Freezes the backbone (its BatchNorm layers stay trainable with trainBn), as Lightning's `freeze_before_training`. */
  override onFitStart(trainer: TrainerContext, module: LightningModule): void {
    const backbone = this.backbone(module);
    if (trainer.optimizers.length !== 1) throw new MisconfigurationError(`BackboneFinetuning works with 1 optimizer (received ${trainer.optimizers.length}).`);
    if (trainer.currentEpoch < this.options.unfreezeBackboneAtEpoch) this.setTrainable(backbone, false);
  }

  private setTrainable(backbone: Module, trainable: boolean): void {
    const bnVars = new Set<tf.Variable>();
    if (this.options.trainBn) {
      for (const { value } of backbone.namedModules()) {
        if (value instanceof BatchNorm1d || value instanceof BatchNorm2d) for (const v of [value.weight, value.bias]) if (v !== undefined) bnVars.add(v);
      }
    }
    for (const p of backbone.namedParameters()) {
      const isStat = p.variable.dtype !== 'float32' || /running_(mean|var)$|num_batches_tracked$/.test(p.name);
      if (isStat) continue;
      p.variable.trainable = trainable || bnVars.has(p.variable);
    }
  }

  override onTrainEpochStart(trainer: TrainerContext, module: LightningModule): void {
    const epoch = trainer.currentEpoch;
    const at = this.options.unfreezeBackboneAtEpoch;
    if (epoch < at) return;
    const main = trainer.optimizers[0]!;
    const currentLr = getLearningRate(main.optimizer);
    let lr: number;
    if (epoch === at || this.backboneOptimizer === undefined) {
      lr = this.options.backboneInitialLr ?? currentLr * this.options.backboneInitialRatioLr;
      this.unfreeze(module, main, lr);
    } else {
      const next = (this.options.lambdaFunc ?? (() => 1.5))(epoch + 1) * this.backboneLr!;
      lr = this.options.shouldAlign && next > currentLr ? currentLr : next;
      setLearningRate(this.backboneOptimizer, lr);
    }
    this.backboneLr = lr;
    if (this.options.verbose) {
      const r = (v: number) => Number(v.toFixed(this.options.rounding));
      trainer.print(`BackboneFinetuning: epoch ${epoch}: current lr ${r(currentLr)}, backbone lr ${r(lr)}`);
    }
  }

  private unfreeze(module: LightningModule, main: OptimizerWrapper, lr: number): void {
    const backbone = this.backbone(module);
    this.setTrainable(backbone, true);
    const names = new Set(backbone.parameters().map((v) => v.name));
    this.backboneNames = names;
    const cls = main.optimizer.constructor as unknown as {
      fromConfig(cls: unknown, config: tf.serialization.ConfigDict): tf.Optimizer;
    };
    this.disposeBackboneOptimizer();
    this.backboneOptimizer = cls.fromConfig(cls, { ...main.optimizer.getConfig(), learningRate: lr });
    setLearningRate(this.backboneOptimizer, lr);
  }

  /** The backbone's gradients go to its own optimizer; the rest to the module's. */
  override onBeforeOptimizerStep(_trainer: TrainerContext, module: LightningModule, _optimizer: OptimizerWrapper, grads: Readonly<Record<string, tf.Tensor>>): void {
    const opt = this.backboneOptimizer;
    if (opt === undefined) return;
    const mine: Record<string, tf.Tensor> = {};
    for (const [name, g] of Object.entries(grads)) if (this.backboneNames.has(name)) mine[name] = g;
    if (Object.keys(mine).length === 0) return;
    tf.tidy(() => opt.applyGradients(mine));
    // The trainer's gradient store owns them: dropped there, the module's optimizer does not apply them again.
    module._gradStore.clear(new Set(Object.keys(mine)));
  }

  override teardown(): void {
    this.disposeBackboneOptimizer();
  }

  private disposeBackboneOptimizer(): void {
    const opt = this.backboneOptimizer;
    if (opt === undefined) return;
    opt.dispose();
    // tfjs's Momentum does not free the learning-rate scalar it inherits from SGD (see disposeOptimizers).
    const c = (opt as unknown as { c?: unknown }).c;
    if (c instanceof tf.Tensor && !c.isDisposed) c.dispose();
    this.backboneOptimizer = undefined;
  }
}
