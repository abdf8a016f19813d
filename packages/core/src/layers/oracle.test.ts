import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createRng, type Module } from '../index.js';
import { askPythonOracle, expectNoLeak } from '../testing/index.js';
import {
  AvgPool2d,
  BatchNorm1d,
  BatchNorm2d,
  Conv1d,
  Conv2d,
  ELU,
  Embedding,
  Flatten,
  GELU,
  LayerNorm,
  LeakyReLU,
  LogSoftmax,
  MaxPool2d,
  ReLU,
  SELU,
  Sigmoid,
  SiLU,
  Softmax,
  Tanh,
} from './index.js';

// Every layer against torch.nn (pip torch, in a venv made by packages/core/scripts/torch-venv.sh) on
// the same weights: the output, the gradient of sum(output · dy) with respect to the input and to
// every parameter, and the buffers after the call (BatchNorm's running statistics), to 1e-5.
// Skips, saying why, where pip cannot get torch.

const venvScript = fileURLToPath(new URL('../../scripts/torch-venv.sh', import.meta.url));
const oracle = fileURLToPath(new URL('../../scripts/layers-oracle.py', import.meta.url));
const repo = path.resolve(path.dirname(venvScript), '../../..');

interface HostTensor {
  data: number[];
  shape: number[];
  dtype: 'float32' | 'int32';
}
interface Case {
  id: string;
  cls: string;
  kwargs: Record<string, unknown>;
  train: boolean;
  layout: 'NCHW' | 'NHWC';
  input: HostTensor;
  dy: HostTensor;
  params: Record<string, HostTensor>;
}
interface Result {
  output: number[];
  gradInput: number[] | null;
  grads: Record<string, number[] | null>;
  buffers: Record<string, number[]>;
}
interface Spec {
  /** Builds the Flint layer. */
  make: () => Module & { forward(x: tf.Tensor): tf.Tensor; outputShape(shape: readonly number[]): number[] };
  /** The torch.nn class and keyword arguments of the same layer. */
  cls: string;
  kwargs?: Record<string, unknown>;
  input: number[];
  train?: boolean;
  layout?: 'NCHW' | 'NHWC';
  /** Integer input drawn from [0, n). */
  indices?: number;
}

