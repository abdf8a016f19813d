import type * as tf from '@tensorflow/tfjs';
import type { BackendInfo } from '../backend.js';
import type { Backend, BenchConfig } from '../workload.js';

export interface PeerContext {
  readonly config: BenchConfig;
  /** All `samples` images, [samples, 784] float32 in [0, 1], built on first access (a second copy of the data set). */
  readonly x: tf.Tensor2D;
  /** One-hot labels, [samples, 10] float32. */
  readonly y: tf.Tensor2D;
  /** The same pixels as a typed array (row-major), for peers that build batch tensors themselves. */
  readonly images: Float32Array;
  /** The same one-hot labels as a typed array (row-major). */
  readonly oneHot: Float32Array;
  readonly samples: number;
  readonly warmupSteps: number;
  /** Epochs of the timed span (1, or more for the RSS growth check); the peer calls markEpochEnd() after each. */
  readonly epochs: number;
  readonly backend: BackendInfo;
  /** A memory reading at a named stage of the run (printed with `--stages`). */
  readonly onStage: (name: string) => void;
}

export interface PeerTiming {
  /** Wall-clock seconds of the timed epoch (the loop, or the `fit` call). */
  readonly seconds: number;
  readonly steps: number;
  /** The last training loss the peer reports (last batch; the epoch mean for `model.fit`). */
  readonly finalLoss: number;
  readonly detail?: string;
}

export interface JsPeerRunner {
  /** Throws SkipError when the peer cannot run here (its API does not exist yet, or not on `backend`). */
  check?(backend: Backend): Promise<void>;
  run(ctx: PeerContext): Promise<PeerTiming>;
}
