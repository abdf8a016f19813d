import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { MisconfigurationError, Sequential, Linear } from '../index.js';
import { expectNoLeak } from '../testing/index.js';
import { AvgPool2d, BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, Embedding, Flatten, GELU, LayerNorm, MaxPool2d, ReLU, Softmax } from './index.js';

describe('layer options', () => {
  it('errors name the option, the value received and what is valid', () => {
    expect(() => new Conv2d(3, 4, 3, { padding: 'full' as never })).toThrow(MisconfigurationError);
    expect(() => new Conv2d(3, 4, 3, { padding: 'full' as never })).toThrow(/Conv2d option 'padding': .*\(received "full"\)/);
    expect(() => new Conv2d(3, 4, 3, { groups: 2 })).toThrow("Conv2d option 'groups': inChannels (3) must be divisible by groups (2)");
    expect(() => new Conv2d(3, 4, 3, { padding: 'same', stride: 2 })).toThrow(
      "Conv2d option 'padding': 'same' needs stride 1, as in PyTorch (stride is 2); give the padding as a number",
    );
    expect(() => new Conv2d(3, 4, 0)).toThrow(/Conv2d option 'kernelSize': .*\(received 0\)/);
    expect(() => new Conv1d(3, 4, 3, { dilation: 0 })).toThrow(/Conv1d option 'dilation': must be a whole number >= 1 \(received 0\)/);
    expect(() => new Conv2d(3, 4, 3, { dataFormat: 'NCWH' as never })).toThrow(`Conv2d option 'dataFormat': Invalid option: expected one of "NCHW"|"NHWC" (received "NCWH")`);
    expect(() => new MaxPool2d(2, { padding: 2 })).toThrow("MaxPool2d option 'padding': must be at most half the kernel size (2x2), as in PyTorch (received 2)");
    expect(() => new AvgPool2d(2, { ceilMode: true } as never)).toThrow(/AvgPool2d option '\(options\)': Unrecognized key: "ceilMode"/);
    expect(() => new BatchNorm2d(3, { momentum: 2 })).toThrow(/BatchNorm2d option 'momentum': Too big: expected number to be <=1 \(received 2\)/);
    expect(() => new Embedding(5, 2, { paddingIdx: 5 })).toThrow("Embedding option 'paddingIdx': must be within numEmbeddings (-5 to 4) (received 5)");
    expect(() => new GELU({ approximate: 'fast' as never })).toThrow(`GELU option 'approximate': Invalid option: expected one of "none"|"tanh" (received "fast")`);
  });

  it('inputs of the wrong shape are refused with the shape expected', () => {
    const conv = new Conv2d(3, 4, 3);
    expect(() => conv.forward(tf.zeros([2, 5, 5, 3]))).toThrow('Conv2d expects input of shape [batch, channels, height, width] with 3 channels (received [2, 5, 5, 3]).');
    expect(() => conv.forward(tf.zeros([2, 3, 2, 5]))).toThrow('Conv2d: the input [2, 3, 2, 5] is smaller than the kernel (3x3, dilation 1x1, padding 0/0/0/0): the output would be empty.');
    expect(() => new BatchNorm1d(4).forward(tf.zeros([2, 3]))).toThrow('BatchNorm1d expects input of shape [batch, 4] or [batch, 4, length] (received [2, 3]).');
    expect(() => new BatchNorm1d(2).forward(tf.zeros([1, 2]))).toThrow('BatchNorm1d: expected more than 1 value per channel when training (received input of shape [1, 2]), as PyTorch.');
    expect(() => new LayerNorm([4, 5]).forward(tf.zeros([2, 5, 4]))).toThrow('LayerNorm expects input whose last dimensions are [4, 5] (received [2, 5, 4]).');
    expect(() => new Embedding(5, 2).forward(tf.tensor1d([1, 5], 'int32'))).toThrow('Embedding: index out of range: indices span 1 to 5, the table has rows 0 to 4.');
    expect(() => new Embedding(5, 2).forward(tf.tensor1d([1, 2]))).toThrow('Embedding expects int32 indices (received a float32 tensor of shape [2]).');
    expect(() => new Softmax({ dim: 2 }).forward(tf.zeros([2, 3]))).toThrow("Softmax option 'dim' is 2, outside the input's 2 dimensions (valid: -2 to 1).");
    expect(() => new Flatten({ startDim: 2, endDim: 1 }).forward(tf.zeros([2, 3, 4]))).toThrow(
      "Flatten options 'startDim' (2) and 'endDim' (1) select dimensions 2 to 1 of a 3-dimensional input: startDim must not come after endDim.",
    );
  });
});

