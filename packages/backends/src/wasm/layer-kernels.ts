import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { ACTIVATION_GRAD_KERNEL, DENSE_KERNEL, SOFTMAX_CROSS_ENTROPY_KERNEL } from '@flint/core';
import { withKernelScope } from './kernel-scope.js';

/*
 * Flint's layer kernels (names and contracts in @flint/core: `Linear` and `crossEntropy` run them where
 * the backend registers them) for wasm. Without them a `Linear` layer records matmul, add and its
 * activation as three tape entries while training (tfjs fuses only without a tape) and `crossEntropy`
 * runs about ten tfjs ops; each op costs tfjs engine bookkeeping that, on MLP-sized layers, is a
 * good part of a step. These run the same wasm kernels (or a single pass over the heap) as one tfjs
 * kernel each.
 */

/** act(x W + b) through the `_FusedMatMul` kernel registered for wasm (Flint's when fastMatmul is on). */
const dense: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, weight, bias } = inputs as { x: TensorInfo; weight: TensorInfo; bias?: TensorInfo };
  const activation = String((attrs as { activation?: string }).activation ?? 'linear');
  const fused = tf.getKernel('_FusedMatMul', 'wasm');
  if (fused === undefined) throw new Error(`Flint wasm ${DENSE_KERNEL}: the wasm backend has no _FusedMatMul kernel`);
  return withKernelScope(backend as BackendWasm, (s) => {
    const [m, k] = x.shape as [number, number];
    const n = weight.shape[1]!;
    // tfjs's fused matmul kernels take rank-3 operands (tf.fused.matMul reshapes them too).
    const a = s.reshape(x, [1, m, k]);
    const b = s.reshape(weight, [1, k, n]);
    const fusedActivation = activation === 'tanh' ? 'linear' : activation;
    const y = s.track(
      fused.kernelFunc({
        inputs: bias === undefined ? { a, b } : { a, b, bias },
        backend,
        attrs: { transposeA: false, transposeB: false, activation: fusedActivation },
      }) as TensorInfo,
    );
    const out = s.reshape(y, [m, n]);
    return activation === 'tanh' ? s.run('Tanh', { x: out }) : out;
  });
};

/** dy · act'(z) from the layer's output y = act(z). */
const activationGrad: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, y } = inputs as { dy: TensorInfo; y: TensorInfo };
  const activation = String((attrs as { activation?: string }).activation);
  return withKernelScope(backend as BackendWasm, (s) => {
    switch (activation) {
      case 'relu':
        // relu(z) > 0 exactly where z > 0.
        return s.run('Multiply', { a: dy, b: s.run('Step', { x: y }, { alpha: 0 }) });
      case 'sigmoid':
        return s.run('Multiply', { a: dy, b: s.run('Multiply', { a: y, b: s.run('Sub', { a: s.fill([], 1), b: y }) }) });
      case 'tanh':
        return s.run('Multiply', { a: dy, b: s.run('Sub', { a: s.fill([], 1), b: s.run('Square', { x: y }) }) });
      default:
        throw new Error(`Flint wasm ${ACTIVATION_GRAD_KERNEL}: activation ${activation} is not supported`);
    }
  });
};

/**
 * Softmax cross-entropy per row and its gradient w.r.t. the logits (softmax - target), in one pass
 * over the heap: rows are short (one value per class), so a plain loop beats a dozen kernel calls.
 * A class index outside [0, classes) throws, as TensorFlow's kernel does on the native backend.
 */
const softmaxCrossEntropy: KernelFunc = ({ inputs, backend }) => {
  const { logits, labels } = inputs as { logits: TensorInfo; labels: TensorInfo };
  const wasm = backend as BackendWasm;
  const [rows, classes] = logits.shape as [number, number];
  const sparse = labels.shape.length === 1;
  // Inputs first (a move allocates), then outputs, then views: an allocation can grow the heap and
  // detach views taken before it.
  wasm.dataIdMap.get(logits.dataId);
  wasm.dataIdMap.get(labels.dataId);
  if (sparse) {
    // Checked before anything is allocated, so that the error leaves nothing behind.
    const ids = wasm.typedArrayFromHeap(labels);
    for (let r = 0; r < rows; r++) {
      const label = ids[r]!;
      if (!(label >= 0 && label < classes)) {
        throw new Error(`crossEntropy: row ${r} has class index ${label}, which is outside the valid range [0, ${classes})`);
      }
    }
  }
  const perRow = wasm.makeOutput([rows], 'float32');
  const backprop = wasm.makeOutput([rows, classes], 'float32');
  const z = wasm.typedArrayFromHeap(logits);
  const t = wasm.typedArrayFromHeap(labels);
  const loss = wasm.typedArrayFromHeap(perRow);
  const grad = wasm.typedArrayFromHeap(backprop);
  for (let r = 0; r < rows; r++) {
    const o = r * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) if (z[o + c]! > max) max = z[o + c]!;
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      const e = Math.exp(z[o + c]! - max);
      grad[o + c] = e;
      sum += e;
    }
    const logSum = Math.log(sum);
    let rowLoss = 0;
    if (sparse) {
      const label = t[r]!;
      for (let c = 0; c < classes; c++) grad[o + c] = grad[o + c]! / sum;
      rowLoss = logSum - (z[o + label]! - max);
      grad[o + label] = grad[o + label]! - 1;
    } else {
      for (let c = 0; c < classes; c++) {
        const p = t[o + c]!;
        rowLoss -= p * (z[o + c]! - max - logSum);
        grad[o + c] = grad[o + c]! / sum - p;
      }
    }
    loss[r] = rowLoss;
  }
  return [perRow, backprop];
};

/** The kernels `Linear` and `crossEntropy` use where registered, for wasm. */
export function layerKernelConfigs(): KernelConfig[] {
  return [
    { kernelName: DENSE_KERNEL, backendName: 'wasm', kernelFunc: dense },
    { kernelName: ACTIVATION_GRAD_KERNEL, backendName: 'wasm', kernelFunc: activationGrad },
    { kernelName: SOFTMAX_CROSS_ENTROPY_KERNEL, backendName: 'wasm', kernelFunc: softmaxCrossEntropy },
  ];
}
