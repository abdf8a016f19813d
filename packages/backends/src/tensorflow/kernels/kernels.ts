import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { ACTIVATION_GRAD_KERNEL, APPLY_ADAM_KERNEL, DENSE_KERNEL, SOFTMAX_CROSS_ENTROPY_KERNEL } from '@flint/core';
import { boolAttr, typeAttr, type NodeBackend, type OpAttr, type OutputMetadata } from '../binding.js';
import { applyAdamKernel } from './adam.js';

/**
 * Runs a chain of TensorFlow ops on raw handles: each step gets the previous output's handle id;
 * intermediate handles are deleted, the last one becomes a tfjs tensor. No tfjs kernel, tape entry
 * or tensor is created in between.
 */
function chain(b: NodeBackend, first: number, steps: ReadonlyArray<(input: number) => [string, OpAttr[], number[]]>): tf.Tensor {
  let id = first;
  let owned = false;
  let last: OutputMetadata | undefined;
  try {
    for (const step of steps) {
      const [op, attrs, inputs] = step(id);
      const [out] = b.binding.executeOp(op, attrs, inputs, 1);
      if (owned) b.binding.deleteTensor(id);
      id = out!.id;
      owned = true;
      last = out;
    }
  } catch (error) {
    if (owned) b.binding.deleteTensor(id);
    throw error;
  }
  return b.createOutputTensor(last!);
}

/** TensorFlow op names of the activations the dense kernels apply. */
const ACTIVATION_OPS: Readonly<Record<string, string | null>> = {
  linear: null,
  relu: 'Relu',
  relu6: 'Relu6',
  elu: 'Elu',
  sigmoid: 'Sigmoid',
  tanh: 'Tanh',
  leakyrelu: 'LeakyRelu',
};

/**
 * `act(a·b + bias)` as MatMul (BatchMatMulV2 for rank > 2), BiasAdd (AddV2 when the bias is not a
 * vector over the last axis) and the activation op, on raw handles.
 */
function denseOps(
  b: NodeBackend,
  a: TensorInfo,
  w: TensorInfo,
  bias: TensorInfo | undefined,
  transposeA: boolean,
  transposeB: boolean,
  activation: string,
  leakyreluAlpha: number,
): tf.Tensor {
  const ids = b.getInputTensorIds(bias === undefined ? [a, w] : [a, w, bias]);
  const t = typeAttr(b, 'T', a.dtype);
  const steps: Array<(input: number) => [string, OpAttr[], number[]]> = [];
  const rank2 = a.shape.length === 2 && w.shape.length === 2;
  steps.push(() =>
    rank2
      ? ['MatMul', [t, boolAttr(b, 'transpose_a', transposeA), boolAttr(b, 'transpose_b', transposeB)], [ids[0]!, ids[1]!]]
      : ['BatchMatMulV2', [t, boolAttr(b, 'adj_x', transposeA), boolAttr(b, 'adj_y', transposeB)], [ids[0]!, ids[1]!]],
  );
  if (bias !== undefined) {
    const outLast = transposeB ? w.shape[w.shape.length - 2] : w.shape[w.shape.length - 1];
    const vector = bias.shape.length === 1 && bias.shape[0] === outLast;
    steps.push((y) => (vector ? ['BiasAdd', [t], [y, ids[2]!]] : ['AddV2', [t], [y, ids[2]!]]));
  }
  const op = ACTIVATION_OPS[activation];
  if (op === undefined) throw new Error(`Flint native kernels: activation ${activation} is not supported here`);
  if (op !== null) {
    const attrs = op === 'LeakyRelu' ? [t, { name: 'alpha', type: b.binding.TF_ATTR_FLOAT, value: leakyreluAlpha }] : [t];
    steps.push((y) => [op, attrs, [y]]);
  }
  // The first step reads its inputs from `ids`, not from the chain.
  return chain(b, -1, steps);
}

function shareData(b: NodeBackend, x: TensorInfo, shape: number[]): TensorInfo {
  b.incRef(x.dataId);
  return { dataId: x.dataId, shape, dtype: x.dtype };
}

