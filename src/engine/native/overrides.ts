/**
 * Kernel overrides: tfjs's own wasm kernels that the wasm-blas backend replaces by
 * native ones, each falling back to the original wasm kernel for the cases it does
 * not handle (non-float32, PReLU/other fused activations, odd bias shapes):
 *   BatchMatMul, _FusedMatMul   sgemm / sgemmOffsets (oneDNN or OpenBLAS) with broadcasting batch
 *                               dims, bias rows and ReLU; the wasm backend's batched and transposed
 *                               matMuls run a naive loop (≈1–2 GFLOP/s), its 2-D one ≈20.
 *   Slice, SplitV, Unpack       one strided copy per piece (copyStrided); the wasm kernels copy the
 *                               whole input to JavaScript once per piece.
 *   Sum, Mean                   float32 over a contiguous block of axes (reduceMiddle), where the wasm
 *                               kernels transpose the whole tensor first.
 *   Tanh                        the native vectorised tanh.
 *   Add                         float32 where one operand has the other's shape or repeats over its leading axes
 *                               (residual, bias and position adds): one native pass on the threads (the wasm
 *                               kernel's sums, bit for bit, on one thread).
 *   Identity, Cast (same dtype) share the input's buffer instead of copying it.
 * replacement() maps a wasm kernel to its override (or itself).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BlasAddon } from './addon.js';
import { floatOffset, heapF32, type KernelArgs, type WasmBackendLike } from './heap.js';

/** Per-product float offsets for batch dims that broadcast in no single-stride pattern. */
function broadcastOffsets(
  outBatch: number[],
  aBatch: number[],
  bBatch: number[],
  aBase: number,
  bBase: number,
  cBase: number,
  aSize: number,
  bSize: number,
  cSize: number,
): Int32Array {
  const rank = outBatch.length;
  const pad = (s: number[]) => [...new Array<number>(rank - s.length).fill(1), ...s];
  const aDims = pad(aBatch),
    bDims = pad(bBatch);
  const total = outBatch.reduce((p, d) => p * d, 1);
  const offsets = new Int32Array(3 * total);
  const idx = new Array<number>(rank).fill(0);
  for (let n = 0; n < total; n++) {
    let ai = 0,
      bi = 0;
    for (let d = 0; d < rank; d++) {
      ai = ai * aDims[d]! + (aDims[d] === 1 ? 0 : idx[d]!);
      bi = bi * bDims[d]! + (bDims[d] === 1 ? 0 : idx[d]!);
    }
    offsets[3 * n] = aBase + ai * aSize;
    offsets[3 * n + 1] = bBase + bi * bSize;
    offsets[3 * n + 2] = cBase + n * cSize;
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < outBatch[d]!) break;
      idx[d] = 0;
    }
  }
  return offsets;
}

interface MatMulArgs {
  a: tf.TensorInfo;
  b: tf.TensorInfo;
  transposeA: boolean;
  transposeB: boolean;
  bias?: tf.TensorInfo | null;
  relu?: boolean;
}

/**
 * op(a)·op(b) (+ bias, ReLU) with broadcasting batch dims; null when the shapes
 * do not fit (the wasm kernel reports). The bias is one row of N broadcast to
 * every product, or one row per product: shape (batch…, 1, N) with the output's
 * batch dims (the batched expert MLPs' biases).
 */
function nativeMatMul(addon: BlasAddon, backend: WasmBackendLike, m: MatMulArgs): tf.TensorInfo | null {
  const { a, b, transposeA, transposeB } = m;
  const ar = a.shape.length,
    br = b.shape.length;
  if (ar < 2 || br < 2) return null;
  const M = transposeA ? a.shape[ar - 1]! : a.shape[ar - 2]!;
  const Ka = transposeA ? a.shape[ar - 2]! : a.shape[ar - 1]!;
  const Kb = transposeB ? b.shape[br - 1]! : b.shape[br - 2]!;
  const N = transposeB ? b.shape[br - 2]! : b.shape[br - 1]!;
  if (Ka !== Kb) return null;
  const K = Ka;
  const aBatch = a.shape.slice(0, -2),
    bBatch = b.shape.slice(0, -2);
  let outBatch: number[];
  try {
    outBatch = tf.broadcast_util.assertAndGetBroadcastShape(aBatch, bBatch);
  } catch {
    return null;
  }
  const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
  const batchA = size(aBatch),
    batchB = size(bBatch),
    batch = size(outBatch);
  const strided = (batchA === batch || batchA === 1) && (batchB === batch || batchB === 1);
  if (!strided && (m.bias || m.relu)) return null;
  let biasStride = 0;
  if (m.bias) {
    const bs = m.bias.shape;
    const perProduct =
      bs.length === outBatch.length + 2 && bs[bs.length - 2] === 1 && outBatch.every((d, i) => bs[i] === d);
    if (perProduct && batch > 1) biasStride = N;
    else if (tf.util.sizeFromShape(bs) !== N || bs[bs.length - 1] !== N || bs.length > outBatch.length + 2) return null;
  }
  const out = backend.makeOutput([...outBatch, M, N], 'float32');
  if (batch * M * N === 0) return out;
  // Views only after makeOutput: allocating can grow (and so replace) the wasm memory.
  const heap = heapF32(backend);
  const aOff = floatOffset(backend, a),
    bOff = floatOffset(backend, b),
    cOff = floatOffset(backend, out);
  const biasOff = m.bias ? floatOffset(backend, m.bias) : -1;
  if (strided) {
    addon.sgemm(
      heap,
      transposeA,
      transposeB,
      M,
      N,
      K,
      batch,
      aOff,
      batchA === 1 ? 0 : M * K,
      bOff,
      batchB === 1 ? 0 : K * N,
      cOff,
      M * N,
      biasOff,
      biasStride,
      m.relu === true,
    );
  } else {
    addon.sgemmOffsets(
      heap,
      transposeA,
      transposeB,
      M,
      N,
      K,
      broadcastOffsets(outBatch, aBatch, bBatch, aOff, bOff, cOff, M * K, K * N, M * N),
    );
  }
  return out;
}

