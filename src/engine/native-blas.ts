/**
 * The `wasm-blas` backend: tfjs's wasm backend with its two matrix-product
 * kernels (BatchMatMul, _FusedMatMul) replaced by OpenBLAS sgemm, called
 * through a small Node-API addon (native/) on zero-copy views of the wasm heap.
 * Slice, SplitV, Unpack, Tanh and float32 Sum/Mean over a contiguous block of
 * axes also run natively, Identity / same-dtype Cast share their input's
 * buffer instead of copying it, and the fused kernels of ./fused-kernels.ts
 * (GELU, LayerNorm, softmax, erf, attention and their gradients, the Adam step and the
 * gradients' squared norm) are added.
 *
 * Why: the wasm backend's batched and transposed matMuls run a naive loop
 * (≈1–2 GFLOP/s) and its 2-D matMul reaches ≈20 GFLOP/s; sgemm reaches well
 * over 100 on the same cores. Its Slice (and so SplitV and Unpack, once per
 * piece) first copies the whole input to JavaScript, and its Sum/Mean
 * transpose first unless the reduced axes are the innermost ones — which made
 * the gradients of concat, unstack and every bias add dominate a training
 * step. Every other kernel stays the wasm one.
 *
 * The backend is the wasm backend's own instance registered under a second
 * name (one heap, one tensor registry, nothing to move between them); only the
 * kernel table for the new name differs. Cases the native path does not handle
 * (non-float32, PReLU/other fused activations, odd bias shapes) go to the
 * original wasm kernel.
 *
 * The addon is optional: it is built by `npm run build:native`
 * (native/build.mjs) into node_modules/.cache/vmoe-blas; when it is missing or
 * fails its self-check, loadBlasAddon() returns null and says why.
 */
import * as tf from '@tensorflow/tfjs-core';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  VMOE_ADAM, VMOE_ATTENTION, VMOE_ATTENTION_GRAD, VMOE_COMBINE_ROWS, VMOE_COMBINE_ROWS_GRAD, VMOE_GELU, VMOE_GELU_GRAD, VMOE_LAYER_NORM, VMOE_LAYER_NORM_GRAD,
  VMOE_EXPERT_DENSE, VMOE_EXPERT_DENSE_GRAD, VMOE_ROUTER_AUX, VMOE_ROUTER_GATES, VMOE_ROUTER_GATES_GRAD, VMOE_SOFTMAX, VMOE_SOFTMAX_GRAD, VMOE_SUM_OF_SQUARES,
} from './fused-kernels.js';

export const WASM_BLAS = 'wasm-blas';

export interface BlasAddon {
  sgemm(
    heap: Float32Array, transA: boolean, transB: boolean, M: number, N: number, K: number, batch: number,
    aOff: number, aStride: number, bOff: number, bStride: number, cOff: number, cStride: number,
    biasOff: number, biasStride: number, relu: boolean,
  ): void;
  sgemmOffsets(heap: Float32Array, transA: boolean, transB: boolean, M: number, N: number, K: number, offsets: Int32Array): void;
  copyStrided(heap: Float32Array, srcOff: number, dstOff: number, shape: Int32Array, srcStrides: Int32Array): void;
  tanh(heap: Float32Array, srcOff: number, dstOff: number, n: number): void;
  gelu(heap: Float32Array, srcOff: number, dstOff: number, n: number): void;
  geluGrad(heap: Float32Array, dyOff: number, xOff: number, dxOff: number, n: number): void;
  layerNorm(heap: Float32Array, xOff: number, scaleOff: number, biasOff: number, yOff: number, rows: number, cols: number, eps: number): void;
  layerNormGrad(
    heap: Float32Array, dyOff: number, xOff: number, scaleOff: number, dxOff: number, dscaleOff: number, dbiasOff: number,
    rows: number, cols: number, eps: number,
  ): void;
  softmax(heap: Float32Array, xOff: number, yOff: number, rows: number, cols: number): void;
  softmaxGrad(heap: Float32Array, dyOff: number, yOff: number, dxOff: number, rows: number, cols: number): void;
  attention(heap: Float32Array, qkvOff: number, outOff: number, probsOff: number, batch: number, T: number, heads: number, hd: number,
    scale: number): void;
  attentionGrad(heap: Float32Array, dyOff: number, qkvOff: number, probsOff: number, dqkvOff: number, batch: number, T: number,
    heads: number, hd: number, scale: number): void;
  /** coefficients: [β1, 1 − β1, β2, 1 − β2, lr / bc1, bc2, ε, lr · decay (0: none), gradient scale (1: none)]. */
  adam(heap: Float32Array, pOff: number, mOff: number, vOff: number, gradOff: number, pOutOff: number, mOutOff: number, vOutOff: number,
    n: number, coefficients: Float64Array): void;
  sumOfSquares(heap: Float32Array, offsets: Float64Array, sizes: Float64Array): number;
  /** dst[o, j] = scale · Σ_m src[o, m, j] for src viewed as (outer, mid, inner). */
  reduceMiddle(heap: Float32Array, srcOff: number, dstOff: number, outer: number, mid: number, inner: number, scale: number): void;
  /** Token and gate indices are 1-based int32 offsets into the same heap; 0 drops the row. */
  combineRows(heap: Float32Array, xOff: number, gatesOff: number, tokOff: number, gateOff: number, yOff: number,
    numTokens: number, numGates: number, m: number, h: number): void;
  combineRowsGrad(heap: Float32Array, dyOff: number, xOff: number, gatesOff: number, tokOff: number, gateOff: number, dxOff: number,
    dGatesOff: number, numTokens: number, numGates: number, m: number, h: number): void;
  /** y_e = x_e w_e (+ b_e) over rows[e] rows (int32 at rowsOff), zeros below; bOff = -1: no bias; tokensOff ≥ 0: x is (N, I), row i of expert e is x[tokens[e·R + i] − 1]. */
  expertDense(heap: Float32Array, xOff: number, wOff: number, bOff: number, rowsOff: number, tokensOff: number, yOff: number,
    E: number, R: number, I: number, O: number, N: number): void;
  expertDenseGrad(heap: Float32Array, dyOff: number, xOff: number, wOff: number, rowsOff: number, tokensOff: number, dxOff: number, dwOff: number,
    dbOff: number, E: number, R: number, I: number, O: number, N: number): void;
  /** losses written at lossesOff: [importance, load, weighted]; noiseOff = kthOff = -1 without noise. */
  routerAux(heap: Float32Array, logitsOff: number, noiseOff: number, kthOff: number, dLogitsOff: number, lossesOff: number,
    N: number, E: number, members: number, sigma: number, importanceWeight: number, loadWeight: number, groupSizes: Float64Array): void;
  /** Rng.normals of src/util/rng.ts from `state` (advanced in place) with its ziggurat tables, into out. */
  normals(state: Uint32Array, k: Float64Array, w: Float64Array, f: Float64Array, R: number, scale: number, out: Float32Array): void;
  /** planTopK + packExpertRows of src/vmoe/dispatch.ts into the given arrays; returns the processed assignments. */
  planTopK(gates: Float32Array, N: number, E: number, K: number, groupSizes: Int32Array, capacities: Int32Array, batchPriority: boolean,
    expert: Int32Array, slot: Int32Array, kept: Uint8Array, rowToken: Int32Array, rowGate: Int32Array,
    packedToken: Int32Array, packedGate: Int32Array, rows: Int32Array): number;
  /** logits = x w (+ the E³ mask for members > 1), gates = softmax(logits (+ noise)); noiseOff = -1: none. */
  routerGates(heap: Float32Array, xOff: number, wOff: number, noiseOff: number, logitsOff: number, gatesOff: number,
    N: number, H: number, E: number, members: number): void;
  /** dx, dw of routerGates from dGates and the optional dLogits (-1: absent). */
  routerGatesGrad(heap: Float32Array, xOff: number, wOff: number, gatesOff: number, dGatesOff: number, dLogitsOff: number,
    dxOff: number, dwOff: number, N: number, H: number, E: number): void;
  setThreads(n: number): void;
  /** Routes every product to one of info().gemmLibraries; throws for one the build lacks. */
  setGemm(name: GemmLibrary): void;
  info(): { coreName: string; config: string; threads: number; gemm: GemmLibrary; gemmLibraries: GemmLibrary[]; onednnVersion: string | null };
}

