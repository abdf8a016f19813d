import * as tf from '@tensorflow/tfjs';
import { isDataModule, MisconfigurationError, parseOptions, type DataModule, type LightningModule } from '@flint/core';
import { z } from 'zod';
import { Trainer } from '../trainer.js';
import { findAttr, readNumberAttr, tuningTrainerOptions, WeightSnapshot, writeAttr } from './shared.js';

/** Options of `scaleBatchSize`; the defaults are those of Lightning's `Tuner.scale_batch_size`. */
export const scaleBatchSizeOptionsSchema = z.strictObject({
  /** 'power': double until a trial runs out of memory; 'binsearch': then bisect between the last success and the failure. */
  mode: z.enum(['power', 'binsearch']).default('power'),
  /** Training steps per trial. */
  stepsPerTrial: z.number().int().min(1).default(3),
  /** The first batch size tried. */
  initVal: z.number().int().min(1).default(2),
  /** At most this many trials. */
  maxTrials: z.number().int().min(1).default(25),
  /** The field holding the batch size: on the module, its hparams or the DataModule. */
  batchArgName: z.string().min(1).default('batchSize'),
  /** binsearch: the result is reduced by this fraction, as a safety margin. */
  margin: z.number().min(0).lt(1).default(0.05),
  /** Never try a batch size above this. */
  maxVal: z.number().int().min(1).default(8192),
  /**
   * A memory budget in bytes: a trial whose peak tensor memory (as tfjs's engine counts it, on any
   * backend) exceeds it counts as out of memory. Without it only a real out-of-memory error does.
   */
  maxMemoryBytes: z.number().positive().optional(),
});

export type ScaleBatchSizeOptions = z.input<typeof scaleBatchSizeOptionsSchema>;

/** One trial of the search. */
export interface BatchSizeTrial {
  readonly batchSize: number;
  readonly ok: boolean;
  /** With `maxMemoryBytes`: the peak bytes of tensors during the trial (tfjs's engine count; on wasm these live in its heap). */
  readonly peakBytes: number | undefined;
  /** The wasm heap's size after the trial (wasm backend only): it grows and never shrinks. */
  readonly wasmHeapBytes: number | undefined;
  /** Why the trial counts as out of memory. */
  readonly reason?: string;
}

/**
 * Whether an error is an out-of-memory as the tfjs backends report it: the JavaScript engine
 * refusing an ArrayBuffer (cpu backend, and tensors read back to the host), the wasm heap that
 * cannot grow (Emscripten's "Cannot enlarge memory", "Aborted(OOM)", WebAssembly.Memory.grow),
 * TensorFlow's ResourceExhausted / "OOM when allocating" (tensorflow backend) and WebGL's context
 * loss for lack of memory. Causes are followed.
 */