const SPECS: Spec[] = [
  // Conv2d: kernel shapes, strides, paddings (numbers, pairs, 'same', 'valid'), dilation, groups, layouts
  { make: () => new Conv2d(3, 4, 3), cls: 'Conv2d', kwargs: { in_channels: 3, out_channels: 4, kernel_size: 3 }, input: [2, 3, 7, 6] },
  // stride 1, padding 1 on a 3x3 kernel: the convolution pads itself ('same'), no tf.pad (an MNIST conv net's layers)
  { make: () => new Conv2d(1, 4, 3, { padding: 1 }), cls: 'Conv2d', kwargs: { in_channels: 1, out_channels: 4, kernel_size: 3, padding: 1 }, input: [3, 1, 8, 7] },
  { make: () => new Conv2d(9, 4, 3, { padding: 1, dataFormat: 'NHWC' }), cls: 'Conv2d', kwargs: { in_channels: 9, out_channels: 4, kernel_size: 3, padding: 1 }, input: [2, 6, 5, 9], layout: 'NHWC' },
  { make: () => new Conv2d(3, 5, [3, 2], { stride: 2, padding: 1 }), cls: 'Conv2d', kwargs: { in_channels: 3, out_channels: 5, kernel_size: [3, 2], stride: 2, padding: 1 }, input: [2, 3, 9, 8] },
  { make: () => new Conv2d(2, 3, 3, { stride: [2, 1], padding: [0, 2], dilation: 2 }), cls: 'Conv2d', kwargs: { in_channels: 2, out_channels: 3, kernel_size: 3, stride: [2, 1], padding: [0, 2], dilation: 2 }, input: [2, 2, 11, 7] },
  { make: () => new Conv2d(3, 4, [3, 4], { padding: 'same', dilation: [1, 2] }), cls: 'Conv2d', kwargs: { in_channels: 3, out_channels: 4, kernel_size: [3, 4], padding: 'same', dilation: [1, 2] }, input: [2, 3, 6, 9] },
  { make: () => new Conv2d(4, 6, 3, { groups: 2, stride: 2, padding: 'valid' }), cls: 'Conv2d', kwargs: { in_channels: 4, out_channels: 6, kernel_size: 3, groups: 2, stride: 2, padding: 'valid' }, input: [3, 4, 8, 8] },
  { make: () => new Conv2d(4, 8, 3, { groups: 4, padding: 1, bias: false }), cls: 'Conv2d', kwargs: { in_channels: 4, out_channels: 8, kernel_size: 3, groups: 4, padding: 1, bias: false }, input: [2, 4, 5, 5] },
  { make: () => new Conv2d(3, 5, 3, { padding: 1, stride: 2, dilation: 2, dataFormat: 'NHWC' }), cls: 'Conv2d', kwargs: { in_channels: 3, out_channels: 5, kernel_size: 3, padding: 1, stride: 2, dilation: 2 }, input: [2, 9, 10, 3], layout: 'NHWC' },
  { make: () => new Conv2d(3, 2, 1), cls: 'Conv2d', kwargs: { in_channels: 3, out_channels: 2, kernel_size: 1 }, input: [1, 3, 4, 4] },
  // Conv1d
  { make: () => new Conv1d(3, 4, 3), cls: 'Conv1d', kwargs: { in_channels: 3, out_channels: 4, kernel_size: 3 }, input: [2, 3, 10] },
  { make: () => new Conv1d(2, 3, 3, { stride: 2, padding: 2, dilation: 3 }), cls: 'Conv1d', kwargs: { in_channels: 2, out_channels: 3, kernel_size: 3, stride: 2, padding: 2, dilation: 3 }, input: [2, 2, 13] },
  { make: () => new Conv1d(3, 6, 4, { groups: 3, padding: 'same' }), cls: 'Conv1d', kwargs: { in_channels: 3, out_channels: 6, kernel_size: 4, groups: 3, padding: 'same' }, input: [2, 3, 9] },
  // pooling
  { make: () => new MaxPool2d(2), cls: 'MaxPool2d', kwargs: { kernel_size: 2 }, input: [2, 3, 6, 6] },
  { make: () => new MaxPool2d(3, { stride: 2, padding: 1 }), cls: 'MaxPool2d', kwargs: { kernel_size: 3, stride: 2, padding: 1 }, input: [2, 2, 7, 5] },
  { make: () => new MaxPool2d([2, 3], { stride: [1, 2], dataFormat: 'NHWC' }), cls: 'MaxPool2d', kwargs: { kernel_size: [2, 3], stride: [1, 2] }, input: [2, 5, 7, 3], layout: 'NHWC' },
  { make: () => new AvgPool2d(2), cls: 'AvgPool2d', kwargs: { kernel_size: 2 }, input: [2, 3, 6, 5] },
  { make: () => new AvgPool2d(3, { stride: 2, padding: 1 }), cls: 'AvgPool2d', kwargs: { kernel_size: 3, stride: 2, padding: 1 }, input: [2, 2, 7, 6] },
  { make: () => new AvgPool2d([3, 2], { stride: 2, padding: [1, 1], countIncludePad: false }), cls: 'AvgPool2d', kwargs: { kernel_size: [3, 2], stride: 2, padding: [1, 1], count_include_pad: false }, input: [2, 2, 7, 6] },
  // Flatten, Embedding
  { make: () => new Flatten(), cls: 'Flatten', input: [2, 3, 4, 5] },
  { make: () => new Flatten({ startDim: 0, endDim: 1 }), cls: 'Flatten', kwargs: { start_dim: 0, end_dim: 1 }, input: [2, 3, 4] },
  { make: () => new Embedding(10, 4), cls: 'Embedding', kwargs: { num_embeddings: 10, embedding_dim: 4 }, input: [3, 5], indices: 10 },
  { make: () => new Embedding(6, 3, { paddingIdx: 2 }), cls: 'Embedding', kwargs: { num_embeddings: 6, embedding_dim: 3, padding_idx: 2 }, input: [4, 6], indices: 6 },
  // normalization, in training (batch statistics, running statistics updated) and eval mode
  { make: () => new BatchNorm1d(5), cls: 'BatchNorm1d', kwargs: { num_features: 5 }, input: [8, 5], train: true },
  { make: () => new BatchNorm1d(4, { momentum: 0.3 }), cls: 'BatchNorm1d', kwargs: { num_features: 4, momentum: 0.3 }, input: [6, 4, 7], train: true },
  { make: () => new BatchNorm1d(5, { momentum: null, eps: 1e-3 }), cls: 'BatchNorm1d', kwargs: { num_features: 5, momentum: null, eps: 1e-3 }, input: [7, 5], train: true },
  { make: () => new BatchNorm1d(5), cls: 'BatchNorm1d', kwargs: { num_features: 5 }, input: [8, 5], train: false },
  { make: () => new BatchNorm1d(3, { affine: false, trackRunningStats: false }), cls: 'BatchNorm1d', kwargs: { num_features: 3, affine: false, track_running_stats: false }, input: [5, 3, 4], train: false },
  { make: () => new BatchNorm2d(3), cls: 'BatchNorm2d', kwargs: { num_features: 3 }, input: [4, 3, 5, 5], train: true },
  { make: () => new BatchNorm2d(3), cls: 'BatchNorm2d', kwargs: { num_features: 3 }, input: [4, 3, 5, 5], train: false },
  { make: () => new BatchNorm2d(4, { dataFormat: 'NHWC', momentum: 0.5 }), cls: 'BatchNorm2d', kwargs: { num_features: 4, momentum: 0.5 }, input: [3, 5, 6, 4], train: true, layout: 'NHWC' },
  { make: () => new LayerNorm(6), cls: 'LayerNorm', kwargs: { normalized_shape: 6 }, input: [4, 6] },
  { make: () => new LayerNorm([4, 5], { eps: 1e-3 }), cls: 'LayerNorm', kwargs: { normalized_shape: [4, 5], eps: 1e-3 }, input: [2, 3, 4, 5] },
  { make: () => new LayerNorm(5, { elementwiseAffine: false }), cls: 'LayerNorm', kwargs: { normalized_shape: 5, elementwise_affine: false }, input: [3, 5] },
  { make: () => new LayerNorm(5, { bias: false }), cls: 'LayerNorm', kwargs: { normalized_shape: 5, bias: false }, input: [3, 2, 5] },
  // activations
  { make: () => new ReLU(), cls: 'ReLU', input: [3, 7] },
  { make: () => new LeakyReLU({ negativeSlope: 0.2 }), cls: 'LeakyReLU', kwargs: { negative_slope: 0.2 }, input: [3, 7] },
  { make: () => new ELU(), cls: 'ELU', input: [3, 7] },
  { make: () => new ELU({ alpha: 0.5 }), cls: 'ELU', kwargs: { alpha: 0.5 }, input: [3, 7] },
  { make: () => new SELU(), cls: 'SELU', input: [3, 7] },
  { make: () => new SiLU(), cls: 'SiLU', input: [3, 7] },
  { make: () => new Sigmoid(), cls: 'Sigmoid', input: [3, 7] },
  { make: () => new Tanh(), cls: 'Tanh', input: [3, 7] },
  { make: () => new GELU(), cls: 'GELU', input: [4, 9] },
  { make: () => new GELU({ approximate: 'tanh' }), cls: 'GELU', kwargs: { approximate: 'tanh' }, input: [4, 9] },
  { make: () => new Softmax(), cls: 'Softmax', kwargs: { dim: -1 }, input: [3, 6] },
  { make: () => new Softmax({ dim: 1 }), cls: 'Softmax', kwargs: { dim: 1 }, input: [2, 3, 4] },
  { make: () => new LogSoftmax({ dim: 0 }), cls: 'LogSoftmax', kwargs: { dim: 0 }, input: [4, 3] },
  { make: () => new LogSoftmax(), cls: 'LogSoftmax', kwargs: { dim: -1 }, input: [2, 3, 5] },
];

