import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTIVATION_GRAD_KERNEL, DENSE_KERNEL, Linear, crossEntropy } from '@flint/core';
import { installWasmImprovements, uninstallWasmImprovements } from './index.js';

// Every kernel Flint replaces or adds on wasm, checked against the cpu backend on random shapes:
// forward and gradient, values within 1e-4 relative, and no tensor or wasm buffer left behind.
// "Relative" is |wasm - cpu| / max(|cpu|, rms(cpu)): values smaller than the tensor's RMS are held to
// 1e-4 of the RMS, since a sum of many products that happens to land near 0 keeps the rounding error
// of its terms (float32 sums in another order differ by ~1e-7 of the terms, not of the result).

const RTOL = 1e-4;

/** Deterministic uniform numbers in [-1, 1) (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

let seedCounter = 1;
/** A float32 tensor of seeded random values (the same on every backend for the same seed). */
function rand(shape: number[], seed = seedCounter++): tf.Tensor {
  const next = random(seed);
  const size = shape.reduce((x, y) => x * y, 1);
  return tf.tensor(Float32Array.from({ length: size }, next), shape, 'float32');
}

interface Result {
  shape: number[];
  values: ArrayLike<number>;
}

/** Runs `build` on `backend`, reads its outputs and checks that nothing was left behind. */
async function runOn(backend: 'cpu' | 'wasm', build: () => tf.Tensor | tf.Tensor[]): Promise<Result[]> {
  await tf.setBackend(backend);
  const tensorsBefore = tf.memory().numTensors;
  const buffersBefore = tf.backend().numDataIds();
  const out = tf.tidy(build);
  const list = Array.isArray(out) ? out : [out];
  const results = list.map((t) => ({ shape: t.shape, values: Array.from(t.dataSync()) }));
  tf.dispose(list);
  expect(tf.memory().numTensors, `${backend}: tensors left behind`).toBe(tensorsBefore);
  expect(tf.backend().numDataIds(), `${backend}: backend buffers left behind`).toBe(buffersBefore);
  return results;
}

/** Largest |wasm - cpu| / max(|cpu|, rms(cpu)) over all outputs. */
function maxRelativeError(wasm: Result[], cpu: Result[]): number {
  let worst = 0;
  for (const [i, c] of cpu.entries()) {
    const w = wasm[i]!;
    expect(w.shape, `output ${i} shape`).toEqual(c.shape);
    let squares = 0;
    for (let j = 0; j < c.values.length; j++) squares += c.values[j]! ** 2;
    const floor = Math.max(Math.sqrt(squares / Math.max(c.values.length, 1)), 1e-30);
    for (let j = 0; j < c.values.length; j++) {
      const err = Math.abs(w.values[j]! - c.values[j]!) / Math.max(Math.abs(c.values[j]!), floor);
      if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : Math.max(worst, err);
    }
  }
  return worst;
}

/** `build` on wasm agrees with `reference` (default: `build`) on cpu. */
async function expectMatchesCpu(build: () => tf.Tensor | tf.Tensor[], reference = build): Promise<void> {
  const seed = seedCounter;
  const cpu = await runOn('cpu', reference);
  seedCounter = seed; // same inputs on both backends
  const wasm = await runOn('wasm', build);
  const err = maxRelativeError(wasm, cpu);
  if (process.env['FLINT_PRINT_ERRORS']) console.log(`max relative error ${err.toExponential(2)} (${expect.getState().currentTestName})`);
  expect(err).toBeLessThanOrEqual(RTOL);
}

/** Forward value and gradients of sum(f(...args) · dy) w.r.t. every arg. */
function valueAndGrads(f: (...args: tf.Tensor[]) => tf.Tensor, args: tf.Tensor[]): tf.Tensor[] {
  const y = f(...args);
  const dy = rand(y.shape);
  const grads = tf.grads((...xs: tf.Tensor[]) => f(...xs))(args, dy);
  return [y, ...grads];
}

const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

