import { backend_util } from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { cpuFallbackKernel } from './cpu-fallback.js';
import { sizeOf, withKernelScope, type KernelScope } from './kernel-scope.js';
import type { AddedKernelSource } from './options.js';

/*
 * Kernels that tfjs-backend-wasm 4.22 lacks but that gradients of common layers need (found by
 * comparing tf.getKernelsForBackend('wasm') with 'cpu'):
 *   UnsortedSegmentSum                  gradient of gather (Embedding layers)
 *   Conv2DBackpropFilter                gradient of conv2d w.r.t. the filter (Conv1D/Conv2D layers)
 *   DepthwiseConv2dNativeBackpropFilter gradients of depthwise conv (DepthwiseConv2D, SeparableConv2D)
 *   DepthwiseConv2dNativeBackpropInput
 * plus Einsum (a forward op that wasm lacks). Conv2DBackpropInput, MaxPoolGrad, AvgPoolGrad and the 3-D
 * and resize gradients are present in wasm. The rest of what wasm lacks (complex numbers, FFT, ragged
 * and string kernels, Draw) is not about training and stays out.
 */

/**
 * UnsortedSegmentSum(x, segmentIds, numSegments): out[id] += x[i] for each row i of x. Written
 * straight on the wasm heap: O(rows·width), where the cpu backend's version is O(numSegments·rows·width)
 * (one masked sum per segment, hopeless for a 10k-word vocabulary). Ids outside [0, numSegments) are
 * skipped, as the cpu backend does; the output keeps x's dtype.
 */
const unsortedSegmentSum: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const numSegments = Number(attrs?.['numSegments']);
  const wasm = backend as BackendWasm;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`Flint wasm UnsortedSegmentSum: x must be float32 or int32 (received ${x.dtype})`);
  }
  const inner = x.shape.slice(segmentIds.shape.length);
  const width = sizeOf(inner);
  // Make sure both inputs live in this backend before allocating the output: a move allocates, and an
  // allocation can grow (and so detach) the heap that the views below look at.
  wasm.dataIdMap.get(x.dataId);
  wasm.dataIdMap.get(segmentIds.dataId);
  const out = wasm.makeOutput([numSegments, ...inner], x.dtype);
  const outValues = wasm.typedArrayFromHeap(out);
  outValues.fill(0);
  const values = wasm.typedArrayFromHeap(x);
  const ids = wasm.typedArrayFromHeap(segmentIds);
  for (let row = 0; row < ids.length; row++) {
    const id = ids[row]!;
    if (!(id >= 0 && id < numSegments)) continue;
    const src = row * width;
    const dst = id * width;
    for (let j = 0; j < width; j++) outValues[dst + j]! += values[src + j]!;
  }
  return out;
};

/**
 * The filter gradient tap by tap: for each filter tap one strided slice of the padded input and one
 * XNNPACK product dyᵀ·patch [co, ci]. Faster than the im2col pass below when the input has many
 * channels (each product is then wide enough to fill XNNPACK's tiles, and no patch matrix is copied).
 */
function filterGradByTap(
  s: KernelScope,
  xNhwc: TensorInfo,
  dyNhwc: TensorInfo,
  filterShape: [number, number, number, number],
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { strideHeight, strideWidth, filterHeight, filterWidth, padInfo } = info;
  const rows = batchSize * outHeight * outWidth;
  const spanH = (outHeight - 1) * strideHeight + 1;
  const spanW = (outWidth - 1) * strideWidth + 1;
  const bottom = Math.max(0, filterHeight - 1 + spanH - inHeight - padInfo.top);
  const right = Math.max(0, filterWidth - 1 + spanW - inWidth - padInfo.left);
  const padded =
    padInfo.top > 0 || padInfo.left > 0 || bottom > 0 || right > 0
      ? s.run('PadV2', { x: xNhwc }, { paddings: [[0, 0], [padInfo.top, bottom], [padInfo.left, right], [0, 0]], constantValue: 0 })
      : xNhwc;
    const dyT = s.reshape(s.transpose(s.reshape(dyNhwc, [rows, outChannels]), [1, 0]), [1, outChannels, rows]);
    const taps: TensorInfo[] = [];
    for (let i = 0; i < filterHeight; i++) {
      for (let j = 0; j < filterWidth; j++) {
        const patch = s.run(
          'StridedSlice',
          { x: padded },
          {
            begin: [0, i, j, 0],
            end: [batchSize, i + spanH, j + spanW, inChannels],
            strides: [1, strideHeight, strideWidth, 1],
            beginMask: 0,
            endMask: 0,
            ellipsisMask: 0,
            newAxisMask: 0,
            shrinkAxisMask: 0,
          },
        );
        const product = s.run(
          'BatchMatMul',
          { a: dyT, b: s.reshape(patch, [1, rows, inChannels]) },
          { transposeA: false, transposeB: false },
        ); // [1, co, ci]
        taps.push(product);
      }
    }
    const byTap = s.reshape(s.run('Concat', taps, { axis: 2 }), [outChannels, filterHeight * filterWidth * inChannels]);
    return s.reshape(s.transpose(byTap, [1, 0]), filterShape);
}

