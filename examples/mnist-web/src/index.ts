import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, exportModule, seedEverything } from '@flint/core';
import { MnistClassifier, mnistDatasets } from '@flint/example-mnist';
import { Trainer, type BackendName } from '@flint/trainer';

export { serveSite } from './server.js';
export type { SiteServer, ServeSiteOptions } from './server.js';

/** The example's folder (the parent of src/ and dist/). */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface BuildSiteOptions {
  /** Where the exported model (`model/`) and the test digits (`digits.json`) go. Default `<example>/site`. */
  outDir?: string;
  /** Epochs of training. Default 5, as the main MNIST job. */
  maxEpochs?: number;
  /** @deprecated Use `maxEpochs` (the Trainer's name). */
  epochs?: number;
  /** Train on the first N training images only (a quick run). Default all 60,000. */
  trainLimit?: number;
  /** How many test digits the page shows and classifies. Default 100. */
  testDigits?: number;
  seed?: number;
  backend?: BackendName;
  enableProgressBar?: boolean;
  print?: (line: string) => void;
}

export interface BuiltSite {
  readonly outDir: string;
  readonly modelDir: string;
  /** Accuracy of the trained module on all 10,000 test images, in Node. */
  readonly testAccuracy: number;
  readonly labels: number[];
  /** The trained module's class probabilities for the page's test digits, computed in Node. */
  readonly probabilities: number[][];
}

/**
 * Trains the main job's multi-layer MNIST net (784 -> 256 ReLU -> dropout 0.2 -> 10, Adam 1e-3,
 * batch 128, 5,000 images held out for validation) with Flint, exports it with `exportModule` to
 * `<outDir>/model/` (TensorFlow.js Layers format) and writes the first test digits to
 * `<outDir>/digits.json` for the page.
 */
export async function buildSite(options: BuildSiteOptions = {}): Promise<BuiltSite> {
  const print = options.print ?? ((line: string) => console.log(line));
  const outDir = path.resolve(options.outDir ?? path.join(packageRoot, 'site'));
  const seed = options.seed ?? 42;
  const count = options.testDigits ?? 100;
  seedEverything(seed);
  const { trainSet, valSet, testSet, test, dispose } = await mnistDatasets({ seed, ...(options.trainLimit === undefined ? {} : { trainLimit: options.trainLimit }) });
  const module = new MnistClassifier({ hidden: [256], dropout: 0.2, learningRate: 1e-3 });
  try {
    const trainer = new Trainer({
      maxEpochs: options.maxEpochs ?? options.epochs ?? 5,
      logger: false,
      enableCheckpointing: false,
      enableModelSummary: false,
      enableProgressBar: options.enableProgressBar ?? true,
      ...(options.backend === undefined ? {} : { backend: options.backend }),
    });
    print(`Training 784 -> 256 -> 10 on ${trainSet.length} MNIST images for ${options.maxEpochs ?? options.epochs ?? 5} epoch(s)...`);
    await trainer.fit(module, new DataLoader(trainSet, { batchSize: 128, shuffle: true, seed }), new DataLoader(valSet, { batchSize: 1000 }));
    const metrics = await trainer.test(module, new DataLoader(testSet, { batchSize: 1000 }));
    const testAccuracy = metrics.test_acc ?? Number.NaN;
    module.eval();
    const modelDir = path.join(outDir, 'model');
    const exported = await exportModule(module, modelDir);
    print(`Test accuracy ${(100 * testAccuracy).toFixed(2)}%; exported ${exported.layers.join(', ')} to ${modelDir}`);

    const pixels = new Uint8Array(count * 784);
    for (let i = 0; i < pixels.length; i++) pixels[i] = Math.round(test.images[i]! * 255);
    const labels = Array.from(test.labels.subarray(0, count));
    const probabilities = tf.tidy(() => {
      const x = tf.div(tf.tensor2d(pixels, [count, 784], 'float32'), 255);
      return tf.softmax(module.forward(x)).arraySync() as number[][];
    });
    await fs.mkdir(outDir, { recursive: true });
    await fs.writeFile(path.join(outDir, 'digits.json'), JSON.stringify({ count, labels, pixels: Buffer.from(pixels).toString('base64') }));
    return { outDir, modelDir, testAccuracy, labels, probabilities };
  } finally {
    module.namedParameters().forEach((p) => p.variable.dispose());
    dispose();
  }
}
