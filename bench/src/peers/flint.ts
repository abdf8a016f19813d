import * as tf from '@tensorflow/tfjs';
import { adam, Callback, Conv2d, crossEntropy, Flatten, LightningModule, Linear, MaxPool2d, Sequential, type SequentialItem } from '@flint/core';
import { SkipError } from '../backend.js';
import { markEpochEnd, markStep } from '../memory.js';
import { INPUT_SIZE, LEARNING_RATE, NUM_CLASSES, batchesPerEpoch } from '../workload.js';
import type { JsPeerRunner, PeerContext, PeerTiming } from './types.js';

type Batch = [tf.Tensor, tf.Tensor];
type TrainerModule = typeof import('@flint/trainer');
type CoreModule = typeof import('@flint/core');

// '@flint/trainer' is loaded when this peer runs, not when the runner starts, so that the other
// peers still run (and this one is skipped with the reason) when the Trainer does not load.
async function flintApi(): Promise<{ Trainer: TrainerModule['Trainer']; DataLoader: CoreModule['DataLoader'] }> {
  let trainer: Partial<TrainerModule>;
  let core: Partial<CoreModule>;
  try {
    trainer = await import('@flint/trainer');
    core = await import('@flint/core');
  } catch (e) {
    throw new SkipError(`the Flint packages do not load (built? \`pnpm build\`): ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  if (typeof trainer.Trainer !== 'function') throw new SkipError("'@flint/trainer' does not export Trainer");
  if (typeof core.DataLoader !== 'function') throw new SkipError("'@flint/core' does not export DataLoader");
  return { Trainer: trainer.Trainer, DataLoader: core.DataLoader };
}

/**
 * The module a user would write with Flint's recommended pieces (docs/performance.md): `Linear`
 * layers (one fused dense op), `crossEntropy` on the logits, Flint's `adam()`; the loss logged.
 * With `conv` (the CNN config), first two blocks Conv2d 3x3 (padding 1, ReLU fused in, as tfjs-layers
 * fuses it) -> MaxPool2d 2 in the channels-last layout tfjs convolves in (`dataFormat: 'NHWC'`), then Flatten.
 */
export class MlpModule extends LightningModule<Batch> {
  readonly net: Sequential;
  private readonly inputShape: number[];

  constructor(hidden: readonly number[], conv?: readonly [number, number]) {
    super();
    const features: SequentialItem[] = [];
    this.inputShape = conv === undefined ? [-1, 784] : [-1, 28, 28, 1];
    if (conv !== undefined) {
      let channels = 1;
      for (const c of conv) {
        features.push(new Conv2d(channels, c, 3, { padding: 1, dataFormat: 'NHWC', activation: 'relu' }), new MaxPool2d(2, { dataFormat: 'NHWC' }));
        channels = c;
      }
      features.push(new Flatten());
    }
    const width = new Sequential(...features).outputShape([1, ...this.inputShape.slice(1)])[1]!;
    const widths = [width, ...hidden];
    this.net = new Sequential(
      ...features,
      ...hidden.map((units, i) => new Linear(widths[i]!, units, { activation: 'relu' })),
      new Linear(widths[widths.length - 1]!, 10),
    );
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return this.net.forward(tf.reshape(x, this.inputShape));
  }

  trainingStep(batch: Batch): tf.Scalar {
    const [x, y] = batch;
    const loss = crossEntropy(this.forward(x), y) as tf.Scalar;
    this.log('train_loss', loss);
    return loss;
  }

  configureOptimizers(): tf.Optimizer {
    return adam({ learningRate: LEARNING_RATE });
  }
}

/** Marks the first optimizer step and the RSS after each timed epoch (and a `--stages` reading after the first step). */
class MemoryProbe extends Callback {
  private stepped = false;
  constructor(
    private readonly onStage: (name: string) => void,
    private readonly timed: boolean,
  ) {
    super();
  }

  override onTrainBatchEnd(): void {
    markStep();
    if (!this.stepped && !this.timed) this.onStage('after first step');
    this.stepped = true;
  }

  override onTrainEpochEnd(): void {
    if (!this.timed) return;
    markEpochEnd();
    this.onStage('after epoch');
  }
}

/**
 * Flint's Trainer: `new DataLoader([{ data, shape }, { data, shape }], { batchSize })` over the
 * typed arrays as loaded (the loader keeps them, one copy of the data set, and copies each batch's
 * rows into fresh tensors), warm-up = a `fit` with `maxSteps: 20`, then a new Trainer with
 * `maxEpochs: epochs` whose `fit` call is timed. Logger, progress bar, checkpointing and model
 * summary off (as Lightning "minimal").
 */
export const flint: JsPeerRunner = {
  async check(): Promise<void> {
    await flintApi();
  },

  run: (ctx) => runFlint(ctx, false),
};

/**
 * The same module and Trainer with `compile: true`: each training step one TensorFlow call
 * (docs/performance.md#compiled-training-steps). Native backend only; elsewhere the peer is skipped.
 */
export const flintCompiled: JsPeerRunner = {
  async check(backend): Promise<void> {
    await flintApi();
    if (backend !== 'tensorflow') throw new SkipError('compiled training steps need the native backend (tensorflow); on this backend they would run eagerly, as the flint peer');
  },

  run: (ctx) => runFlint(ctx, true),
};

async function runFlint(ctx: PeerContext, compile: boolean): Promise<PeerTiming> {
    const { Trainer, DataLoader } = await flintApi();
    const module = new MlpModule(ctx.config.hidden, ctx.config.conv);
    const loader = new DataLoader(
      [
        { data: ctx.images, shape: [ctx.samples, INPUT_SIZE] },
        { data: ctx.oneHot, shape: [ctx.samples, NUM_CLASSES] },
      ],
      { batchSize: ctx.config.batchSize },
    );
    ctx.onStage('loader built');
    const batches = batchesPerEpoch(ctx.samples, ctx.config.batchSize);
    const common = {
      logger: false as const,
      enableProgressBar: false,
      enableCheckpointing: false,
      enableModelSummary: false,
      backend: ctx.backend.trainerBackend,
      compile,
      // Stock wasm means stock for Flint too: the Trainer installs its wasm improvements unless `wasm: false`.
      ...(ctx.backend.name === 'wasm-stock' ? { wasm: false as const } : {}),
    };

    const warmup = new Trainer({
      ...common,
      maxSteps: ctx.warmupSteps,
      maxEpochs: Math.ceil(ctx.warmupSteps / batches),
      callbacks: [new MemoryProbe(ctx.onStage, false)],
    });
    if (ctx.warmupSteps > 0) await warmup.fit(module, loader);

    const trainer = new Trainer({ ...common, maxEpochs: ctx.epochs, callbacks: [new MemoryProbe(ctx.onStage, true)] });
    const t0 = performance.now();
    await trainer.fit(module, loader);
    const seconds = (performance.now() - t0) / 1000;
    const loss = trainer.callbackMetrics['train_loss'];
    return { seconds, steps: trainer.globalStep, finalLoss: typeof loss === 'number' ? loss : Number.NaN };
}
