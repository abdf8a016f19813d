import { backend_util, slice_util, util } from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { sizeOf } from './kernel-scope.js';

/*
 * Copies tfjs-backend-wasm 4.22 makes for nothing:
 * - Its Slice kernel starts with `backend.readSync(x.dataId)`, which copies the *whole* input out of
 *   the wasm heap into a new JS array, then copies the slice from that. Taking a batch of 64 rows out
 *   of the 60,000-row MNIST tensor therefore copies 188 MB per batch; StridedSlice (simple cases),
 *   SplitV (tf.split) and Unpack (tf.unstack, used by every RNN over time steps) call the same function
 *   once per output. The replacements copy only the slice, straight from the heap.
 * - Its Identity kernel copies its input. tfjs calls Identity (engine.clone) for every input a
 *   gradient needs, on every op recorded on the tape: the 188 MB MNIST tensor again (Slice saves its
 *   input), every weight and activation. tfjs tensors are immutable and wasm buffers are
 *   reference-counted (Reshape already shares them), so Identity shares the buffer, as the cpu
 *   backend's does.
 */

/** Copies `x[begin : begin + size]` into a new wasm tensor, reading the heap in place. */
export function sliceOnHeap(backend: BackendWasm, x: TensorInfo, begin: readonly number[], size: readonly number[]): TensorInfo {
  // x must live in this backend before the output is allocated: moving it allocates, and an
  // allocation can grow (and so detach) the heap the views below look at.
  backend.dataIdMap.get(x.dataId);
  const out = backend.makeOutput([...size], x.dtype);
  if (sizeOf(size) === 0) return out;
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const shape = x.shape;
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0]!;
    return out;
  }
  const strides = [...util.computeStrides(shape), 1];
  // Dimensions after `k` are taken whole, so each step copies one contiguous run of size[k]·strides[k].
  let k = rank - 1;
  while (k > 0 && size[k] === shape[k]) k--;
  const run = size[k]! * strides[k]!;
  const base = begin[k]! * strides[k]!;
  const index = new Array<number>(k).fill(0);
  const runs = sizeOf(size.slice(0, k));
  let offset = 0;
  for (let n = 0; n < runs; n++) {
    let from = base;
    for (let j = 0; j < k; j++) from += (begin[j]! + index[j]!) * strides[j]!;
    dst.set(src.subarray(from, from + run), offset);
    offset += run;
    for (let j = k - 1; j >= 0; j--) {
      if (++index[j]! < size[j]!) break;
      index[j] = 0;
    }
  }
  return out;
}

/** A fresh tensor handed out under another shape of the same size (a reshape without a reference). */
function withShape(t: TensorInfo, shape: number[]): TensorInfo {
  return { ...t, shape };
}

/** The replacement kernel configs; strings and StridedSlice's general case keep tfjs's kernels. */
export function fewerCopiesKernels(originals: {
  Identity: KernelConfig;
  Slice: KernelConfig;
  StridedSlice: KernelConfig;
  SplitV: KernelConfig;
  Unpack: KernelConfig;
}): KernelConfig[] {
  const slice = (backend: BackendWasm, x: TensorInfo, begin: number[] | number, size?: number[] | number): TensorInfo => {
    const [b = [], s = []] = slice_util.parseSliceParams(x, begin, size);
    return sliceOnHeap(backend, x, b, s);
  };

  const identityKernel: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype === 'string') return originals.Identity.kernelFunc(args);
    const backend = args.backend as BackendWasm;
    backend.dataIdMap.get(x.dataId); // moves x here first if it lives in another backend
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };

  const sliceKernel: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype === 'string') return originals.Slice.kernelFunc(args);
    const attrs = args.attrs as NamedAttrMap;
    return slice(args.backend as BackendWasm, x, attrs['begin'] as number[] | number, attrs['size'] as number[] | number);
  };

  const stridedSliceKernel: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const a = args.attrs as NamedAttrMap;
    const info = slice_util.sliceInfo(
      x.shape,
      a['begin'] as number[],
      a['end'] as number[],
      a['strides'] as number[],
      a['beginMask'] as number,
      a['endMask'] as number,
      a['ellipsisMask'] as number,
      a['newAxisMask'] as number,
      a['shrinkAxisMask'] as number,
    );
    if (x.dtype === 'string' || info.isIdentity || !(info.sliceDim0 || info.isSimpleSlice)) {
      return originals.StridedSlice.kernelFunc(args);
    }
    const size = slice_util.computeOutShape(info.begin, info.end, info.strides);
    const sliced = sliceOnHeap(args.backend as BackendWasm, x, info.begin, size);
    return withShape(sliced, info.finalShape);
  };

  const splitVKernel: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype === 'string') return originals.SplitV.kernelFunc(args);
    const a = args.attrs as NamedAttrMap;
    const axis = util.parseAxisParam(a['axis'] as number, x.shape)[0]!;
    const sizes = backend_util.prepareSplitSize(x, a['numOrSizeSplits'] as number | number[], axis);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((s) => {
      const size = [...x.shape];
      size[axis] = s;
      const part = sliceOnHeap(args.backend as BackendWasm, x, begin, size);
      begin[axis]! += s;
      return part;
    });
  };

  const unpackKernel: KernelFunc = (args) => {
    const { value } = args.inputs as { value: TensorInfo };
    if (value.dtype === 'string') return originals.Unpack.kernelFunc(args);
    const rank = value.shape.length;
    let axis = (args.attrs as NamedAttrMap)['axis'] as number;
    if (axis < 0) axis += rank;
    const outShape = value.shape.filter((_, i) => i !== axis);
    const size = [...value.shape];
    size[axis] = 1;
    const begin = new Array<number>(rank).fill(0);
    return Array.from({ length: value.shape[axis]! }, (_, i) => {
      begin[axis] = i;
      return withShape(sliceOnHeap(args.backend as BackendWasm, value, begin, size), outShape);
    });
  };

  return [
    { ...originals.Identity, kernelFunc: identityKernel },
    { ...originals.Slice, kernelFunc: sliceKernel },
    { ...originals.StridedSlice, kernelFunc: stridedSliceKernel },
    { ...originals.SplitV, kernelFunc: splitVKernel },
    { ...originals.Unpack, kernelFunc: unpackKernel },
  ];
}
