/**
 * The inference kernels. The encoder block (VmoeEncoderBlock, native/src/block.cc) against a float64 reference written out here
 * from the block's definition (docs/spec/model.md: pre-LN, LayerNorm ε 1e-6, multi-head attention with
 * softmax(q kᵀ / √hd), tanh-form GELU): whole dense blocks and the attention half of an MoE block, on shapes that
 * reach every path of the kernel (head widths 8 / 16 / 32 / 64, key rows within and beyond one 64-wide tile, a
 * last tile with fewer images), with tiles of different sizes, on 1 and 2 threads and with products on each GEMM
 * library (in parallel tiles with oneDNN, one after another with OpenBLAS) — all the same values. The patch
 * embedding (VmoePatchEmbed) against its float64 definition. The MoE experts and combine (VmoeExpertMlp) against
 * the kernels the training path composes them from. Skipped, saying so, without the native addon.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import { loadBlasAddon } from '../../src/engine/native-blas.js';
import { VMOE_ENCODER_BLOCK, VMOE_EXPERT_MLP, VMOE_PATCH_EMBED, hasKernel } from '../../src/engine/fused-kernels.js';
import { combineRows, expertDense, expertDenseOfTokens, gelu } from '../../src/vmoe/layers.js';
import { Rng } from '../../src/util/rng.js';
import { PACKED_WEIGHTS_ENV } from '../../src/engine/native/fused.js';

const blas = loadBlasAddon();
if (!blas.addon) console.warn(`[encoder-block tests] skipped: native addon unavailable: ${blas.reason}`);

interface Case {
  B: number;
  T: number;
  H: number;
  heads: number;
  F: number;
}

type Weights = Record<string, { data: Float32Array; shape: number[] }>;

function weights(c: Case, seed: number): Weights {
  const rng = new Rng(seed);
  const n = (shape: number[], scale: number, offset = 0) => ({
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + rng.normal() * scale),
  });
  const { H, F } = c;
  return {
    x: n([c.B, c.T, H], 1),
    ln1Scale: n([H], 0.2, 1),
    ln1Bias: n([H], 0.1),
    wqkv: n([H, 3 * H], 1 / Math.sqrt(H)),
    bqkv: n([3 * H], 0.1),
    wo: n([H, H], 1 / Math.sqrt(H)),
    bo: n([H], 0.1),
    ln2Scale: n([H], 0.2, 1),
    ln2Bias: n([H], 0.1),
    ...(F > 0
      ? { w1: n([H, F], 1 / Math.sqrt(H)), b1: n([F], 0.1), w2: n([F, H], 1 / Math.sqrt(F)), b2: n([H], 0.1) }
      : {}),
  };
}

/** The block in float64, straight from its definition: [y] for a dense block, [x1, LN2(x1)] for an attention half. */
function reference(c: Case, w: Weights): Float64Array[] {
  const { B, T, H, heads, F } = c;
  const hd = H / heads;
  const at = (name: string) => w[name]!.data;
  const layerNorm = (x: Float64Array, s: Float32Array, b: Float32Array) => {
    const y = new Float64Array(x.length);
    for (let r = 0; r < x.length / H; r++) {
      let mean = 0;
      for (let j = 0; j < H; j++) mean += x[r * H + j]!;
      mean /= H;
      let v = 0;
      for (let j = 0; j < H; j++) v += (x[r * H + j]! - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / H + 1e-6);
      for (let j = 0; j < H; j++) y[r * H + j] = (x[r * H + j]! - mean) * rstd * s[j]! + b[j]!;
    }
    return y;
  };
  const dense = (x: Float64Array, rows: number, I: number, wt: Float32Array, b: Float32Array, O: number) => {
    const y = new Float64Array(rows * O);
    for (let r = 0; r < rows; r++)
      for (let o = 0; o < O; o++) {
        let s = b[o]!;
        for (let i = 0; i < I; i++) s += x[r * I + i]! * wt[i * O + o]!;
        y[r * O + o] = s;
      }
    return y;
  };
  const N = B * T;
  const x = Float64Array.from(at('x'));
  const qkv = dense(layerNorm(x, at('ln1Scale'), at('ln1Bias')), N, H, at('wqkv'), at('bqkv'), 3 * H);
  const merged = new Float64Array(N * H);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < T; i++) {
        const q = (b * T + i) * 3 * H + h * hd;
        const s = new Float64Array(T);
        for (let j = 0; j < T; j++) {
          const k = (b * T + j) * 3 * H + H + h * hd;
          for (let d = 0; d < hd; d++) s[j]! += qkv[q + d]! * qkv[k + d]!;
          s[j]! /= Math.sqrt(hd);
        }
        const max = Math.max(...s);
        let sum = 0;
        for (let j = 0; j < T; j++) sum += s[j] = Math.exp(s[j]! - max);
        for (let j = 0; j < T; j++)
          for (let d = 0; d < hd; d++)
            merged[(b * T + i) * H + h * hd + d]! += (s[j]! / sum) * qkv[(b * T + j) * 3 * H + 2 * H + h * hd + d]!;
      }
  const attn = dense(merged, N, H, at('wo'), at('bo'), H);
  const x1 = x.map((v, i) => v + attn[i]!);
  const h2 = layerNorm(x1, at('ln2Scale'), at('ln2Bias'));
  if (F === 0) return [x1, h2];
  const c0 = Math.sqrt(2 / Math.PI);
  const hidden = dense(h2, N, H, at('w1'), at('b1'), F).map(
    (v) => 0.5 * v * (1 + Math.tanh(c0 * (v + 0.044715 * v ** 3))),
  );
  const mlp = dense(hidden, N, F, at('w2'), at('b2'), H);
  return [x1.map((v, i) => v + mlp[i]!)];
}