/** Operand shapes for op(A) of m×k and op(B) of k×n with batch dims. */
function operands(outerA: number[], outerB: number[], m: number, k: number, n: number, ta: boolean, tb: boolean) {
  return {
    a: [...outerA, ...(ta ? [k, m] : [m, k])],
    b: [...outerB, ...(tb ? [n, k] : [k, n])],
  };
}

beforeAll(async () => {
  // Kernel checks run on the single-threaded build; threads.test.ts compares threads with it.
  const report = await installWasmImprovements({ threads: false });
  expect(report.replacedKernels).toEqual(['BatchMatMul', '_FusedMatMul', 'Identity', 'Slice', 'StridedSlice', 'SplitV', 'Unpack', 'MaxPoolGrad', 'Conv2DBackpropInput']);
});

afterAll(async () => {
  await uninstallWasmImprovements();
  await tf.setBackend('wasm');
});

describe('BatchMatMul on wasm', () => {
  const sizes: [number, number, number][] = [
    [1, 1, 1],
    [7, 13, 5],
    [64, 784, 128],
    [33, 17, 65],
    [2, 100, 1],
  ];
  for (const [ta, tb] of TRANSPOSES) {
    it(`2-D products and gradients, transposeA=${ta} transposeB=${tb}`, async () => {
      for (const [m, k, n] of sizes) {
        const s = operands([], [], m, k, n, ta, tb);
        await expectMatchesCpu(() => valueAndGrads((a, b) => tf.matMul(a!, b!, ta, tb), [rand(s.a), rand(s.b)]));
      }
    });

    it(`batched products and gradients, transposeA=${ta} transposeB=${tb}`, async () => {
      const cases: [number[], number[], number, number, number][] = [
        [[3], [3], 4, 5, 6], // equal batches, small: scalar loop
        [[3], [3], 50, 60, 40], // equal batches, large (m·k·n ≥ 65,536): split into 2-D products
        [[2, 3], [2, 3], 9, 8, 7],
        [[1], [1], 17, 9, 12],
      ];
      for (const [outerA, outerB, m, k, n] of cases) {
        const s = operands(outerA, outerB, m, k, n, ta, tb);
        await expectMatchesCpu(() => valueAndGrads((a, b) => tf.matMul(a!, b!, ta, tb), [rand(s.a), rand(s.b)]));
      }
    });

    // tfjs's BatchMatMul gradient does not reduce over broadcast batch dimensions (on any backend), so
    // broadcasting is checked forward only.
    it(`broadcast batches, transposeA=${ta} transposeB=${tb}`, async () => {
      const cases: [number[], number[], number, number, number][] = [
        [[4], [], 6, 5, 3], // B broadcast: folded into rows
        [[4], [1], 6, 5, 3],
        [[2, 3], [3], 5, 4, 6], // rank-4 by rank-3
        [[], [4], 6, 5, 3], // A broadcast: B laid side by side
        [[1], [5], 7, 9, 2],
        [[1, 1], [2, 3], 3, 4, 5],
      ];
      for (const [outerA, outerB, m, k, n] of cases) {
        const s = operands(outerA, outerB, m, k, n, ta, tb);
        await expectMatchesCpu(() => tf.matMul(rand(s.a), rand(s.b), ta, tb));
      }
    });
  }

  it('partially broadcast batches match an explicitly tiled product (tfjs cpu and stock wasm get these wrong)', async () => {
    const cases: [number[], number[], number[], number[], number, number, number][] = [
      // outerA, outerB, tiles of A, tiles of B (to the full batch), m, k, n
      [[2, 1], [1, 3], [1, 3], [2, 1], 4, 5, 3],
      [[3], [3, 1], [3, 1], [1, 3], 50, 60, 40],
    ];
    for (const [ta, tb] of TRANSPOSES) {
      for (const [outerA, outerB, repsA, repsB, m, k, n] of cases) {
        const s = operands(outerA, outerB, m, k, n, ta, tb);
        const padA = [...new Array(repsA.length - outerA.length).fill(1), ...outerA];
        await expectMatchesCpu(
          () => tf.matMul(rand(s.a), rand(s.b), ta, tb),
          () =>
            tf.matMul(
              tf.tile(rand(s.a).reshape([...padA, ...s.a.slice(-2)]), [...repsA, 1, 1]),
              tf.tile(rand(s.b), [...repsB, 1, 1]),
              ta,
              tb,
            ),
        );
      }
    }
  });

  it('empty dimensions: k = 0 gives zeros, m = 0 or batch = 0 gives an empty result', async () => {
    await expectMatchesCpu(() => tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4]), false, false));
    await expectMatchesCpu(() => tf.matMul(tf.zeros([0, 3]), tf.zeros([4, 0]), true, true));
    await expectMatchesCpu(() => tf.matMul(tf.zeros([2, 0, 3]), rand([2, 3, 4]), false, false));
    await expectMatchesCpu(() => tf.matMul(rand([0, 4, 3]), rand([0, 3, 2]), false, false));
  });

  it('keeps tfjs errors: mismatched inner dimensions and int32 operands', async () => {
    await tf.setBackend('wasm');
    expect(() => tf.matMul(tf.ones([2, 3]), tf.ones([4, 2]))).toThrow(/inner shapes/);
    expect(() => tf.matMul(tf.ones([2, 2], 'int32'), tf.ones([2, 2], 'int32'))).toThrow(/non-float32/);
  });
});