/** Below this many input channels the filter gradient goes through one im2col product, from this many on tap by tap. */
const TAP_BY_TAP_CHANNELS = 8;

/**
 * Conv2DBackpropFilter(x, dy) = dW[kh, kw, ci, co] = Σ x_padded[b, oh·s + kh, ow·s + kw, ci] · dy[b, oh, ow, co]:
 * the input's patches written once, transposed, as a matrix [kh·kw·ci, rows] (im2col, zeros where a
 * tap falls in the padding; one pass over the heap), then one XNNPACK product patchesᵀ · dy[rows, co],
 * which is the filter gradient in tfjs's layout [kh, kw, ci, co]. For inputs with few channels (a
 * first layer on grey or RGB images): there, one product per tap (width ci, 1 for grey images) left
 * most of each XNNPACK tile empty and ran about 5x slower. From TAP_BY_TAP_CHANNELS channels on,
 * tap by tap (filterGradByTap) is as fast and copies no patch matrix.
 */
const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs ?? {};
  const filterShape = a['filterShape'] as [number, number, number, number];
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    a['strides'] as [number, number] | number,
    1,
    a['pad'] as 'valid' | 'same' | number | backend_util.ExplicitPadding,
    a['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    false,
    backend_util.convertConv2DDataFormat((a['dataFormat'] as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC'),
  );
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { strideHeight, strideWidth, filterHeight, filterWidth, padInfo } = info;
  const wasm = backend as BackendWasm;
  return withKernelScope(wasm, (s) => {
    const rows = batchSize * outHeight * outWidth;
    if (rows === 0 || sizeOf(filterShape) === 0) return s.zeros(filterShape);
    const channelsFirst = info.dataFormat === 'channelsFirst';
    const xNhwc = channelsFirst ? s.transpose(x, [0, 2, 3, 1]) : x;
    let dyNhwc = channelsFirst ? s.transpose(dy, [0, 2, 3, 1]) : dy;
    // tfjs's conv2d gradient drops dimRoundingMode, so dy can have one more row or column than this
    // kernel's geometry; the cpu kernel then ignores the extra ones, and so does this one.
    if (dyNhwc.shape[1]! > outHeight || dyNhwc.shape[2]! > outWidth) {
      dyNhwc = s.run('Slice', { x: dyNhwc }, { begin: [0, 0, 0, 0], size: [batchSize, outHeight, outWidth, outChannels] });
    }
    if (inChannels >= TAP_BY_TAP_CHANNELS) return filterGradByTap(s, xNhwc, dyNhwc, filterShape, info);
    const k = filterHeight * filterWidth * inChannels;
    // The input in this backend before the output is allocated (see unsortedSegmentSum).
    wasm.dataIdMap.get(xNhwc.dataId);
    const patches = s.track(wasm.makeOutput([1, k, rows], 'float32'));
    const p = wasm.typedArrayFromHeap(patches);
    const xv = wasm.typedArrayFromHeap(xNhwc);
    for (let i = 0; i < filterHeight; i++) {
      for (let j = 0; j < filterWidth; j++) {
        for (let c = 0; c < inChannels; c++) {
          let at = ((i * filterWidth + j) * inChannels + c) * rows;
          for (let b = 0; b < batchSize; b++) {
            for (let oh = 0; oh < outHeight; oh++) {
              const r = oh * strideHeight - padInfo.top + i;
              if (r < 0 || r >= inHeight) {
                p.fill(0, at, at + outWidth);
                at += outWidth;
                continue;
              }
              const rowBase = (b * inHeight + r) * inWidth;
              for (let ow = 0; ow < outWidth; ow++) {
                const col = ow * strideWidth - padInfo.left + j;
                p[at++] = col < 0 || col >= inWidth ? 0 : xv[(rowBase + col) * inChannels + c]!;
              }
            }
          }
        }
      }
    }
    const product = s.run('BatchMatMul', { a: patches, b: s.reshape(dyNhwc, [1, rows, outChannels]) }, { transposeA: false, transposeB: false }); // [1, k, co]
    return s.reshape(product, filterShape);
  });
};

/**
 * MaxPoolGrad(dy, input): each dy value goes to the first maximum of its window (row-major, padding
 * skipped), as the cpu backend and PyTorch do. It replaces tfjs-backend-wasm 4.22's kernel, which
 * drops the gradient of windows whose maximum is not positive (all-negative windows after a
 * convolution, say). Written straight on the wasm heap: O(output cells · window).
 */
const maxPoolGrad: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
  const a = attrs ?? {};
  const info = backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    a['filterSize'] as [number, number] | number,
    a['strides'] as [number, number] | number,
    1,
    a['pad'] as 'valid' | 'same' | number | backend_util.ExplicitPadding,
    a['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
  );
  const wasm = backend as BackendWasm;
  // Both inputs in this backend before the output is allocated (see unsortedSegmentSum).
  wasm.dataIdMap.get(dy.dataId);
  wasm.dataIdMap.get(input.dataId);
  const out = wasm.makeOutput(input.shape, input.dtype);
  const dx = wasm.typedArrayFromHeap(out);
  dx.fill(0);
  const x = wasm.typedArrayFromHeap(input);
  const g = wasm.typedArrayFromHeap(dy);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const { effectiveFilterHeight, effectiveFilterWidth, padInfo } = info;
  const [dyHeight, dyWidth] = [dy.shape[1]!, dy.shape[2]!];
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < Math.min(outHeight, dyHeight); oh++) {
      const r0 = oh * strideHeight - padInfo.top;
      for (let ow = 0; ow < Math.min(outWidth, dyWidth); ow++) {
        const c0 = ow * strideWidth - padInfo.left;
        const dyBase = ((b * dyHeight + oh) * dyWidth + ow) * inChannels;
        for (let ch = 0; ch < inChannels; ch++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (let kr = 0; kr < effectiveFilterHeight; kr += dilationHeight) {
            const r = r0 + kr;
            if (r < 0 || r >= inHeight) continue;
            for (let kc = 0; kc < effectiveFilterWidth; kc += dilationWidth) {
              const c = c0 + kc;
              if (c < 0 || c >= inWidth) continue;
              const index = ((b * inHeight + r) * inWidth + c) * inChannels + ch;
              const v = x[index]!;
              if (at < 0 || v > best) {
                best = v;
                at = index;
              }
            }
          }
          if (at >= 0) dx[at]! += g[dyBase + ch]!;
        }
      }
    }
  }
  return out;
};

