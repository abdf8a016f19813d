import * as tf from '@tensorflow/tfjs';
import { SkipError } from '../backend.js';
import { INPUT_SIZE, LEARNING_RATE, NUM_CLASSES, batchesPerEpoch } from '../workload.js';
import { markEpochEnd, markStep } from '../memory.js';
import type { JsPeerRunner, PeerContext, PeerTiming } from './types.js';

/**
 * The hand-written tfjs loop: raw variables (Glorot-uniform weights, zero biases, as tfjs-layers'
 * Dense), matMul + add + relu, `tf.losses.softmaxCrossEntropy` on the logits, `optimizer.minimize`
 * per batch inside a `tidy`, each batch a tensor made from a subarray of the
 * pre-built typed arrays (one copy of the batch). No host read per step; the
 * loss of the last batch is read once, inside the timed span.
 */
export const tfjsLoop: JsPeerRunner = {
  async run(ctx: PeerContext): Promise<PeerTiming> {
    if (ctx.config.conv !== undefined) throw new SkipError(`${ctx.config.id} is run by the Flint Trainer and tfjs-layers only`);
    const sizes = [INPUT_SIZE, ...ctx.config.hidden, NUM_CLASSES];
    const layers: { w: tf.Variable; b: tf.Variable }[] = [];
    for (let i = 0; i + 1 < sizes.length; i++) {
      const fanIn = sizes[i]!;
      const fanOut = sizes[i + 1]!;
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      layers.push({
        w: tf.variable(tf.randomUniform([fanIn, fanOut], -limit, limit, 'float32', 42 + i), true, `dense${i}/kernel`),
        b: tf.variable(tf.zeros([fanOut]), true, `dense${i}/bias`),
      });
    }
    const vars = layers.flatMap((l) => [l.w, l.b]);
    const optimizer = tf.train.adam(LEARNING_RATE);

    const forward = (x: tf.Tensor): tf.Tensor => {
      let h = x;
      layers.forEach((l, i) => {
        h = tf.add(tf.matMul(h, l.w), l.b);
        if (i + 1 < layers.length) h = tf.relu(h);
      });
      return h;
    };

    const { samples, config } = ctx;
    const bs = config.batchSize;
    const batches = batchesPerEpoch(samples, bs);
    // Batch tensors come from the typed arrays (one copy of the batch), not from `tf.slice` of the
    // whole-epoch tensor: stock tfjs-backend-wasm 4.22's Slice reads (copies) its entire input on
    // every call (readSync -> HEAPU8.slice), which on 60,000 x 784 floats costs ~0.4 s per batch.
    const step = (i: number, returnCost: boolean): tf.Scalar | undefined =>
      tf.tidy(() => {
        const start = (i % batches) * bs;
        const size = Math.min(bs, samples - start);
        const xb = tf.tensor2d(ctx.images.subarray(start * INPUT_SIZE, (start + size) * INPUT_SIZE), [size, INPUT_SIZE]);
        const yb = tf.tensor2d(ctx.oneHot.subarray(start * NUM_CLASSES, (start + size) * NUM_CLASSES), [size, NUM_CLASSES]);
        return optimizer.minimize(() => tf.losses.softmaxCrossEntropy(yb, forward(xb)) as tf.Scalar, returnCost, vars) ?? undefined;
      });

    for (let i = 0; i < ctx.warmupSteps; i++) {
      step(i, false);
      markStep();
    }

    const t0 = performance.now();
    let last: tf.Scalar | undefined;
    for (let e = 0; e < ctx.epochs; e++) {
      for (let i = 0; i + 1 < batches; i++) {
        step(i, false);
        markStep();
      }
      last?.dispose();
      last = step(batches - 1, true);
      markStep();
      if (e + 1 < ctx.epochs) markEpochEnd();
    }
    const finalLoss = last === undefined ? Number.NaN : (await last.data())[0]!;
    const seconds = (performance.now() - t0) / 1000;
    markEpochEnd();
    last?.dispose();
    return { seconds, steps: batches * ctx.epochs, finalLoss };
  },
};
