/**
 * Finding, loading and checking the native addon (native/src, built by `npm run build:native`
 * into node_modules/.cache/vmoe-blas): the BlasAddon interface of its entry points,
 * where the .node file lies (defaultAddonPath), the OpenBLAS core type to force
 * (chooseCoreType), the GEMM library to route products to (chooseGemm: oneDNN or
 * OpenBLAS), and the checks that turn away an addon built from older sources (entry
 * points missing) or computing wrong products (selfCheck). loadBlasAddon() does all
 * of this once per process and, when the addon cannot be used, returns null with the
 * reason, so the toolkit stays on plain wasm.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../../util/errors.js';

/** An opaque addon-owned packed weight (packWeights); freed when no longer referenced. */
export type PackedWeightHandle = object & { readonly __packedWeight?: never };

export interface BlasAddon {
  sgemm(
    heap: Float32Array,
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    batch: number,
    aOff: number,
    aStride: number,
    bOff: number,
    bStride: number,
    cOff: number,
    cStride: number,
    biasOff: number,
    biasStride: number,
    relu: boolean,
  ): void;
  sgemmOffsets(
    heap: Float32Array,
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    offsets: Int32Array,
  ): void;
  copyStrided(heap: Float32Array, srcOff: number, dstOff: number, shape: Int32Array, srcStrides: Int32Array): void;
  tanh(heap: Float32Array, srcOff: number, dstOff: number, n: number): void;
  /** y = a + b, b's m values repeated over a's n (n a multiple of m). */
  addTiled(heap: Float32Array, aOff: number, bOff: number, yOff: number, n: number, m: number): void;
  gelu(heap: Float32Array, srcOff: number, dstOff: number, n: number): void;
  geluGrad(heap: Float32Array, dyOff: number, xOff: number, dxOff: number, n: number): void;
  layerNorm(
    heap: Float32Array,
    xOff: number,
    scaleOff: number,
    biasOff: number,
    yOff: number,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  layerNormGrad(
    heap: Float32Array,
    dyOff: number,
    xOff: number,
    scaleOff: number,
    dxOff: number,
    dscaleOff: number,
    dbiasOff: number,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  softmax(heap: Float32Array, xOff: number, yOff: number, rows: number, cols: number): void;
  softmaxGrad(heap: Float32Array, dyOff: number, yOff: number, dxOff: number, rows: number, cols: number): void;
  attention(
    heap: Float32Array,
    qkvOff: number,
    outOff: number,
    probsOff: number,
    batch: number,
    T: number,
    heads: number,
    hd: number,
    scale: number,
  ): void;
  /**
   * The inference encoder block (native/src/block.cc): offsets of x, out, out2 (attention-only mode) and the weights
   * [ln1 scale, ln1 bias, qkv kernel, qkv bias, out kernel, out bias, ln2 scale, ln2 bias, fc1 kernel, fc1 bias,
   * fc2 kernel, fc2 bias]; F = 0 for the attention half of an MoE block (fc offsets unused).
   */
  encoderBlock(
    heap: Float32Array,
    xOff: number,
    outOff: number,
    out2Off: number,
    ln1s: number,
    ln1b: number,
    wqkv: number,
    bqkv: number,
    wo: number,
    bo: number,
    ln2s: number,
    ln2b: number,
    w1: number,
    b1: number,
    w2: number,
    b2: number,
    B: number,
    T: number,
    H: number,
    heads: number,
    F: number,
    tileImages: number,
    eps: number,
    packedQkv?: PackedWeightHandle | null,
    packedOut?: PackedWeightHandle | null,
    packedFc1?: PackedWeightHandle | null,
    packedFc2?: PackedWeightHandle | null,
  ): void;
  /**
   * A (K, N) weight at wOff copied into the layout oneDNN's matmul picks for products of `rows` rows
   * (native/src/packed.cc); null without oneDNN. The copy lives as long as the returned handle.
   */
  packWeights(heap: Float32Array, wOff: number, K: number, N: number, rows: number): PackedWeightHandle | null;
  /** The MoE layer's experts and combine for inference (native/src/experts.cc); rows of up to `block` per work item. */
  expertMlp(
    heap: Float32Array,
    xOff: number,
    tokensOff: number,
    rowsOff: number,
    w1Off: number,
    b1Off: number,
    w2Off: number,
    b2Off: number,
    gatesOff: number,
    gateIndexOff: number,
    yOff: number,
    E: number,
    R: number,
    H: number,
    F: number,
    N: number,
    G: number,
    block: number,
    /** Per expert, its w1 / w2 slice packed by packWeights (or null); null: the row-major weights. */
    packed1?: (PackedWeightHandle | null)[] | null,
    packed2?: (PackedWeightHandle | null)[] | null,
  ): void;
  /** images (B, S, S, C) → tokens (B, T, H) (native/src/block.cc); clsOff −1 for no class token. */
  patchEmbed(
    heap: Float32Array,
    imagesOff: number,
    kernelOff: number,
    biasOff: number,
    clsOff: number,
    posOff: number,
    outOff: number,
    B: number,
    S: number,
    C: number,
    patch: number,
    H: number,
    tileImages: number,
  ): void;
  attentionGrad(
    heap: Float32Array,
    dyOff: number,
    qkvOff: number,
    probsOff: number,
    dqkvOff: number,
    batch: number,
    T: number,
    heads: number,
    hd: number,
    scale: number,
  ): void;
  /** coefficients: [β1, 1 − β1, β2, 1 − β2, lr / bc1, bc2, ε, lr · decay (0: none), gradient scale (1: none)]. */
  adam(
    heap: Float32Array,
    pOff: number,
    mOff: number,
    vOff: number,
    gradOff: number,
    pOutOff: number,
    mOutOff: number,
    vOutOff: number,
    n: number,
    coefficients: Float64Array,
  ): void;
  sumOfSquares(heap: Float32Array, offsets: Float64Array, sizes: Float64Array): number;
  /** dst[o, j] = scale · Σ_m src[o, m, j] for src viewed as (outer, mid, inner). */
  reduceMiddle(
    heap: Float32Array,
    srcOff: number,
    dstOff: number,
    outer: number,
    mid: number,
    inner: number,
    scale: number,
  ): void;
  /** Token and gate indices are 1-based int32 offsets into the same heap; 0 drops the row. */
  combineRows(
    heap: Float32Array,
    xOff: number,
    gatesOff: number,
    tokOff: number,
    gateOff: number,
    yOff: number,
    numTokens: number,
    numGates: number,
    m: number,
    h: number,
  ): void;
  combineRowsGrad(
    heap: Float32Array,
    dyOff: number,
    xOff: number,
    gatesOff: number,
    tokOff: number,
    gateOff: number,
    dxOff: number,
    dGatesOff: number,
    numTokens: number,
    numGates: number,
    m: number,
    h: number,
  ): void;
  /** y_e = x_e w_e (+ b_e) over rows[e] rows (int32 at rowsOff), zeros below; bOff = -1: no bias; tokensOff ≥ 0: x is (N, I), row i of expert e is x[tokens[e·R + i] − 1]. */
  expertDense(
    heap: Float32Array,
    xOff: number,
    wOff: number,
    bOff: number,
    rowsOff: number,
    tokensOff: number,
    yOff: number,
    E: number,
    R: number,
    I: number,
    O: number,
    N: number,
  ): void;
  expertDenseGrad(
    heap: Float32Array,
    dyOff: number,
    xOff: number,
    wOff: number,
    rowsOff: number,
    tokensOff: number,
    dxOff: number,
    dwOff: number,
    dbOff: number,
    E: number,
    R: number,
    I: number,
    O: number,
    N: number,
  ): void;
  /** losses written at lossesOff: [importance, load, weighted]; noiseOff = kthOff = -1 without noise. */
  routerAux(
    heap: Float32Array,
    logitsOff: number,
    noiseOff: number,
    kthOff: number,
    dLogitsOff: number,
    lossesOff: number,
    N: number,
    E: number,
    members: number,
    sigma: number,
    importanceWeight: number,
    loadWeight: number,
    groupSizes: Float64Array,
  ): void;
  /** Rng.normals of src/util/rng.ts from `state` (advanced in place) with its ziggurat tables, into out. */
  normals(
    state: Uint32Array,
    k: Float64Array,
    w: Float64Array,
    f: Float64Array,
    R: number,
    scale: number,
    out: Float32Array,
  ): void;
  /** planTopK + packExpertRows of src/vmoe/dispatch.ts into the given arrays; returns the processed assignments. */
  planTopK(
    gates: Float32Array,
    N: number,
    E: number,
    K: number,
    groupSizes: Int32Array,
    capacities: Int32Array,
    batchPriority: boolean,
    expert: Int32Array,
    slot: Int32Array,
    kept: Uint8Array,
    rowToken: Int32Array,
    rowGate: Int32Array,
    packedToken: Int32Array,
    packedGate: Int32Array,
    rows: Int32Array,
  ): number;
  /** logits = x w (+ the E³ mask for members > 1), gates = softmax(logits (+ noise)); noiseOff = -1: none. */
  routerGates(
    heap: Float32Array,
    xOff: number,
    wOff: number,
    noiseOff: number,
    logitsOff: number,
    gatesOff: number,
    N: number,
    H: number,
    E: number,
    members: number,
  ): void;
  /** dx, dw of routerGates from dGates and the optional dLogits (-1: absent). */
  routerGatesGrad(
    heap: Float32Array,
    xOff: number,
    wOff: number,
    gatesOff: number,
    dGatesOff: number,
    dLogitsOff: number,
    dxOff: number,
    dwOff: number,
    N: number,
    H: number,
    E: number,
  ): void;
  setThreads(n: number): void;
  /** Routes every product to one of info().gemmLibraries; throws for one the build lacks. */
  setGemm(name: GemmLibrary): void;
  info(): {
    coreName: string;
    config: string;
    threads: number;
    gemm: GemmLibrary;
    gemmLibraries: GemmLibrary[];
    onednnVersion: string | null;
  };
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
    if (path.dirname(dir) === dir) return path.join(rootGuess ?? path.resolve(start, '..', '..', '..'), ADDON_RELATIVE);
  }
}

/** The CPU's feature flags from /proc/cpuinfo (empty where there is none). */
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
  if (flags.has('avx512f') && flags.has('avx512bw') && flags.has('avx512dq') && flags.has('avx512vl'))
    return 'SkylakeX';
  if (flags.has('avx2') && flags.has('fma')) return 'Haswell';
  return null;
}