/** Where the addon's matrix products run: oneDNN (when built with it, the default) or OpenBLAS. */
export type GemmLibrary = 'onednn' | 'openblas';

export interface BlasStatus {
  addon: BlasAddon | null;
  /** Where the addon was loaded from, or null. */
  path: string | null;
  /** Why the addon is unavailable; null when loaded. */
  reason: string | null;
  /** OPENBLAS_CORETYPE in force when the library loaded (null: OpenBLAS's own detection). */
  coreType: string | null;
  /** The library running the products, with its version or kernel set, e.g. "onednn 2.6.3"; null when not loaded. */
  gemm: string | null;
}

const require = createRequire(import.meta.url);
const ADDON_RELATIVE = path.join('node_modules', '.cache', 'vmoe-blas', 'build', 'Release', 'vmoe_blas.node');

/**
 * Where native/build.mjs put the addon: the nearest <dir>/node_modules/.cache/vmoe-blas
 * above this file (as Node resolves packages, so compiled copies elsewhere in the
 * tree find it too); if none exists, where the package root would have it.
 */
export function defaultAddonPath(start = path.dirname(fileURLToPath(import.meta.url))): string {
  let rootGuess: string | null = null;
  for (let dir = start; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, ADDON_RELATIVE);
    if (fs.existsSync(candidate)) return candidate;
    if (!rootGuess && fs.existsSync(path.join(dir, 'package.json'))) rootGuess = dir;
    if (path.dirname(dir) === dir) return path.join(rootGuess ?? path.resolve(start, '..', '..'), ADDON_RELATIVE);
  }
}


function cpuFlags(): Set<string> {
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('flags'));
    return new Set(line ? line.split(':')[1]!.trim().split(/\s+/) : []);
  } catch {
    return new Set();
  }
}

/**
 * The core type to force, if any. Debian's OpenBLAS 0.3.21 does not know newer
 * CPUs (e.g. AMD Zen 4) and falls back to SSE3 kernels, ~5× slower; we force
 * the AVX-512 (SkylakeX) or AVX2 (Haswell) kernels when the CPU has them.
 * A user's OPENBLAS_CORETYPE always wins; VMOE_BLAS_CORETYPE=auto|none|<name>
 * overrides our choice (none: let OpenBLAS detect).
 */
export function chooseCoreType(env: NodeJS.ProcessEnv, flags: Set<string>): string | null {
  if (env.OPENBLAS_CORETYPE) return env.OPENBLAS_CORETYPE;
  const want = env.VMOE_BLAS_CORETYPE ?? 'auto';
  if (want === 'none') return null;
  if (want !== 'auto') return want;
  if (flags.has('avx512f') && flags.has('avx512bw') && flags.has('avx512dq') && flags.has('avx512vl')) return 'SkylakeX';
  if (flags.has('avx2') && flags.has('fma')) return 'Haswell';
  return null;
}

/** Naive double-precision reference for the self-check: row-major op(A)·op(B). */
function referenceGemm(a: Float32Array, b: Float32Array, M: number, N: number, K: number, ta: boolean, tb: boolean): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[ta ? k * M + i : i * K + k]! * b[tb ? j * K + k : k * N + j]!;
      c[i * N + j] = s;
    }
  }
  return c;
}

/**
 * Runs sgemm on odd shapes with every transpose combination (sizes large
 * enough to reach the vectorised kernels) and compares with the reference: a
 * wrongly forced core type shows up here instead of as silently wrong models.
 */
export function selfCheck(addon: BlasAddon): string | null {
  const M = 37, N = 45, K = 67;
  const heap = new Float32Array(2 * M * K + 2 * K * N + M * N + N);
  for (let i = 0; i < heap.length; i++) heap[i] = Math.sin(0.37 * i + 1) * 0.5;
  const aOff = 0, bOff = M * K, cOff = M * K + K * N;
  for (const ta of [false, true]) {
    for (const tb of [false, true]) {
      addon.sgemm(heap, ta, tb, M, N, K, 1, aOff, 0, bOff, 0, cOff, 0, -1, 0, false);
      const ref = referenceGemm(heap.subarray(aOff, aOff + M * K), heap.subarray(bOff, bOff + K * N), M, N, K, ta, tb);
      for (let i = 0; i < M * N; i++) {
        if (Math.abs(heap[cOff + i]! - ref[i]!) > 1e-4 * (1 + Math.abs(ref[i]!))) {
          return `sgemm self-check failed (transA=${ta}, transB=${tb}, element ${i}: ${heap[cOff + i]} vs ${ref[i]})`;
        }
      }
    }
  }
  return null;
}

