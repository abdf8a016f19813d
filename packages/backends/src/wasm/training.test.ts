import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { installWasmImprovements, uninstallWasmImprovements } from './index.js';

// Conv nets and embeddings train on the default backend (wasm) once the improvements are installed.

afterAll(async () => {
  await uninstallWasmImprovements();
});

function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

/** 12×12 images of 4 classes: a bright 4×4 square in the class's quadrant, on noise. */
function squares(n: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const next = lcg(1);
  const pixels = new Float32Array(n * 144);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 4;
    labels[i] = c;
    const top = c < 2 ? 1 : 7;
    const left = c % 2 === 0 ? 1 : 7;
    for (let p = 0; p < 144; p++) pixels[i * 144 + p] = next() * 0.3;
    for (let r = 0; r < 4; r++) for (let q = 0; q < 4; q++) pixels[i * 144 + (top + r) * 12 + left + q] = 1;
  }
  return {
    x: tf.tensor4d(pixels, [n, 12, 12, 1]),
    y: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 4).toFloat() as tf.Tensor2D),
  };
}

/** Sequences of 8 token ids from a vocabulary of 40; label 1 when token 3 occurs. */
function sequences(n: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const next = lcg(2);
  const ids = new Float32Array(n * 8);
  const labels = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < 8; t++) ids[i * 8 + t] = 4 + Math.floor(next() * 36);
    if (i % 2 === 0) {
      ids[i * 8 + Math.floor(next() * 8)] = 3;
      labels[i] = 1;
    }
  }
  return { x: tf.tensor2d(ids, [n, 8]), y: tf.tensor2d(labels, [n, 1]) };
}

async function fitLosses(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, epochs: number): Promise<number[]> {
  const history = await model.fit(x, y, { epochs, batchSize: 32, shuffle: false, verbose: 0 });
  return history.history['loss'] as number[];
}

function convNet(): tf.Sequential {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 8, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

describe('training on wasm', () => {
  it('a Conv2D net trains: the loss goes down, nothing leaks', async () => {
    await installWasmImprovements();
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const data = squares(256);
    const model = convNet();
    const losses = await fitLosses(model, data.x, data.y, 8);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.5);
    model.optimizer.dispose(); // not owned by the model: it was passed in as an instance
    model.dispose();
    tf.dispose([data.x, data.y]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('an Embedding model trains: the loss goes down, nothing leaks', async () => {
    await installWasmImprovements();
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const data = sequences(512);
    const model = tf.sequential({
      layers: [
        tf.layers.embedding({ inputDim: 40, outputDim: 8, inputLength: 8, embeddingsInitializer: tf.initializers.randomUniform({ minval: -0.05, maxval: 0.05, seed: 4 }) }),
        tf.layers.globalAveragePooling1d(),
        tf.layers.dense({ units: 1, activation: 'sigmoid', kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.02), loss: 'binaryCrossentropy' });
    const losses = await fitLosses(model, data.x, data.y, 10);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.5);
    model.optimizer.dispose(); // not owned by the model: it was passed in as an instance
    model.dispose();
    tf.dispose([data.x, data.y]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a SeparableConv2D net trains (depthwise gradients through the cpu fallback)', async () => {
    await installWasmImprovements();
    await tf.setBackend('wasm');
    const data = squares(128);
    const model = tf.sequential({
      layers: [
        tf.layers.separableConv2d({ inputShape: [12, 12, 1], filters: 8, kernelSize: 3, depthMultiplier: 2, activation: 'relu', depthwiseInitializer: tf.initializers.glorotUniform({ seed: 6 }), pointwiseInitializer: tf.initializers.glorotUniform({ seed: 7 }) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
    const losses = await fitLosses(model, data.x, data.y, 6);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.7);
    model.dispose();
    tf.dispose([data.x, data.y]);
  });

  it('without fallbackKernels, stock wasm cannot train a conv net (why the kernels are added)', async () => {
    await installWasmImprovements({ fallbackKernels: false });
    await tf.setBackend('wasm');
    const data = squares(32);
    const model = convNet();
    await expect(fitLosses(model, data.x, data.y, 1)).rejects.toThrow(
      "Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'",
    );
    model.dispose();
    tf.dispose([data.x, data.y]);
  });
});
