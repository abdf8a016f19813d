/**
 * The shared benchmark workload (../shared/docs/benchmark-workload.md): MLPs on the real MNIST
 * training set, softmax cross-entropy on logits, Adam 1e-3, no shuffling, the last partial batch
 * kept; 20 warm-up steps, then one epoch timed as a whole. Plus a small conv net (CNN), run by the
 * Flint Trainer and tfjs-layers `model.fit` only.
 */

export const CONFIG_IDS = ['mlp-s-b64', 'mlp-s-b256', 'mlp-l-b64', 'mlp-l-b256', 'cnn-b128'] as const;
export type ConfigId = (typeof CONFIG_IDS)[number];

export interface BenchConfig {
  readonly id: ConfigId;
  /** 'MLP-S' (784-128-10), 'MLP-L' (784-512-512-10) or 'CNN' (two conv blocks, then 128-10). */
  readonly model: 'MLP-S' | 'MLP-L' | 'CNN';
  /** Hidden dense layer widths (ReLU); the input is 784 (or the conv blocks' output) and the output 10 logits. */
  readonly hidden: readonly number[];
  /**
   * CNN only: the channels of two blocks Conv 3x3 (padding 1) -> ReLU -> MaxPool 2 on the images as
   * [N, 28, 28, 1], before a Flatten and the dense layers.
   */
  readonly conv?: readonly [number, number];
  readonly batchSize: number;
}

export const CONFIGS: Readonly<Record<ConfigId, BenchConfig>> = {
  'mlp-s-b64': { id: 'mlp-s-b64', model: 'MLP-S', hidden: [128], batchSize: 64 },
  'mlp-s-b256': { id: 'mlp-s-b256', model: 'MLP-S', hidden: [128], batchSize: 256 },
  'mlp-l-b64': { id: 'mlp-l-b64', model: 'MLP-L', hidden: [512, 512], batchSize: 64 },
  'mlp-l-b256': { id: 'mlp-l-b256', model: 'MLP-L', hidden: [512, 512], batchSize: 256 },
  'cnn-b128': { id: 'cnn-b128', model: 'CNN', hidden: [128], conv: [16, 32], batchSize: 128 },
};

export const INPUT_SIZE = 784;
export const NUM_CLASSES = 10;
export const LEARNING_RATE = 1e-3;
export const FULL_SAMPLES = 60000;
export const QUICK_SAMPLES = 2000;
export const WARMUP_STEPS = 20;
/** Epochs of the memory growth check (`--growth`): RSS after the last epoch against after epoch 2. */
export const GROWTH_EPOCHS = 10;

/** The JavaScript peers, each run on every requested backend. */
export const JS_PEERS = ['tfjs-loop', 'tfjs-fit', 'flint', 'flint-compiled'] as const;
export type JsPeer = (typeof JS_PEERS)[number];
/** The Python peers (their own CPU backends). */
export const PY_PEERS = ['torch', 'lightning', 'keras'] as const;
export type PyPeer = (typeof PY_PEERS)[number];
export const PEERS = [...PY_PEERS, ...JS_PEERS] as const;
export type Peer = JsPeer | PyPeer;

/**
 * Backends of the JavaScript peers: stock tfjs-backend-wasm; wasm with Flint's improvements
 * (`installWasmImprovements()` from '@flint/trainer'); native TensorFlow through
 * '@tensorflow/tfjs-node'; tfjs's pure-JS cpu backend.
 */
export const BACKENDS = ['wasm-stock', 'wasm-flint', 'tensorflow', 'cpu'] as const;
export type Backend = (typeof BACKENDS)[number];

export const PEER_LABELS: Readonly<Record<Peer, string>> = {
  torch: 'PyTorch, plain loop',
  lightning: 'Lightning, minimal',
  keras: 'Keras 3 / TF `fit`',
  'tfjs-loop': 'tfjs hand loop',
  'tfjs-fit': 'tfjs-layers `model.fit`',
  flint: 'Flint Trainer',
  'flint-compiled': 'Flint Trainer, `compile: true`',
};

export function isJsPeer(peer: Peer): peer is JsPeer {
  return (JS_PEERS as readonly string[]).includes(peer);
}

/** Number of batches in an epoch of `samples` with the last partial batch kept. */
export function batchesPerEpoch(samples: number, batchSize: number): number {
  return Math.ceil(samples / batchSize);
}

/** What a peer process reports for one timed epoch. */
export interface RunResult {
  readonly peer: Peer;
  /** The JS backend, or 'python' for the Python peers. */
  readonly backend: Backend | 'python';
  readonly config: ConfigId;
  readonly samples: number;
  readonly steps: number;
  readonly warmupSteps: number;
  /** Epochs in the timed span (1 unless the growth check asks for more); absent in results older than it. */
  readonly epochs?: number;
  readonly seconds: number;
  /** samples x epochs / seconds. */
  readonly samplesPerSec: number;
  /** Peak resident set size of the peer's process, MB (2^20 bytes): the kernel's high-water mark at the end. */
  readonly peakRssMb?: number;
  /** Seconds from the process's spawn to the end of its first optimizer step (imports, data loading, set-up, one step). */
  readonly firstStepSec?: number;
  /** RSS of the process after each timed epoch, MB. */
  readonly rssAfterEpochMb?: readonly number[];
  /** Loss of the last timed batch (a check that it trained). */
  readonly finalLoss: number;
  /** Versions and settings the peer ran with (framework versions, threads, backend). */
  readonly detail: string;
}

/** Exit code of a peer process whose peer or backend does not exist here (it prints `BENCH_SKIP <reason>`). */
export const SKIP_EXIT_CODE = 3;
