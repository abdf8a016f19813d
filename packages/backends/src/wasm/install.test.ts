import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
// These tests are about the wasm backend: register it also when the suite runs on another backend.
import '@tensorflow/tfjs-backend-wasm';
import { afterEach, describe, expect, it } from 'vitest';
import { MisconfigurationError } from '@flint/core';
import { installWasmImprovements, uninstallWasmImprovements, wasmImprovementsOptionsSchema } from './index.js';

afterEach(async () => {
  await uninstallWasmImprovements();
  await tf.setBackend('wasm');
});

const kernelFunc = (name: string) => tf.getKernel(name, 'wasm')?.kernelFunc;

/** Runs `fn` on `backend` and returns its outputs as flat number arrays. */
async function runOn(backend: 'wasm' | 'cpu', fn: () => tf.Tensor | tf.Tensor[]): Promise<number[][]> {
  await tf.setBackend(backend);
  const out = tf.tidy(fn);
  const list = Array.isArray(out) ? out : [out];
  const values = await Promise.all(list.map(async (t) => Array.from(await t.data())));
  tf.dispose(list);
  await tf.setBackend('wasm');
  return values;
}

/** A registered kernel is pinned by its result: the wasm kernel run once against tfjs's own ops on cpu. */
async function expectAgreesWithCpu(kernel: () => tf.Tensor | tf.Tensor[], reference: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  const got = await runOn('wasm', kernel);
  const want = await runOn('cpu', reference);
  expect(got.map((v) => v.length)).toEqual(want.map((v) => v.length));
  got.forEach((values, i) => values.forEach((v, j) => expect(v).toBeCloseTo(want[i]![j]!, 5)));
}

const denseInputs = () => ({ x: tf.tensor2d([[0.5, -1, 2], [1, 0.25, -0.5]]), weight: tf.tensor2d([[1, -2], [0.5, 0.25], [-1, 3]]), bias: tf.tensor1d([0.1, -0.2]) });
const denseOnWasm = () => tf.engine().runKernel('FlintDense', denseInputs(), { activation: 'relu' }) as tf.Tensor;
const denseOnCpu = () => {
  const { x, weight, bias } = denseInputs();
  return tf.relu(tf.add(tf.matMul(x, weight), bias));
};
const logits = () => tf.tensor2d([[2, -1, 0.5], [0.1, 0.2, 0.3]]);
const labels = () => tf.tensor1d([0, 2], 'int32');
const crossEntropyOnWasm = () => (tf.engine().runKernel('FlintSoftmaxCrossEntropyWithLogits', { logits: logits(), labels: labels() }) as tf.Tensor[])[0]!;
const crossEntropyOnCpu = () => tf.neg(tf.sum(tf.mul(tf.oneHot(labels(), 3), tf.logSoftmax(logits())), -1));
const convX = () => tf.tensor4d(Array.from({ length: 32 }, (_, i) => Math.sin(i)), [1, 4, 4, 2]);
const convDy = () => tf.tensor4d(Array.from({ length: 12 }, (_, i) => Math.cos(i)), [1, 2, 2, 3]);
const filterGradOnWasm = () =>
  tf.engine().runKernel('Conv2DBackpropFilter', { x: convX(), dy: convDy() }, { strides: [2, 2], pad: 'valid', dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: [2, 2, 2, 3] } as never) as tf.Tensor;
const filterGradOnCpu = () => tf.grad((f: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(convX(), f as tf.Tensor4D, 2, 'valid'), convDy())))(tf.zeros([2, 2, 2, 3]));

