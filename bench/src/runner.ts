/**
 * One peer, one backend, one configuration, in its own process (started by run.ts):
 *
 *   node bench/dist/runner.js --peer tfjs-loop --backend wasm-stock --config mlp-s-b64 --samples 60000 --warmup 20
 *   node bench/dist/runner.js --peer flint --backend wasm-flint --check
 *
 * Prints one line `BENCH_RESULT {json}` (or `BENCH_OK <detail>` for --check) on stdout. Exit code 3
 * with `BENCH_SKIP <reason>` when the peer or backend does not exist here.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { loadMnist } from '@flint/example-mnist/mnist-data';
import { SkipError, setupBackend } from './backend.js';
import { flint, flintCompiled } from './peers/flint.js';
import { tfjsFit } from './peers/tfjs-fit.js';
import { tfjsLoop } from './peers/tfjs-loop.js';
import type { JsPeerRunner, PeerContext } from './peers/types.js';
import { collectBeforeReadings, memoryFigures, setSpawnedAt, stage } from './memory.js';
import { BACKENDS, CONFIGS, CONFIG_IDS, INPUT_SIZE, JS_PEERS, NUM_CLASSES, SKIP_EXIT_CODE, type Backend, type ConfigId, type JsPeer, type RunResult } from './workload.js';

const RUNNERS: Readonly<Record<JsPeer, JsPeerRunner>> = { 'tfjs-loop': tfjsLoop, 'tfjs-fit': tfjsFit, flint, 'flint-compiled': flintCompiled };

function oneOf<T extends string>(what: string, value: string | undefined, valid: readonly T[]): T {
  if (value === undefined || !(valid as readonly string[]).includes(value)) {
    throw new Error(`runner: --${what} must be one of ${valid.join(', ')} (received ${value ?? 'nothing'})`);
  }
  return value as T;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      peer: { type: 'string' },
      backend: { type: 'string' },
      config: { type: 'string' },
      samples: { type: 'string', default: '60000' },
      warmup: { type: 'string', default: '20' },
      check: { type: 'boolean', default: false },
      // ms since the epoch when run.ts spawned this process: the start of time-to-first-step.
      'spawned-at': { type: 'string' },
      epochs: { type: 'string', default: '1' },
      // Print `BENCH_STAGE {json}` readings (RSS, JS heap, array buffers, tensors, wasm heap) at the stages of a run.
      stages: { type: 'boolean', default: false },
      // RSS after each epoch read after a full garbage collection (`pnpm bench --growth --live`).
      live: { type: 'boolean', default: false },
    },
    strict: true,
  });
  setSpawnedAt(values['spawned-at'] === undefined ? undefined : Number(values['spawned-at']));
  if (values.live) collectBeforeReadings();
  const peer = oneOf('peer', values.peer, JS_PEERS);
  const backend = oneOf<Backend>('backend', values.backend, BACKENDS);
  const runner = RUNNERS[peer];

  const info = await setupBackend(backend);
  if (values.check) {
    await runner.check?.(backend);
    process.stdout.write(`BENCH_OK ${info.detail}\n`);
    return;
  }

  const config = CONFIGS[oneOf<ConfigId>('config', values.config, CONFIG_IDS)];
  const samples = Number(values.samples);
  const warmupSteps = Number(values.warmup);
  await runner.check?.(backend);

  const epochs = Number(values.epochs);
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`runner: --epochs must be an integer >= 1 (received ${values.epochs})`);
  const onStage = (name: string): void => {
    if (values.stages) process.stdout.write(`BENCH_STAGE ${JSON.stringify(stage(name))}\n`);
  };
  onStage('started');

  const data = await loadMnist({ split: 'train', limit: samples });
  const { images, count } = data;
  const oneHot = new Float32Array(count * NUM_CLASSES);
  for (let i = 0; i < count; i++) oneHot[i * NUM_CLASSES + data.labels[i]!] = 1;
  onStage('data loaded');
  // The whole-epoch tensors only for the peers that ask for them (model.fit): a peer that feeds
  // typed arrays keeps one copy of the data set, as a user's script would.
  let tensors: { x: tf.Tensor2D; y: tf.Tensor2D } | undefined;
  const whole = (): { x: tf.Tensor2D; y: tf.Tensor2D } =>
    (tensors ??= { x: tf.tensor2d(images, [count, INPUT_SIZE]), y: tf.tensor2d(oneHot, [count, NUM_CLASSES]) });
  const ctx: PeerContext = {
    config,
    get x() {
      return whole().x;
    },
    get y() {
      return whole().y;
    },
    images,
    oneHot,
    samples: count,
    warmupSteps,
    epochs,
    backend: info,
    onStage,
  };
  const timing = await runner.run(ctx);
  onStage('end');
  const result: RunResult = {
    peer,
    backend,
    config: config.id,
    samples: count,
    steps: timing.steps,
    warmupSteps,
    epochs,
    seconds: timing.seconds,
    samplesPerSec: (count * epochs) / timing.seconds,
    ...memoryFigures(),
    finalLoss: timing.finalLoss,
    detail: [info.detail, timing.detail].filter(Boolean).join('; '),
  };
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    if (e instanceof SkipError) {
      process.stdout.write(`BENCH_SKIP ${e.message}\n`);
      process.exit(SKIP_EXIT_CODE);
    }
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