describe('_FusedMatMul on wasm', () => {
  const activations = ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const;
  it('every activation, bias shape, transpose and batch agrees with cpu', async () => {
    const cases: [number[], number[]][] = [
      [[], []],
      [[3], [3]],
      [[3], []],
      [[1], [2]],
    ];
    for (const [outerA, outerB] of cases) {
      for (const [ta, tb] of TRANSPOSES) {
        const [m, k, n] = [6, 9, 5];
        const s = operands(outerA, outerB, m, k, n, ta, tb);
        for (const activation of activations) {
          for (const biasShape of [null, [n], [1], [m, n], [m, 1]]) {
            const preluShapes = activation === 'prelu' ? [[n], [m, 1], [1]] : [null];
            for (const preluShape of preluShapes) {
              await expectMatchesCpu(() =>
                tf.fused.matMul({
                  a: rand(s.a),
                  b: rand(s.b),
                  transposeA: ta,
                  transposeB: tb,
                  ...(biasShape === null ? {} : { bias: rand(biasShape) }),
                  activation,
                  ...(preluShape === null ? {} : { preluActivationWeights: rand(preluShape) }),
                  leakyreluAlpha: 0.3,
                }),
              );
            }
          }
        }
      }
    }
  });

  it('gradients of fused products with bias (tfjs-layers Dense) agree with cpu', async () => {
    for (const [ta, tb] of TRANSPOSES) {
      for (const [outerA, outerB] of [
        [[], []],
        [[2], [2]],
      ] as [number[], number[]][]) {
        const s = operands(outerA, outerB, 8, 12, 4, ta, tb);
        await expectMatchesCpu(() =>
          valueAndGrads(
            (a, b, bias) => tf.fused.matMul({ a: a!, b: b!, bias: bias!, transposeA: ta, transposeB: tb }),
            [rand(s.a), rand(s.b), rand([4])],
          ),
        );
      }
    }
  });

  it('a tfjs-layers Dense layer: forward and gradients agree with cpu', async () => {
    const run = () => {
      const model = tf.sequential({ layers: [tf.layers.dense({ units: 7, activation: 'relu', inputShape: [11] })] });
      model.setWeights([rand([11, 7]), rand([7])]);
      const x = rand([5, 11]);
      const forward = model.predict(x) as tf.Tensor; // fused: matmul + bias + relu in one kernel
      const { value, grads } = tf.variableGrads(() => (model.apply(x) as tf.Tensor).mul(rand([5, 7])).sum() as tf.Scalar);
      const out = [forward, value, ...Object.values(grads)];
      model.dispose();
      return out;
    };
    await expectMatchesCpu(run);
  });
});