function run(w: Weights, heads: number, tileImages?: number): Float32Array[] {
  return tf.tidy(() => {
    const inputs = Object.fromEntries(Object.entries(w).map(([k, v]) => [k, tf.tensor(v.data, v.shape)]));
    const out = tf.engine().runKernel(VMOE_ENCODER_BLOCK, inputs, {
      heads,
      epsilon: 1e-6,
      ...(tileImages ? { tileImages } : {}),
    });
    return (Array.isArray(out) ? out : [out]).map((t) => t.dataSync() as Float32Array);
  });
}

/** Largest |got − want| / (1 + |want|). */
function worst(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let m = 0;
  for (let i = 0; i < got.length; i++) m = Math.max(m, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return m;
}

const CASES: [string, Case][] = [
  ['hd 8 (plain loops), T 7, last tile short', { B: 5, T: 7, H: 24, heads: 3, F: 40 }],
  ['the tiny bench shape: hd 16, T 50', { B: 3, T: 50, H: 64, heads: 4, F: 256 }],
  ['hd 64, T 17', { B: 2, T: 17, H: 64, heads: 1, F: 32 }],
  ['hd 32, T 65 (keys beyond one 64-wide tile)', { B: 3, T: 65, H: 64, heads: 2, F: 48 }],
  ['attention half of an MoE block (no MLP), hd 16, T 13', { B: 4, T: 13, H: 32, heads: 2, F: 0 }],
];

describe.skipIf(!blas.addon)('VmoeEncoderBlock (inference encoder block)', () => {
  const active = blas.addon?.info().gemm;
  beforeAll(async () => {
    await initEngine({ backend: 'wasm-blas', threads: 1, quiet: true });
  });
  afterAll(async () => {
    blas.addon!.setGemm(active!);
    await initEngine({ backend: 'wasm-blas', threads: 1, quiet: true });
  });

  it.each(CASES)('%s: equals the float64 block for every tiling, thread count and GEMM library', async (_, c) => {
    expect(hasKernel(VMOE_ENCODER_BLOCK)).toBe(true);
    const w = weights(c, c.T * 7 + c.H);
    const want = reference(c, w);
    const first = run(w, c.heads, 1);
    expect(first.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) expect(worst(first[i]!, want[i]!), `output ${i}`).toBeLessThan(2e-5);
    // Tiles are independent, so another tiling, the default one, a second thread and the other GEMM library give
    // the same values (to the products' rounding).
    const variants: Float32Array[][] = [run(w, c.heads, 2), run(w, c.heads, c.B), run(w, c.heads)];
    // The products on row-major weights instead of the copies packed for oneDNN's matmul (native/src/packed.cc).
    process.env[PACKED_WEIGHTS_ENV] = '0';
    try {
      variants.push(run(w, c.heads, 2));
    } finally {
      delete process.env[PACKED_WEIGHTS_ENV];
    }
    blas.addon!.setThreads(2); // initEngine keeps the running engine's thread count
    variants.push(run(w, c.heads, 1));
    for (const lib of blas.addon!.info().gemmLibraries) {
      blas.addon!.setGemm(lib);
      variants.push(run(w, c.heads, 2));
    }
    blas.addon!.setGemm(active!);
    blas.addon!.setThreads(1);
    for (const v of variants) for (let i = 0; i < want.length; i++) expect(worst(v[i]!, first[i]!)).toBeLessThan(1e-6);
  });

  it('packWeights: a packed copy on oneDNN (none on OpenBLAS alone) that the block takes in place of its weights', () => {
    const [K, N] = [24, 40];
    const heap = new Float32Array(K * N + 8);
    const rng = new Rng(77);
    for (let i = 0; i < heap.length; i++) heap[i] = rng.normal();
    const handle = blas.addon!.packWeights(heap, 8, K, N, 64);
    if (blas.addon!.info().gemmLibraries.includes('onednn')) expect(handle).not.toBeNull();
    else expect(handle).toBeNull();
    expect(() => blas.addon!.packWeights(heap, 8, K, N + 1, 64)).toThrow(RangeError); // outside the heap
    if (handle === null) return;
    // A packed weight of the wrong shape, or something else, is refused (B 1, T 2, H 8, heads 2, attention only).
    const big = new Float32Array(4096);
    const args = [big, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 8, 2, 0, 1, 1e-6] as const;
    expect(() => blas.addon!.encoderBlock(...args, handle, null, null, null)).toThrow(/shape does not match/);
    expect(() => blas.addon!.encoderBlock(...args, {} as never, null, null, null)).toThrow(TypeError);
    // The experts' lists: one handle (or null) per expert, each of its slice's shape (E 1, R 1, H 24, F 40, N 1).
    const experts = [big, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, K, N, 1, 1, 256] as const;
    expect(() => blas.addon!.expertMlp(...experts, [handle], [null])).not.toThrow();
    expect(() => blas.addon!.expertMlp(...experts, [handle, handle], null)).toThrow(/one handle per expert/);
    expect(() => blas.addon!.expertMlp(...experts, null, [handle])).toThrow(/shape does not match/);
  });

  it('packed weights at hidden 256 on 2 threads, tiles in parallel, give the row-major products to float rounding', () => {
    // Wide enough that oneDNN's matmul uses its scratchpad: one per thread (a shared one corrupted C), and
    // primitives made for one thread inside the tiles' parallel region.
    blas.addon!.setThreads(2);
    try {
      const [B, T, H, F, heads] = [8, 10, 256, 1024, 4];
      const rng = new Rng(91);
      const t = (shape: number[], scale: number) =>
        tf.tensor(
          Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale),
          shape,
        );
      const inputs = {
        x: t([B, T, H], 1),
        ln1Scale: t([H], 1),
        ln1Bias: t([H], 0.1),
        wqkv: t([H, 3 * H], 0.06),
        bqkv: t([3 * H], 0.1),
        wo: t([H, H], 0.06),
        bo: t([H], 0.1),
        ln2Scale: t([H], 1),
        ln2Bias: t([H], 0.1),
        w1: t([H, F], 0.06),
        b1: t([F], 0.1),
        w2: t([F, H], 0.03),
        b2: t([H], 0.1),
      };
      const block = () =>
        (
          tf.engine().runKernel(VMOE_ENCODER_BLOCK, inputs, { heads, epsilon: 1e-6, tileImages: 2 }) as tf.Tensor
        ).dataSync() as Float32Array;
      const packed = [block(), block()];
      process.env[PACKED_WEIGHTS_ENV] = '0';
      let rowMajor: Float32Array;
      try {
        rowMajor = block();
      } finally {
        delete process.env[PACKED_WEIGHTS_ENV];
      }
      expect(worst(packed[0]!, rowMajor)).toBeLessThan(1e-5);
      expect(packed[1]).toEqual(packed[0]);
      tf.dispose(Object.values(inputs));
    } finally {
      blas.addon!.setThreads(1);
    }
  });

  it.each([
    ['RGB, class token, 3 tiles', 7, 12, 3, 4, true],
    ['grey, no class token (GAP)', 2, 8, 1, 2, false],
  ] as const)('patch embedding (%s) equals its float64 definition', (_, B, S, C, p, withCls) => {
    expect(hasKernel(VMOE_PATCH_EMBED)).toBe(true);
    const H = 6,
      g = S / p,
      T = g * g + (withCls ? 1 : 0),
      K = p * p * C;
    const rng = new Rng(B * S + C);
    const arr = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const [images, kernel, bias, cls, pos] = [arr(B * S * S * C), arr(K * H), arr(H), arr(H), arr(T * H)];
    const got = tf.tidy(() => {
      const inputs: tf.NamedTensorMap = {
        images: tf.tensor4d(images, [B, S, S, C]),
        kernel: tf.tensor2d(kernel, [K, H]),
        bias: tf.tensor1d(bias),
        pos: tf.tensor2d(pos, [T, H]),
      };
      if (withCls) inputs.cls = tf.tensor1d(cls);
      return (tf.engine().runKernel(VMOE_PATCH_EMBED, inputs, { patch: p }) as tf.Tensor).dataSync() as Float32Array;
    });
    const want = new Float64Array(B * T * H);
    for (let b = 0; b < B; b++) {
      if (withCls) for (let h = 0; h < H; h++) want[b * T * H + h] = cls[h]! + pos[h]!;
      for (let gi = 0; gi < g; gi++)
        for (let gj = 0; gj < g; gj++) {
          const t = gi * g + gj + (withCls ? 1 : 0);
          for (let h = 0; h < H; h++) {
            let s = bias[h]! + pos[t * H + h]!;
            for (let pi = 0; pi < p; pi++)
              for (let pj = 0; pj < p; pj++)
                for (let c = 0; c < C; c++)
                  s +=
                    images[((b * S + gi * p + pi) * S + gj * p + pj) * C + c]! *
                    kernel[((pi * p + pj) * C + c) * H + h]!;
            want[(b * T + t) * H + h] = s;
          }
        }
    }
    expect(worst(got, want)).toBeLessThan(1e-5);
  });

  it('MoE experts and combine equal expertDenseOfTokens, GELU, expertDense and combineRows (threads, GEMM libraries)', async () => {
    expect(hasKernel(VMOE_EXPERT_MLP)).toBe(true);
    const [N, H, F, E, R] = [37, 256, 40, 4, 300]; // hidden 256: the packed weights path (fused.ts)
    const rng = new Rng(9);
    const arr = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
    // Expert 0 over the 256-row work item (2 items), expert 2 empty, a filled row without a gate (gate index 0).
    const rows = Int32Array.from([290, 5, 0, 17]);
    const tokens = new Int32Array(E * R),
      gateIndex = new Int32Array(E * R);
    for (let e = 0; e < E; e++)
      for (let i = 0; i < rows[e]!; i++) {
        tokens[e * R + i] = 1 + ((i * 7 + e * 3) % N);
        gateIndex[e * R + i] = i === 3 && e === 1 ? 0 : 1 + ((i * 5 + e) % (N * E));
      }
    const data = {
      x: arr(N * H),
      w1: arr(E * H * F, 1 / Math.sqrt(H)), // pre-activations and outputs of order 1
      b1: arr(E * F),
      w2: arr(E * F * H, 1 / Math.sqrt(F)),
      b2: arr(E * H),
      g: arr(N * E),
    };
    const ts = () => ({
      x: tf.tensor2d(data.x, [N, H]),
      w1: tf.tensor3d(data.w1, [E, H, F]),
      b1: tf.tensor2d(data.b1, [E, F]),
      w2: tf.tensor3d(data.w2, [E, F, H]),
      b2: tf.tensor2d(data.b2, [E, H]),
      gates: tf.tensor2d(data.g, [N, E]),
      tokens: tf.tensor1d(tokens, 'int32'),
      rows: tf.tensor1d(rows, 'int32'),
      gateIndex: tf.tensor1d(gateIndex, 'int32'),
    });
    const fused = () =>
      tf.tidy(() => tf.engine().runKernel(VMOE_EXPERT_MLP, ts()) as tf.Tensor).dataSync() as Float32Array;
    const want = tf.tidy(() => {
      const t = ts();
      const first = expertDenseOfTokens(t.x, t.tokens, t.w1, t.b1, t.rows);
      const out = expertDense(gelu(first) as tf.Tensor3D, t.w2, t.b2, t.rows);
      return combineRows(tf.reshape(out, [E * R, H]), t.gates, t.tokens, t.gateIndex, N).dataSync() as Float32Array;
    });
    expect(Math.max(...want.map(Math.abs))).toBeGreaterThan(1); // not trivially zero
    const got = [fused()];
    // The experts' weights packed for oneDNN's matmul (its work items' rows padded to 16: 34 → 48, 5 → 16, 17 → 32)
    // where it is linked; the row-major weights with VMOE_PACKED_WEIGHTS=0.
    const withOneDnn = blas.addon!.info().gemmLibraries.includes('onednn');
    expect(blas.addon!.packWeights(new Float32Array(H * F), 0, H, F, 256) !== null).toBe(withOneDnn);
    process.env[PACKED_WEIGHTS_ENV] = '0';
    try {
      got.push(fused());
    } finally {
      delete process.env[PACKED_WEIGHTS_ENV];
    }
    blas.addon!.setThreads(2); // initEngine keeps the running engine's thread count
    for (const lib of blas.addon!.info().gemmLibraries) {
      blas.addon!.setGemm(lib);
      got.push(fused());
    }
    blas.addon!.setGemm(active!);
    blas.addon!.setThreads(1);
    for (const g of got) expect(worst(g, want)).toBeLessThan(1e-6);
  });

  it('checks its inputs', () => {
    const c = { B: 2, T: 3, H: 8, heads: 2, F: 4 };
    const w = weights(c, 1);
    expect(() => run(w, 3)).toThrow(/heads must be a positive integer dividing 8/);
    expect(() => run({ ...w, wo: { data: new Float32Array(72), shape: [8, 9] } }, 2)).toThrow(
      /wo \[8,9\] must have shape \[8,8\]/,
    );
    expect(() => run({ ...w, x: { data: new Float32Array(48), shape: [6, 8] } }, 2)).toThrow(/must be \(B, T, H\)/);
    // The addon itself refuses offsets outside the heap.
    const heap = new Float32Array(16);
    expect(() =>
      blas.addon!.encoderBlock(heap, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 8, 2, 4, 1, 1e-6),
    ).toThrow(RangeError);
  });
});