/** Every entry point this code calls; an addon built from older sources lacks some. */
const ADDON_FUNCTIONS = [
  'setGemm', 'normals', 'planTopK', 'routerAux', 'routerGates', 'routerGatesGrad', 'expertDense', 'expertDenseGrad', 'sgemm', 'sgemmOffsets', 'copyStrided', 'tanh', 'gelu', 'geluGrad', 'layerNorm', 'layerNormGrad', 'softmax', 'softmaxGrad',
  'attention', 'attentionGrad', 'adam', 'sumOfSquares', 'reduceMiddle', 'combineRows', 'combineRowsGrad', 'setThreads', 'info',
] as const satisfies readonly (keyof BlasAddon)[];

/**
 * Why `addon` cannot be used, or null: entry points missing or a throwing
 * self-check (a stale build from older sources), or wrong products (then the
 * forced core type, if any, is the likely cause).
 */
export function checkAddon(addon: BlasAddon, coreType: string | null = null): string | null {
  const missing = ADDON_FUNCTIONS.filter((name) => typeof (addon as unknown as Record<string, unknown>)[name] !== 'function');
  const rebuild = 'rebuild it: npm run build:native';
  if (missing.length) return `addon is older than this code (it has no ${missing.join(', ')}); ${rebuild}`;
  let bad: string | null;
  try {
    bad = selfCheck(addon);
  } catch (e) {
    return `addon self-check threw (${(e as Error).message}); ${rebuild}`;
  }
  return bad && coreType ? `${bad} with OPENBLAS_CORETYPE=${coreType}; try VMOE_BLAS_CORETYPE=none` : bad;
}

let status: BlasStatus | null = null;

/**
 * Loads the addon once per process (VMOE_BLAS_ADDON names another file;
 * VMOE_BLAS=0 disables it). Sets OPENBLAS_CORETYPE first: OpenBLAS reads it
 * once, when the library loads together with the addon.
 */
export function loadBlasAddon(): BlasStatus {
  if (status) return status;
  const file = process.env.VMOE_BLAS_ADDON || defaultAddonPath();
  const coreType = chooseCoreType(process.env, cpuFlags());
  const fail = (reason: string): BlasStatus => (status = { addon: null, path: null, reason, coreType, gemm: null });
  if (process.env.VMOE_BLAS === '0') return fail('disabled by VMOE_BLAS=0');
  if (!fs.existsSync(file)) return fail(`addon not built (${file} missing; run: npm run build:native)`);
  if (coreType && !process.env.OPENBLAS_CORETYPE) process.env.OPENBLAS_CORETYPE = coreType;
  let addon: BlasAddon;
  try {
    addon = require(file) as BlasAddon;
  } catch (e) {
    return fail(`addon failed to load: ${(e as Error).message.split('\n')[0]}`);
  }
  let gemm: string;
  try {
    gemm = chooseGemm(addon, process.env.VMOE_GEMM);
  } catch (e) {
    return fail((e as Error).message);
  }
  const bad = checkAddon(addon, coreType);
  if (bad) return fail(bad);
  return (status = { addon, path: file, reason: null, coreType, gemm });
}

/**
 * Routes the addon's products to `want` (VMOE_GEMM: onednn | openblas), else to the
 * first library the build has (oneDNN when linked). Returns its description.
 */
export function chooseGemm(addon: BlasAddon, want: string | undefined): string {
  const { gemmLibraries } = addon.info();
  if (want && !gemmLibraries.includes(want as GemmLibrary)) {
    const hint = want === 'onednn' ? 'unset it, or install libdnnl-dev and run npm run build:native' : 'unset it or choose one of those';
    throw new Error(`VMOE_GEMM=${want}, but this addon has only ${gemmLibraries.join(', ')} (${hint})`);
  }
  addon.setGemm((want as GemmLibrary | undefined) ?? gemmLibraries[0]!);
  const info = addon.info();
  return info.gemm === 'onednn' ? `onednn ${info.onednnVersion}` : `openblas ${info.coreName}`;
}

/** The slice of tfjs-backend-wasm's BackendWasm used here. */
interface WasmBackendLike extends tf.KernelBackend {
  wasm: { HEAPU8: Uint8Array; wasmMemory?: { buffer: ArrayBufferLike } };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  incRef(dataId: object): void;
}

let heapView: Float32Array | null = null;
/** A Float32Array over the whole wasm memory; re-made after the memory grows. */
function heapF32(backend: WasmBackendLike): Float32Array {
  const buffer = backend.wasm.wasmMemory?.buffer ?? backend.wasm.HEAPU8.buffer;
  if (!heapView || heapView.buffer !== buffer) heapView = new Float32Array(buffer);
  return heapView;
}

function floatOffset(backend: WasmBackendLike, t: tf.TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (!data) throw new Error('wasm-blas: tensor data not on the wasm backend');
  return data.memoryOffset / 4; // malloc aligns to 8 bytes or more
}

