import * as tf from '@tensorflow/tfjs';
import { Callback, parseOptions, type LightningModule, type TrainerContext } from '@flint/core';
import { z } from 'zod';
import { logToLoggers } from './internal/util.js';

/** Schema of `DeviceStatsMonitorOptions`. */
export const deviceStatsMonitorOptionsSchema = z.strictObject({
  /** Log at the start and end of every N-th training batch (counted by the global step). */
  everyNSteps: z.number({ error: 'must be a whole number >= 1' }).int({ error: 'must be a whole number >= 1' }).min(1, { error: 'must be a whole number >= 1' }).default(1),
});

export type DeviceStatsMonitorOptions = z.input<typeof deviceStatsMonitorOptionsSchema>;

/** What the monitor reads: tfjs's tensors and bytes, the wasm heap (wasm backend only), the process's memory. */
export function deviceStats(): Record<string, number> {
  const m = tf.memory();
  const stats: Record<string, number> = { num_tensors: m.numTensors, num_bytes: m.numBytes, num_data_buffers: m.numDataBuffers };
  if (tf.getBackend() === 'wasm') {
    const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8;
    if (heap !== undefined) stats.wasm_heap_bytes = heap.buffer.byteLength;
  }
  const p = process.memoryUsage();
  stats.rss_bytes = p.rss;
  stats.js_heap_used_bytes = p.heapUsed;
  stats.external_bytes = p.external;
  stats.array_buffers_bytes = p.arrayBuffers;
  return stats;
}

/**
 * Lightning's DeviceStatsMonitor for tfjs: logs memory statistics at the start and end of training
 * batches, under `DeviceStatsMonitor.onTrainBatchStart/<stat>` and `.../onTrainBatchEnd/<stat>`
 * (Lightning: `DeviceStatsMonitor.on_train_batch_start/<stat>`): tensors, their bytes and data
 * buffers (tfjs's `tf.memory()`), the wasm heap's size on the wasm backend, and the process's RSS,
 * JS heap, external and ArrayBuffer memory (`process.memoryUsage()`). Nothing during fastDevRun or
 * the sanity check.
 */
export class DeviceStatsMonitor extends Callback {
  readonly options: z.output<typeof deviceStatsMonitorOptionsSchema>;

  constructor(options: DeviceStatsMonitorOptions = {}) {
    super();
    this.options = parseOptions('DeviceStatsMonitor', deviceStatsMonitorOptionsSchema, options);
  }

  override async onTrainBatchStart(trainer: TrainerContext, _module: LightningModule): Promise<void> {
    await this.log(trainer, 'onTrainBatchStart');
  }

  override async onTrainBatchEnd(trainer: TrainerContext, _module: LightningModule): Promise<void> {
    await this.log(trainer, 'onTrainBatchEnd');
  }

  private async log(trainer: TrainerContext, hook: string): Promise<void> {
    if (trainer.fastDevRun || trainer.sanityChecking) return;
    // At batch end the step is already counted: both hooks of a batch share its step.
    const step = hook === 'onTrainBatchEnd' ? trainer.globalStep - 1 : trainer.globalStep;
    if (step % this.options.everyNSteps !== 0) return;
    const stats = deviceStats();
    await logToLoggers(trainer, Object.fromEntries(Object.entries(stats).map(([k, v]) => [`DeviceStatsMonitor.${hook}/${k}`, v])));
  }
}
