import * as tf from '@tensorflow/tfjs';
import {
  adam,
  crossEntropy,
  DENSE_KERNEL,
  Linear,
  seedEverything,
  Sequential,
  SOFTMAX_CROSS_ENTROPY_KERNEL,
  type DenseActivation,
} from '@flint/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installNativeKernels, nativeKernelsInstalled, uninstallNativeKernels } from './index.js';

// The kernels are for the native backend: this file runs in the suite's native run
// (FLINT_BACKEND=tensorflow), where the test setup has loaded @tensorflow/tfjs-node.
const onNative = process.env.FLINT_BACKEND === 'tensorflow';

interface Binding {
  executeOp(...args: unknown[]): unknown;
}

/** Counts the TensorFlow ops `fn` runs, by name. */
function countOps<T>(fn: () => T): { result: T; ops: Map<string, number> } {
  const backend = tf.findBackend('tensorflow') as unknown as { binding: Binding };
  const original = backend.binding;
  const ops = new Map<string, number>();
  const counting = Object.create(original) as Binding;
  Object.defineProperty(counting, 'executeOp', {
    value: (name: string, ...rest: unknown[]) => {
      ops.set(name, (ops.get(name) ?? 0) + 1);
      return original.executeOp(name, ...rest);
    },
  });
  backend.binding = counting;
  try {
    return { result: fn(), ops };
  } finally {
    backend.binding = original;
  }
}
const total = (ops: Map<string, number>): number => [...ops.values()].reduce((a, b) => a + b, 0);

/** Runs `fn` on the cpu backend (the reference) and on the native one; returns both results as arrays. */
async function onBoth(fn: () => tf.Tensor | tf.Tensor[]): Promise<{ cpu: number[][]; native: number[][] }> {
  const read = () => tf.tidy(() => [fn()].flat().map((t) => Array.from(t.dataSync())));
  await tf.setBackend('cpu');
  const cpu = read();
  await tf.setBackend('tensorflow');
  return { cpu, native: read() };
}

function expectClose(got: number[][], want: number[][], tol: number): void {
  expect(got.map((a) => a.length)).toEqual(want.map((a) => a.length));
  got.forEach((a, i) =>
    a.forEach((x, j) => {
      const w = want[i]![j]!;
      if (Number.isNaN(w)) expect(x).toBeNaN();
      else if (!Number.isFinite(w)) expect(x).toBe(w);
      else expect(Math.abs(x - w)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(w)));
    }),
  );
}

const rand = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

