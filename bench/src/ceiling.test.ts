import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { type Ceiling, ceilingLines, flopOf, measureProducts, stepProducts } from './ceiling.js';

describe("wasm's matmul ceiling", () => {
  it('lists the eight products of an MLP-L b256 step: 3 forward, 3 weight gradients, 2 input gradients', () => {
    const products = stepProducts([512, 512], 256);
    expect(products.map((p) => [p.m, p.k, p.n])).toEqual([
      [256, 784, 512],
      [256, 512, 512],
      [256, 512, 10],
      [512, 256, 10],
      [256, 10, 512],
      [512, 256, 512],
      [256, 512, 512],
      [784, 256, 512],
    ]);
    expect(products.reduce((s, p) => s + flopOf(p), 0)).toBe(821_559_296);
  });

  it('times real products on wasm and leaves no tensors behind', async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const { msPerStep, perProductMs } = measureProducts(stepProducts([16], 8), 3, 1);
    expect(perProductMs).toHaveLength(5); // 2 forward, 2 weight gradients, 1 input gradient
    expect(perProductMs.every((ms) => ms > 0)).toBe(true);
    expect(msPerStep).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("prints the ceiling's median and Flint's share of it", () => {
    const run = (samplesPerSec: number): Ceiling => ({
      config: 'mlp-l-b256',
      threads: 2,
      flopPerStep: 821_559_296,
      msPerStep: (256 / samplesPerSec) * 1000,
      flopPerSec: (821_559_296 * samplesPerSec) / 256,
      samplesPerSec,
      perProductMs: [],
      products: [],
    });
    const lines = ceilingLines([run(9000), run(10000), run(11000)], () => 6000);
    expect(lines.at(-1)).toBe('| mlp-l-b256 | 2 | 822 | 25.60 | 32.1 | 10,000 | 6,000 | 60% |');
    expect(ceilingLines([], () => undefined)).toEqual([]);
  });
});
