import * as tf from '@tensorflow/tfjs';
import type { DataLoader } from '@flint/core';
import { limitedBatches, withTransferredBatch } from './batches.js';
import { enterEvalMode } from './evaluation-loop.js';
import type { RunContext } from './run-state.js';
import { checkSync, stepError } from './step-errors.js';

/**
 * The predict loop: `predictStep` over at most `limit` batches, in eval mode, between the predict
 * hooks. Each batch's output is pushed to `outputs` as soon as it exists, so that the caller can
 * dispose them all if the loop fails part-way.
 */
export async function predictLoop(run: RunContext, loader: DataLoader<unknown>, limit: number, outputs: Array<tf.Tensor | tf.Tensor[]>): Promise<void> {
  const { module, dispatcher: d } = run;
  const restoreMode = enterEvalMode(module, 'onPredictModelEval', undefined);
  run.state.phase = 'predict';
  await d.call('onPredictStart', []);
  await d.call('onPredictEpochStart', []);
  run.emit('evalStart', { stage: 'predict', numBatches: limit });
  for await (const [batchIdx, raw] of limitedBatches(loader, limit)) {
    await withTransferredBatch(run, raw, async (batch) => {
      await d.call('onPredictBatchStart', [batch, batchIdx]);
      let out: tf.Tensor | tf.Tensor[];
      try {
        out = tf.tidy(() => {
          const o = module.predictStep(batch as never, batchIdx);
          checkSync(module, 'predictStep', o);
          return o;
        });
      } catch (error) {
        throw stepError(run, 'predictStep', batch, batchIdx, error);
      }
      outputs.push(out);
      await d.call('onPredictBatchEnd', [out, batch, batchIdx]);
    }, () => outputs.at(-1));
    run.emit('evalBatchEnd', { stage: 'predict', batchIdx, numBatches: limit });
    await run.checkInterrupt(batchIdx + 1);
  }
  await d.call('onPredictEpochEnd', []);
  await d.call('onPredictEnd', []);
  restoreMode();
  run.emit('evalEnd', { stage: 'predict', metrics: {} });
}