export function isOutOfMemoryError(error: unknown): boolean {
  const patterns = [
    /out of memory/i,
    /\bOOM\b/,
    /ResourceExhausted/i,
    /Array buffer allocation failed/i,
    /Invalid typed array length/i,
    /Cannot enlarge memory/i,
    /Maximum memory size exceeded/i,
    /WebAssembly\.Memory.*grow/i,
    /failed to allocate|could not allocate|allocation failed/i,
  ];
  let e: unknown = error;
  for (let depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    if (patterns.some((p) => p.test(text))) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

class OutOfBudget extends Error {
  override readonly name = 'OutOfBudget';
}

function wasmHeapBytes(): number | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8;
  return heap?.buffer.byteLength;
}

/**
 * Lightning's batch-size finder: trains `stepsPerTrial` steps at growing batch sizes (doubling from
 * `initVal`; in 'binsearch' mode then bisecting) until a trial runs out of memory (a real
 * out-of-memory error of the backend, see `isOutOfMemoryError`, or a peak above `maxMemoryBytes`),
 * and writes the largest size that trained into the `batchArgName` field (module, hparams or
 * DataModule: the DataModule's `trainDataloader()` must read it). Returns that size; the weights
 * and the trainer are as before. Under `fastDevRun` nothing runs and the result is undefined.
 */
export async function scaleBatchSize<B>(trainer: Trainer, module: LightningModule<B>, data: DataModule<B>, options: ScaleBatchSizeOptions = {}): Promise<number | undefined> {
  const o = parseOptions('scaleBatchSize', scaleBatchSizeOptionsSchema, options);
  if (trainer.fastDevRun) {
    trainer.print('Flint: scaleBatchSize skipped: fastDevRun is on.');
    return undefined;
  }
  if (!isDataModule(data)) {
    throw new MisconfigurationError('scaleBatchSize needs a DataModule whose trainDataloader() builds a loader with the current batch size (a DataLoader has a fixed batch size).');
  }
  const m = module as LightningModule;
  const holders = findAttr(o.batchArgName, m, data);
  if (holders.length === 0) {
    throw new MisconfigurationError(
      `scaleBatchSize option 'batchArgName': '${o.batchArgName}' is a field of neither ${m.constructor.name}, its hparams nor ${data.constructor.name}: add it there (and build the train loader with it) or name your field.`,
    );
  }
  const read = () => readNumberAttr(o.batchArgName, holders, 'scaleBatchSize');
  // The data set's length: Lightning stops growing at it.
  await data.prepareData?.();
  await data.setup?.('fit');
  const probe = data.trainDataloader?.();
  if (probe === undefined) throw new MisconfigurationError(`scaleBatchSize: the DataModule ${data.constructor.name} has no trainDataloader().`);
  const datasetLength = probe.numSamples;
  await data.teardown?.('fit');

  const trials: BatchSizeTrial[] = [];
  const adjust = (factor: number, value?: number): [number, boolean] => {
    const size = read();
    if (Number.isFinite(datasetLength) && size >= datasetLength) {
      trainer.print(`Flint: scaleBatchSize: the batch size ${size} is at least the length of the data set (${datasetLength}).`);
      return [size, false];
    }
    let next = value ?? Math.floor(size * factor);
    if (next > o.maxVal) next = o.maxVal;
    writeAttr(o.batchArgName, holders, next);
    return [next, next !== size];
  };
  /** One trial at the current size: true when it trained, false when it ran out of memory; other errors are thrown. */
  const trial = async (): Promise<boolean> => {
    const batchSize = read();
    const tuning = new Trainer(tuningTrainerOptions(trainer, { maxSteps: o.stepsPerTrial, limitTrainBatches: undefined }));
    // tf.profile gives the exact peak, but its kernel timer turns a kernel's error into a rejected
    // promise on some backends (cpu): it is used only with a memory budget; without one, trials run
    // plainly so that the backend's own out-of-memory errors reach the search.
    const budget = o.maxMemoryBytes;
    const check = tf.env().getBool('CHECK_COMPUTATION_FOR_ERRORS');
    let peakBytes: number | undefined;
    try {
      if (budget === undefined) {
        await tuning.fit(module, data);
      } else {
        tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
        const profile = await tf.profile(async () => {
          await tuning.fit(module, data);
          return [] as tf.Tensor[];
        });
        peakBytes = Math.max(0, ...profile.kernels.map((k) => k.totalBytesSnapshot));
        if (peakBytes > budget) throw new OutOfBudget(`peak tensor memory ${peakBytes} B exceeds maxMemoryBytes ${budget} B`);
      }
      trials.push({ batchSize, ok: true, peakBytes, wasmHeapBytes: wasmHeapBytes() });
      return true;
    } catch (error) {
      if (!(error instanceof OutOfBudget) && !isOutOfMemoryError(error)) throw error;
      const reason = error instanceof Error ? error.message.split('\n')[0]! : String(error);
      trials.push({ batchSize, ok: false, peakBytes, wasmHeapBytes: wasmHeapBytes(), reason });
      trainer.print(`Flint: scaleBatchSize: batch size ${batchSize} ran out of memory (${reason}).`);
      return false;
    } finally {
      tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', check);
    }
  };

  const previousTrainer = m.trainer;
  const snapshot = new WeightSnapshot(m);
  let size: number;
  try {
    [size] = adjust(1, o.initVal);
    size = o.mode === 'power' ? await powerScaling(size) : await binsearchScaling(size);
  } finally {
    snapshot.restore();
    snapshot.dispose();
    m.trainer = previousTrainer;
  }
  lastTrials = trials;
  trainer.print(`Flint: scaleBatchSize found batch size ${size} (${trials.map((t) => `${t.batchSize}${t.ok ? '' : ' OOM'}`).join(', ')}).`);
  return size;

  // Lightning's _run_power_scaling.
  async function powerScaling(start: number): Promise<number> {
    let newSize = start;
    let anySuccess = false;
    for (let i = 0; i < o.maxTrials; i++) {
      if (newSize >= o.maxVal) break;
      if (await trial()) {
        const last = newSize;
        if (i + 1 >= o.maxTrials) {
          newSize = last;
          break;
        }
        const [next, changed] = adjust(2);
        newSize = next;
        if (!changed) break;
        anySuccess = true;
      } else {
        [newSize] = adjust(0.5);
        if (anySuccess) break;
      }
    }
    return newSize;
  }

  // Lightning's _run_binsearch_scaling, margin included.
  async function binsearchScaling(start: number): Promise<number> {
    let newSize = start;
    let low = 1;
    let high: number | undefined;
    let count = 0;
    for (;;) {
      if (newSize >= o.maxVal) break;
      if (await trial()) {
        const last = newSize;
        count += 1;
        if (count >= o.maxTrials) {
          newSize = last;
          break;
        }
        low = newSize;
        let changed: boolean;
        if (high !== undefined && high !== 0) {
          if (high - low <= 1) break;
          [newSize, changed] = adjust(1, Math.floor((high + low) / 2));
        } else [newSize, changed] = adjust(2);
        if (!changed) break;
      } else {
        high = newSize;
        [newSize] = adjust(1, Math.floor((high + low) / 2));
        if (high - low <= 1) break;
      }
    }
    if (o.margin > 0) {
      const reduced = Math.max(1, Math.floor(newSize * (1 - o.margin)));
      if (reduced !== newSize) {
        newSize = reduced;
        writeAttr(o.batchArgName, holders, newSize);
      }
    }
    return newSize;
  }
}

let lastTrials: readonly BatchSizeTrial[] = [];

/** The trials of the last `scaleBatchSize` call, in order (batch size, success, peak memory). */
export function lastBatchSizeTrials(): readonly BatchSizeTrial[] {
  return lastTrials;
}