/** Flint's own kernels (names from @flint/core), for the 'tensorflow' backend. */
export function flintKernelConfigs(): KernelConfig[] {
  const dense: KernelFunc = ({ inputs, backend, attrs }) => {
    const { x, weight, bias } = inputs as { x: TensorInfo; weight: TensorInfo; bias?: TensorInfo };
    const activation = (attrs as { activation: string }).activation;
    return denseOps(backend as unknown as NodeBackend, x, weight, bias, false, false, activation, 0.2);
  };
  const activationGrad: KernelFunc = ({ inputs, backend, attrs }) => {
    const b = backend as unknown as NodeBackend;
    const { dy, y } = inputs as { dy: TensorInfo; y: TensorInfo };
    const activation = (attrs as { activation: string }).activation;
    const [dyId, yId] = b.getInputTensorIds([dy, y]);
    const t = typeAttr(b, 'T', dy.dtype);
    // ReluGrad(gradients, features): the op's outputs work as features. SigmoidGrad/TanhGrad(y, dy).
    const call: [string, number[]] | undefined =
      activation === 'relu' ? ['ReluGrad', [dyId!, yId!]] : activation === 'sigmoid' ? ['SigmoidGrad', [yId!, dyId!]] : activation === 'tanh' ? ['TanhGrad', [yId!, dyId!]] : undefined;
    if (call === undefined) throw new Error(`${ACTIVATION_GRAD_KERNEL}: activation ${activation} is not supported`);
    const [out] = b.binding.executeOp(call[0], [t], call[1], 1);
    return b.createOutputTensor(out!);
  };
  const crossEntropy: KernelFunc = ({ inputs, backend }) => {
    const b = backend as unknown as NodeBackend;
    const { logits, labels } = inputs as { logits: TensorInfo; labels: TensorInfo };
    const ids = b.getInputTensorIds([logits, labels]);
    const sparse = labels.shape.length === 1;
    const attrs = sparse ? [typeAttr(b, 'T', logits.dtype), typeAttr(b, 'Tlabels', 'int32')] : [typeAttr(b, 'T', logits.dtype)];
    const outs = b.binding.executeOp(sparse ? 'SparseSoftmaxCrossEntropyWithLogits' : 'SoftmaxCrossEntropyWithLogits', attrs, ids, 2);
    return outs.map((m) => b.createOutputTensor(m));
  };
  return [
    { kernelName: DENSE_KERNEL, backendName: 'tensorflow', kernelFunc: dense },
    { kernelName: ACTIVATION_GRAD_KERNEL, backendName: 'tensorflow', kernelFunc: activationGrad },
    { kernelName: SOFTMAX_CROSS_ENTROPY_KERNEL, backendName: 'tensorflow', kernelFunc: crossEntropy },
    { kernelName: APPLY_ADAM_KERNEL, backendName: 'tensorflow', kernelFunc: applyAdamKernel },
  ];
}

/**
 * Cheaper versions of tfjs-node kernels, each falling back to the original where it does not apply.
 * `original` gives the kernel being replaced.
 */
export function replacementKernelConfigs(original: (name: string) => KernelConfig): KernelConfig[] {
  const cast = original('Cast');
  const reshape = original('Reshape');
  const step = original('Step');
  const fused = original('_FusedMatMul');
  const round = original('Round');
  return [
    {
      // tfjs-node runs a TensorFlow Cast (a copy) even to the same dtype; the cpu backend shares.
      kernelName: 'Cast',
      backendName: 'tensorflow',
      kernelFunc: (args) => {
        const { x } = args.inputs as { x: TensorInfo };
        if ((args.attrs as { dtype: tf.DataType }).dtype === x.dtype) return shareData(args.backend as unknown as NodeBackend, x, [...x.shape]);
        return cast.kernelFunc(args);
      },
    },
    {
      // Gradients reshape to the shape a tensor already has (add's, sum's); share instead of copying.
      kernelName: 'Reshape',
      backendName: 'tensorflow',
      kernelFunc: (args) => {
        const { x } = args.inputs as { x: TensorInfo };
        const size = x.shape.reduce((p, d) => p * d, 1);
        const shape = tf.util.inferFromImplicitShape([...(args.attrs as { shape: number[] }).shape], size);
        if (tf.util.arraysEqual(shape, x.shape)) return shareData(args.backend as unknown as NodeBackend, x, shape);
        return reshape.kernelFunc(args);
      },
    },
    {
      // tfjs-node's Step builds a host array of ones and runs five ops; for alpha 0 (the ReLU
      // gradient) Sign(Relu(x)) gives the same, NaN included.
      kernelName: 'Step',
      backendName: 'tensorflow',
      kernelFunc: (args) => {
        const { x } = args.inputs as { x: TensorInfo };
        if ((args.attrs as { alpha: number }).alpha !== 0 || x.dtype !== 'float32') return step.kernelFunc(args);
        const b = args.backend as unknown as NodeBackend;
        const [id] = b.getInputTensorIds([x]);
        const t = typeAttr(b, 'T', x.dtype);
        return chain(b, id!, [(i) => ['Relu', [t], [i]], (i) => ['Sign', [t], [i]]]);
      },
    },
    {
      // TensorFlow 2.21's Round returns zeros for int32; rounding an integer changes nothing.
      kernelName: 'Round',
      backendName: 'tensorflow',
      kernelFunc: (args) => {
        const { x } = args.inputs as { x: TensorInfo };
        if (x.dtype === 'int32') return shareData(args.backend as unknown as NodeBackend, x, [...x.shape]);
        return round.kernelFunc(args);
      },
    },
    {
      // tfjs-node composes matMul, add and the activation as three tfjs ops; run the TensorFlow
      // ops directly (prelu keeps the original).
      kernelName: '_FusedMatMul',
      backendName: 'tensorflow',
      kernelFunc: (args) => {
        const { a, b: w, bias, preluActivationWeights } = args.inputs as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
        const attrs = args.attrs as { transposeA: boolean; transposeB: boolean; activation?: string; leakyreluAlpha?: number };
        const activation = attrs.activation ?? 'linear';
        if (preluActivationWeights !== undefined || ACTIVATION_OPS[activation] === undefined || a.dtype !== 'float32') return fused.kernelFunc(args);
        return denseOps(args.backend as unknown as NodeBackend, a, w, bias, attrs.transposeA, attrs.transposeB, activation, attrs.leakyreluAlpha ?? 0.2);
      },
    },
  ];
}
