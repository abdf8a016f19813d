import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { crossEntropy, DataError, MisconfigurationError, SOFTMAX_CROSS_ENTROPY_KERNEL } from './index.js';
import { expectNoLeak } from './testing/index.js';

const logits = () => tf.tensor2d([[2, -1, 0.5, 3], [0, 0, 0, 0], [-4, 8, 1, 1], [1, 2, 3, 4], [30, -30, 0, 5]]);
const classes = () => tf.tensor1d([3, 1, 1, 0, 0], 'int32');
const probs = () => tf.tensor2d([[0, 0, 0, 1], [0.25, 0.25, 0.25, 0.25], [0, 1, 0, 0], [0.5, 0, 0.5, 0], [1, 0, 0, 0]]);

/** Value and gradient with respect to the logits. */
function valueAndGrad(f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor): { value: number[]; grad: number[] } {
  return tf.tidy(() => {
    const { value, grad } = tf.valueAndGrad((z: tf.Tensor) => tf.sum(f(z)) as tf.Scalar)(x);
    // sum() makes 'none' a scalar too; for 'mean' and 'sum' it changes nothing.
    return { value: Array.from(value.dataSync()), grad: Array.from(grad.dataSync()) };
  });
}

function expectAllClose(got: number[], want: number[], tol = 1e-6): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => expect(Math.abs(g - want[i]!)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i]!))));
}

describe('crossEntropy', () => {
  it.each(['mean', 'sum', 'none'] as const)('equals tf.losses.softmaxCrossEntropy in value and gradient, class indices and probabilities (reduction %s)', async (reduction) => {
    const x = logits();
    const y = classes();
    const p = probs();
    const tfReduction = { mean: tf.Reduction.MEAN, sum: tf.Reduction.SUM, none: tf.Reduction.NONE }[reduction];
    await expectNoLeak(() => {
      const want = valueAndGrad((z) => tf.losses.softmaxCrossEntropy(tf.oneHot(y, 4), z, undefined, 0, tfReduction), x);
      expectAllClose(valueAndGrad((z) => crossEntropy(z, y, { reduction }), x).value, want.value);
      expectAllClose(valueAndGrad((z) => crossEntropy(z, y, { reduction }), x).grad, want.grad);
      const wantP = valueAndGrad((z) => tf.losses.softmaxCrossEntropy(p, z, undefined, 0, tfReduction), x);
      const gotP = valueAndGrad((z) => crossEntropy(z, p, { reduction }), x);
      expectAllClose(gotP.value, wantP.value);
      expectAllClose(gotP.grad, wantP.grad);
    }, 'crossEntropy');
    tf.dispose([x, y, p]);
  });

  it("returns one loss per row with reduction 'none', the mean by default", () => {
    tf.tidy(() => {
      const perRow = crossEntropy(logits(), classes(), { reduction: 'none' });
      expect(perRow.shape).toEqual([5]);
      const mean = crossEntropy(logits(), classes());
      expect(mean.shape).toEqual([]);
      expect(mean.dataSync()[0]).toBeCloseTo(tf.mean(perRow).dataSync()[0]!, 6);
      // A uniform row costs log(4); a row of large logits stays finite.
      expect(perRow.dataSync()[1]).toBeCloseTo(Math.log(4), 6);
      expect(Number.isFinite(perRow.dataSync()[4])).toBe(true);
    });
  });

  it('names the shapes and dtypes it needs', () => {
    tf.tidy(() => {
      expect(() => crossEntropy(logits(), tf.tensor1d([3, 1, 1, 0, 0]))).toThrow(DataError);
      expect(() => crossEntropy(logits(), tf.tensor1d([3, 1, 1, 0, 0]))).toThrow(
        "crossEntropy: a target of shape [batch] holds class indices and must be int32 (received float32); cast it (tf.cast(target, 'int32')) or give one-hot rows of shape [5, 4].",
      );
      expect(() => crossEntropy(logits(), tf.tensor1d([1, 2], 'int32'))).toThrow('crossEntropy: target has 2 class indices for 5 rows of logits.');
      expect(() => crossEntropy(logits(), tf.zeros([5, 3]))).toThrow(
        'crossEntropy: target must be class indices of shape [5] (int32) or probabilities of shape [5, 4] (float32), like the logits (received float32 [5, 3]).',
      );
      expect(() => crossEntropy(tf.zeros([5]), classes())).toThrow('crossEntropy: logits must be a float32 tensor of shape [batch, classes] (received float32 [5]).');
      expect(() => crossEntropy(logits(), classes(), { reduction: 'avg' } as never)).toThrow(MisconfigurationError);
      expect(() => crossEntropy(logits(), classes(), { reduction: 'avg' } as never)).toThrow(/crossEntropy option 'reduction': Invalid option: expected one of "mean"\|"sum"\|"none"/);
    });
  });

  it.runIf(tf.getKernel(SOFTMAX_CROSS_ENTROPY_KERNEL, tf.getBackend()) !== undefined)('with the kernel (native and wasm backends), class indices out of range throw', () => {
    tf.tidy(() => {
      expect(() => crossEntropy(logits(), tf.tensor1d([3, 1, 4, 0, 0], 'int32')).dataSync()).toThrow(/label|range/i);
    });
  });
});
