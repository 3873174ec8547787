/**
 * The `wasm-blas` backend: tfjs's wasm backend with its two matrix-product
 * kernels (BatchMatMul, _FusedMatMul) replaced by OpenBLAS sgemm, called
 * through a small Node-API addon (native/) on zero-copy views of the wasm heap.
 * Slice and Tanh also run natively, and Identity / same-dtype Cast share their
 * input's buffer instead of copying it.
 *
 * Why: the wasm backend's batched and transposed matMuls run a naive loop
 * (≈1–2 GFLOP/s) and its 2-D matMul reaches ≈20 GFLOP/s; sgemm reaches well
 * over 100 on the same cores. Every other kernel stays the wasm one.
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

export const WASM_BLAS = 'wasm-blas';

export interface BlasAddon {
  sgemm(
    heap: Float32Array, transA: boolean, transB: boolean, M: number, N: number, K: number, batch: number,
    aOff: number, aStride: number, bOff: number, bStride: number, cOff: number, cStride: number,
    biasOff: number, relu: boolean,
  ): void;
  sgemmOffsets(heap: Float32Array, transA: boolean, transB: boolean, M: number, N: number, K: number, offsets: Int32Array): void;
  copyStrided(heap: Float32Array, srcOff: number, dstOff: number, shape: Int32Array, srcStrides: Int32Array): void;
  tanh(heap: Float32Array, srcOff: number, dstOff: number, n: number): void;
  setThreads(n: number): void;
  info(): { coreName: string; config: string; threads: number };
}

export interface BlasStatus {
  addon: BlasAddon | null;
  /** Where the addon was loaded from, or null. */
  path: string | null;
  /** Why the addon is unavailable; null when loaded. */
  reason: string | null;
  /** OPENBLAS_CORETYPE in force when the library loaded (null: OpenBLAS's own detection). */
  coreType: string | null;
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
      addon.sgemm(heap, ta, tb, M, N, K, 1, aOff, 0, bOff, 0, cOff, 0, -1, false);
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
  const fail = (reason: string): BlasStatus => (status = { addon: null, path: null, reason, coreType });
  if (process.env.VMOE_BLAS === '0') return fail('disabled by VMOE_BLAS=0');
  if (!fs.existsSync(file)) return fail(`addon not built (${file} missing; run: npm run build:native)`);
  if (coreType && !process.env.OPENBLAS_CORETYPE) process.env.OPENBLAS_CORETYPE = coreType;
  let addon: BlasAddon;
  try {
    addon = require(file) as BlasAddon;
  } catch (e) {
    return fail(`addon failed to load: ${(e as Error).message.split('\n')[0]}`);
  }
  const bad = selfCheck(addon);
  if (bad) return fail(`${bad}${coreType ? ` with OPENBLAS_CORETYPE=${coreType}; try VMOE_BLAS_CORETYPE=none` : ''}`);
  return (status = { addon, path: file, reason: null, coreType });
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

/** op(a)·op(b) (+ bias, ReLU) with broadcasting batch dims; null when the shapes do not fit (the wasm kernel reports). */
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
  const out = backend.makeOutput([...outBatch, M, N], 'float32');
  if (batch * M * N === 0) return out;
  // Views only after makeOutput: allocating can grow (and so replace) the wasm memory.
  const heap = heapF32(backend);
  const aOff = floatOffset(backend, a), bOff = floatOffset(backend, b), cOff = floatOffset(backend, out);
  const biasOff = m.bias ? floatOffset(backend, m.bias) : -1;
  if (strided) {
    addon.sgemm(heap, transposeA, transposeB, M, N, K, batch,
      aOff, batchA === 1 ? 0 : M * K, bOff, batchB === 1 ? 0 : K * N, cOff, M * N, biasOff, m.relu === true);
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
    const N = b && (transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1]);
    const plainBias = bias == null || (bias.shape.length === 1 && bias.shape[0] === N && bias.dtype === 'float32');
    if (a && b && a.dtype === 'float32' && b.dtype === 'float32' && preluActivationWeights == null && plainBias &&
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

/** Slice of any rank as one native strided copy (the wasm kernel first copies the whole input to JavaScript). */
function sliceKernel(addon: BlasAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
    const rank = x.shape.length;
    if ((x.dtype !== 'float32' && x.dtype !== 'int32') || rank === 0 || rank > 8) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const [b, sz] = tf.slice_util.parseSliceParams(x as tf.TensorInfo as tf.Tensor, begin, size);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(sz, x.dtype);
    if (sz.some((d) => d === 0)) return out;
    const strides = [...tf.util.computeStrides(x.shape), 1];
    let src = floatOffset(backend, x);
    for (let d = 0; d < rank; d++) src += b[d]! * strides[d]!;
    addon.copyStrided(heapF32(backend), src, floatOffset(backend, out), Int32Array.from(sz), Int32Array.from(strides));
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

/** The wasm kernels this backend replaces, by kernel name. */
function replacement(addon: BlasAddon, name: string, original: tf.KernelFunc): tf.KernelFunc {
  switch (name) {
    case tf.BatchMatMul: return batchMatMulKernel(addon, original);
    case tf._FusedMatMul: return fusedMatMulKernel(addon, original);
    case tf.Identity: return shareKernel(original, () => true);
    case tf.Cast: return shareKernel(original, (a) => (a.attrs as { dtype?: string }).dtype === (a.inputs.x as tf.TensorInfo).dtype);
    case tf.Slice: return sliceKernel(addon, original);
    case tf.Tanh: return tanhKernel(addon, original);
    default: return original;
  }
}

let registered = false;

/**
 * Registers `wasm-blas` (the initialised wasm backend's instance under a
 * second name, with every wasm kernel and the two native matMuls). Call after
 * tf.setBackend('wasm') has succeeded; then tf.setBackend('wasm-blas').
 */
export function registerWasmBlasBackend(addon: BlasAddon, threads: number): void {
  addon.setThreads(Math.max(1, threads));
  if (registered) return;
  const wasmBackend = tf.findBackend('wasm');
  if (!wasmBackend) throw new Error('wasm-blas: initialise the wasm backend first');
  for (const k of tf.getKernelsForBackend('wasm')) {
    tf.registerKernel({ ...k, backendName: WASM_BLAS, kernelFunc: replacement(addon, k.kernelName, k.kernelFunc) });
  }
  // Priority below wasm's so tfjs never picks it on its own.
  tf.registerBackend(WASM_BLAS, () => wasmBackend, 0);
  registered = true;
}