describe('parameters and shapes', () => {
  it("names parameters and buffers as PyTorch's state_dict, in PyTorch's shapes", () => {
    const net = new Sequential(new Conv2d(3, 8, [3, 5], { groups: 1 }), new BatchNorm2d(8), new ReLU(), new Flatten(), new Embedding(4, 2), new LayerNorm(6), new Conv1d(4, 6, 3, { groups: 2, bias: false }));
    expect(net.namedParameters().map((p) => `${p.name} [${p.variable.shape.join(', ')}]${p.trainable ? '' : ' (buffer)'}`)).toEqual([
      'layers.0.weight [8, 3, 3, 5]',
      'layers.0.bias [8]',
      'layers.1.weight [8]',
      'layers.1.bias [8]',
      'layers.1.running_mean [8] (buffer)',
      'layers.1.running_var [8] (buffer)',
      'layers.1.num_batches_tracked [] (buffer)',
      'layers.4.weight [4, 2]',
      'layers.5.weight [6]',
      'layers.5.bias [6]',
      'layers.6.weight [6, 2, 3]',
    ]);
    expect(net.parameters()).toHaveLength(8);
    net.namedParameters().forEach((p) => p.variable.dispose());
  });

  it('Sequential.outputShape chains the layers without running them, and names an item that cannot tell', () => {
    const features = new Sequential(new Conv2d(1, 4, 3, { padding: 1 }), new MaxPool2d(2), new Conv2d(4, 6, 3, { stride: 2 }), new AvgPool2d(2, { padding: 1 }), new Flatten());
    expect(features.outputShape([5, 1, 28, 28])).toEqual([5, 6 * 4 * 4]);
    const withHead = new Sequential(features, new Linear(96, 10));
    expect(withHead.outputShape([2, 1, 28, 28])).toEqual([2, 10]);
    const double = (t: tf.Tensor) => tf.mul(t, 2);
    expect(() => new Sequential(new ReLU(), double).outputShape([2, 3])).toThrow(
      'Sequential.outputShape: item 1 (function double) does not tell its output shape; wrap it in a Module with outputShape(inputShape).',
    );
    expect(() => withHead.outputShape([2, 3, 28, 28])).toThrow('Conv2d expects input of shape [batch, channels, height, width] with 1 channels (received [2, 3, 28, 28]).');
  });

  it("activation 'relu' fused into the convolution equals a Conv2d followed by ReLU, forward and back", () => {
    for (const options of [{ padding: 1 }, { padding: 1, groups: 2 }, { stride: 2, dilation: 2, dataFormat: 'NHWC' as const }]) {
      const fused = new Conv2d(4, 6, 3, { ...options, activation: 'relu' });
      const plain = new Conv2d(4, 6, 3, options);
      plain.loadStateDict(fused.stateDict());
      const x = tf.randomNormal(options.dataFormat === 'NHWC' ? [2, 9, 9, 4] : [2, 4, 7, 7]);
      const run = (f: () => tf.Tensor, params: tf.Variable[]) =>
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => {
            const y = f();
            return tf.sum(tf.mul(y, tf.sin(tf.reshape(tf.range(0, y.size), y.shape)))) as tf.Scalar;
          }, params);
          return [value, ...params.map((p) => grads[p.name]!)].map((t) => Array.from(t.dataSync()));
        });
      const a = run(() => fused.forward(x), fused.parameters());
      const b = run(() => new Sequential(plain, new ReLU()).forward(x), plain.parameters());
      a.forEach((values, i) => values.forEach((v, j) => expect(v).toBeCloseTo(b[i]![j]!, 4)));
    }
  });

  it('forward, gradients and training steps leave no tensor behind', async () => {
    const net = new Sequential(new Conv2d(2, 4, 3, { padding: 'same', groups: 2, dilation: 2 }), new BatchNorm2d(4), new GELU(), new MaxPool2d(2), new Flatten(), new LayerNorm(36));
    const x = tf.randomNormal([3, 2, 6, 6]);
    await expectNoLeak(() => {
      for (let i = 0; i < 2; i++) {
        const { value, grads } = tf.variableGrads(() => tf.sum(net.forward(x)) as tf.Scalar, net.parameters());
        tf.dispose([value, ...Object.values(grads)]);
      }
      net.eval();
      tf.tidy(() => void net.forward(x));
    }, 'two training steps and an eval forward');
    tf.dispose([x, ...net.namedParameters().map((p) => p.variable)]);
  });
});

describe('BatchNorm train and eval', () => {
  it("training uses the batch's statistics and moves the running ones (momentum as torch); eval uses the running ones and moves nothing", () => {
    const bn = new BatchNorm1d(2, { momentum: 0.25 });
    const x = tf.tensor2d([
      [1, 10],
      [3, 30],
      [5, 20],
    ]);
    const y = bn.forward(x);
    // batch mean [3, 20], biased variance [8/3, 200/3]
    const expected = [[-2, -10], [0, 10], [2, 0]].map(([a, b]) => [a! / Math.sqrt(8 / 3 + 1e-5), b! / Math.sqrt(200 / 3 + 1e-5)]);
    expect(Array.from(y.dataSync()).map((v) => +v.toFixed(5))).toEqual(expected.flat().map((v) => +v.toFixed(5)));
    // running = 0.75 · running + 0.25 · batch, the variance unbiased (4, 100)
    expect(Array.from(bn.runningMean!.dataSync())).toEqual([0.75, 5]);
    expect(Array.from(bn.runningVar!.dataSync())).toEqual([0.75 + 1, 0.75 + 25]);
    expect(bn.num_batches_tracked!.dataSync()[0]).toBe(1);
    bn.eval();
    const z = bn.forward(x);
    expect(z.dataSync()[0]).toBeCloseTo((1 - 0.75) / Math.sqrt(1.75 + 1e-5), 5);
    expect(Array.from(bn.runningMean!.dataSync())).toEqual([0.75, 5]);
    expect(bn.num_batches_tracked!.dataSync()[0]).toBe(1);
    tf.dispose([x, y, z, ...bn.namedParameters().map((p) => p.variable)]);
  });

  it('buffers go through stateDict and loadStateDict, so a checkpoint restores them', () => {
    const a = new BatchNorm2d(3);
    a.forward(tf.randomNormal([4, 3, 2, 2]));
    const state = a.stateDict();
    expect(Object.keys(state)).toEqual(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    const b = new BatchNorm2d(3);
    b.loadStateDict(state);
    expect(Array.from(b.running_mean!.dataSync())).toEqual(Array.from(a.running_mean!.dataSync()));
    expect(Array.from(b.running_var!.dataSync())).toEqual(Array.from(a.running_var!.dataSync()));
    expect(b.num_batches_tracked!.dataSync()[0]).toBe(1);
    expect(b.num_batches_tracked!.dtype).toBe('int32');
  });
});