/** Per-product float offsets for batch dims that broadcast in no single-stride pattern. */
function broadcastOffsets(outBatch: number[], aBatch: number[], bBatch: number[], aBase: number, bBase: number, cBase: number,
  aSize: number, bSize: number, cSize: number): Int32Array {
  const rank = outBatch.length;
  const pad = (s: number[]) => [...new Array<number>(rank - s.length).fill(1), ...s];
  const aDims = pad(aBatch), bDims = pad(bBatch);
  const total = outBatch.reduce((p, d) => p * d, 1);
  const offsets = new Int32Array(3 * total);
  const idx = new Array<number>(rank).fill(0);
  for (let n = 0; n < total; n++) {
    let ai = 0, bi = 0;
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
  const ar = a.shape.length, br = b.shape.length;
  if (ar < 2 || br < 2) return null;
  const M = transposeA ? a.shape[ar - 1]! : a.shape[ar - 2]!;
  const Ka = transposeA ? a.shape[ar - 2]! : a.shape[ar - 1]!;
  const Kb = transposeB ? b.shape[br - 1]! : b.shape[br - 2]!;
  const N = transposeB ? b.shape[br - 2]! : b.shape[br - 1]!;
  if (Ka !== Kb) return null;
  const K = Ka;
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  let outBatch: number[];
  try {
    outBatch = tf.broadcast_util.assertAndGetBroadcastShape(aBatch, bBatch);
  } catch {
    return null;
  }
  const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
  const batchA = size(aBatch), batchB = size(bBatch), batch = size(outBatch);
  const strided = (batchA === batch || batchA === 1) && (batchB === batch || batchB === 1);
  if (!strided && (m.bias || m.relu)) return null;
  let biasStride = 0;
  if (m.bias) {
    const bs = m.bias.shape;
    const perProduct = bs.length === outBatch.length + 2 && bs[bs.length - 2] === 1 && outBatch.every((d, i) => bs[i] === d);
    if (perProduct && batch > 1) biasStride = N;
    else if (tf.util.sizeFromShape(bs) !== N || bs[bs.length - 1] !== N || bs.length > outBatch.length + 2) return null;
  }
  const out = backend.makeOutput([...outBatch, M, N], 'float32');
  if (batch * M * N === 0) return out;
  // Views only after makeOutput: allocating can grow (and so replace) the wasm memory.
  const heap = heapF32(backend);
  const aOff = floatOffset(backend, a), bOff = floatOffset(backend, b), cOff = floatOffset(backend, out);
  const biasOff = m.bias ? floatOffset(backend, m.bias) : -1;
  if (strided) {
    addon.sgemm(heap, transposeA, transposeB, M, N, K, batch,
      aOff, batchA === 1 ? 0 : M * K, bOff, batchB === 1 ? 0 : K * N, cOff, M * N, biasOff, biasStride, m.relu === true);
  } else {
    addon.sgemmOffsets(heap, transposeA, transposeB, M, N, K,
      broadcastOffsets(outBatch, aBatch, bBatch, aOff, bOff, cOff, M * K, K * N, M * N));
  }
  return out;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };

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
    const { transposeA, transposeB, activation } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean; activation: string };
    if (a && b && a.dtype === 'float32' && b.dtype === 'float32' && preluActivationWeights == null && (bias == null || bias.dtype === 'float32') &&
      (activation === 'linear' || activation === 'relu')) {
      const out = nativeMatMul(addon, args.backend as WasmBackendLike, { a, b, transposeA, transposeB, bias: bias ?? null, relu: activation === 'relu' });
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
function copyBlock(addon: BlasAddon, backend: WasmBackendLike, x: tf.TensorInfo, begin: number[], size: number[], outShape: number[]): tf.TensorInfo {
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
    const [b, sz] = tf.slice_util.parseSliceParams(x as tf.TensorInfo as tf.Tensor, begin, size);
    return copyBlock(addon, args.backend as WasmBackendLike, x, b, sz, sz);
  }) as tf.KernelFunc;
}

/** SplitV (the gradient of concat) as one native copy per piece; the wasm kernel copies the whole input per piece. */
function splitKernel(addon: BlasAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number | number[] };
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
    const first = axes[0]!, last = axes[axes.length - 1]!;
    const outer = tf.util.sizeFromShape(x.shape.slice(0, first));
    const mid = tf.util.sizeFromShape(x.shape.slice(first, last + 1));
    const inner = tf.util.sizeFromShape(x.shape.slice(last + 1));
    const [reduced] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
    const outShape = keepDims ? tf.backend_util.expandShapeToKeepDim(reduced, axes) : reduced;
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(outShape, 'float32');
    addon.reduceMiddle(heapF32(backend), floatOffset(backend, x), floatOffset(backend, out), outer, mid, inner, mean ? 1 / mid : 1);
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

function requireFloat32(kernel: string, tensors: Record<string, tf.TensorInfo | undefined>): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) throw new Error(`${kernel}: input ${name} is missing`);
    if (t.dtype !== 'float32') throw new Error(`${kernel}: input ${name} must be float32, got ${t.dtype}`);
  }
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

type UnaryRun = (heap: Float32Array, srcOff: number, dstOff: number, n: number) => void;
type UnaryGradRun = (heap: Float32Array, dyOff: number, xOff: number, dxOff: number, n: number) => void;

/** An elementwise float32 kernel {x} → y of x's shape. */
function unaryKernel(name: string, run: UnaryRun): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    requireFloat32(name, { x });
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) run(heapF32(backend), floatOffset(backend, x), floatOffset(backend, out), n);
    return out;
  }) as tf.KernelFunc;
}

/** The gradient of an elementwise kernel: {dy, x} → dx of x's shape. */
function unaryGradKernel(name: string, run: UnaryGradRun): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, x } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
    requireFloat32(name, { dy, x });
    if (!sameShape(dy.shape, x.shape)) throw new Error(`${name}: dy [${dy.shape}] and x [${x.shape}] differ in shape`);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) run(heapF32(backend), floatOffset(backend, dy), floatOffset(backend, x), floatOffset(backend, out), n);
    return out;
  }) as tf.KernelFunc;
}

/** (rows, cols) of a tensor taken over its last axis; cols ≥ 1. */
function lastAxisDims(kernel: string, x: tf.TensorInfo): { rows: number; cols: number } {
  const cols = x.shape[x.shape.length - 1];
  if (cols === undefined || cols < 1) throw new Error(`${kernel}: [${x.shape}] needs a non-empty last axis`);
  return { rows: tf.util.sizeFromShape(x.shape) / cols, cols };
}

/** (rows, cols) of a LayerNorm input whose last axis is normalised, after checking the per-column vectors. */
function layerNormDims(kernel: string, x: tf.TensorInfo, vectors: Record<string, tf.TensorInfo>): { rows: number; cols: number } {
  const dims = lastAxisDims(kernel, x);
  for (const [name, v] of Object.entries(vectors)) {
    if (!sameShape(v.shape, [dims.cols])) throw new Error(`${kernel}: ${name} [${v.shape}] must have shape [${dims.cols}]`);
  }
  return dims;
}

