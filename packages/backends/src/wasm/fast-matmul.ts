import { backend_util } from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type KernelScope, sizeOf, withKernelScope } from './kernel-scope.js';

/*
 * tfjs-backend-wasm 4.22 multiplies through XNNPACK only when neither input is transposed and both
 * have batch size 1; every other product (the backward pass of every dense layer: dx = dy·Wᵀ,
 * dW = xᵀ·dy; any batched product) runs a scalar C++ loop about 20x slower. That loop also adds a
 * `_FusedMatMul` bias wrongly (each row after the first gets the last bias value), and a bias of
 * shape [1] is read out of bounds even on the XNNPACK path. The replacements below bring every product
 * to the XNNPACK path: transpose explicitly (the wasm Transpose kernel), fold a broadcast batch into
 * the rows, or split equal batches into 2-D products.
 */

/**
 * Per-matrix work (m·k·n) below which equal-batch products stay on the scalar loop: splitting costs
 * ~0.1 ms per matrix. Measured, batch 64 of n×n×n: n = 40 scalar 4.7 ms / split 5.2 ms; n = 48 scalar
 * 11 ms / split 4.1 ms; n = 64 scalar 26 ms / split 7.5 ms.
 */
export const SPLIT_BATCH_MIN_WORK = 65_536;

interface Geometry {
  m: number;
  k: number;
  n: number;
  outerA: number[];
  outerB: number[];
  outer: number[];
  outShape: number[];
}

/** Shapes of a (batched) product, or null when tfjs's own kernel should raise the error. */
function geometry(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): Geometry | null {
  const ar = a.shape.length;
  const br = b.shape.length;
  if (ar < 2 || br < 2) return null;
  const k = transposeA ? a.shape[ar - 2]! : a.shape[ar - 1]!;
  const kB = transposeB ? b.shape[br - 1]! : b.shape[br - 2]!;
  if (k !== kB) return null;
  const m = transposeA ? a.shape[ar - 1]! : a.shape[ar - 2]!;
  const n = transposeB ? b.shape[br - 2]! : b.shape[br - 1]!;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  let outer: number[];
  try {
    outer = backend_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return null;
  }
  return { m, k, n, outerA, outerB, outer, outShape: [...outer, m, n] };
}

/** `shape` left-padded with 1s to `rank` dimensions. */
function padTo(shape: readonly number[], rank: number): number[] {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape];
}