// ---- seeded random data ---------------------------------------------------------------------------

const rng = createRng(1616);
const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const host = (t: tf.Tensor): HostTensor => ({ data: Array.from(t.dataSync()), shape: t.shape.slice(), dtype: t.dtype === 'int32' ? 'int32' : 'float32' });
const randn = (shape: number[], scale = 1): HostTensor => ({ data: Array.from({ length: size(shape) }, () => gauss() * scale), shape, dtype: 'float32' });

/** Random parameters and buffers (variances positive, counters kept), loaded into the Flint layer. */
function randomizeParameters(layer: Module): Record<string, HostTensor> {
  const params: Record<string, HostTensor> = {};
  for (const p of layer.namedParameters()) {
    const shape = p.variable.shape.slice();
    if (p.variable.dtype === 'int32') params[p.name] = { data: [3], shape, dtype: 'int32' };
    else if (p.name.endsWith('running_var')) params[p.name] = { data: Array.from({ length: size(shape) }, () => 0.5 + rng.next()), shape, dtype: 'float32' };
    else params[p.name] = randn(shape, 0.5);
  }
  layer.loadStateDict(params);
  return params;
}

/** Builds the case and computes Flint's side: output, input and parameter gradients, buffers after. */
function flintSide(spec: Spec, index: number): { case: Case; result: Result } {
  const layer = spec.make();
  const params = randomizeParameters(layer);
  layer.train(spec.train ?? true);
  const input: HostTensor =
    spec.indices === undefined
      ? randn(spec.input)
      : { data: Array.from({ length: size(spec.input) }, (_, i) => (i === 0 ? (spec.indices! > 2 ? 2 : 0) : Math.floor(rng.next() * spec.indices!))), shape: spec.input, dtype: 'int32' };
  const x = tf.tensor(input.data, input.shape, input.dtype);
  const dy = randn(layer.outputShape(input.shape));
  const dyT = tf.tensor(dy.data, dy.shape);
  const floating = input.dtype === 'float32';
  const xVar = floating ? tf.variable(x, true) : undefined;
  const trainable = layer.namedParameters({ trainableOnly: true });
  let output: tf.Tensor | undefined;
  // One call, as torch's: BatchNorm's running statistics move once.
  const { value, grads } = tf.variableGrads(() => {
    const y = layer.forward(xVar ?? x);
    output = tf.keep(tf.clone(y));
    return tf.sum(tf.mul(y, dyT));
  }, [...(xVar ? [xVar] : []), ...trainable.map((p) => p.variable)]);
  const result: Result = {
    output: Array.from(output!.dataSync()),
    gradInput: xVar === undefined ? null : Array.from(grads[xVar.name]!.dataSync()),
    grads: Object.fromEntries(trainable.map((p) => [p.name, Array.from(grads[p.variable.name]!.dataSync())])),
    buffers: Object.fromEntries(layer.namedParameters().filter((p) => !p.trainable).map((p) => [p.name, Array.from(p.variable.dataSync())])),
  };
  tf.dispose([value, output!, x, dyT, ...Object.values(grads), ...(xVar ? [xVar] : []), ...layer.namedParameters().map((p) => p.variable)]);
  return {
    case: { id: `${index}-${spec.cls}`, cls: spec.cls, kwargs: spec.kwargs ?? {}, train: spec.train ?? true, layout: spec.layout ?? 'NCHW', input, dy, params },
    result,
  };
}