/**
 * Conv2DBackpropInput(dy, filter) as one forward convolution, which wasm runs through XNNPACK (the
 * stock kernel is a plain loop, several times slower): dy with (stride - 1) zeros between its cells,
 * padded by (kernel - 1 - pad), convolved with the filter turned 180° and with its channel axes
 * swapped. NHWC only (the layout conv2d's gradient passes); dilation 1 (tfjs's gradient refuses more).
 */
const conv2DBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs ?? {};
  const inputShape = a['inputShape'] as [number, number, number, number];
  const info = backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    a['strides'] as [number, number] | number,
    1,
    a['pad'] as 'valid' | 'same' | number | backend_util.ExplicitPadding,
    a['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    false,
    backend_util.convertConv2DDataFormat((a['dataFormat'] as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC'),
  );
  if (info.dataFormat !== 'channelsLast') return stockConv2DBackpropInput!.kernelFunc({ inputs, backend, attrs });
  const { batchSize, inHeight, inWidth, outHeight, outWidth, outChannels, strideHeight, strideWidth, filterHeight, filterWidth, padInfo } = info;
  const top = filterHeight - 1 - padInfo.top;
  const left = filterWidth - 1 - padInfo.left;
  const bottom = inHeight + filterHeight - 1 - ((outHeight - 1) * strideHeight + 1) - top;
  const right = inWidth + filterWidth - 1 - ((outWidth - 1) * strideWidth + 1) - left;
  // Padding beyond kernel - 1 would need cropping: left to the stock kernel.
  if (Math.min(top, left, bottom, right) < 0) return stockConv2DBackpropInput!.kernelFunc({ inputs, backend, attrs });
  return withKernelScope(backend as BackendWasm, (s) => {
    if (sizeOf(inputShape) === 0 || outHeight * outWidth * batchSize === 0) return s.zeros(inputShape);
    let d = dy;
    if (d.shape[1]! > outHeight || d.shape[2]! > outWidth) {
      d = s.run('Slice', { x: d }, { begin: [0, 0, 0, 0], size: [batchSize, outHeight, outWidth, outChannels] });
    }
    if (strideHeight > 1 || strideWidth > 1) {
      const spread = s.run(
        'PadV2',
        { x: s.reshape(d, [batchSize, outHeight, 1, outWidth, 1, outChannels]) },
        { paddings: [[0, 0], [0, 0], [0, strideHeight - 1], [0, 0], [0, strideWidth - 1], [0, 0]], constantValue: 0 },
      );
      d = s.run(
        'Slice',
        { x: s.reshape(spread, [batchSize, outHeight * strideHeight, outWidth * strideWidth, outChannels]) },
        { begin: [0, 0, 0, 0], size: [batchSize, (outHeight - 1) * strideHeight + 1, (outWidth - 1) * strideWidth + 1, outChannels] },
      );
    }
    const padded = top + bottom + left + right > 0 ? s.run('PadV2', { x: d }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 }) : d;
    // [kh, kw, in, out] -> turned 180° -> [kh, kw, out, in]
    const turned = s.transpose(s.run('Reverse', { x: filter }, { dims: [0, 1] }), [0, 1, 3, 2]);
    return s.run('Conv2D', { x: padded, filter: turned }, { strides: [1, 1], pad: 'valid', dilations: [1, 1], dataFormat: 'NHWC' });
  });
};