describe('Identity on wasm', () => {
  it('clones share the buffer instead of copying it, and the buffer lives until the last one goes', async () => {
    await tf.setBackend('wasm');
    const buffersBefore = tf.backend().numDataIds();
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const clone = x.clone(); // tfjs also clones every input it saves for a gradient
    expect(tf.backend().numDataIds()).toBe(buffersBefore + 1); // one buffer for both
    x.dispose();
    expect(Array.from(clone.dataSync())).toEqual([1, 2, 3, 4]);
    clone.dispose();
    expect(tf.backend().numDataIds()).toBe(buffersBefore);
  });

  it('values through clones and saved gradient inputs agree with cpu, strings included', async () => {
    await expectMatchesCpu(() => valueAndGrads((x) => x!.clone().mul(x!).sum(1), [rand([5, 7])]));
    await tf.setBackend('wasm');
    const s = tf.tensor(['a', 'bc']);
    const c = s.clone();
    s.dispose();
    expect(c.dataSync()).toEqual(['a', 'bc']);
    c.dispose();
  });
});

describe('Slice, StridedSlice, SplitV and Unpack on wasm', () => {
  it('slices of every rank, contiguous or not, and their gradients', async () => {
    const cases: [number[], number[], number[]][] = [
      [[10], [3], [4]],
      [[6, 5], [2, 0], [3, 5]], // whole rows: one contiguous copy
      [[6, 5], [1, 2], [4, 2]],
      [[4, 5, 6], [1, 0, 2], [2, 5, 3]],
      [[3, 4, 5, 6], [0, 1, 1, 0], [3, 2, 3, 6]],
      [[2, 3, 4, 5, 6], [1, 0, 1, 2, 3], [1, 3, 2, 2, 3]], // rank 5
      [[5, 4], [2, 1], [-1, -1]],
      [[5, 4], [0, 0], [0, 4]], // empty
    ];
    for (const [shape, begin, size] of cases) {
      await expectMatchesCpu(() => valueAndGrads((x) => tf.slice(x!, begin, size), [rand(shape)]));
    }
    await expectMatchesCpu(() => tf.slice(tf.tensor1d([1, 2, 3, 4], 'int32'), [1], [2]));
  });

  it('a batch slice reads only the slice, not the whole input (no readSync of it)', async () => {
    await tf.setBackend('wasm');
    const data = rand([1000, 784]);
    const backend = tf.backend() as unknown as { readSync(...args: unknown[]): unknown };
    const readSync = backend.readSync.bind(backend);
    let read = 0;
    backend.readSync = (...args: unknown[]) => {
      read++;
      return readSync(...args);
    };
    try {
      const batch = tf.tidy(() => data.slice([64, 0], [64, 784]).add(0));
      expect(read).toBe(0);
      expect(Array.from(batch.dataSync().slice(0, 3))).toEqual(Array.from(data.dataSync().slice(64 * 784, 64 * 784 + 3)));
      batch.dispose();
    } finally {
      delete (backend as { readSync?: unknown }).readSync;
      data.dispose();
    }
  });

  it('strided slices (simple ones go through the heap copy, the rest through tfjs)', async () => {
    await expectMatchesCpu(() => tf.stridedSlice(rand([6, 5]), [1, 0], [4, 5], [1, 1]));
    await expectMatchesCpu(() => tf.stridedSlice(rand([6, 5, 4]), [2], [5], [1]));
    await expectMatchesCpu(() => tf.stridedSlice(rand([6, 5]), [0, 1], [6, 4], [2, 2]));
    await expectMatchesCpu(() => tf.stridedSlice(rand([6, 5]), [1, 1], [2, 4], [1, 1], 0, 0, 0, 0, 1)); // shrink
    await expectMatchesCpu(() => tf.stridedSlice(rand([6, 5]), [5, 0], [1, 5], [-1, 1]));
  });

  it('split and unstack, with gradients', async () => {
    await expectMatchesCpu(() => valueAndGrads((x) => tf.concat(tf.split(x!, 3, 1).map((p, i) => p.mul(i + 1)), 1), [rand([4, 9])]));
    await expectMatchesCpu(() => tf.split(rand([7, 4, 2]), [2, -1, 1], 0));
    await expectMatchesCpu(() => valueAndGrads((x) => tf.stack(tf.unstack(x!, 1).reverse(), 1), [rand([3, 5, 2])]));
    await expectMatchesCpu(() => tf.unstack(rand([4, 3]), -1));
  });
});