// ---- the comparison ---------------------------------------------------------------------------------

const cases: Case[] = [];
const ours: Record<string, Result> = {};
let theirs: Record<string, Result> = {};
let skipReason = '';

beforeAll(async () => {
  await expectNoLeak(() => {
    SPECS.forEach((spec, i) => {
      const { case: c, result } = flintSide(spec, i);
      cases.push(c);
      ours[c.id] = result;
    });
  }, 'running every layer with its gradients');
  const got = await askPythonOracle<{ results: Record<string, Result> }>({ venvScript, script: oracle, input: { cases }, cwd: repo, what: 'layers oracle test' });
  if (got.skipReason !== undefined) skipReason = got.skipReason;
  else theirs = got.answer.results;
}, 25 * 60_000);

/** Where two lists differ by more than 1e-5 (relative to the value's size when above 1). */
function mismatch(what: string, got: readonly number[] | null | undefined, want: readonly number[] | null | undefined): string[] {
  if (got == null || want == null) return got == want ? [] : [`${what}: Flint ${got == null ? 'none' : 'some'}, torch ${want == null ? 'none' : 'some'}`];
  if (got.length !== want.length) return [`${what}: ${got.length} values in Flint, ${want.length} in torch`];
  const worst = got.reduce((w, g, i) => Math.max(w, Math.abs(g - want[i]!) / Math.max(1, Math.abs(want[i]!))), 0);
  return worst <= 1e-5 ? [] : [`${what}: differs by ${worst.toExponential(2)}`];
}

describe.each([...new Set(SPECS.map((s) => s.cls))])('%s', (cls) => {
  it('equals torch.nn on the same weights: output, input and parameter gradients, buffers (1e-5)', (ctx) => {
    if (skipReason !== '') ctx.skip(skipReason);
    const wrong: string[] = [];
    for (const c of cases.filter((k) => k.cls === cls)) {
      const [mine, ref] = [ours[c.id]!, theirs[c.id]!];
      const label = `${c.id} ${JSON.stringify(c.kwargs)} ${c.train ? 'train' : 'eval'} ${c.layout} input ${c.input.shape.join('x')}`;
      wrong.push(...mismatch(`${label} output`, mine.output, ref.output));
      wrong.push(...mismatch(`${label} input gradient`, mine.gradInput, ref.gradInput));
      // the same parameter and buffer names as torch's state_dict, and the same values
      expect(Object.keys(mine.grads).sort(), label).toEqual(Object.keys(ref.grads).sort());
      expect(Object.keys(mine.buffers).sort(), label).toEqual(Object.keys(ref.buffers).sort());
      for (const name of Object.keys(ref.grads)) wrong.push(...mismatch(`${label} gradient of ${name}`, mine.grads[name], ref.grads[name]));
      for (const name of Object.keys(ref.buffers)) wrong.push(...mismatch(`${label} buffer ${name}`, mine.buffers[name], ref.buffers[name]));
    }
    expect(wrong).toEqual([]);
  });
});