describe.runIf(onNative)('native kernels (tfjs-node)', () => {
  beforeAll(async () => {
    await tf.setBackend('tensorflow');
    installNativeKernels();
  });
  afterAll(async () => {
    await tf.setBackend('tensorflow');
  });

  it('install and uninstall swap tfjs-node kernels in and out, idempotently', () => {
    const mine = tf.getKernel('Cast', 'tensorflow');
    expect(installNativeKernels()).toEqual({
      replaced: ['Cast', 'Reshape', 'Step', 'Round', '_FusedMatMul'],
      added: ['FlintDense', 'FlintActivationGrad', 'FlintSoftmaxCrossEntropyWithLogits', 'FlintApplyAdam'],
    });
    expect(tf.getKernel('Cast', 'tensorflow')).toBe(mine);
    uninstallNativeKernels();
    uninstallNativeKernels();
    expect(nativeKernelsInstalled()).toBe(false);
    expect(tf.getKernel(DENSE_KERNEL, 'tensorflow')).toBeUndefined();
    expect(tf.getKernel('Cast', 'tensorflow')).not.toBe(mine);
    const stock = tf.getKernel('Cast', 'tensorflow');
    installNativeKernels();
    expect(tf.getKernel('Cast', 'tensorflow')).not.toBe(stock);
    uninstallNativeKernels();
    expect(tf.getKernel('Cast', 'tensorflow')).toBe(stock);
    installNativeKernels();
  });

  it('Cast to the same dtype and Reshape to the same shape share the data (no TensorFlow op); other casts and reshapes agree with cpu', async () => {
    tf.tidy(() => {
      const x = rand([4, 3], 1);
      const { result, ops } = countOps(() => [tf.cast(x, 'float32'), tf.reshape(x, [4, -1]), tf.reshape(x, [4, 3])]);
      expect(total(ops)).toBe(0);
      for (const y of result) expect(y.dataId).toBe(x.dataId);
    });
    const { cpu, native } = await onBoth(() => {
      const x = tf.tensor2d([[1.7, -2.5, 0], [3, 4, -0.5]]);
      return [tf.cast(x, 'int32'), tf.cast(x, 'bool'), tf.reshape(x, [3, 2]), tf.reshape(x, [-1]), tf.cast(tf.tensor1d([1, 2], 'int32'), 'float32')];
    });
    expectClose(native, cpu, 0);
  });

  it('Step agrees with cpu (NaN, infinities, zeros; alpha 0 and not)', async () => {
    const { cpu, native } = await onBoth(() => {
      const x = tf.tensor1d([Number.NaN, -1, -0, 0, 1e-30, 2, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
      return [tf.step(x), tf.step(x, 0.3)];
    });
    expectClose(native, cpu, 0);
  });

  it('Round agrees with cpu, int32 included (TensorFlow 2.21 returns zeros for int32)', async () => {
    const { cpu, native } = await onBoth(() => [tf.round(tf.tensor1d([1, -2, 3, 0], 'int32')), tf.round(tf.tensor1d([1.5, -2.5, 0.49, -0.51]))]);
    expectClose(native, cpu, 0);
    expect(native[0]).toEqual([1, -2, 3, 0]);
  });

  it('_FusedMatMul agrees with cpu: activations, transposes, bias vector or broadcast, batched', async () => {
    const { cpu, native } = await onBoth(() => {
      const a = rand([5, 7], 2);
      const b = rand([7, 6], 3);
      const bias = rand([6], 4);
      const out: tf.Tensor[] = [];
      for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu'] as const) {
        out.push(tf.fused.matMul({ a: tf.mul(a, 3), b, bias, activation, leakyreluAlpha: 0.1 }));
      }
      out.push(tf.fused.matMul({ a: tf.transpose(a), b: tf.transpose(b), transposeA: true, transposeB: true, bias, activation: 'relu' }));
      out.push(tf.fused.matMul({ a, b, bias: rand([5, 1], 5) }));
      out.push(tf.fused.matMul({ a: rand([3, 5, 7], 6), b: rand([3, 7, 2], 7), bias: rand([2], 8), activation: 'relu' }));
      out.push(tf.fused.matMul({ a, b, activation: 'prelu', preluActivationWeights: tf.fill([6], 0.2) }));
      return out;
    });
    expectClose(native, cpu, 1e-5);
  });

  it.each(['linear', 'relu', 'sigmoid', 'tanh'] as const)('Linear (%s) runs one kernel and matches the cpu backend in output and gradients', async (activation: DenseActivation) => {
    const layerValues = await onBoth(() => {
      seedEverything(4);
      const layer = new Linear(7, 5, { activation });
      const x = tf.mul(rand([6, 7], 9), 2);
      const f = () => tf.sum(tf.mul(layer.forward(x), rand([6, 5], 10))) as tf.Scalar;
      const { value, grads } = tf.variableGrads(f, [layer.weight, layer.bias!]);
      const dx = tf.grad((z: tf.Tensor) => tf.sum(tf.mul(layer.forward(z), rand([6, 5], 10))))(x);
      const out = [layer.forward(x), value, grads[layer.weight.name]!, grads[layer.bias!.name]!, dx];
      tf.dispose([layer.weight, layer.bias!]);
      return out;
    });
    expectClose(layerValues.native, layerValues.cpu, 2e-5);
    tf.tidy(() => {
      const layer = new Linear(7, 5, { activation, bias: false });
      const { ops } = countOps(() => layer.forward(rand([6, 7], 11)));
      expect([...ops.keys()]).toEqual(activation === 'linear' ? ['MatMul'] : ['MatMul', { relu: 'Relu', sigmoid: 'Sigmoid', tanh: 'Tanh' }[activation]]);
      tf.dispose(layer.parameters());
    });
  });

  it('crossEntropy with the kernel matches cpu, and class indices out of range throw', async () => {
    const { cpu, native } = await onBoth(() => {
      const x = tf.mul(rand([8, 5], 12), 3);
      const y = tf.tensor1d([0, 4, 2, 2, 1, 3, 0, 4], 'int32');
      const p = tf.softmax(rand([8, 5], 13));
      const g = tf.grad((z: tf.Tensor) => crossEntropy(z, y))(x);
      const gp = tf.grad((z: tf.Tensor) => crossEntropy(z, p, { reduction: 'sum' }))(x);
      return [crossEntropy(x, y), crossEntropy(x, y, { reduction: 'none' }), g, crossEntropy(x, p), gp];
    });
    expectClose(native, cpu, 1e-5);
    expect(tf.getKernel(SOFTMAX_CROSS_ENTROPY_KERNEL, 'tensorflow')).toBeDefined();
    tf.tidy(() => {
      expect(() => crossEntropy(rand([2, 3], 1), tf.tensor1d([0, 3], 'int32'))).toThrow(/3 which is outside the valid range of \[0, 3\)/);
    });
  });

  it('a training step of a 3-layer MLP (Linear, crossEntropy, adam) runs 34 TensorFlow ops (tfjs-layers Dense, tf.losses and tf.train.adam: about 150)', () => {
    seedEverything(1);
    const net = new Sequential(new Linear(784, 64, { activation: 'relu' }), new Linear(64, 64, { activation: 'relu' }), new Linear(64, 10));
    const x = rand([32, 784], 14);
    const y = tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 10), 'int32');
    const opt = adam();
    const step = () => tf.tidy(() => {
      opt.minimize(() => crossEntropy(net.forward(x), y) as tf.Scalar, false, net.parameters());
    });
    step(); // creates the optimizer's state
    const { ops } = countOps(step);
    // Forward 3 MatMul + 3 BiasAdd + 2 Relu, loss 2, backward 12, Adam 6 x (ResourceApplyAdam + ReadVariableOp).
    expect(total(ops)).toBe(8 + 2 + 12 + 12);
    expect(ops.get('ResourceApplyAdam')).toBe(6);
    opt.dispose();
    tf.dispose([x, y, ...net.parameters()]);
  });

  it("adam() runs the FlintApplyAdam kernel while it is registered and tfjs ops once it is not, carrying its moments over", () => {
    const run = (native: boolean) => {
      seedEverything(2);
      const net = new Sequential(new Linear(12, 8, { activation: 'relu' }), new Linear(8, 3));
      return { net, opt: adam({ learningRate: 0.01, native }) };
    };
    const fused = run(true);
    const plain = run(false);
    const x = rand([16, 12], 3);
    const y = tf.tensor1d(Array.from({ length: 16 }, (_, i) => i % 3), 'int32');
    const step = ({ net, opt }: ReturnType<typeof run>) => () =>
      tf.tidy(() => {
        opt.minimize(() => crossEntropy(net.forward(x), y) as tf.Scalar, false, net.parameters());
      });
    const applies = (r: ReturnType<typeof run>) => countOps(step(r)).ops.get('ResourceApplyAdam') ?? 0;
    try {
      expect([applies(fused), applies(plain)]).toEqual([4, 0]);
      uninstallNativeKernels();
      expect([applies(fused), applies(plain)]).toEqual([0, 0]);
    } finally {
      installNativeKernels();
    }
    const weights = (r: ReturnType<typeof run>) => r.net.parameters().map((p) => Array.from(p.dataSync()));
    expectClose(weights(fused), weights(plain), 1e-6);
    fused.opt.dispose();
    plain.opt.dispose();
    tf.dispose([x, y, ...fused.net.parameters(), ...plain.net.parameters()]);
  });
});