describe('kernels wasm lacked', () => {
  it('UnsortedSegmentSum: float32 and int32, out-of-range ids skipped, rank-2 ids', async () => {
    const ids = (values: number[], shape?: number[]) => tf.tensor<tf.Rank>(values, shape, 'int32') as tf.Tensor1D;
    await expectMatchesCpu(() => tf.unsortedSegmentSum(rand([6, 4]), ids([0, 2, 0, 5, 2, 1]), 6));
    await expectMatchesCpu(() => tf.unsortedSegmentSum(rand([5, 3]), ids([0, -1, 7, 2, 2]), 4));
    await expectMatchesCpu(() => tf.unsortedSegmentSum(rand([7]), ids([3, 3, 0, 1, 1, 1, 6]), 7));
    // tfjs cpu fails on ids of rank > 1 ("could not be broadcast"): compare with flattened ids there.
    await expectMatchesCpu(
      () => tf.unsortedSegmentSum(rand([2, 3, 4]), ids([0, 1, 1, 0, 2, 2], [2, 3]), 3),
      () => tf.unsortedSegmentSum(rand([2, 3, 4]).reshape([6, 4]), ids([0, 1, 1, 0, 2, 2]), 3),
    );
    await expectMatchesCpu(() =>
      tf.unsortedSegmentSum(tf.tensor([[1, 2], [3, 4], [5, 6]], [3, 2], 'int32'), ids([1, 0, 1]), 3),
    );
  });

  it('gradient of gather (embeddings) on several axes and vocabularies', async () => {
    const cases: [number[], number[], number][] = [
      [[50, 8], [4, 6], 0],
      [[1000, 16], [64], 0],
      [[6, 30, 3], [10], 1],
    ];
    for (const [paramsShape, indicesShape, axis] of cases) {
      const next = random(99);
      const size = indicesShape.reduce((x, y) => x * y, 1);
      const indices = Int32Array.from({ length: size }, () => Math.floor(((next() + 1) / 2) * paramsShape[axis]!));
      await expectMatchesCpu(() =>
        valueAndGrads((p) => tf.gather(p!, tf.tensor(indices, indicesShape, 'int32'), axis), [rand(paramsShape)]),
      );
    }
  });

  it('Conv2DBackpropFilter through conv2d gradients: strides, paddings, shapes', async () => {
    const cases: {
      x: number[];
      f: number[];
      strides: number | [number, number];
      pad: 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
      dimRoundingMode?: 'floor' | 'round' | 'ceil';
    }[] = [
      { x: [2, 7, 7, 3], f: [3, 3, 3, 4], strides: 1, pad: 'valid' },
      { x: [2, 7, 7, 3], f: [3, 3, 3, 4], strides: 1, pad: 'same' },
      { x: [1, 9, 8, 2], f: [3, 2, 2, 5], strides: [2, 2], pad: 'same' },
      { x: [3, 10, 9, 1], f: [5, 5, 1, 2], strides: [2, 3], pad: 'valid' },
      { x: [1, 6, 6, 4], f: [1, 1, 4, 3], strides: 1, pad: 'valid' },
      { x: [2, 8, 8, 2], f: [3, 3, 2, 3], strides: 2, pad: 1 },
      { x: [2, 6, 7, 2], f: [2, 3, 2, 2], strides: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
      { x: [4, 28, 28, 1], f: [3, 3, 1, 8], strides: 1, pad: 'valid' },
      // From 8 input channels on the kernel goes tap by tap instead of through one im2col product.
      { x: [2, 9, 9, 8], f: [3, 3, 8, 6], strides: 1, pad: 'same' },
      { x: [2, 10, 9, 12], f: [3, 2, 12, 4], strides: 2, pad: 1 },
    ];
    for (const c of cases) {
      await expectMatchesCpu(() =>
        valueAndGrads((x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad, 'NHWC', 1, c.dimRoundingMode), [
          rand(c.x),
          rand(c.f),
        ]),
      );
    }
  });

  it('Conv2DBackpropFilter kernel directly: NHWC and NCHW, dimRoundingMode', async () => {
    for (const dataFormat of ['NHWC', 'NCHW'] as const) {
      const x = dataFormat === 'NHWC' ? [2, 8, 7, 3] : [2, 3, 8, 7];
      const dy = dataFormat === 'NHWC' ? [2, 4, 4, 5] : [2, 5, 4, 4];
      await expectMatchesCpu(() =>
        tf.engine().runKernel('Conv2DBackpropFilter', { x: rand(x), dy: rand(dy) }, {
          strides: [2, 2],
          pad: 'same',
          dataFormat,
          filterShape: [3, 3, 3, 5],
        }) as tf.Tensor,
      );
    }
    // 'ceil' rounding makes one more output row and column than tfjs's conv2d gradient assumes (it drops
    // dimRoundingMode); like the cpu kernel, the extra dy row/column is ignored then.
    for (const [dimRoundingMode, dy] of [
      ['ceil', [2, 5, 5, 3]],
      ['floor', [2, 5, 5, 3]],
      ['round', [2, 5, 5, 3]],
    ] as const) {
      await expectMatchesCpu(() =>
        tf.engine().runKernel('Conv2DBackpropFilter', { x: rand([2, 8, 8, 2]), dy: rand([...dy]) }, {
          strides: [2, 2],
          pad: 1,
          dataFormat: 'NHWC',
          dimRoundingMode,
          filterShape: [3, 3, 2, 3],
        }) as tf.Tensor,
      );
    }
  });

  it('depthwise conv gradients (input and filter, cpu fallback): multipliers, strides, paddings', async () => {
    const cases: { x: number[]; f: number[]; strides: number; pad: 'valid' | 'same' }[] = [
      { x: [2, 7, 7, 3], f: [3, 3, 3, 1], strides: 1, pad: 'same' },
      { x: [1, 9, 9, 2], f: [3, 3, 2, 2], strides: 2, pad: 'valid' },
      { x: [3, 6, 5, 4], f: [2, 2, 4, 3], strides: 1, pad: 'valid' },
    ];
    for (const c of cases) {
      await expectMatchesCpu(() =>
        valueAndGrads((x, f) => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad), [rand(c.x), rand(c.f)]),
      );
    }
    // tfjs's gradient refuses dilations > 1; the kernels take them, so check them directly.
    const attrs = { strides: [1, 1], pad: 'same', dilations: [2, 2] };
    await expectMatchesCpu(() =>
      tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x: rand([2, 9, 9, 2]), dy: rand([2, 9, 9, 4]) }, {
        ...attrs,
        filterShape: [3, 3, 2, 2],
      }) as tf.Tensor,
    );
    await expectMatchesCpu(() =>
      tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy: rand([2, 9, 9, 4]), filter: rand([3, 3, 2, 2]) }, {
        ...attrs,
        inputShape: [2, 9, 9, 2],
      }) as tf.Tensor,
    );
  });

  it('Conv2DBackpropInput through XNNPACK (replaces the stock loop): strides, paddings, kernel shapes, odd sizes', async () => {
    const cases: { x: number[]; f: number[]; strides: [number, number]; pad: 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]] }[] = [
      { x: [2, 7, 7, 3], f: [3, 3, 3, 4], strides: [1, 1], pad: 'same' },
      { x: [2, 9, 8, 2], f: [3, 2, 2, 5], strides: [2, 2], pad: 'valid' },
      { x: [1, 10, 9, 3], f: [4, 3, 3, 2], strides: [2, 3], pad: 'same' },
      { x: [2, 8, 8, 2], f: [3, 3, 2, 3], strides: [2, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
      { x: [1, 5, 5, 2], f: [1, 1, 2, 3], strides: [2, 2], pad: 'valid' },
      { x: [1, 6, 6, 1], f: [2, 2, 1, 2], strides: [1, 1], pad: [[0, 0], [3, 3], [0, 0], [0, 0]] }, // pad > kernel - 1: the stock kernel
    ];
    for (const c of cases) {
      await expectMatchesCpu(() => valueAndGrads((x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad), [rand(c.x), rand(c.f)]));
    }
  });

  it('MaxPoolGrad (replaces the stock kernel, which drops windows whose maximum is not positive): values of both signs, strides, paddings', async () => {
    const cases: { x: number[]; k: [number, number]; strides: [number, number]; pad: 'valid' | 'same' | number }[] = [
      { x: [2, 6, 6, 3], k: [2, 2], strides: [2, 2], pad: 'valid' },
      { x: [1, 7, 5, 2], k: [3, 3], strides: [2, 2], pad: 1 },
      { x: [2, 5, 7, 4], k: [2, 3], strides: [1, 2], pad: 'same' },
    ];
    for (const c of cases) {
      await expectMatchesCpu(() => valueAndGrads((x) => tf.maxPool(x as tf.Tensor4D, c.k, c.strides, c.pad), [rand(c.x)]));
      // all-negative windows, where the stock kernel gave no gradient at all
      await expectMatchesCpu(() => valueAndGrads((x) => tf.maxPool(tf.sub(tf.abs(x!), 2) as tf.Tensor4D, c.k, c.strides, c.pad), [rand(c.x)]));
    }
  });

  it('Einsum (cpu fallback)', async () => {
    await expectMatchesCpu(() => tf.einsum('ij,jk->ik', rand([4, 5]), rand([5, 3])));
    await expectMatchesCpu(() => tf.einsum('bij,bjk->bik', rand([2, 4, 5]), rand([2, 5, 3])));
    await expectMatchesCpu(() => tf.einsum('ij->ji', rand([3, 6])));
  });

  it("stock wasm gradients that conv nets also use agree with cpu (Conv2DBackpropInput, MaxPoolGrad, AvgPoolGrad)", async () => {
    await expectMatchesCpu(() =>
      valueAndGrads((x) => tf.maxPool(tf.relu(x!) as tf.Tensor4D, 2, 2, 'valid'), [rand([2, 8, 8, 3])]),
    );
    await expectMatchesCpu(() => valueAndGrads((x) => tf.avgPool(x as tf.Tensor4D, 3, 2, 'same'), [rand([2, 9, 9, 2])]));
    await expectMatchesCpu(() =>
      valueAndGrads((x) => tf.conv2d(x as tf.Tensor4D, rand([3, 3, 2, 4]) as tf.Tensor4D, 2, 'same'), [rand([2, 9, 9, 2])]),
    );
  });
});