/** Naive double-precision reference for the self-check: row-major op(A)·op(B). */
function referenceGemm(
  a: Float32Array,
  b: Float32Array,
  M: number,
  N: number,
  K: number,
  ta: boolean,
  tb: boolean,
): Float64Array {
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
  const M = 37,
    N = 45,
    K = 67;
  const heap = new Float32Array(2 * M * K + 2 * K * N + M * N + N);
  for (let i = 0; i < heap.length; i++) heap[i] = Math.sin(0.37 * i + 1) * 0.5;
  const aOff = 0,
    bOff = M * K,
    cOff = M * K + K * N;
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
  'packWeights',
  'setGemm',
  'normals',
  'planTopK',
  'routerAux',
  'routerGates',
  'routerGatesGrad',
  'expertDense',
  'expertDenseGrad',
  'sgemm',
  'sgemmOffsets',
  'copyStrided',
  'tanh',
  'addTiled',
  'gelu',
  'geluGrad',
  'layerNorm',
  'layerNormGrad',
  'softmax',
  'softmaxGrad',
  'attention',
  'attentionGrad',
  'encoderBlock',
  'patchEmbed',
  'expertMlp',
  'adam',
  'sumOfSquares',
  'reduceMiddle',
  'combineRows',
  'combineRowsGrad',
  'setThreads',
  'info',
] as const satisfies readonly (keyof BlasAddon)[];

/**
 * Why `addon` cannot be used, or null: entry points missing or a throwing
 * self-check (a stale build from older sources), or wrong products (then the
 * forced core type, if any, is the likely cause).
 */
export function checkAddon(addon: BlasAddon, coreType: string | null = null): string | null {
  const missing = ADDON_FUNCTIONS.filter(
    (name) => typeof (addon as unknown as Record<string, unknown>)[name] !== 'function',
  );
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
    const hint =
      want === 'onednn'
        ? 'unset it, or install libdnnl-dev and run npm run build:native'
        : 'unset it or choose one of those';
    throw new UsageError(`VMOE_GEMM=${want}, but this addon has only ${gemmLibraries.join(', ')} (${hint})`);
  }
  addon.setGemm((want as GemmLibrary | undefined) ?? gemmLibraries[0]!);
  const info = addon.info();
  return info.gemm === 'onednn' ? `onednn ${info.onednnVersion}` : `openblas ${info.coreName}`;
}