function sameShape(x: readonly number[], y: readonly number[]): boolean {
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

/**
 * `x` (batch dims `outerX` + two matrix dims) as a rank-3 tensor whose batch is either 1 or the full
 * broadcast batch `outer` (tiled when it broadcasts only partially, which tfjs's own kernels get wrong).
 */
function batchAs3d(s: KernelScope, x: TensorInfo, outerX: number[], outer: number[]): TensorInfo {
  const mat = x.shape.slice(-2);
  const batch = sizeOf(outerX);
  const padded = padTo(outerX, outer.length);
  if (batch === 1 || sameShape(padded, outer)) return s.reshape(x, [batch, ...mat]);
  const reps = [...outer.map((d, i) => d / padded[i]!), 1, 1];
  const tiled = s.run('Tile', { x: s.reshape(x, [...padded, ...mat]) }, { reps });
  return s.reshape(tiled, [sizeOf(outer), ...mat]);
}

/**
 * C = op(A)·op(B) through XNNPACK. `original` is tfjs-backend-wasm's own BatchMatMul kernel function,
 * which is fast for untransposed batch-1 operands.
 */
export function fastBatchMatMul(
  original: KernelFunc,
  backend: BackendWasm,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): TensorInfo {
  const callOriginal = (x: TensorInfo, y: TensorInfo, ta: boolean, tb: boolean): TensorInfo =>
    original({ inputs: { a: x, b: y }, backend, attrs: { transposeA: ta, transposeB: tb } }) as TensorInfo;

  const g = a.dtype === 'float32' && b.dtype === 'float32' ? geometry(a, b, transposeA, transposeB) : null;
  if (g === null) return callOriginal(a, b, transposeA, transposeB); // tfjs's own error (or int32)
  const { m, k, n, outerA, outerB, outer, outShape } = g;
  if (!transposeA && !transposeB && sizeOf(outerA) === 1 && sizeOf(outerB) === 1 && k > 0) {
    return callOriginal(a, b, false, false); // already XNNPACK
  }

  return withKernelScope(backend, (s) => {
    // XNNPACK refuses k = 0 and leaves the output uninitialized; the product is all zeros.
    if (sizeOf(outShape) === 0 || k === 0) return s.zeros(outShape);
    const A = batchAs3d(s, a, outerA, outer); // [bA, m, k] or [bA, k, m]
    const B = batchAs3d(s, b, outerB, outer); // [bB, k, n] or [bB, n, k]
    const bA = A.shape[0]!;
    const bB = B.shape[0]!;

    if (bB === 1) {
      // Fold A's batch into its rows: one [bA·m, k]·[k, n] product.
      const An = transposeA ? s.swapLastTwo(A) : A;
      const Bn = transposeB ? s.swapLastTwo(B) : B;
      const C = s.track(callOriginal(s.reshape(An, [1, bA * m, k]), Bn, false, false));
      return s.reshape(C, outShape);
    }
    if (bA === 1) {
      // A·[B1 B2 ...]: lay B's batch side by side as columns, one [m, k]·[k, bB·n] product.
      const An = transposeA ? s.swapLastTwo(A) : A;
      const Bcols = s.reshape(s.transpose(B, transposeB ? [2, 0, 1] : [1, 0, 2]), [1, k, bB * n]);
      const C = s.track(callOriginal(An, Bcols, false, false)); // [1, m, bB·n]
      const perBatch = s.transpose(s.reshape(C, [m, bB, n]), [1, 0, 2]);
      return s.reshape(perBatch, outShape);
    }
    // Equal batches: small matrices stay on the scalar loop (cheaper than per-matrix setup).
    if (m * k * n < SPLIT_BATCH_MIN_WORK) {
      return s.reshape(s.track(callOriginal(A, B, transposeA, transposeB)), outShape);
    }
    const An = transposeA ? s.swapLastTwo(A) : A;
    const Bn = transposeB ? s.swapLastTwo(B) : B;
    const parts: TensorInfo[] = [];
    for (let i = 0; i < bA; i++) {
      const ai = s.run('Slice', { x: An }, { begin: [i, 0, 0], size: [1, m, k] });
      const bi = s.run('Slice', { x: Bn }, { begin: [i, 0, 0], size: [1, k, n] });
      parts.push(s.track(callOriginal(ai, bi, false, false)));
    }
    return s.reshape(s.run('Concat', parts, { axis: 0 }), outShape);
  });
}

type FusedActivation = 'linear' | 'relu' | 'relu6' | 'prelu' | 'leakyrelu' | 'sigmoid' | 'elu';
const FUSED_ACTIVATIONS: ReadonlySet<string> = new Set<FusedActivation>([
  'linear',
  'relu',
  'relu6',
  'prelu',
  'leakyrelu',
  'sigmoid',
  'elu',
]);

/** True when `w` broadcasts to `out` by repeating whole (tfjs-wasm applies prelu weights by flat index modulo). */
function broadcastsAsSuffix(w: readonly number[], out: readonly number[]): boolean {
  const stripped = [...w];
  while (stripped.length > 0 && stripped[0] === 1) stripped.shift();
  if (stripped.length > out.length) return false;
  return sameShape(stripped, out.slice(out.length - stripped.length));
}

function applyActivation(
  s: KernelScope,
  x: TensorInfo,
  activation: FusedActivation,
  preluWeights: TensorInfo | undefined,
  leakyreluAlpha: number,
): TensorInfo {
  switch (activation) {
    case 'linear':
      return x;
    case 'relu':
      return s.run('Relu', { x });
    case 'relu6':
      return s.run('Relu6', { x });
    case 'elu':
      return s.run('Elu', { x });
    case 'sigmoid':
      return s.run('Sigmoid', { x });
    case 'leakyrelu':
      return s.run('LeakyRelu', { x }, { alpha: leakyreluAlpha });
    case 'prelu': {
      // relu(x) + w·min(x, 0); wasm's Prelu kernel broadcasts its weights by flat index, wrong for e.g. [m, 1].
      if (preluWeights === undefined) throw new Error('Flint wasm _FusedMatMul: prelu activation without weights');
      const zero = s.zeros([]);
      const negative = s.run('Multiply', { a: s.run('Minimum', { a: x, b: zero }), b: preluWeights });
      return s.run('Add', { a: s.run('Relu', { x }), b: negative });
    }
  }
}

/**
 * `_FusedMatMul` (matmul + bias + activation; tfjs-layers' Dense and tf.fused.matMul): stays on
 * tfjs-wasm's fused XNNPACK path where that path is correct, otherwise the product goes through
 * `fastBatchMatMul` (or a folded 2-D fused product) and the bias and activation follow as kernels.
 */
export function fastFusedMatMul(
  originalFused: KernelFunc,
  originalBatchMatMul: KernelFunc,
  backend: BackendWasm,
  inputs: { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo },
  attrs: NamedAttrMap,
): TensorInfo {
  const { a, b, bias, preluActivationWeights } = inputs;
  const transposeA = attrs['transposeA'] === true;
  const transposeB = attrs['transposeB'] === true;
  const activation = (attrs['activation'] ?? 'linear') as string;
  const leakyreluAlpha = typeof attrs['leakyreluAlpha'] === 'number' ? attrs['leakyreluAlpha'] : 0.2;
  const callOriginal = (ins: typeof inputs, ta: boolean, tb: boolean): TensorInfo =>
    originalFused({ inputs: ins, backend, attrs: { ...attrs, transposeA: ta, transposeB: tb } }) as TensorInfo;

  const g = a.dtype === 'float32' && b.dtype === 'float32' ? geometry(a, b, transposeA, transposeB) : null;
  if (g === null || !FUSED_ACTIVATIONS.has(activation)) return callOriginal(inputs, transposeA, transposeB);
  const { m, k, n, outerA, outerB, outer, outShape } = g;
  const act = activation as FusedActivation;
  // What tfjs-wasm's fused XNNPACK path computes correctly: a rank-1 bias of n values, prelu weights
  // that repeat whole over the output.
  const fusedOk =
    k > 0 &&
    sizeOf(outShape) > 0 &&
    (bias === undefined || (bias.shape.length === 1 && bias.shape[0] === n)) &&
    (act !== 'prelu' || (preluActivationWeights !== undefined && broadcastsAsSuffix(preluActivationWeights.shape, outShape)));
  const batchB = sizeOf(outerB);
  if (fusedOk && !transposeA && !transposeB && sizeOf(outerA) === 1 && batchB === 1) {
    return callOriginal(inputs, false, false);
  }

  return withKernelScope(backend, (s) => {
    if (fusedOk && batchB === 1) {
      // Transpose explicitly and fold A's batch into rows: one fused 2-D product.
      const A = batchAs3d(s, a, outerA, outer);
      const B = s.reshape(b, [1, ...b.shape.slice(-2)]);
      const An = transposeA ? s.swapLastTwo(A) : A;
      const Bn = transposeB ? s.swapLastTwo(B) : B;
      const folded = s.reshape(An, [1, A.shape[0]! * m, k]);
      const C = s.track(callOriginal({ ...inputs, a: folded, b: Bn }, false, false));
      return s.reshape(C, outShape);
    }
    let y = s.track(fastBatchMatMul(originalBatchMatMul, backend, a, b, transposeA, transposeB));
    if (bias !== undefined) y = s.run('Add', { a: y, b: bias });
    return applyActivation(s, y, act, preluActivationWeights, leakyreluAlpha);
  });
}

/** The replacement kernel configs, keeping the originals' setup (their cwrap bindings). */
export function fastMatmulKernels(originalBatchMatMul: KernelConfig, originalFused: KernelConfig): KernelConfig[] {
  const batchMatMulFunc = originalBatchMatMul.kernelFunc;
  const fusedFunc = originalFused.kernelFunc;
  const batchMatMul: KernelFunc = ({ inputs, backend, attrs }) => {
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    const at = attrs ?? {};
    return fastBatchMatMul(batchMatMulFunc, backend as BackendWasm, a, b, at['transposeA'] === true, at['transposeB'] === true);
  };
  const fused: KernelFunc = ({ inputs, backend, attrs }) =>
    fastFusedMatMul(fusedFunc, batchMatMulFunc, backend as BackendWasm, inputs as never, attrs ?? {});
  return [
    { ...originalBatchMatMul, kernelFunc: batchMatMul },
    { ...originalFused, kernelFunc: fused },
  ];
}