describe('installWasmImprovements options', () => {
  it('defaults: everything on, threads auto, cache in the temp folder', () => {
    expect(wasmImprovementsOptionsSchema.parse({})).toEqual({
      fastMatmul: true,
      fewerCopies: true,
      threads: 'auto',
      fallbackKernels: true,
      layerKernels: true,
      cacheDir: os.tmpdir(),
    });
  });

  it.each([
    [{ fastMatMul: false }, `installWasmImprovements option '(options)': Unrecognized key: "fastMatMul" (received {"fastMatMul":false})`],
    [{ threads: 9 }, "installWasmImprovements option 'threads': must be 'auto', false, or a whole number of threads from 1 to 8 (received 9)"],
    [{ threads: 0 }, "installWasmImprovements option 'threads': must be 'auto', false, or a whole number of threads from 1 to 8 (received 0)"],
    [{ threads: 2.5 }, "installWasmImprovements option 'threads': must be 'auto', false, or a whole number of threads from 1 to 8 (received 2.5)"],
    [{ threads: true }, "installWasmImprovements option 'threads': must be 'auto', false, or a whole number of threads from 1 to 8 (received true)"],
    [{ fallbackKernels: 'yes' }, `installWasmImprovements option 'fallbackKernels': must be true or false (received "yes")`],
    [{ layerKernels: 1 }, `installWasmImprovements option 'layerKernels': must be true or false (received 1)`],
    [{ cacheDir: '' }, `installWasmImprovements option 'cacheDir': must be a folder path (received "")`],
  ])('rejects %j', async (options, message) => {
    const result = installWasmImprovements(options as never);
    await expect(result).rejects.toBeInstanceOf(MisconfigurationError);
    await expect(result).rejects.toThrow(message);
  });
});

