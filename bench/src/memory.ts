/**
 * Memory and start-up figures of one peer process: peak RSS, RSS after each epoch, and the time from
 * the process's start (the moment run.ts spawned it, passed as `--spawned-at` in ms since the epoch,
 * the same clock for the JavaScript and the Python peers) to the first optimizer step completed.
 */
import * as tf from '@tensorflow/tfjs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const MB = 2 ** 20;
let spawnedAt: number | undefined;
let firstStepAt: number | undefined;
const epochRss: number[] = [];
/** V8's full garbage collection, when readings are of live memory (`--live`). */
let collect: (() => void) | undefined;

/** From now on, a full garbage collection runs before each RSS reading after an epoch. */
export function collectBeforeReadings(): void {
  setFlagsFromString('--expose-gc');
  collect = runInNewContext('gc') as () => void;
}

/** Sets the process's start (ms since the epoch); defaults to Node's own start when not given. */
export function setSpawnedAt(ms: number | undefined): void {
  spawnedAt = ms ?? performance.timeOrigin;
}

/** Call after every optimizer step: keeps the time of the first one. */
export function markStep(): void {
  firstStepAt ??= Date.now();
}

/** Call at the end of every timed epoch: keeps the process's RSS then. */
export function markEpochEnd(): void {
  collect?.();
  epochRss.push(rssMb());
}

export function rssMb(): number {
  return process.memoryUsage.rss() / MB;
}

/** The process's peak RSS so far (the kernel's high-water mark, like Python's ru_maxrss). */
export function peakRssMb(): number {
  return (process.resourceUsage().maxRSS * 1024) / MB;
}

export interface MemoryFigures {
  readonly peakRssMb: number;
  readonly firstStepSec: number | undefined;
  readonly rssAfterEpochMb: readonly number[];
}

export function memoryFigures(): MemoryFigures {
  const start = spawnedAt ?? performance.timeOrigin;
  return {
    peakRssMb: peakRssMb(),
    firstStepSec: firstStepAt === undefined ? undefined : (firstStepAt - start) / 1000,
    rssAfterEpochMb: [...epochRss],
  };
}

/** One reading for `--stages`: where the memory is at a point of a run. */
export function stage(name: string): Record<string, number | string> {
  const m = process.memoryUsage();
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.byteLength;
  return {
    stage: name,
    rssMb: m.rss / MB,
    peakRssMb: peakRssMb(),
    jsHeapMb: m.heapUsed / MB,
    externalMb: m.external / MB,
    arrayBuffersMb: m.arrayBuffers / MB,
    tensorMb: tf.memory().numBytes / MB,
    numTensors: tf.memory().numTensors,
    ...(wasm === undefined ? {} : { wasmHeapMb: wasm / MB }),
  };
}