function epsilonAttr(kernel: string, attrs: tf.NamedAttrMap | undefined): number {
  const eps = (attrs as { epsilon?: unknown } | undefined)?.epsilon;
  if (typeof eps !== 'number' || !(eps >= 0)) throw new Error(`${kernel}: attribute epsilon must be a number >= 0`);
  return eps;
}

function layerNormKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, scale, bias } = args.inputs as { x: tf.TensorInfo; scale: tf.TensorInfo; bias: tf.TensorInfo };
    requireFloat32(VMOE_LAYER_NORM, { x, scale, bias });
    const { rows, cols } = layerNormDims(VMOE_LAYER_NORM, x, { scale, bias });
    const eps = epsilonAttr(VMOE_LAYER_NORM, args.attrs);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(x.shape, 'float32');
    if (rows > 0) {
      addon.layerNorm(heapF32(backend), floatOffset(backend, x), floatOffset(backend, scale), floatOffset(backend, bias),
        floatOffset(backend, out), rows, cols, eps);
    }
    return out;
  }) as tf.KernelFunc;
}

function layerNormGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, x, scale } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; scale: tf.TensorInfo };
    requireFloat32(VMOE_LAYER_NORM_GRAD, { dy, x, scale });
    if (!sameShape(dy.shape, x.shape)) throw new Error(`${VMOE_LAYER_NORM_GRAD}: dy [${dy.shape}] and x [${x.shape}] differ in shape`);
    const { rows, cols } = layerNormDims(VMOE_LAYER_NORM_GRAD, x, { scale });
    const eps = epsilonAttr(VMOE_LAYER_NORM_GRAD, args.attrs);
    const backend = args.backend as WasmBackendLike;
    const dx = backend.makeOutput(x.shape, 'float32');
    const dscale = backend.makeOutput([cols], 'float32');
    const dbias = backend.makeOutput([cols], 'float32');
    // rows = 0 still writes the (zero) column sums.
    addon.layerNormGrad(heapF32(backend), floatOffset(backend, dy), floatOffset(backend, x), floatOffset(backend, scale),
      floatOffset(backend, dx), floatOffset(backend, dscale), floatOffset(backend, dbias), rows, cols, eps);
    return [dx, dscale, dbias];
  }) as tf.KernelFunc;
}

function softmaxKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    requireFloat32(VMOE_SOFTMAX, { x });
    const { rows, cols } = lastAxisDims(VMOE_SOFTMAX, x);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(x.shape, 'float32');
    if (rows > 0) addon.softmax(heapF32(backend), floatOffset(backend, x), floatOffset(backend, out), rows, cols);
    return out;
  }) as tf.KernelFunc;
}

function softmaxGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, y } = args.inputs as { dy: tf.TensorInfo; y: tf.TensorInfo };
    requireFloat32(VMOE_SOFTMAX_GRAD, { dy, y });
    if (!sameShape(dy.shape, y.shape)) throw new Error(`${VMOE_SOFTMAX_GRAD}: dy [${dy.shape}] and y [${y.shape}] differ in shape`);
    const { rows, cols } = lastAxisDims(VMOE_SOFTMAX_GRAD, y);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(y.shape, 'float32');
    if (rows > 0) addon.softmaxGrad(heapF32(backend), floatOffset(backend, dy), floatOffset(backend, y), floatOffset(backend, out), rows, cols);
    return out;
  }) as tf.KernelFunc;
}

/** (B, T, heads, hd) of an attention call from qkv (B·T, 3H) and the attributes, checked. */
function attentionDims(kernel: string, qkv: tf.TensorInfo, attrs: tf.NamedAttrMap | undefined) {
  const batch = countAttr(kernel, attrs, 'batch'), heads = countAttr(kernel, attrs, 'heads');
  const scale = numberAttr(kernel, attrs, 'scale');
  const [rows, width] = qkv.shape as [number, number];
  if (qkv.shape.length !== 2 || heads < 1 || batch < 1 || rows % batch !== 0 || width % (3 * heads) !== 0 || rows === 0 || width === 0) {
    throw new Error(`${kernel}: qkv [${qkv.shape}] must be (batch·T, 3·heads·hd) with batch ${batch}, heads ${heads}`);
  }
  return { batch, T: rows / batch, heads, hd: width / (3 * heads), scale };
}

function attentionKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { qkv } = args.inputs as { qkv: tf.TensorInfo };
    requireFloat32(VMOE_ATTENTION, { qkv });
    const { batch, T, heads, hd, scale } = attentionDims(VMOE_ATTENTION, qkv, args.attrs);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([batch * T, heads * hd], 'float32');
    const probs = backend.makeOutput([batch * heads, T, T], 'float32');
    addon.attention(heapF32(backend), floatOffset(backend, qkv), floatOffset(backend, out), floatOffset(backend, probs), batch, T, heads, hd, scale);
    return [out, probs];
  }) as tf.KernelFunc;
}

function attentionGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, qkv, probs } = args.inputs as Record<'dy' | 'qkv' | 'probs', tf.TensorInfo>;
    requireFloat32(VMOE_ATTENTION_GRAD, { dy, qkv, probs });
    const { batch, T, heads, hd, scale } = attentionDims(VMOE_ATTENTION_GRAD, qkv, args.attrs);
    if (!sameShape(dy.shape, [batch * T, heads * hd]) || !sameShape(probs.shape, [batch * heads, T, T])) {
      throw new Error(`${VMOE_ATTENTION_GRAD}: dy [${dy.shape}] or probs [${probs.shape}] do not fit qkv [${qkv.shape}]`);
    }
    const backend = args.backend as WasmBackendLike;
    const dqkv = backend.makeOutput(qkv.shape, 'float32');
    addon.attentionGrad(heapF32(backend), floatOffset(backend, dy), floatOffset(backend, qkv), floatOffset(backend, probs),
      floatOffset(backend, dqkv), batch, T, heads, hd, scale);
    return dqkv;
  }) as tf.KernelFunc;
}