let stockConv2DBackpropInput: KernelConfig | undefined;

/** Stock wasm kernels that give wrong results and Flint's replacements. */
export function fixedKernelConfigs(): KernelConfig[] {
  return [{ kernelName: 'MaxPoolGrad', backendName: 'wasm', kernelFunc: maxPoolGrad }];
}

/** Stock wasm kernels that are slow and Flint's faster ones (`stock`: the kernel replaced, for the cases left to it). */
export function fasterKernelConfigs(stock: { Conv2DBackpropInput: KernelConfig }): KernelConfig[] {
  stockConv2DBackpropInput = stock.Conv2DBackpropInput;
  // The stock setup still runs: the cases left to the stock kernel need it.
  const setup = stock.Conv2DBackpropInput.setupFunc;
  return [{ kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: conv2DBackpropInput, ...(setup === undefined ? {} : { setupFunc: setup }) }];
}

export interface AddedKernel {
  readonly config: KernelConfig;
  readonly via: AddedKernelSource;
}

/** The kernels Flint adds to wasm when they are missing there. */
export function missingKernelConfigs(): AddedKernel[] {
  const wasmKernel = (kernelName: string, kernelFunc: KernelFunc): AddedKernel => ({
    config: { kernelName, backendName: 'wasm', kernelFunc },
    via: 'wasm',
  });
  const fallback = (kernelName: string): AddedKernel => ({ config: cpuFallbackKernel(kernelName), via: 'cpu-fallback' });
  return [
    wasmKernel('UnsortedSegmentSum', unsortedSegmentSum),
    wasmKernel('Conv2DBackpropFilter', conv2DBackpropFilter),
    fallback('DepthwiseConv2dNativeBackpropFilter'),
    fallback('DepthwiseConv2dNativeBackpropInput'),
    fallback('Einsum'),
  ];
}
