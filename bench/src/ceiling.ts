/**
 * wasm's matmul ceiling for an MLP training step, measured in its own process (started by run.ts for
 * each MLP configuration when Flint's wasm is benchmarked, so that it runs under the same load as the
 * peers):
 *
 *   node bench/dist/ceiling.js --config mlp-l-b256
 *
 * The eight products of one training step (784-512-512-10 at batch 256: three forward, three weight
 * gradients xᵀ·dy, two input gradients dy·Wᵀ; layer 1 needs no input gradient) run as plain XNNPACK
 * matmuls: operands already laid out untransposed (no transpose counted), tfjs-backend-wasm's own
 * XNNPACK path, the threads that `installWasmImprovements()` chooses, as Flint's Trainer does. Fresh
 * operands at every call, as in training, where the weights and the gradients change at every step:
 * XNNPACK packs its right-hand operand for each new tensor. Only the matmul calls are timed.
 *
 * Prints `BENCH_CEILING {json}`: FLOP per step, FLOP/s, and "ceiling samples/s" = batch / (time of
 * the eight products), the throughput of a step that did nothing but its matmuls.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { setupBackend } from './backend.js';
import { CONFIGS, CONFIG_IDS, INPUT_SIZE, NUM_CLASSES, type ConfigId } from './workload.js';

/** One product [m, k]·[k, n]. */
export interface Product {
  readonly what: string;
  readonly m: number;
  readonly k: number;
  readonly n: number;
}

export interface Ceiling {
  readonly config: ConfigId;
  readonly threads: number;
  readonly flopPerStep: number;
  /** Median time of the eight products of one step. */
  readonly msPerStep: number;
  readonly flopPerSec: number;
  readonly samplesPerSec: number;
  /** Median ms of each product, in `stepProducts` order. */
  readonly perProductMs: readonly number[];
  readonly products: readonly Product[];
}

/** The matmuls of one training step of an MLP (input 784, `hidden` widths, 10 classes) at `batch`. */
export function stepProducts(hidden: readonly number[], batch: number): Product[] {
  const widths = [INPUT_SIZE, ...hidden, NUM_CLASSES];
  const out: Product[] = [];
  for (let l = 0; l + 1 < widths.length; l++) out.push({ what: `forward ${l + 1}`, m: batch, k: widths[l]!, n: widths[l + 1]! });
  for (let l = widths.length - 2; l >= 0; l--) {
    out.push({ what: `dW ${l + 1} = xᵀ·dy`, m: widths[l]!, k: batch, n: widths[l + 1]! });
    if (l > 0) out.push({ what: `dx ${l + 1} = dy·Wᵀ`, m: batch, k: widths[l + 1]!, n: widths[l]! });
  }
  return out;
}

export const flopOf = (p: Product): number => 2 * p.m * p.k * p.n;

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Times the products on the active backend: `warmup` + `reps` steps, medians of the timed ones. */
export function measureProducts(products: readonly Product[], reps: number, warmup = 3): { msPerStep: number; perProductMs: number[] } {
  const data = products.map((p) => ({
    a: Float32Array.from({ length: p.m * p.k }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5),
    b: Float32Array.from({ length: p.k * p.n }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5),
  }));
  const steps: number[] = [];
  const each: number[][] = products.map(() => []);
  for (let r = 0; r < warmup + reps; r++) {
    let step = 0;
    products.forEach((p, i) => {
      const a = tf.tensor2d(data[i]!.a, [p.m, p.k]);
      const b = tf.tensor2d(data[i]!.b, [p.k, p.n]);
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      const ms = performance.now() - t0; // wasm kernels run synchronously
      tf.dispose([a, b, c]);
      step += ms;
      if (r >= warmup) each[i]!.push(ms);
    });
    if (r >= warmup) steps.push(step);
  }
  return { msPerStep: median(steps), perProductMs: each.map(median) };
}

/** One line per configuration for the report: the ceiling and Flint's figure as a share of it. */
export function ceilingLines(ceilings: readonly Ceiling[], flintSamplesPerSec: (config: ConfigId) => number | undefined): string[] {
  if (ceilings.length === 0) return [];
  const lines = [
    '',
    "## wasm's matmul ceiling",
    '',
    'The eight matmuls of one training step as plain XNNPACK products (operands untransposed, fresh at every call, the',
    "threads `installWasmImprovements()` chooses), measured in this run; Flint's Trainer on wasm as a share of it.",
    '',
    '| config | threads | MFLOP/step | ms/step (matmuls) | GFLOP/s | ceiling samples/s | Flint wasm samples/s | Flint / ceiling |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const byConfig = new Map<ConfigId, Ceiling[]>();
  for (const c of ceilings) byConfig.set(c.config, [...(byConfig.get(c.config) ?? []), c]);
  for (const [config, runs] of byConfig) {
    const ceiling = median(runs.map((r) => r.samplesPerSec));
    const flint = flintSamplesPerSec(config);
    lines.push(
      `| ${config} | ${[...new Set(runs.map((r) => r.threads))].join('/')} | ${(runs[0]!.flopPerStep / 1e6).toFixed(0)} | ` +
        `${median(runs.map((r) => r.msPerStep)).toFixed(2)} | ${(median(runs.map((r) => r.flopPerSec)) / 1e9).toFixed(1)} | ` +
        `${Math.round(ceiling).toLocaleString('en-US')} | ${flint === undefined ? '-' : Math.round(flint).toLocaleString('en-US')} | ` +
        `${flint === undefined ? '-' : `${((100 * flint) / ceiling).toFixed(0)}%`} |`,
    );
  }
  return lines;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' }, reps: { type: 'string', default: '20' } }, strict: true });
  const id = values.config as ConfigId;
  if (!CONFIG_IDS.includes(id) || CONFIGS[id].conv !== undefined) {
    throw new Error(`ceiling: --config must be an MLP configuration (${CONFIG_IDS.filter((c) => CONFIGS[c].conv === undefined).join(', ')}); received ${values.config ?? 'nothing'}`);
  }
  const config = CONFIGS[id];
  const info = await setupBackend('wasm-flint');
  const { getThreadsCount } = await import('@tensorflow/tfjs-backend-wasm');
  const threads = getThreadsCount();
  const products = stepProducts(config.hidden, config.batchSize);
  const { msPerStep, perProductMs } = measureProducts(products, Number(values.reps));
  const flopPerStep = products.reduce((s, p) => s + flopOf(p), 0);
  const result: Ceiling = {
    config: id,
    threads,
    flopPerStep,
    msPerStep,
    flopPerSec: flopPerStep / (msPerStep / 1000),
    samplesPerSec: config.batchSize / (msPerStep / 1000),
    perProductMs,
    products,
  };
  process.stderr.write(`ceiling: ${info.detail}\n`);
  process.stdout.write(`BENCH_CEILING ${JSON.stringify(result)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