function batchMatMulKernel(addon: BlasAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (a.dtype === 'float32' && b.dtype === 'float32') {
      const out = nativeMatMul(addon, args.backend as WasmBackendLike, { a, b, transposeA, transposeB });
      if (out) return out;
    }
    return fallback(args as Parameters<tf.KernelFunc>[0]);
  }) as tf.KernelFunc;
}

function fusedMatMulKernel(addon: BlasAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const { transposeA, transposeB, activation } = args.attrs as unknown as {
      transposeA: boolean;
      transposeB: boolean;
      activation: string;
    };
    if (
      a &&
      b &&
      a.dtype === 'float32' &&
      b.dtype === 'float32' &&
      preluActivationWeights == null &&
      (bias == null || bias.dtype === 'float32') &&
      (activation === 'linear' || activation === 'relu')
    ) {
      const out = nativeMatMul(addon, args.backend as WasmBackendLike, {
        a,
        b,
        transposeA,
        transposeB,
        bias: bias ?? null,
        relu: activation === 'relu',
      });
      if (out) return out;
    }
    return fallback(args as Parameters<tf.KernelFunc>[0]);
  }) as tf.KernelFunc;
}

/**
 * Identity (and a Cast to the same dtype) share the input's buffer, as tfjs's
 * cpu backend does: tensors are immutable, and the wasm kernel's copy ran
 * hundreds of times per training step inside gradient functions.
 */
function shareKernel(fallback: tf.KernelFunc, sameDtype: (args: KernelArgs) => boolean): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype === 'string' || !sameDtype(args)) return fallback(args as Parameters<tf.KernelFunc>[0]);
    (args.backend as WasmBackendLike).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }) as tf.KernelFunc;
}

/**
 * A contiguous copy of the block of x at `begin` with extent `size` (any rank up
 * to 8, float32 or int32) into a new tensor of shape `outShape` (size, possibly
 * with unit axes dropped).
 */
function copyBlock(
  addon: BlasAddon,
  backend: WasmBackendLike,
  x: tf.TensorInfo,
  begin: number[],
  size: number[],
  outShape: number[],
): tf.TensorInfo {
  const out = backend.makeOutput(outShape, x.dtype);
  if (size.some((d) => d === 0)) return out;
  const strides = [...tf.util.computeStrides(x.shape), 1];
  let src = floatOffset(backend, x);
  for (let d = 0; d < x.shape.length; d++) src += begin[d]! * strides[d]!;
  addon.copyStrided(heapF32(backend), src, floatOffset(backend, out), Int32Array.from(size), Int32Array.from(strides));
  return out;
}

/** Dtypes and ranks copyBlock handles (4-byte elements; copyStrided's rank limit). */
function copyable(x: tf.TensorInfo): boolean {
  return (x.dtype === 'float32' || x.dtype === 'int32') && x.shape.length > 0 && x.shape.length <= 8;
}

/** Slice of any rank as one native strided copy (the wasm kernel first copies the whole input to JavaScript). */
function sliceKernel(addon: BlasAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
    if (!copyable(x)) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const [b, sz] = tf.slice_util.parseSliceParams(x as tf.TensorInfo as tf.Tensor, begin, size) as [
      number[],
      number[],
    ];
    return copyBlock(addon, args.backend as WasmBackendLike, x, b, sz, sz);
  }) as tf.KernelFunc;
}

/** SplitV (the gradient of concat) as one native copy per piece; the wasm kernel copies the whole input per piece. */
function splitKernel(addon: BlasAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { numOrSizeSplits, axis } = args.attrs as unknown as {
      numOrSizeSplits: number | number[];
      axis: number | number[];
    };
    if (!copyable(x)) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const ax = tf.util.parseAxisParam(axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, ax);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((s) => {
      const size = x.shape.slice();
      size[ax] = s;
      const piece = copyBlock(addon, args.backend as WasmBackendLike, x, begin, size, size);
      begin[ax]! += s;
      return piece;
    });
  }) as tf.KernelFunc;
}