describe("Flint's layer kernels on wasm (Linear, crossEntropy)", () => {
  type Act = 'linear' | 'relu' | 'sigmoid' | 'tanh';
  /** act(x W + b) through the dense kernel where the backend has it (wasm), tfjs ops otherwise (cpu). */
  const dense = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | undefined, activation: Act): tf.Tensor => {
    if (tf.getKernel(DENSE_KERNEL, tf.getBackend()) !== undefined) {
      return tf.engine().runKernel(DENSE_KERNEL, b === undefined ? { x, weight: w } : { x, weight: w, bias: b }, { activation }) as tf.Tensor;
    }
    const z = b === undefined ? tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D) : tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b);
    return activation === 'linear' ? z : activation === 'relu' ? tf.relu(z) : activation === 'sigmoid' ? tf.sigmoid(z) : tf.tanh(z);
  };

  it.each(['linear', 'relu', 'sigmoid', 'tanh'] as const)('the dense kernel (%s): values and gradients of x, W and b agree with cpu', async (activation) => {
    // Shapes of MLP layers, a single row, a single unit, a single input, and no bias.
    for (const [m, k, n, bias] of [
      [64, 784, 128, true],
      [1, 5, 3, true],
      [7, 6, 1, true],
      [5, 1, 4, true],
      [9, 8, 6, false],
    ] as const) {
      await expectMatchesCpu(() =>
        bias
          ? valueAndGrads((x, w, b) => dense(x!, w!, b, activation), [tf.mul(rand([m, k]), 3), rand([k, n]), rand([n])])
          : valueAndGrads((x, w) => dense(x!, w!, undefined, activation), [tf.mul(rand([m, k]), 3), rand([k, n])]),
      );
    }
  });

  it('Linear runs one tfjs kernel forward and its activation gradient as one kernel; an empty batch works', async () => {
    await tf.setBackend('wasm');
    const layer = new Linear(6, 4, { activation: 'relu' });
    const x = rand([3, 6]);
    const forward = await tf.profile(() => layer.forward(x));
    expect(forward.kernelNames).toEqual([DENSE_KERNEL]);
    const backward = await tf.profile(() => tf.grad((z: tf.Tensor) => tf.sum(layer.forward(z)))(x));
    expect(backward.kernelNames).toContain(ACTIVATION_GRAD_KERNEL);
    expect(backward.kernelNames).not.toContain('Step');
    expect(layer.forward(tf.zeros([0, 6])).shape).toEqual([0, 4]);
    tf.dispose([x, ...layer.parameters()]);
  });

  it('crossEntropy: class indices and probabilities, every reduction, gradients agree with cpu', async () => {
    const labels = [3, 0, 9, 5, 2, 1];
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      await expectMatchesCpu(() =>
        valueAndGrads((z) => crossEntropy(z!, tf.tensor1d(labels, 'int32'), { reduction }), [tf.mul(rand([6, 10]), 8)]),
      );
      await expectMatchesCpu(() =>
        valueAndGrads((z) => crossEntropy(z!, tf.softmax(tf.mul(rand([6, 10], 77), 3)), { reduction }), [tf.mul(rand([6, 10]), 8)]),
      );
    }
    // Large logits do not overflow (the kernel shifts by the row maximum).
    await expectMatchesCpu(() => valueAndGrads((z) => crossEntropy(z!, tf.tensor1d([1, 2], 'int32')), [tf.mul(rand([2, 4]), 400)]));
  });

  it('crossEntropy on wasm: a class index out of range throws and leaves nothing behind', async () => {
    await tf.setBackend('wasm');
    const z = rand([3, 4]);
    const y = tf.tensor1d([0, 4, 1], 'int32');
    const negative = tf.tensor1d([0, 1, -1], 'int32');
    const tensors = tf.memory().numTensors;
    const buffers = tf.backend().numDataIds();
    expect(() => crossEntropy(z, y)).toThrow('crossEntropy: row 1 has class index 4, which is outside the valid range [0, 4)');
    expect(() => crossEntropy(z, negative)).toThrow(/row 2 has class index -1/);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.backend().numDataIds()).toBe(buffers);
    tf.dispose([z, y, negative]);
  });

  it('crossEntropy on wasm runs one tfjs kernel forward', async () => {
    await tf.setBackend('wasm');
    const z = rand([4, 3]);
    const y = tf.tensor1d([0, 2, 1, 1], 'int32');
    const { kernelNames } = await tf.profile(() => crossEntropy(z, y, { reduction: 'none' }));
    // '' is tf.customGrad's own entry, which runs no kernel.
    expect(kernelNames.filter((name) => name !== '')).toEqual(['FlintSoftmaxCrossEntropyWithLogits']);
    tf.dispose([z, y]);
  });
});
