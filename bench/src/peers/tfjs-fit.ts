import * as tf from '@tensorflow/tfjs';
import { SkipError } from '../backend.js';
import { INPUT_SIZE, LEARNING_RATE, NUM_CLASSES, batchesPerEpoch } from '../workload.js';
import { markEpochEnd, markStep } from '../memory.js';
import type { JsPeerRunner, PeerContext, PeerTiming } from './types.js';

/**
 * A tfjs-layers Sequential of Dense layers (ReLU hidden layers, logits out); with `conv`, first two
 * blocks conv2d 3x3 'same' -> ReLU -> maxPooling2d 2 on [28, 28, 1] and a flatten (the CNN config).
 */
export function buildSequential(hidden: readonly number[], conv?: readonly [number, number]): tf.Sequential {
  const model = tf.sequential();
  if (conv !== undefined) {
    model.add(tf.layers.reshape({ targetShape: [28, 28, 1], inputShape: [INPUT_SIZE] }));
    for (const filters of conv) {
      model.add(tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation: 'relu' }));
      model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
    }
    model.add(tf.layers.flatten());
  }
  hidden.forEach((units, i) => {
    model.add(tf.layers.dense(i === 0 && conv === undefined ? { units, activation: 'relu', inputShape: [INPUT_SIZE] } : { units, activation: 'relu' }));
  });
  model.add(tf.layers.dense(hidden.length === 0 ? { units: NUM_CLASSES, inputShape: [INPUT_SIZE] } : { units: NUM_CLASSES }));
  return model;
}

/**
 * tfjs-layers `model.fit`: a Sequential of Dense layers compiled with Adam and softmax
 * cross-entropy on the logits (a loss function, since tfjs's string losses expect probabilities),
 * `shuffle: false`, `verbose: 0`. Warm-up is a `fit` on the first 20 batches; the timed span is one
 * `fit` call over the epoch.
 */
export const tfjsFit: JsPeerRunner = {
  async run(ctx: PeerContext): Promise<PeerTiming> {
    if (ctx.config.conv !== undefined && ctx.backend.name === 'wasm-stock') {
      throw new SkipError('stock wasm has no Conv2DBackpropFilter kernel (the gradient of a conv layer), so a conv net cannot train there');
    }
    const model = buildSequential(ctx.config.hidden, ctx.config.conv);
    model.compile({
      optimizer: tf.train.adam(LEARNING_RATE),
      loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred),
    });
    const bs = ctx.config.batchSize;

    const warmSamples = Math.min(ctx.samples, ctx.warmupSteps * bs);
    const warmEpochs = Math.ceil(ctx.warmupSteps / batchesPerEpoch(warmSamples, bs));
    const xw = ctx.x.slice([0, 0], [warmSamples, INPUT_SIZE]);
    const yw = ctx.y.slice([0, 0], [warmSamples, NUM_CLASSES]);
    await model.fit(xw, yw, { batchSize: bs, epochs: warmEpochs, shuffle: false, verbose: 0, callbacks: { onBatchEnd: async () => markStep() } });
    xw.dispose();
    yw.dispose();

    const t0 = performance.now();
    const history = await model.fit(ctx.x, ctx.y, {
      batchSize: bs,
      epochs: ctx.epochs,
      shuffle: false,
      verbose: 0,
      callbacks: { onBatchEnd: async () => markStep(), onEpochEnd: async () => markEpochEnd() },
    });
    const seconds = (performance.now() - t0) / 1000;
    const loss = history.history['loss']?.[ctx.epochs - 1];
    return { seconds, steps: batchesPerEpoch(ctx.samples, bs) * ctx.epochs, finalLoss: typeof loss === 'number' ? loss : Number.NaN };
  },
};