describe('installWasmImprovements', () => {
  it('reports what it installed, in one line too', async () => {
    const report = await installWasmImprovements({ threads: false });
    expect(report).toMatchObject({
      fastMatmul: true,
      fewerCopies: true,
      layerKernels: true,
      replacedKernels: ['BatchMatMul', '_FusedMatMul', 'Identity', 'Slice', 'StridedSlice', 'SplitV', 'Unpack', 'MaxPoolGrad', 'Conv2DBackpropInput'],
      addedKernels: [
        { name: 'UnsortedSegmentSum', via: 'wasm' },
        { name: 'Conv2DBackpropFilter', via: 'wasm' },
        { name: 'DepthwiseConv2dNativeBackpropFilter', via: 'cpu-fallback' },
        { name: 'DepthwiseConv2dNativeBackpropInput', via: 'cpu-fallback' },
        { name: 'Einsum', via: 'cpu-fallback' },
      ],
      threads: 1,
      threadsRequested: false,
      wasmBinary: 'tfjs-backend-wasm-simd.wasm',
      details: ['1 thread', 'fast matmul', 'fewer copies', 'layer kernels', '+5 kernels'],
    });
    expect(report.summary).toBe(
      'wasm: 1 thread, fast matmul (BatchMatMul, _FusedMatMul), fewer copies (Identity, Slice, StridedSlice, SplitV, Unpack), fixed (MaxPoolGrad), XNNPACK (Conv2DBackpropInput), ' +
        'layer kernels (Linear, crossEntropy, Adam), ' +
        'added UnsortedSegmentSum, Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter [cpu fallback], ' +
        'DepthwiseConv2dNativeBackpropInput [cpu fallback], Einsum [cpu fallback]',
    );
  });

  it('is idempotent: the same options return the same report and change nothing', async () => {
    const first = await installWasmImprovements({ threads: false });
    const batchMatMul = kernelFunc('BatchMatMul');
    const again = await installWasmImprovements({ threads: false });
    expect(again).toBe(first);
    expect(kernelFunc('BatchMatMul')).toBe(batchMatMul);
    const [a, b] = await Promise.all([installWasmImprovements({ threads: false }), installWasmImprovements({ threads: false })]);
    expect(a).toBe(first);
    expect(b).toBe(first);
  });

  it('each improvement can be switched off, and uninstall restores the stock kernels', async () => {
    const replaceable = ['BatchMatMul', '_FusedMatMul', 'Identity', 'Slice', 'StridedSlice', 'SplitV', 'Unpack'];
    const stock = Object.fromEntries([...replaceable, 'MaxPoolGrad', 'Conv2DBackpropInput'].map((n) => [n, kernelFunc(n)]));
    const isStock = (name: string) => kernelFunc(name) === stock[name];
    expect(kernelFunc('UnsortedSegmentSum')).toBeUndefined();
    expect(kernelFunc('FlintDense')).toBeUndefined();

    const none = await installWasmImprovements({ fastMatmul: false, fewerCopies: false, fallbackKernels: false, layerKernels: false, threads: false });
    expect(none.replacedKernels).toEqual([]);
    expect(none.addedKernels).toEqual([]);
    expect(none.details).toEqual(['1 thread']);
    expect(none.summary).toBe('wasm: 1 thread');
    expect(replaceable.every(isStock)).toBe(true);
    expect(kernelFunc('UnsortedSegmentSum')).toBeUndefined();
    expect(kernelFunc('FlintDense')).toBeUndefined();

    await installWasmImprovements({ fewerCopies: false, fallbackKernels: false, threads: false });
    await expectAgreesWithCpu(denseOnWasm, denseOnCpu);
    await expectAgreesWithCpu(crossEntropyOnWasm, crossEntropyOnCpu);
    expect(replaceable.map(isStock)).toEqual([false, false, true, true, true, true, true]);
    expect(kernelFunc('Conv2DBackpropFilter')).toBeUndefined();
    expect(isStock('MaxPoolGrad')).toBe(true);
    expect(isStock('Conv2DBackpropInput')).toBe(true);

    await installWasmImprovements({ fastMatmul: false, fallbackKernels: false, threads: false });
    expect(replaceable.map(isStock)).toEqual([true, true, false, false, false, false, false]);

    await installWasmImprovements({ fastMatmul: false, fewerCopies: false, threads: false });
    expect(replaceable.every(isStock)).toBe(true);
    await expectAgreesWithCpu(filterGradOnWasm, filterGradOnCpu);
    expect(isStock('MaxPoolGrad')).toBe(false);
    expect(isStock('Conv2DBackpropInput')).toBe(false);

    await installWasmImprovements({ threads: false });
    await uninstallWasmImprovements();
    expect([...replaceable, 'MaxPoolGrad', 'Conv2DBackpropInput'].every(isStock)).toBe(true);
    expect(kernelFunc('Conv2DBackpropFilter')).toBeUndefined();
    expect(kernelFunc('UnsortedSegmentSum')).toBeUndefined();
    expect(kernelFunc('FlintDense')).toBeUndefined();
    expect(kernelFunc('FlintActivationGrad')).toBeUndefined();
  });

  it('tensors created on stock wasm survive the switch to threads and back, and nothing leaks', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const v = tf.variable(tf.tensor1d([5, 6]));
    const before = tf.memory().numTensors;
    await installWasmImprovements({ threads: 2 });
    expect(tf.getBackend()).toBe('wasm');
    const y = tf.tidy(() => x.matMul(x, true, false).add(v));
    expect(Array.from(await y.data())).toEqual([15, 20, 19, 26]);
    tf.tidy(() => v.assign(tf.tensor1d([7, 8])));
    await uninstallWasmImprovements();
    const z = tf.tidy(() => x.add(v).add(y));
    expect(Array.from(await z.data())).toEqual([23, 30, 29, 38]);
    tf.dispose([y, z]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, v]);
  });

  it('can be installed before the wasm backend is initialized; tfjs then takes the prepared backend', async () => {
    // Make 'wasm' uninitialized again, as in a fresh process: tfjs's own factory, no instance.
    const stockFactory = tf.findBackendFactory('wasm');
    await tf.setBackend('cpu');
    tf.removeBackend('wasm');
    tf.registerBackend('wasm', stockFactory, 2);
    expect(tf.engine().registry['wasm']).toBeUndefined();

    const report = await installWasmImprovements({ threads: 2 });
    expect(report.threads).toBe(2);
    expect(tf.getBackend()).toBe('cpu');
    expect(tf.engine().registry['wasm']).toBeUndefined(); // still not initialized: tfjs does that on setBackend
    expect(await tf.setBackend('wasm')).toBe(true);
    const { BackendWasm, getThreadsCount } = await import('@tensorflow/tfjs-backend-wasm');
    expect(tf.backend()).toBeInstanceOf(BackendWasm);
    expect(getThreadsCount()).toBe(2);
    const y = tf.tidy(() => tf.tensor1d([1, 2]).square());
    expect(Array.from(await y.data())).toEqual([1, 4]);
    y.dispose();
  });
});
