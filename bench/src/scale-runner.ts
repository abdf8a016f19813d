/**
 * The Flint side of `pnpm bench --scale` (started by scale.ts), one measurement per process:
 *
 *   node bench/dist/scale-runner.js memory --backend wasm-flint --samples 600000 --hidden 128 --batch 64
 *   node bench/dist/scale-runner.js stream --backend wasm-flint --file /tmp/s.rec --hidden 128 --batch 64
 *   node bench/dist/scale-runner.js generate --file /tmp/s.rec --samples 2000000
 *
 * memory: Flint's Trainer, one epoch of `samples` samples; sample i is MNIST training image
 *         i % 60000, gathered per batch from one copy of the 60,000 images (a TensorDataset subset).
 * stream: one epoch over a record file through `new DataLoader(new RecordDataset(file))`.
 * generate: writes `samples` MNIST-shaped records (x float32 [784], y int32) to `file`, sample i
 *         being MNIST training image i % 60000 (real pixels: random data slows training unrealistically).
 *
 * Prints `SCALE_RESULT {json}`: seconds, samples/s, peak RSS of the process.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { DataLoader, RecordDataset, TensorDataset, writeRecordFile } from '@flint/core';
import { Trainer } from '@flint/trainer';
import { loadMnist } from '@flint/example-mnist/mnist-data';
import { setupBackend } from './backend.js';
import { MlpModule } from './peers/flint.js';
import { BACKENDS, INPUT_SIZE, type Backend } from './workload.js';

type Batch = [tf.Tensor, tf.Tensor];

function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

async function generate(file: string, samples: number): Promise<void> {
  const data = await loadMnist({ split: 'train' });
  const t0 = performance.now();
  function* records() {
    for (let i = 0; i < samples; i++) {
      const k = i % data.count;
      yield { x: data.images.subarray(k * INPUT_SIZE, (k + 1) * INPUT_SIZE), y: data.labels[k]! };
    }
  }
  await writeRecordFile(file, [{ name: 'x', dtype: 'float32', shape: [INPUT_SIZE] }, { name: 'y', dtype: 'int32', shape: [] }], records());
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(`SCALE_RESULT ${JSON.stringify({ seconds, samples, peakRss: peakRss() })}\n`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      backend: { type: 'string', default: 'wasm-flint' },
      samples: { type: 'string', default: '60000' },
      hidden: { type: 'string', default: '128' },
      batch: { type: 'string', default: '64' },
      warmup: { type: 'string', default: '20' },
      file: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  const mode = positionals[0];
  const samples = Number(values.samples);
  if (mode === 'generate') return generate(values.file!, samples);
  if (mode !== 'memory' && mode !== 'stream') throw new Error(`scale-runner: mode must be memory, stream or generate (received ${mode})`);
  const backendName = values.backend as Backend;
  if (!BACKENDS.includes(backendName)) throw new Error(`scale-runner: --backend must be one of ${BACKENDS.join(', ')}`);
  const backend = await setupBackend(backendName);
  const batchSize = Number(values.batch);
  const warmupSteps = Number(values.warmup);

  let loader: DataLoader<Batch>;
  let warmLoader: DataLoader<Batch>;
  let recordStats: RecordDataset['stats'] | undefined;
  let base: TensorDataset | undefined;
  if (mode === 'memory') {
    const data = await loadMnist({ split: 'train' });
    base = TensorDataset.from([{ data: data.images, shape: [data.count, INPUT_SIZE] }, { data: data.labels, shape: [data.count] }]);
    const indices = new Int32Array(samples);
    for (let i = 0; i < samples; i++) indices[i] = i % data.count;
    loader = new DataLoader(base.subset(indices) as TensorDataset<Batch>, { batchSize });
    warmLoader = loader;
  } else {
    const records = new RecordDataset(values.file!, { structure: 'array' });
    recordStats = records.stats;
    loader = new DataLoader<Batch>(records, { batchSize });
    warmLoader = loader;
  }
  const module = new MlpModule([Number(values.hidden)]);
  const common = {
    logger: false as const,
    enableProgressBar: false,
    enableCheckpointing: false,
    enableModelSummary: false,
    backend: backend.trainerBackend,
    ...(backend.name === 'wasm-stock' ? { wasm: false as const } : {}),
  };
  await new Trainer({ ...common, maxSteps: warmupSteps, maxEpochs: 1 }).fit(module, warmLoader);
  const trainer = new Trainer({ ...common, maxEpochs: 1 });
  const t0 = performance.now();
  await trainer.fit(module, loader);
  const seconds = (performance.now() - t0) / 1000;
  const loss = trainer.callbackMetrics['train_loss'];
  const result = {
    seconds,
    steps: trainer.globalStep,
    samples: loader.numSamples,
    samplesPerSec: loader.numSamples / seconds,
    finalLoss: typeof loss === 'number' ? loss : Number.NaN,
    peakRss: peakRss(),
    ...(recordStats === undefined ? {} : { peakRecordsHeld: recordStats.peakRecordsHeld }),
    detail: backend.detail,
  };
  base?.dispose();
  process.stdout.write(`SCALE_RESULT ${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
