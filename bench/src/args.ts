import { parseArgs } from 'node:util';
import { BACKENDS, CONFIG_IDS, FULL_SAMPLES, GROWTH_EPOCHS, PEERS, QUICK_SAMPLES, WARMUP_STEPS, type Backend, type ConfigId, type Peer } from './workload.js';

export interface BenchOptions {
  readonly configs: readonly ConfigId[];
  readonly peers: readonly Peer[];
  readonly backends: readonly Backend[];
  /** JS peer/backend pairs left out, e.g. `flint@wasm-stock`. */
  readonly skip: readonly string[];
  readonly runs: number;
  readonly samples: number;
  readonly warmupSteps: number;
  /** Epochs in each timed span; RSS is read after each (10 with --growth: the no-growth check). */
  readonly epochs: number;
  /** With --growth: each RSS reading of a JavaScript peer follows a full garbage collection (live memory). */
  readonly live: boolean;
  /** A Python with the peers' packages; default: the venv made by bench/python/setup-venv.sh. */
  readonly python: string | undefined;
  /** Folder of latest.json and latest.md. */
  readonly outDir: string | undefined;
  /** Seconds one peer process may take before it is stopped and counted as failed. */
  readonly timeoutSec: number;
  readonly help: boolean;
}

export const USAGE = `pnpm bench [options]      (or: node bench/dist/run.js [options] after a build)

  --configs LIST    ${CONFIG_IDS.join(',')} (default: all)
  --peers LIST      ${PEERS.join(',')} (default: all)
  --backends LIST   backends of the JS peers: ${BACKENDS.join(',')}
                    (default: wasm-stock,wasm-flint,tensorflow; cpu is slow, ask for it)
  --skip LIST       peer@backend pairs to leave out, e.g. flint@wasm-stock,tfjs-loop@wasm-stock
  --runs N          runs per configuration, alternating configurations; the median is reported (default 2)
  --quick           ${QUICK_SAMPLES.toLocaleString('en-US')} samples per epoch instead of ${FULL_SAMPLES.toLocaleString('en-US')}: checks the harness, not a figure
  --samples N       samples per timed epoch (default ${FULL_SAMPLES})
  --warmup N        warm-up steps before the timed epoch (default ${WARMUP_STEPS})
  --epochs N        epochs in the timed span (default 1); samples/s counts them all, RSS is read after each
  --growth          the memory growth check: --epochs 10, and the report compares RSS after epoch 10
                    with after epoch 2 (goal: within 5%); e.g. --growth --configs mlp-s-b64 --peers flint,lightning
  --live            with --growth: a JavaScript peer collects its garbage (a full V8 GC) before each
                    RSS reading, so that the readings are live memory: a leak still grows, garbage
                    V8 has not collected yet does not
  --python PATH     Python for the torch/lightning/keras peers (default: .cache/bench-venv, made by bench/python/setup-venv.sh)
  --out DIR         where latest.json and latest.md go (default: bench/results)
  --timeout SEC     limit for one peer process (default 1800)
  --help`;

function list<T extends string>(name: string, raw: string | undefined, valid: readonly T[], fallback: readonly T[]): T[] {
  if (raw === undefined) return [...fallback];
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const bad = items.filter((s) => !(valid as readonly string[]).includes(s));
  if (bad.length > 0 || items.length === 0) {
    throw new Error(`--${name}: unknown ${bad.length > 0 ? `value(s) ${bad.join(', ')}` : 'empty list'}; valid: ${valid.join(', ')}`);
  }
  return [...new Set(items)] as T[];
}

function positiveInt(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min} (received ${raw})`);
  return n;
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      configs: { type: 'string' },
      peers: { type: 'string' },
      backends: { type: 'string' },
      skip: { type: 'string' },
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      samples: { type: 'string' },
      warmup: { type: 'string' },
      epochs: { type: 'string' },
      growth: { type: 'boolean', default: false },
      live: { type: 'boolean', default: false },
      python: { type: 'string' },
      out: { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.quick && values.samples !== undefined) throw new Error('--quick and --samples exclude each other');
  if (values.live && !values.growth) throw new Error('--live goes with --growth (it changes the RSS readings of the growth check)');
  if (values.growth && values.epochs !== undefined) throw new Error('--growth and --epochs exclude each other (--growth runs 10 epochs)');
  return {
    configs: list('configs', values.configs, CONFIG_IDS, CONFIG_IDS),
    peers: list('peers', values.peers, PEERS, PEERS),
    backends: list('backends', values.backends, BACKENDS, ['wasm-stock', 'wasm-flint', 'tensorflow']),
    skip: parseSkip(values.skip),
    runs: positiveInt('runs', values.runs, 2),
    samples: values.quick ? QUICK_SAMPLES : positiveInt('samples', values.samples, FULL_SAMPLES),
    warmupSteps: positiveInt('warmup', values.warmup, WARMUP_STEPS, 0),
    epochs: values.growth ? GROWTH_EPOCHS : positiveInt('epochs', values.epochs, 1),
    live: values.live,
    python: values.python,
    outDir: values.out,
    timeoutSec: positiveInt('timeout', values.timeout, 1800),
    help: values.help,
  };
}

function parseSkip(raw: string | undefined): string[] {
  if (raw === undefined || raw === '') return [];
  const pairs = raw.split(',').map((p) => p.trim());
  for (const pair of pairs) {
    const [peer, backend] = pair.split('@');
    if (!PEERS.includes(peer as Peer) || !BACKENDS.includes(backend as Backend)) {
      throw new Error(`--skip: '${pair}' is not peer@backend; peers: ${PEERS.join(', ')}; backends: ${BACKENDS.join(', ')}`);
    }
  }
  return pairs;
}