function numberAttr(kernel: string, attrs: tf.NamedAttrMap | undefined, name: string): number {
  const v = (attrs as Record<string, unknown> | undefined)?.[name];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${kernel}: attribute ${name} must be a finite number`);
  return v;
}

function adamKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { param, m, v, grad } = args.inputs as Record<'param' | 'm' | 'v' | 'grad', tf.TensorInfo>;
    requireFloat32(VMOE_ADAM, { param, m, v, grad });
    for (const [name, t] of Object.entries({ m, v, grad })) {
      if (!sameShape(t.shape, param.shape)) throw new Error(`${VMOE_ADAM}: ${name} [${t.shape}] and param [${param.shape}] differ in shape`);
    }
    const at = (name: string) => numberAttr(VMOE_ADAM, args.attrs, name);
    const beta1 = at('beta1'), beta2 = at('beta2');
    // The composed form's scalars, computed in double as it computes them.
    const coefficients = Float64Array.of(beta1, 1 - beta1, beta2, 1 - beta2, at('stepSize'), at('biasCorrection2'), at('epsilon'),
      at('weightDecayStep'), at('gradScale'));
    const backend = args.backend as WasmBackendLike;
    const outs = [param, m, v].map((t) => backend.makeOutput(t.shape, 'float32'));
    const n = tf.util.sizeFromShape(param.shape);
    if (n > 0) {
      const [pOut, mOut, vOut] = outs.map((t) => floatOffset(backend, t));
      addon.adam(heapF32(backend), floatOffset(backend, param), floatOffset(backend, m), floatOffset(backend, v), floatOffset(backend, grad),
        pOut!, mOut!, vOut!, n, coefficients);
    }
    return outs;
  }) as tf.KernelFunc;
}

function sumOfSquaresKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const tensors = Object.values(args.inputs) as tf.TensorInfo[];
    requireFloat32(VMOE_SUM_OF_SQUARES, Object.fromEntries(tensors.map((t, i) => [String(i), t])));
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([], 'float32');
    const nonEmpty = tensors.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
    const total = addon.sumOfSquares(heapF32(backend), Float64Array.from(nonEmpty, (t) => floatOffset(backend, t)),
      Float64Array.from(nonEmpty, (t) => tf.util.sizeFromShape(t.shape)));
    heapF32(backend)[floatOffset(backend, out)] = total;
    return out;
  }) as tf.KernelFunc;
}

/** (M, H) rows and M int32 indices, checked. */
function rowsAndIndices(kernel: string, x: tf.TensorInfo, indices: Record<string, tf.TensorInfo>): { m: number; h: number } {
  requireFloat32(kernel, { x });
  if (x.shape.length !== 2) throw new Error(`${kernel}: x [${x.shape}] must be 2-D (rows, width)`);
  const [m, h] = x.shape as [number, number];
  for (const [name, t] of Object.entries(indices)) {
    if (t.dtype !== 'int32' || !sameShape(t.shape, [m])) throw new Error(`${kernel}: ${name} must be int32 of shape [${m}], got ${t.dtype} [${t.shape}]`);
  }
  return { m, h };
}

function countAttr(kernel: string, attrs: tf.NamedAttrMap | undefined, name: string): number {
  const v = numberAttr(kernel, attrs, name);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${kernel}: attribute ${name} must be an integer >= 0`);
  return v;
}

function combineRowsKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, gates, tokens, gateIndex } = args.inputs as Record<'x' | 'gates' | 'tokens' | 'gateIndex', tf.TensorInfo>;
    const { m, h } = rowsAndIndices(VMOE_COMBINE_ROWS, x, { tokens, gateIndex });
    requireFloat32(VMOE_COMBINE_ROWS, { gates });
    const numTokens = countAttr(VMOE_COMBINE_ROWS, args.attrs, 'numTokens');
    const backend = args.backend as WasmBackendLike;
    const y = backend.makeOutput([numTokens, h], 'float32');
    if (numTokens * h > 0) {
      addon.combineRows(heapF32(backend), floatOffset(backend, x), floatOffset(backend, gates), floatOffset(backend, tokens),
        floatOffset(backend, gateIndex), floatOffset(backend, y), numTokens, tf.util.sizeFromShape(gates.shape), m, h);
    }
    return y;
  }) as tf.KernelFunc;
}

function combineRowsGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, x, gates, tokens, gateIndex } = args.inputs as Record<'dy' | 'x' | 'gates' | 'tokens' | 'gateIndex', tf.TensorInfo>;
    const { m, h } = rowsAndIndices(VMOE_COMBINE_ROWS_GRAD, x, { tokens, gateIndex });
    requireFloat32(VMOE_COMBINE_ROWS_GRAD, { dy, gates });
    if (dy.shape.length !== 2 || dy.shape[1] !== h) throw new Error(`${VMOE_COMBINE_ROWS_GRAD}: dy [${dy.shape}] must be (tokens, ${h})`);
    const backend = args.backend as WasmBackendLike;
    const dx = backend.makeOutput([m, h], 'float32');
    const dgates = backend.makeOutput(gates.shape, 'float32');
    addon.combineRowsGrad(heapF32(backend), floatOffset(backend, dy), floatOffset(backend, x), floatOffset(backend, gates),
      floatOffset(backend, tokens), floatOffset(backend, gateIndex), floatOffset(backend, dx), floatOffset(backend, dgates),
      dy.shape[0]!, tf.util.sizeFromShape(gates.shape), m, h);
    return [dx, dgates];
  }) as tf.KernelFunc;
}

/**
 * (E, R, I, O, N) of an expert product from w (E, I, O), rows (E) int32 and x, checked: x is
 * (E, R, I), or with tokens ((E·R) int32) the (N, I) token matrix and R = tokens / E.
 */
function expertDims(kernel: string, x: tf.TensorInfo, w: tf.TensorInfo, rows: tf.TensorInfo, tokens: tf.TensorInfo | undefined) {
  requireFloat32(kernel, { x, w });
  const [E, I, O] = w.shape as [number, number, number];
  const R = tokens ? (E > 0 ? tokens.shape[0]! / E : 0) : x.shape[1]!;
  const N = tokens ? x.shape[0]! : 0;
  const xOk = tokens
    ? x.shape.length === 2 && x.shape[1] === I && tokens.dtype === 'int32' && tokens.shape.length === 1 && Number.isInteger(R)
    : sameShape(x.shape, [E, R, I]);
  if (w.shape.length !== 3 || !xOk || rows.dtype !== 'int32' || !sameShape(rows.shape, [E])) {
    throw new Error(`${kernel}: x [${x.shape}], w [${w.shape}] and rows (${rows.dtype} [${rows.shape}]) must be (E, R, I) (or (N, I) with int32 tokens of E·R), (E, I, O) and int32 (E)`);
  }
  return { E, R, I, O, N };
}

function expertDenseKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, w, b, rows, tokens } = args.inputs as Record<'x' | 'w' | 'b' | 'rows' | 'tokens', tf.TensorInfo | undefined>;
    const { E, R, I, O, N } = expertDims(VMOE_EXPERT_DENSE, x!, w!, rows!, tokens);
    if (b) {
      requireFloat32(VMOE_EXPERT_DENSE, { b });
      if (!sameShape(b.shape, [E, O])) throw new Error(`${VMOE_EXPERT_DENSE}: b [${b.shape}] must be (${E}, ${O})`);
    }
    const backend = args.backend as WasmBackendLike;
    const y = backend.makeOutput([E, R, O], 'float32');
    addon.expertDense(heapF32(backend), floatOffset(backend, x!), floatOffset(backend, w!), b ? floatOffset(backend, b) : -1,
      floatOffset(backend, rows!), tokens ? floatOffset(backend, tokens) : -1, floatOffset(backend, y), E, R, I, O, N);
    return y;
  }) as tf.KernelFunc;
}

function expertDenseGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, x, w, rows, tokens } = args.inputs as Record<'dy' | 'x' | 'w' | 'rows' | 'tokens', tf.TensorInfo | undefined>;
    const { E, R, I, O, N } = expertDims(VMOE_EXPERT_DENSE_GRAD, x!, w!, rows!, tokens);
    requireFloat32(VMOE_EXPERT_DENSE_GRAD, { dy: dy! });
    if (!sameShape(dy!.shape, [E, R, O])) throw new Error(`${VMOE_EXPERT_DENSE_GRAD}: dy [${dy!.shape}] must be (${E}, ${R}, ${O})`);
    const bias = (args.attrs as { bias?: unknown }).bias === true;
    const backend = args.backend as WasmBackendLike;
    const dx = backend.makeOutput(x!.shape, 'float32');
    const dw = backend.makeOutput([E, I, O], 'float32');
    const db = bias ? backend.makeOutput([E, O], 'float32') : null;
    addon.expertDenseGrad(heapF32(backend), floatOffset(backend, dy!), floatOffset(backend, x!), floatOffset(backend, w!), floatOffset(backend, rows!),
      tokens ? floatOffset(backend, tokens) : -1, floatOffset(backend, dx), floatOffset(backend, dw), db ? floatOffset(backend, db) : -1, E, R, I, O, N);
    return db ? [dx, dw, db] : [dx, dw];
  }) as tf.KernelFunc;
}

function routerAuxKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { logits, noise, kth } = args.inputs as Record<'logits' | 'noise' | 'kth', tf.TensorInfo | undefined>;
    requireFloat32(VMOE_ROUTER_AUX, { logits, ...(noise ? { noise } : {}) });
    const [N, E] = logits!.shape as [number, number];
    if (logits!.shape.length !== 2 || (noise && !sameShape(noise.shape, [N, E]))) {
      throw new Error(`${VMOE_ROUTER_AUX}: logits and noise must both be (N, E); got [${logits!.shape}], [${noise?.shape}]`);
    }
    if (!noise !== !kth || (kth && (kth.dtype !== 'int32' || !sameShape(kth.shape, [N])))) {
      throw new Error(`${VMOE_ROUTER_AUX}: noise and kth come together, kth int32 of shape [${N}]`);
    }
    const sizes = (args.attrs as { groupSizes?: unknown }).groupSizes;
    if (!Array.isArray(sizes) || !sizes.every((v) => Number.isInteger(v) && v > 0)) {
      throw new Error(`${VMOE_ROUTER_AUX}: attribute groupSizes must be an array of positive integers`);
    }
    const backend = args.backend as WasmBackendLike;
    const dLogits = backend.makeOutput([N, E], 'float32');
    const losses = backend.makeOutput([3], 'float32');
    const off = (t: tf.TensorInfo | undefined) => (t ? floatOffset(backend, t) : -1);
    addon.routerAux(heapF32(backend), off(logits), off(noise), off(kth), off(dLogits), off(losses), N, E,
      countAttr(VMOE_ROUTER_AUX, args.attrs, 'members'), numberAttr(VMOE_ROUTER_AUX, args.attrs, 'sigma'),
      numberAttr(VMOE_ROUTER_AUX, args.attrs, 'importanceWeight'), numberAttr(VMOE_ROUTER_AUX, args.attrs, 'loadWeight'),
      Float64Array.from(sizes as number[]));
    return [dLogits, losses];
  }) as tf.KernelFunc;
}

/** (N, H, E) of a router call from x (N, H) and w (H, E), checked; `also` must all be (N, E). */
function routerDims(kernel: string, x: tf.TensorInfo, w: tf.TensorInfo, also: Record<string, tf.TensorInfo | undefined>) {
  const present = Object.fromEntries(Object.entries(also).filter(([, t]) => t !== undefined)) as Record<string, tf.TensorInfo>;
  requireFloat32(kernel, { x, w, ...present });
  const [N, H] = x.shape as [number, number];
  const E = w.shape[1]!;
  if (x.shape.length !== 2 || !sameShape(w.shape, [H, E]) || E < 1 || H < 1) {
    throw new Error(`${kernel}: x [${x.shape}] and w [${w.shape}] must be (N, H) and (H, E)`);
  }
  for (const [name, t] of Object.entries(present)) {
    if (!sameShape(t.shape, [N, E])) throw new Error(`${kernel}: ${name} [${t.shape}] must be (${N}, ${E})`);
  }
  return { N, H, E };
}

function routerGatesKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, w, noise } = args.inputs as Record<'x' | 'w' | 'noise', tf.TensorInfo | undefined>;
    const { N, H, E } = routerDims(VMOE_ROUTER_GATES, x!, w!, { noise });
    const members = countAttr(VMOE_ROUTER_GATES, args.attrs, 'members');
    if (!(members >= 1) || E % members !== 0) throw new Error(`${VMOE_ROUTER_GATES}: ${E} experts do not split into ${members} members`);
    const backend = args.backend as WasmBackendLike;
    const logits = backend.makeOutput([N, E], 'float32');
    const gates = backend.makeOutput([N, E], 'float32');
    addon.routerGates(heapF32(backend), floatOffset(backend, x!), floatOffset(backend, w!), noise ? floatOffset(backend, noise) : -1,
      floatOffset(backend, logits), floatOffset(backend, gates), N, H, E, members);
    return [logits, gates];
  }) as tf.KernelFunc;
}

function routerGatesGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, w, gates, dGates, dLogits } = args.inputs as Record<'x' | 'w' | 'gates' | 'dGates' | 'dLogits', tf.TensorInfo | undefined>;
    if (!gates || !dGates) throw new Error(`${VMOE_ROUTER_GATES_GRAD}: needs gates and dGates`);
    const { N, H, E } = routerDims(VMOE_ROUTER_GATES_GRAD, x!, w!, { gates, dGates, dLogits });
    const backend = args.backend as WasmBackendLike;
    const dx = backend.makeOutput([N, H], 'float32');
    const dw = backend.makeOutput([H, E], 'float32');
    addon.routerGatesGrad(heapF32(backend), floatOffset(backend, x!), floatOffset(backend, w!), floatOffset(backend, gates),
      floatOffset(backend, dGates), dLogits ? floatOffset(backend, dLogits) : -1, floatOffset(backend, dx), floatOffset(backend, dw), N, H, E);
    return [dx, dw];
  }) as tf.KernelFunc;
}

/** Kernels the wasm backend does not have, registered for this backend only. */
function fusedKernels(addon: BlasAddon): tf.KernelConfig[] {
  return [
    { kernelName: VMOE_GELU, backendName: WASM_BLAS, kernelFunc: unaryKernel(VMOE_GELU, addon.gelu) },
    { kernelName: VMOE_GELU_GRAD, backendName: WASM_BLAS, kernelFunc: unaryGradKernel(VMOE_GELU_GRAD, addon.geluGrad) },
    { kernelName: VMOE_LAYER_NORM, backendName: WASM_BLAS, kernelFunc: layerNormKernel(addon) },
    { kernelName: VMOE_LAYER_NORM_GRAD, backendName: WASM_BLAS, kernelFunc: layerNormGradKernel(addon) },
    { kernelName: VMOE_SOFTMAX, backendName: WASM_BLAS, kernelFunc: softmaxKernel(addon) },
    { kernelName: VMOE_SOFTMAX_GRAD, backendName: WASM_BLAS, kernelFunc: softmaxGradKernel(addon) },
    { kernelName: VMOE_ATTENTION, backendName: WASM_BLAS, kernelFunc: attentionKernel(addon) },
    { kernelName: VMOE_ATTENTION_GRAD, backendName: WASM_BLAS, kernelFunc: attentionGradKernel(addon) },
    { kernelName: VMOE_ADAM, backendName: WASM_BLAS, kernelFunc: adamKernel(addon) },
    { kernelName: VMOE_SUM_OF_SQUARES, backendName: WASM_BLAS, kernelFunc: sumOfSquaresKernel(addon) },
    { kernelName: VMOE_COMBINE_ROWS, backendName: WASM_BLAS, kernelFunc: combineRowsKernel(addon) },
    { kernelName: VMOE_COMBINE_ROWS_GRAD, backendName: WASM_BLAS, kernelFunc: combineRowsGradKernel(addon) },
    { kernelName: VMOE_ROUTER_AUX, backendName: WASM_BLAS, kernelFunc: routerAuxKernel(addon) },
    { kernelName: VMOE_ROUTER_GATES, backendName: WASM_BLAS, kernelFunc: routerGatesKernel(addon) },
    { kernelName: VMOE_ROUTER_GATES_GRAD, backendName: WASM_BLAS, kernelFunc: routerGatesGradKernel(addon) },
    { kernelName: VMOE_EXPERT_DENSE, backendName: WASM_BLAS, kernelFunc: expertDenseKernel(addon) },
    { kernelName: VMOE_EXPERT_DENSE_GRAD, backendName: WASM_BLAS, kernelFunc: expertDenseGradKernel(addon) },
  ];
}

/** The wasm kernels this backend replaces, by kernel name. */
function replacement(addon: BlasAddon, name: string, original: tf.KernelFunc): tf.KernelFunc {
  switch (name) {
    case tf.BatchMatMul: return batchMatMulKernel(addon, original);
    case tf._FusedMatMul: return fusedMatMulKernel(addon, original);
    case tf.Identity: return shareKernel(original, () => true);
    case tf.Cast: return shareKernel(original, (a) => (a.attrs as { dtype?: string }).dtype === (a.inputs.x as tf.TensorInfo).dtype);
    case tf.Slice: return sliceKernel(addon, original);
    case tf.SplitV: return splitKernel(addon, original);
    case tf.Unpack: return unpackKernel(addon, original);
    case tf.Sum: return reduceKernel(addon, original, false);
    case tf.Mean: return reduceKernel(addon, original, true);
    case tf.Tanh: return tanhKernel(addon, original);
    default: return original;
  }
}

let registered = false;
let registeredAddon: BlasAddon | null = null;

/** The addon behind the wasm-blas backend while that backend is active (for host routines such as planTopK), else null. */
export function activeBlasAddon(): BlasAddon | null {
  return tf.getBackend() === WASM_BLAS ? registeredAddon : null;
}

/**
 * Registers `wasm-blas` (the initialised wasm backend's instance under a
 * second name, with every wasm kernel, the native replacements and the fused kernels). Call after
 * tf.setBackend('wasm') has succeeded; then tf.setBackend('wasm-blas').
 */
export function registerWasmBlasBackend(addon: BlasAddon, threads: number): void {
  addon.setThreads(Math.max(1, Math.floor(threads)));
  if (registered) return;
  const wasmBackend = tf.findBackend('wasm');
  if (!wasmBackend) throw new Error('wasm-blas: initialise the wasm backend first');
  for (const k of tf.getKernelsForBackend('wasm')) {
    tf.registerKernel({ ...k, backendName: WASM_BLAS, kernelFunc: replacement(addon, k.kernelName, k.kernelFunc) });
  }
  for (const k of fusedKernels(addon)) tf.registerKernel(k);
  // Priority below wasm's so tfjs never picks it on its own.
  tf.registerBackend(WASM_BLAS, () => wasmBackend, 0);
  registered = true;
  registeredAddon = addon;
}