/** Unpack (unstack) as one native copy per piece; the wasm kernel copies the whole input per piece. */
function unpackKernel(addon: BlasAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { value } = args.inputs as { value: tf.TensorInfo };
    const { axis } = args.attrs as unknown as { axis: number };
    if (!copyable(value)) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const rank = value.shape.length;
    const ax = axis < 0 ? axis + rank : axis;
    if (!(ax >= 0 && ax < rank)) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const outShape = value.shape.filter((_, d) => d !== ax);
    const size = value.shape.slice();
    size[ax] = 1;
    const begin = new Array<number>(rank).fill(0);
    const pieces: tf.TensorInfo[] = [];
    for (let i = 0; i < value.shape[ax]!; i++) {
      begin[ax] = i;
      pieces.push(copyBlock(addon, args.backend as WasmBackendLike, value, begin, size, outShape));
    }
    return pieces;
  }) as tf.KernelFunc;
}

/**
 * float32 Sum / Mean over one contiguous block of axes as a native (outer, mid,
 * inner) reduction: bias and scale gradients reduce the leading axes, where the
 * wasm kernel transposes the whole tensor first. Other cases go to the wasm kernel.
 */
function reduceKernel(addon: BlasAddon, fallback: tf.KernelFunc, mean: boolean): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const n = tf.util.sizeFromShape(x.shape);
    if (x.dtype !== 'float32' || rank === 0 || n === 0) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
    const contiguous = axes.length > 0 && axes.every((d, i) => d === axes[0]! + i); // also rules out repeated axes
    if (!contiguous) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const first = axes[0]!,
      last = axes[axes.length - 1]!;
    const outer = tf.util.sizeFromShape(x.shape.slice(0, first));
    const mid = tf.util.sizeFromShape(x.shape.slice(first, last + 1));
    const inner = tf.util.sizeFromShape(x.shape.slice(last + 1));
    const [reduced] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
    const outShape = keepDims ? tf.backend_util.expandShapeToKeepDim(reduced, axes) : reduced;
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(outShape, 'float32');
    addon.reduceMiddle(
      heapF32(backend),
      floatOffset(backend, x),
      floatOffset(backend, out),
      outer,
      mid,
      inner,
      mean ? 1 / mid : 1,
    );
    return out;
  }) as tf.KernelFunc;
}

function tanhKernel(addon: BlasAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype !== 'float32') return fallback(args as Parameters<tf.KernelFunc>[0]);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) addon.tanh(heapF32(backend), floatOffset(backend, x), floatOffset(backend, out), n);
    return out;
  }) as tf.KernelFunc;
}

/**
 * Add as one native pass where both operands are float32 and the smaller one's shape, leading 1s dropped, is
 * the larger one's trailing shape (the same shape included): x + b with b repeated over x's leading axes. Adds
 * commute in IEEE arithmetic, so either operand may be the repeated one. Other broadcasts go to the wasm kernel.
 */
function addKernel(addon: BlasAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return fallback(args as Parameters<tf.KernelFunc>[0]);
    const na = tf.util.sizeFromShape(a.shape),
      nb = tf.util.sizeFromShape(b.shape);
    const [big, small] = na >= nb ? [a, b] : [b, a];
    const first = small.shape.findIndex((d) => d !== 1);
    const trailing = first < 0 ? [] : small.shape.slice(first); // the shape without its leading 1s
    const fits =
      trailing.length <= big.shape.length &&
      trailing.every((d, i) => d === big.shape[big.shape.length - trailing.length + i]);
    const n = Math.max(na, nb),
      m = Math.min(na, nb);
    if (!fits || n === 0 || m === 0) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape), 'float32');
    addon.addTiled(
      heapF32(backend),
      floatOffset(backend, big),
      floatOffset(backend, small),
      floatOffset(backend, out),
      n,
      m,
    );
    return out;
  }) as tf.KernelFunc;
}

/** The wasm kernels this backend replaces, by kernel name. */
export function replacement(addon: BlasAddon, name: string, original: tf.KernelFunc): tf.KernelFunc {
  switch (name) {
    case tf.BatchMatMul:
      return batchMatMulKernel(addon, original);
    case tf._FusedMatMul:
      return fusedMatMulKernel(addon, original);
    case tf.Identity:
      return shareKernel(original, () => true);
    case tf.Cast:
      return shareKernel(
        original,
        (a) => (a.attrs as { dtype?: string }).dtype === (a.inputs.x as tf.TensorInfo).dtype,
      );
    case tf.Slice:
      return sliceKernel(addon, original);
    case tf.SplitV:
      return splitKernel(addon, original);
    case tf.Unpack:
      return unpackKernel(addon, original);
    case tf.Sum:
      return reduceKernel(addon, original, false);
    case tf.Mean:
      return reduceKernel(addon, original, true);
    case tf.Tanh:
      return tanhKernel(addon, original);
    case tf.Add:
      return addKernel(addon, original);
    default:
      return original;
  }
}
