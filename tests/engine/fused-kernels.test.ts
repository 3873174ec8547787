/**
 * The fused kernels of src/engine/fused-kernels.ts (registered natively by
 * the wasm-blas backend) against the composed tfjs ops they replace, run on
 * plain wasm and on cpu: forward values and gradients (tf.grads) on odd
 * shapes, Adam steps against the composed optimiser, central finite differences of float64 references on small cases,
 * the strict argument checks of the kernels and of the addon entry points,
 * and correctness after the wasm memory grows. Tests that need the addon
 * skip, saying so, when it is not built.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import {
  hasKernel,
  VMOE_ADAM,
  VMOE_ATTENTION,
  VMOE_ATTENTION_GRAD,
  VMOE_COMBINE_ROWS,
  VMOE_COMBINE_ROWS_GRAD,
  VMOE_GELU,
  VMOE_GELU_GRAD,
  VMOE_LAYER_NORM,
  VMOE_LAYER_NORM_GRAD,
  VMOE_EXPERT_DENSE,
  VMOE_EXPERT_DENSE_GRAD,
  VMOE_ROUTER_AUX,
  VMOE_ROUTER_GATES,
  VMOE_ROUTER_GATES_GRAD,
  VMOE_SOFTMAX,
  VMOE_SOFTMAX_GRAD,
  VMOE_SUM_OF_SQUARES,
} from '../../src/engine/fused-kernels.js';
import { routerAuxLosses } from '../../src/vmoe/aux-losses.js';
import { composedRouterGates, routerGates } from '../../src/vmoe/moe.js';
import { loadBlasAddon, WASM_BLAS } from '../../src/engine/native-blas.js';
import {
  canGatherInExpertDense,
  combineRows,
  composedGelu,
  composedLayerNorm,
  composedSelfAttention,
  dispatchRows,
  expertDense,
  expertDenseOfTokens,
  gelu,
  layerNorm,
  selfAttention,
  softmax,
} from '../../src/vmoe/layers.js';
import { OptimSchema } from '../../src/config/experiment.js';
import { Adam } from '../../src/train/optimizer.js';
import { Rng } from '../../src/util/rng.js';

const blas = loadBlasAddon();
const skipReason = blas.addon ? '' : `native addon unavailable: ${blas.reason}`;
if (!blas.addon) console.warn(`[fused-kernels tests] skipped: ${skipReason}`);

const size = (s: number[]) => s.reduce((p, d) => p * d, 1);

function normals(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** Largest |got − want| / (1 + |want|). */
function worstError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!,
      w = want[i]!;
    if (Number.isNaN(w)) {
      expect(Number.isNaN(g)).toBe(true);
      continue;
    }
    worst = Math.max(worst, Math.abs(g - w) / (1 + Math.abs(w)));
  }
  return worst;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(worstError(got, want)).toBeLessThan(tol);
}

/** Runs f with `name` as the active backend, then restores wasm-blas. */
async function onBackend<T>(name: string, f: () => T): Promise<T> {
  await tf.setBackend(name);
  try {
    return f();
  } finally {
    await tf.setBackend(WASM_BLAS);
  }
}

type Arrays = Float32Array[];

/**
 * Value of op(inputs) and the gradients of Σ cot ⊙ op(inputs) for every input,
 * as host arrays (tensors made and freed on the active backend).
 */
function valueAndGrads(
  op: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: { data: Float32Array; shape: number[] }[],
  cot: Float32Array,
): Arrays {
  let out: Arrays = [];
  tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.data, i.shape));
    const y = op(...xs);
    const c = tf.tensor(cot, y.shape);
    const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(op(...a), c)))(xs);
    grads.forEach((g, i) => expect(g.shape).toEqual(inputs[i]!.shape));
    out = [y.dataSync() as Float32Array, ...grads.map((g) => g.dataSync() as Float32Array)].map((a) =>
      Float32Array.from(a),
    );
  });
  return out;
}

const ALL_KERNELS = [
  VMOE_GELU,
  VMOE_GELU_GRAD,
  VMOE_LAYER_NORM,
  VMOE_LAYER_NORM_GRAD,
  VMOE_SOFTMAX,
  VMOE_SOFTMAX_GRAD,
  VMOE_ADAM,
  VMOE_SUM_OF_SQUARES,
  VMOE_COMBINE_ROWS,
  VMOE_COMBINE_ROWS_GRAD,
  VMOE_ATTENTION,
  VMOE_ATTENTION_GRAD,
  VMOE_ROUTER_AUX,
  VMOE_ROUTER_GATES,
  VMOE_ROUTER_GATES_GRAD,
  VMOE_EXPERT_DENSE,
  VMOE_EXPERT_DENSE_GRAD,
];

// Widths 4, 8, 16 and 32 take the fixed-width softmax path (router gates), the others the general one.
const SHAPES: number[][] = [[3, 5, 37], [1, 1], [17, 256], [2, 3, 64], [40], [33, 8], [5, 4], [2, 3, 16], [9, 32]];

describe('without the fused kernels (plain wasm, cpu)', () => {
  beforeAll(async () => {
    await initEngine({ backend: 'wasm', threads: 1, quiet: true });
  });

  it('are not registered there, and gelu / layerNorm are exactly the composed ops', async () => {
    for (const backend of ['wasm', 'cpu']) {
      await tf.setBackend(backend);
      for (const k of ALL_KERNELS) {
        expect(hasKernel(k)).toBe(false);
      }
      const x = tf.tensor2d(normals(5 * 9, 1), [5, 9]);
      const scale = tf.tensor1d(normals(9, 2)),
        bias = tf.tensor1d(normals(9, 3));
      expect(Array.from(gelu(x).dataSync())).toEqual(Array.from(composedGelu(x).dataSync()));
      expect(Array.from(layerNorm(x, scale, bias).dataSync())).toEqual(
        Array.from(composedLayerNorm(x, scale, bias).dataSync()),
      );
      expect(Array.from(softmax(x).dataSync())).toEqual(Array.from(tf.softmax(x).dataSync()));
      const qkv = tf.tensor2d(normals(2 * 3 * 12, 4), [2 * 3, 12]);
      expect(Array.from(selfAttention(qkv, 2, 3, 2).dataSync())).toEqual(
        Array.from(composedSelfAttention(qkv, 2, 3, 2).dataSync()),
      );
    }
    await tf.setBackend('wasm');
  });
});

describe.skipIf(!blas.addon)(`fused kernels on wasm-blas (${skipReason || 'addon loaded'})`, () => {
  beforeAll(async () => {
    const info = await initEngine({ backend: 'wasm-blas', threads: 1, quiet: true });
    expect(info.backend).toBe('wasm-blas');
    for (const k of ALL_KERNELS) {
      expect(hasKernel(k)).toBe(true);
    }
  });

  describe.each(SHAPES.map((s) => [s.join('×'), s] as const))('shape %s', (_, shape) => {
    const n = size(shape);
    const cols = shape[shape.length - 1]!;
    // Wide enough to reach tanh's saturation and GELU's negative tail.
    const x = { data: normals(n, 10, 3), shape };
    const scale = { data: normals(cols, 11), shape: [cols] };
    const bias = { data: normals(cols, 12), shape: [cols] };
    const cot = normals(n, 13);

    it.each(['wasm', 'cpu'])('gelu forward and gradient equal the composed ops on %s', async (ref) => {
      const want = await onBackend(ref, () => valueAndGrads((a) => composedGelu(a), [x], cot));
      const got = valueAndGrads((a) => gelu(a), [x], cot);
      expectClose(got[0]!, want[0]!, 2e-6);
      expectClose(got[1]!, want[1]!, 2e-5);
    });

    it.each(['wasm', 'cpu'])(
      'layerNorm forward and x/scale/bias gradients equal the composed ops on %s',
      async (ref) => {
        const f = (ln: typeof layerNorm) => (a: tf.Tensor, s: tf.Tensor, b: tf.Tensor) =>
          ln(a, s as tf.Tensor1D, b as tf.Tensor1D);
        const want = await onBackend(ref, () => valueAndGrads(f(composedLayerNorm), [x, scale, bias], cot));
        const got = valueAndGrads(f(layerNorm), [x, scale, bias], cot);
        expectClose(got[0]!, want[0]!, 1e-5); // y
        expectClose(got[1]!, want[1]!, 1e-4); // dx: the composed chain rule rounds more
        expectClose(got[2]!, want[2]!, 1e-4); // dscale: a sum over all leading axes
        expectClose(got[3]!, want[3]!, 1e-4); // dbias
      },
    );

    it.each(['wasm', 'cpu'])('softmax forward and gradient equal tf.softmax on %s', async (ref) => {
      // Large offsets, a masked −1e9 entry and an −Infinity entry per row (where there is room).
      const logits = Float32Array.from(x.data, (v, i) => {
        const j = i % cols;
        if (cols > 2 && j === 1) return -1e9;
        if (cols > 2 && j === 2) return -Infinity;
        return v * 10 + (i % 3) * 500;
      });
      const input = { data: logits, shape };
      const want = await onBackend(ref, () => valueAndGrads((a) => tf.softmax(a), [input], cot));
      const got = valueAndGrads((a) => softmax(a), [input], cot);
      expectClose(got[0]!, want[0]!, 1e-6);
      expectClose(got[1]!, want[1]!, 1e-5);
    });
  });

  describe('self-attention on the fused qkv projection', () => {
    // (B, T, heads, hd): odd sequence lengths and head widths, one head, one image, the bench shape's T, wide heads, long
    // sequences; the native kernel's vector tiles (hd 16, 32, 64; keys in 1–4 vectors of 16, or more) and row remainders.
    const cases = [
      [3, 7, 2, 5],
      [1, 1, 1, 1],
      [2, 50, 4, 16],
      [4, 13, 3, 8],
      [1, 33, 1, 20],
      [1, 9, 2, 64],
      [1, 11, 1, 65],
      [1, 257, 1, 3],
      [2, 20, 2, 32],
      [3, 64, 2, 16],
      [2, 70, 3, 64],
      [1, 48, 1, 16],
    ] as const;
    it.each(cases.map((c) => [c.join('/'), c] as const))(
      'B/T/heads/hd %s: forward and dqkv equal the composed ops on wasm and cpu',
      async (_, c) => {
        const [B, T, heads, hd] = c;
        const width = 3 * heads * hd;
        const qkv = { data: normals(B * T * width, 70, 1.5), shape: [B * T, width] };
        const cot = normals(B * T * heads * hd, 71);
        const got = valueAndGrads((a) => selfAttention(a as tf.Tensor2D, B, T, heads), [qkv], cot);
        for (const ref of ['wasm', 'cpu']) {
          const want = await onBackend(ref, () =>
            valueAndGrads((a) => composedSelfAttention(a as tf.Tensor2D, B, T, heads), [qkv], cot),
          );
          // Both sides are float32 in different orders; longer dot products and sums (T·hd) round more.
          expectClose(got[0]!, want[0]!, T * hd > 2048 ? 4e-6 : 2e-6);
          expectClose(got[1]!, want[1]!, 2e-5);
        }
      },
    );

    it('the kernel also returns the attention probabilities, and checks its inputs', () => {
      const [B, T, heads, hd] = [2, 5, 2, 3];
      const qkv = tf.tensor2d(normals(B * T * 3 * heads * hd, 72), [B * T, 3 * heads * hd]);
      const attrs = { batch: B, heads, scale: 1 / Math.sqrt(hd) };
      const [out, probs] = tf.engine().runKernel(VMOE_ATTENTION, { qkv }, attrs) as tf.Tensor[];
      expect(out!.shape).toEqual([B * T, heads * hd]);
      expect(probs!.shape).toEqual([B * heads, T, T]);
      const p = probs!.dataSync();
      for (let r = 0; r < B * heads * T; r++) {
        let s = 0;
        for (let j = 0; j < T; j++) s += p[r * T + j]!;
        expect(Math.abs(s - 1)).toBeLessThan(1e-6);
      }
      const run = (name: string, inputs: tf.NamedTensorMap, a: tf.NamedAttrMap) => () =>
        tf.engine().runKernel(name, inputs, a);
      expect(run(VMOE_ATTENTION, { qkv }, { ...attrs, batch: 3 })).toThrow(/batch·T/);
      expect(run(VMOE_ATTENTION, { qkv }, { ...attrs, heads: 4 })).toThrow(/batch·T/);
      expect(run(VMOE_ATTENTION, { qkv: tf.cast(qkv, 'int32') }, attrs)).toThrow(/float32/);
      expect(run(VMOE_ATTENTION, { qkv }, { ...attrs, scale: NaN })).toThrow(/scale/);
      expect(run(VMOE_ATTENTION_GRAD, { dy: tf.zeros([B * T, heads * hd + 1]), qkv, probs: probs! }, attrs)).toThrow(
        /do not fit/,
      );
      expect(run(VMOE_ATTENTION_GRAD, { dy: out!, qkv, probs: tf.zeros([B * heads, T, T - 1]) }, attrs)).toThrow(
        /do not fit/,
      );
      const addon = blas.addon!;
      const heap = new Float32Array(200);
      expect(() => addon.attention(heap, 0, 72, 96, 1, 4, 1, 6, 1)).not.toThrow(); // qkv (4, 18), out (4, 6), probs (4, 4)
      expect(() => addon.attention(heap, 0, 72, 190, 1, 4, 1, 6, 1)).toThrow(RangeError);
      expect(() => addon.attention(heap, 0, 72, 96, 1, 0, 1, 6, 1)).toThrow(RangeError);
      expect(() => addon.attentionGrad(heap, 0, 24, 96, 190, 1, 4, 1, 6, 1)).toThrow(RangeError);
      expect(() => (addon.attention as (...a: unknown[]) => void)(heap, 0, 72, 96, 1, 4, 1, 6)).toThrow(TypeError);
    });
  });

  describe('expert products on packed rows', () => {
    it.each([
      { E: 3, R: 7, I: 5, O: 9, rows: [7, 0, 4] }, // full, empty and partly filled experts
      { E: 2, R: 33, I: 64, O: 48, rows: [30, 33] },
    ])(
      'forward and gradients equal the batched fused product on the filled rows, zeros below: E=$E R=$R I=$I O=$O rows=$rows',
      ({ E, R, I, O, rows }) => {
        // inputs as dispatch leaves them: zero rows below each expert's count
        const xv = normals(E * R * I, 80);
        for (let e = 0; e < E; e++) xv.fill(0, (e * R + rows[e]!) * I, (e + 1) * R * I);
        const wv = normals(E * I * O, 81),
          bv = normals(E * O, 82);
        // cotangent as combine gives it: zero on empty rows
        const cot = normals(E * R * O, 83);
        for (let e = 0; e < E; e++) cot.fill(0, (e * R + rows[e]!) * O, (e + 1) * R * O);
        const filled = Int32Array.from(rows);
        const run = (packedKernel: boolean) =>
          tf.tidy(() => {
            const x = tf.tensor3d(xv, [E, R, I]),
              w = tf.tensor3d(wv, [E, I, O]),
              b = tf.tensor2d(bv, [E, O]),
              c = tf.tensor3d(cot, [E, R, O]);
            const f = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
              packedKernel
                ? expertDense(xi as tf.Tensor3D, wi as tf.Tensor3D, bi as tf.Tensor2D, tf.tensor1d(filled, 'int32'))
                : tf.fused.matMul({ a: xi as tf.Tensor3D, b: wi as tf.Tensor3D, bias: tf.reshape(bi, [E, 1, O]) });
            const y = f(x, w, b);
            const grads = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(f(xi, wi, bi), c)))([
              x,
              w,
              b,
            ]);
            return [y, ...grads].map((t) => Float32Array.from(t.dataSync()));
          });
        const [y, dx, dw, db] = run(true);
        const [yRef, dxRef, dwRef, dbRef] = run(false);
        for (let e = 0; e < E; e++) {
          const filledPart = (a: Float32Array, width: number) => a.subarray(e * R * width, (e * R + rows[e]!) * width);
          expectClose(filledPart(y!, O), filledPart(yRef!, O), 1e-5);
          expect(y!.subarray((e * R + rows[e]!) * O, (e + 1) * R * O).every((v) => v === 0)).toBe(true);
          expectClose(filledPart(dx!, I), filledPart(dxRef!, I), 1e-5);
          expect(dx!.subarray((e * R + rows[e]!) * I, (e + 1) * R * I).every((v) => v === 0)).toBe(true);
        }
        expectClose(dw!, dwRef!, 1e-5);
        expectClose(db!, dbRef!, 1e-5);
      },
    );
    it.each([
      // E=3, R=6, N=7: a full expert, an empty one, and one with three rows; tokens 1 and 3 go to two experts (K = 2)
      { E: 3, R: 6, I: 5, O: 9, N: 7, tokens: [3, 1, 7, 5, 2, 4, 0, 0, 0, 0, 0, 0, 1, 3, 6, 0, 0, 0], rows: [6, 0, 3] },
      {
        E: 2,
        R: 40,
        I: 64,
        O: 48,
        N: 50,
        tokens: [
          ...Array.from({ length: 40 }, (_, i) => 50 - i),
          ...Array.from({ length: 40 }, (_, i) => (i < 35 ? ((2 * i) % 49) + 1 : 0)),
        ],
        rows: [40, 35],
      },
    ])(
      'with tokens, equals dispatchRows then the product, on wasm and cpu (y, dx (N, I), dw, db): E=$E R=$R N=$N',
      async ({ E, R, I, O, N, tokens, rows }) => {
        const xv = normals(N * I, 84),
          wv = normals(E * I * O, 85),
          bv = normals(E * O, 86);
        const cot = normals(E * R * O, 87);
        for (let e = 0; e < E; e++) cot.fill(0, (e * R + rows[e]!) * O, (e + 1) * R * O); // combine gives empty rows no gradient
        const run = (fused: boolean) =>
          tf.tidy(() => {
            const x = tf.tensor2d(xv, [N, I]),
              w = tf.tensor3d(wv, [E, I, O]),
              b = tf.tensor2d(bv, [E, O]),
              c = tf.tensor3d(cot, [E, R, O]);
            const tok = tf.tensor1d(tokens, 'int32'),
              filled = tf.tensor1d(rows, 'int32');
            const f = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
              fused
                ? expertDenseOfTokens(xi as tf.Tensor2D, tok, wi as tf.Tensor3D, bi as tf.Tensor2D, filled)
                : tf.add(
                    tf.matMul(tf.reshape(dispatchRows(xi as tf.Tensor2D, tok), [E, R, I]), wi),
                    tf.reshape(bi, [E, 1, O]),
                  );
            const y = f(x, w, b);
            const grads = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(f(xi, wi, bi), c)))([
              x,
              w,
              b,
            ]);
            return [y, ...grads].map((t) => Float32Array.from(t.dataSync()));
          });
        expect(canGatherInExpertDense(tf.zeros([1, 1]))).toBe(true);
        const [y, dx, dw, db] = run(true);
        for (const ref of ['wasm', 'cpu']) {
          const [yRef, dxRef, dwRef, dbRef] = await onBackend(ref, () => run(false));
          for (let e = 0; e < E; e++) {
            const part = (a: Float32Array) => a.subarray(e * R * O, (e * R + rows[e]!) * O);
            expectClose(part(y!), part(yRef!), 1e-5);
            expect(y!.subarray((e * R + rows[e]!) * O, (e + 1) * R * O).every((v) => v === 0)).toBe(true);
          }
          expectClose(dx!, dxRef!, 1e-5); // summed over both experts for tokens routed twice; 0 for token rows never routed
          expectClose(dw!, dwRef!, 1e-5);
          expectClose(db!, dbRef!, 1e-5);
        }
        const x = tf.zeros([N, I]),
          w = tf.zeros([E, I, O]);
        const bad = Int32Array.from(tokens);
        bad[0] = N + 1;
        expect(() =>
          tf.engine().runKernel(VMOE_EXPERT_DENSE, {
            x,
            w,
            rows: tf.tensor1d(rows, 'int32'),
            tokens: tf.tensor1d(bad, 'int32'),
          }),
        ).toThrow(/token must be in \[1, N\]/);
        bad[0] = 0;
        expect(() =>
          tf.engine().runKernel(VMOE_EXPERT_DENSE, {
            x,
            w,
            rows: tf.tensor1d(rows, 'int32'),
            tokens: tf.tensor1d(bad, 'int32'),
          }),
        ).toThrow(/token must be in \[1, N\]/);
        expect(() =>
          tf.engine().runKernel(VMOE_EXPERT_DENSE, {
            x: tf.zeros([N, I + 1]),
            w,
            rows: tf.tensor1d(rows, 'int32'),
            tokens: tf.tensor1d(tokens, 'int32'),
          }),
        ).toThrow(/must be \(E, R, I\)/);
      },
    );

    it('rejects row counts outside [0, R] and mismatched shapes', () => {
      const x = tf.zeros([2, 4, 3]),
        w = tf.zeros([2, 3, 5]);
      expect(() => tf.engine().runKernel(VMOE_EXPERT_DENSE, { x, w, rows: tf.tensor1d([1, 5], 'int32') })).toThrow(
        /\[0, R\]/,
      );
      expect(() => tf.engine().runKernel(VMOE_EXPERT_DENSE, { x, w, rows: tf.tensor1d([1, -1], 'int32') })).toThrow(
        /\[0, R\]/,
      );
      expect(() =>
        tf.engine().runKernel(VMOE_EXPERT_DENSE, { x, w: tf.zeros([2, 4, 5]), rows: tf.tensor1d([1, 1], 'int32') }),
      ).toThrow(/must be \(E, R, I\)/);
      expect(() =>
        tf.engine().runKernel(VMOE_EXPERT_DENSE, { x, w, b: tf.zeros([2, 4]), rows: tf.tensor1d([1, 1], 'int32') }),
      ).toThrow(/b \[2,4\]/);
      expect(() =>
        tf
          .engine()
          .runKernel(VMOE_EXPERT_DENSE_GRAD, { dy: tf.zeros([2, 4, 4]), x, w, rows: tf.tensor1d([1, 1], 'int32') }),
      ).toThrow(/dy \[2,4,4\]/);
    });
  });

  describe('router gates (product, E³ mask, noise, softmax)', () => {
    // Widths 8 and 4 take the fixed-width softmax, 6 the general one; 'gates only' leaves the logits off the
    // gradient's path (tfjs then hands the kernel a zero dLogits).
    it.each([
      { name: 'noise, both outputs', N: 37, H: 5, E: 8, M: 1, noise: true, logitsToo: true },
      { name: 'E³ 2 members, noise', N: 40, H: 6, E: 4, M: 2, noise: true, logitsToo: true },
      { name: 'no noise, 6 experts', N: 13, H: 3, E: 6, M: 1, noise: false, logitsToo: true },
      { name: 'E³ 2 members, no noise, gates only', N: 24, H: 7, E: 8, M: 2, noise: false, logitsToo: false },
      { name: 'one token, one expert', N: 1, H: 4, E: 1, M: 1, noise: true, logitsToo: true },
    ])('forward and dx, dw equal the composed ops on wasm and cpu: $name', async ({ N, H, E, M, noise, logitsToo }) => {
      const x = { data: normals(N * H, 80, 2), shape: [N, H] };
      const w = { data: normals(H * E, 81), shape: [H, E] };
      const noiseValues = noise ? normals(N * E, 82, 0.5) : null;
      const op = (impl: typeof routerGates) => (xi: tf.Tensor, wi: tf.Tensor) => {
        const r = impl(xi as tf.Tensor2D, wi as tf.Tensor2D, noiseValues ? tf.tensor2d(noiseValues, [N, E]) : null, M);
        return logitsToo ? tf.concat([r.logits, r.gates], 1) : r.gates;
      };
      const cot = normals(N * E * (logitsToo ? 2 : 1), 83);
      const got = valueAndGrads(op(routerGates), [x, w], cot);
      for (const ref of ['wasm', 'cpu']) {
        const want = await onBackend(ref, () => valueAndGrads(op(composedRouterGates), [x, w], cot));
        expectClose(got[0]!, want[0]!, 1e-5); // logits (masked: −1e9) and gates
        expectClose(got[1]!, want[1]!, 1e-4); // dx
        expectClose(got[2]!, want[2]!, 1e-4); // dw
      }
    });

    it('rejects mismatched shapes and members that do not divide E', () => {
      const x = tf.zeros([4, 3]),
        w = tf.zeros([3, 4]);
      expect(() => tf.engine().runKernel(VMOE_ROUTER_GATES, { x, w: tf.zeros([2, 4]) }, { members: 1 })).toThrow(
        /must be \(N, H\) and \(H, E\)/,
      );
      expect(() => tf.engine().runKernel(VMOE_ROUTER_GATES, { x, w, noise: tf.zeros([4, 3]) }, { members: 1 })).toThrow(
        /noise \[4,3\]/,
      );
      expect(() => tf.engine().runKernel(VMOE_ROUTER_GATES, { x, w }, { members: 3 })).toThrow(
        /do not split into 3 members/,
      );
      expect(() => tf.engine().runKernel(VMOE_ROUTER_GATES_GRAD, { x, w, gates: tf.zeros([4, 4]) })).toThrow(
        /needs gates and dGates/,
      );
    });
  });

  describe('router auxiliary losses', () => {
    /** Logits (E³: masked), their softmax, the router's noise, noisy logits and each token's K-th noisy choice. */
    function routerInputs(N: number, E: number, M: number, K: number, seed: number) {
      const Em = E / M,
        sigma = 1 / Em;
      const logits = normals(N * E, seed);
      for (let t = 0; t < N; t++)
        for (let e = 0; e < E; e++) if (Math.floor(e / Em) !== t % M) logits[t * E + e] = -1e9;
      const noise = normals(N * E, seed + 1).map((v) => sigma * v); // float32, as the router's
      const gates = new Float32Array(N * E),
        noisy = new Float32Array(N * E),
        kth = new Int32Array(N);
      for (let t = 0; t < N; t++) {
        const row = logits.subarray(t * E, (t + 1) * E);
        const mx = Math.max(...row);
        let z = 0;
        for (let e = 0; e < E; e++) z += Math.exp(row[e]! - mx);
        for (let e = 0; e < E; e++) {
          gates[t * E + e] = Math.exp(row[e]! - mx) / z;
          noisy[t * E + e] = row[e]! + noise[t * E + e]!;
        }
        const order = Array.from({ length: E }, (_, e) => e).sort(
          (a, b) => noisy[t * E + b]! - noisy[t * E + a]! || a - b,
        );
        kth[t] = order[K - 1]!;
      }
      return { logits, gates, noise, noisy, kth, sigma };
    }
    it.each([
      { name: 'one member, an uneven last group', N: 44, E: 8, sizes: [16, 16, 12], M: 1, K: 2, noise: true },
      { name: 'E³, 2 members', N: 48, E: 8, sizes: [24, 24], M: 2, K: 1, noise: true },
      { name: 'no noise: importance only', N: 30, E: 4, sizes: [10, 10, 10], M: 1, K: 2, noise: false },
    ])('the kernel equals routerAuxLosses (values and ∂/∂logits): $name', ({ N, E, sizes, M, K, noise }) => {
      const inp = routerInputs(N, E, M, K, 70);
      const weights = { importance: 0.3, load: noise ? 0.7 : 0 };
      const want = routerAuxLosses({
        numTokens: N,
        numExperts: E,
        logits: inp.logits,
        gates: inp.gates,
        noisy: noise ? inp.noisy : null,
        kthExpert: noise ? inp.kth : null,
        sigma: inp.sigma,
        groupSizes: sizes,
        members: M,
        weights,
      });
      tf.tidy(() => {
        // The kernel computes the clean gates and the noisy threshold itself.
        const inputs: tf.NamedTensorMap = { logits: tf.tensor2d(inp.logits, [N, E]) };
        if (noise) Object.assign(inputs, { noise: tf.tensor2d(inp.noise, [N, E]), kth: tf.tensor1d(inp.kth, 'int32') });
        const [d, losses] = tf.engine().runKernel(VMOE_ROUTER_AUX, inputs, {
          groupSizes: sizes,
          members: M,
          sigma: inp.sigma,
          importanceWeight: weights.importance,
          loadWeight: weights.load,
        }) as tf.Tensor[];
        const [imp, load, weighted] = losses!.dataSync();
        expect(Math.abs(imp! - want.importance)).toBeLessThan(1e-6 * (1 + want.importance));
        if (noise) expect(Math.abs(load! - want.load)).toBeLessThan(1e-5 * (1 + want.load));
        else expect(load).toBeNaN();
        expect(Math.abs(weighted! - want.weighted)).toBeLessThan(1e-5 * (1 + want.weighted));
        const scale = Math.max(...Array.from(want.dLogits, Math.abs));
        expect(scale).toBeGreaterThan(0);
        const got = d!.dataSync();
        let worst = 0;
        for (let i = 0; i < N * E; i++) worst = Math.max(worst, Math.abs(got[i]! - want.dLogits[i]!));
        expect(worst / scale).toBeLessThan(1e-4); // float32 erfc and exp against float64
      });
    });
    it('rejects a K-th expert outside its member, group sizes that miss N, and unpaired noise/kth', () => {
      const N = 8,
        E = 4,
        M = 2;
      const inp = routerInputs(N, E, M, 1, 71);
      const attrs = (sizes: number[]) => ({
        groupSizes: sizes,
        members: M,
        sigma: inp.sigma,
        importanceWeight: 1,
        loadWeight: 1,
      });
      const base = () => ({ logits: tf.tensor2d(inp.logits, [N, E]), noise: tf.tensor2d(inp.noise, [N, E]) });
      const bad = Int32Array.from(inp.kth);
      bad[1] = 0; // token 1 belongs to member 1 (experts 2, 3)
      expect(() =>
        tf.engine().runKernel(VMOE_ROUTER_AUX, { ...base(), kth: tf.tensor1d(bad, 'int32') }, attrs([8])),
      ).toThrow(/outside its member/);
      expect(() =>
        tf.engine().runKernel(VMOE_ROUTER_AUX, { ...base(), kth: tf.tensor1d(inp.kth, 'int32') }, attrs([4])),
      ).toThrow(/add up to N/);
      expect(() =>
        tf.engine().runKernel(VMOE_ROUTER_AUX, { ...base(), kth: tf.tensor1d(inp.kth, 'int32') }, attrs([3, 5])),
      ).toThrow(/multiples of members/);
      expect(() => tf.engine().runKernel(VMOE_ROUTER_AUX, base(), attrs([8]))).toThrow(/noise and kth come together/);
    });
  });

  describe('MoE combine rows', () => {
    // Expert-buffer rows: 1-based tokens with empty slots (0), repeated tokens (top-k), a dropped gate index.
    const cases = [
      { N: 7, E: 3, H: 5, tokens: [3, 0, 1, 7, 3, 0, 5, 2, 7, 0, 1, 4] },
      {
        N: 40,
        E: 8,
        H: 64,
        tokens: Array.from({ length: 96 }, (_, i) => ((i * 37) % 45 > 40 ? 0 : ((i * 37) % 40) + 1)),
      },
      { N: 3, E: 2, H: 1, tokens: [0, 0] },
    ];
    describe.each(cases.map((c) => [`N=${c.N} E=${c.E} H=${c.H} M=${c.tokens.length}`, c] as const))('%s', (_, c) => {
      const M = c.tokens.length;
      const tokens = Int32Array.from(c.tokens);
      // Each row's gate index t·E + e + 1 for an expert derived from the row; row 1 keeps its token but reads gate 0.
      const gateIndex = Int32Array.from(c.tokens, (t, i) => (t === 0 || i === 1 ? 0 : (t - 1) * c.E + (i % c.E) + 1));
      const rows = { data: normals(M * c.H, 61), shape: [M, c.H] };
      const gates = { data: normals(c.N * c.E, 62), shape: [c.N, c.E] };
      const ops = {
        combine: (r: tf.Tensor, g: tf.Tensor) =>
          combineRows(
            r as tf.Tensor2D,
            g as tf.Tensor2D,
            tf.tensor1d(tokens, 'int32'),
            tf.tensor1d(gateIndex, 'int32'),
            c.N,
          ),
      };
      it.each(['wasm', 'cpu'])(
        'combine forward and row/gate gradients equal the composed gather-multiply-scatter on %s',
        async (ref) => {
          const cot = normals(c.N * c.H, 64);
          const want = await onBackend(ref, () => valueAndGrads(ops.combine, [rows, gates], cot));
          const got = valueAndGrads(ops.combine, [rows, gates], cot);
          expectClose(got[0]!, want[0]!, 1e-6);
          expectClose(got[1]!, want[1]!, 1e-6);
          expectClose(got[2]!, want[2]!, 1e-5); // dot products: summation order differs
        },
      );
    });

    it('reject indices out of range, wrong dtypes and shapes', () => {
      const run =
        (name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}) =>
        () =>
          tf.engine().runKernel(name, inputs, attrs);
      const x = tf.tensor2d(normals(6, 65), [3, 2]);
      const idx = (v: number[]) => tf.tensor1d(v, 'int32');
      const gates = tf.tensor2d(normals(4, 66), [2, 2]);
      expect(
        run(VMOE_COMBINE_ROWS, { x, gates, tokens: idx([1, 2, 0]), gateIndex: idx([1, 5, 0]) }, { numTokens: 2 }),
      ).toThrow(/out of range/);
      expect(
        run(VMOE_COMBINE_ROWS, { x, gates, tokens: idx([1, 3, 0]), gateIndex: idx([1, 4, 0]) }, { numTokens: 2 }),
      ).toThrow(/out of range/);
      expect(
        run(VMOE_COMBINE_ROWS_GRAD, {
          dy: tf.zeros([2, 3]),
          x,
          gates,
          tokens: idx([1, 2, 0]),
          gateIndex: idx([1, 4, 0]),
        }),
      ).toThrow(/dy/);
      const ok = run(
        VMOE_COMBINE_ROWS,
        { x, gates, tokens: idx([1, 2, 0]), gateIndex: idx([1, 4, 0]) },
        { numTokens: 2 },
      );
      expect(ok).not.toThrow();
    });
  });

  describe('the Adam step', () => {
    const shapes: Record<string, number[]> = {
      'a/kernel': [17, 33],
      'a/bias': [33],
      'b/scale': [1, 1],
      'b/w': [3, 5, 37],
      'c/w': [300, 250], // 75 000 values: cut over the threads at 2 (≥ 64 K)
    };
    /** Five optimiser steps with fixed pseudo-random gradients; parameters, moments and gradient norms as host arrays. */
    function steps(optim: Record<string, unknown>): { norms: number[]; state: Float32Array[] } {
      const params = new Map(
        Object.entries(shapes).map(([n, s], i) => [n, tf.variable(tf.tensor(normals(size(s), 50 + i), s))]),
      );
      const opt = new Adam(OptimSchema.parse(optim), (n) => n.endsWith('kernel') || n.endsWith('/w'));
      const norms: number[] = [];
      for (let t = 0; t < 5; t++) {
        const grads = Object.fromEntries(
          Object.entries(shapes).map(([n, s], i) => [n, tf.tensor(normals(size(s), 100 * t + i, 0.3), s)]),
        );
        norms.push(opt.apply(params, grads, 1e-2 * (t + 1)));
        for (const g of Object.values(grads)) g.dispose();
      }
      const state = [...params.keys()].flatMap((n) =>
        [params.get(n)!, opt.m.get(n)!, opt.v.get(n)!].map((t) => Float32Array.from(t.dataSync())),
      );
      opt.dispose();
      for (const p of params.values()) p.dispose();
      return { norms, state };
    }

    it.each([
      ['adamw, clipped gradients, decay on kernels only', { optimizer: 'adamw', weightDecay: 0.1, gradClipNorm: 0.5 }],
      ['adam, no clipping', { optimizer: 'adam', gradClipNorm: null }],
      [
        'adamw, clipping that does not bind',
        { optimizer: 'adamw', gradClipNorm: 1e6, beta1: 0.5, beta2: 0.9, eps: 1e-3 },
      ],
    ])('%s: parameters, moments and norms equal the composed optimiser on wasm and cpu', async (_, optim) => {
      const fused = steps(optim);
      for (const ref of ['wasm', 'cpu']) {
        const want = await onBackend(ref, () => steps(optim));
        fused.norms.forEach((g, i) => expect(Math.abs(g - want.norms[i]!)).toBeLessThan(1e-5 * g));
        fused.state.forEach((a, i) => expectClose(a, want.state[i]!, 1e-6));
      }
    });

    it('on 2 threads, parameters and moments are the 1-thread bits', () => {
      const optim = { optimizer: 'adamw', weightDecay: 0.1, gradClipNorm: 0.5 };
      const one = steps(optim);
      blas.addon!.setThreads(2); // initEngine keeps the running engine's thread count
      try {
        const two = steps(optim);
        two.state.forEach((a, i) => expect(a).toEqual(one.state[i]!));
      } finally {
        blas.addon!.setThreads(1);
      }
    });

    it('the squared-norm kernel sums over all its inputs (empty ones included)', () => {
      const a = tf.tensor(normals(37, 60), [37]),
        b = tf.tensor(normals(6, 61), [2, 3]),
        empty = tf.zeros([0, 4]);
      const want = [...a.dataSync(), ...b.dataSync()].reduce((acc, v) => acc + v * v, 0);
      const got = (tf.engine().runKernel(VMOE_SUM_OF_SQUARES, { a, b, empty }) as tf.Tensor).dataSync()[0]!;
      expect(Math.abs(got - want)).toBeLessThan(1e-5 * want);
    });
  });

  describe('gradients against central finite differences of float64 references', () => {
    const rows = 3,
      cols = 7;
    const xv = normals(rows * cols, 20, 1.5),
      sv = normals(cols, 21),
      bv = normals(cols, 22),
      wv = normals(rows * cols, 23);
    const h = 1e-6;

    /** Σ w ⊙ f(p) differentiated numerically with respect to every entry of p. */
    function numericGrad(p: Float64Array, loss: (p: Float64Array) => number): Float64Array {
      const g = new Float64Array(p.length);
      for (let i = 0; i < p.length; i++) {
        const keep = p[i]!;
        p[i] = keep + h;
        const up = loss(p);
        p[i] = keep - h;
        const down = loss(p);
        p[i] = keep;
        g[i] = (up - down) / (2 * h);
      }
      return g;
    }
    const dot = (y: Float64Array) => y.reduce((s, v, i) => s + v * wv[i]!, 0);

    const c = Math.sqrt(2 / Math.PI);
    const geluRef = (x: Float64Array) => x.map((v) => 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v ** 3))));
    const layerNormRef = (x: Float64Array, s: ArrayLike<number>, b: ArrayLike<number>) => {
      const y = new Float64Array(x.length);
      for (let r = 0; r < rows; r++) {
        const row = x.subarray(r * cols, (r + 1) * cols);
        const m = row.reduce((a, v) => a + v, 0) / cols;
        const v = row.reduce((a, q) => a + (q - m) ** 2, 0) / cols;
        for (let j = 0; j < cols; j++) y[r * cols + j] = ((row[j]! - m) / Math.sqrt(v + 1e-6)) * s[j]! + b[j]!;
      }
      return y;
    };
    const softmaxRef = (x: Float64Array) => {
      const y = new Float64Array(x.length);
      for (let r = 0; r < rows; r++) {
        const row = x.subarray(r * cols, (r + 1) * cols);
        const m = Math.max(...row);
        const e = row.map((v) => Math.exp(v - m));
        const z = e.reduce((a, v) => a + v, 0);
        for (let j = 0; j < cols; j++) y[r * cols + j] = e[j]! / z;
      }
      return y;
    };

    it('GELU', () => {
      const [, dx] = valueAndGrads((a) => gelu(a), [{ data: xv, shape: [rows, cols] }], wv);
      expectClose(
        dx!,
        numericGrad(Float64Array.from(xv), (p) => dot(geluRef(p))),
        1e-5,
      );
    });

    it('LayerNorm, all three inputs', () => {
      const [, dx, ds, db] = valueAndGrads(
        (a, s, b) => layerNorm(a, s as tf.Tensor1D, b as tf.Tensor1D),
        [
          { data: xv, shape: [rows, cols] },
          { data: sv, shape: [cols] },
          { data: bv, shape: [cols] },
        ],
        wv,
      );
      const x64 = Float64Array.from(xv),
        s64 = Float64Array.from(sv),
        b64 = Float64Array.from(bv);
      expectClose(
        dx!,
        numericGrad(x64, (p) => dot(layerNormRef(p, s64, b64))),
        1e-4,
      );
      expectClose(
        ds!,
        numericGrad(s64, (p) => dot(layerNormRef(x64, p, b64))),
        1e-5,
      );
      expectClose(
        db!,
        numericGrad(b64, (p) => dot(layerNormRef(x64, s64, p))),
        1e-5,
      );
    });

    it('softmax', () => {
      const [, dx] = valueAndGrads((a) => softmax(a), [{ data: xv, shape: [rows, cols] }], wv);
      expectClose(
        dx!,
        numericGrad(Float64Array.from(xv), (p) => dot(softmaxRef(p))),
        1e-5,
      );
    });
  });

  it('an empty leading axis gives empty outputs and zero scale/bias gradients', () => {
    const x = tf.zeros([0, 5]);
    const scale = tf.ones([5]) as tf.Tensor1D,
      bias = tf.zeros([5]) as tf.Tensor1D;
    expect(gelu(x).shape).toEqual([0, 5]);
    expect(softmax(x).shape).toEqual([0, 5]);
    const [dx, ds, db] = tf.grads((a: tf.Tensor, s: tf.Tensor, b: tf.Tensor) =>
      tf.sum(layerNorm(a, s as tf.Tensor1D, b as tf.Tensor1D)),
    )([x, scale, bias]);
    expect(dx!.shape).toEqual([0, 5]);
    expect(Array.from(ds!.dataSync())).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(db!.dataSync())).toEqual([0, 0, 0, 0, 0]);
  });

  it('kernels reject wrong dtypes, shapes and attributes', () => {
    const run =
      (name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}) =>
      () =>
        tf.engine().runKernel(name, inputs, attrs);
    const x = tf.tensor2d(normals(6, 30), [2, 3]);
    expect(run(VMOE_GELU, { x: tf.cast(x, 'int32') })).toThrow(/float32/);
    expect(run(VMOE_GELU_GRAD, { dy: tf.zeros([3, 2]), x })).toThrow(/differ in shape/);
    expect(run(VMOE_LAYER_NORM, { x, scale: tf.ones([4]), bias: tf.zeros([3]) }, { epsilon: 1e-6 })).toThrow(
      /must have shape \[3\]/,
    );
    expect(run(VMOE_LAYER_NORM, { x, scale: tf.ones([3]), bias: tf.zeros([3]) })).toThrow(/epsilon/);
    expect(run(VMOE_LAYER_NORM, { x, scale: tf.ones([3]), bias: tf.zeros([3]) }, { epsilon: -1 })).toThrow(/epsilon/);
    expect(run(VMOE_LAYER_NORM_GRAD, { dy: x, x: tf.zeros([2, 4]), scale: tf.ones([4]) }, { epsilon: 1e-6 })).toThrow(
      /differ in shape/,
    );
    expect(
      run(VMOE_LAYER_NORM, { x: tf.zeros([2, 0]), scale: tf.ones([0]), bias: tf.zeros([0]) }, { epsilon: 1e-6 }),
    ).toThrow(/non-empty last axis/);
    expect(run(VMOE_SOFTMAX, { x: tf.scalar(1) })).toThrow(/non-empty last axis/);
    expect(run(VMOE_SOFTMAX_GRAD, { dy: x, y: tf.zeros([3, 2]) })).toThrow(/differ in shape/);
    const adamAttrs = {
      beta1: 0.9,
      beta2: 0.999,
      stepSize: 1e-3,
      biasCorrection2: 1,
      epsilon: 1e-8,
      weightDecayStep: 0,
      gradScale: 1,
    };
    expect(run(VMOE_ADAM, { param: x, m: x, v: x, grad: tf.zeros([3, 2]) }, adamAttrs)).toThrow(/differ in shape/);
    expect(run(VMOE_ADAM, { param: x, m: x, v: x, grad: x }, { ...adamAttrs, epsilon: NaN })).toThrow(/epsilon/);
    expect(
      run(VMOE_ADAM, { param: x, m: x, v: x, grad: x }, { ...adamAttrs, gradScale: undefined as unknown as number }),
    ).toThrow(/gradScale/);
    expect(run(VMOE_SUM_OF_SQUARES, { a: x, b: tf.cast(x, 'int32') })).toThrow(/float32/);
  });

  it('addon entry points check argument counts, types and ranges', () => {
    const addon = blas.addon!;
    const heap = new Float32Array(64);
    expect(() => addon.gelu(heap, 0, 32, 32)).not.toThrow();
    expect(() => addon.gelu(heap, 0, 33, 32)).toThrow(RangeError);
    expect(() => addon.gelu(heap, -1, 0, 4)).toThrow(RangeError);
    expect(() => addon.gelu(heap, 0, 0, -1)).toThrow(RangeError);
    expect(() => (addon.gelu as (...a: unknown[]) => void)(heap, 0, 0)).toThrow(TypeError);
    expect(() => addon.gelu(new Float64Array(8) as unknown as Float32Array, 0, 0, 4)).toThrow(TypeError);
    expect(() => addon.geluGrad(heap, 0, 16, 60, 8)).toThrow(RangeError);
    expect(() => addon.layerNorm(heap, 0, 40, 48, 0, 4, 10, 1e-6)).not.toThrow(); // (4, 10) in place, vectors after
    expect(() => addon.layerNorm(heap, 0, 40, 48, 0, 7, 10, 1e-6)).toThrow(RangeError);
    expect(() => addon.layerNorm(heap, 0, 40, 48, 0, 4, 0, 1e-6)).toThrow(RangeError);
    expect(() => addon.layerNorm(heap, 0, 60, 48, 0, 4, 10, 1e-6)).toThrow(RangeError);
    expect(() => addon.layerNorm(heap, 0, 40, 48, 0, 4, 10, -1)).toThrow(RangeError);
    expect(() => addon.layerNormGrad(heap, 0, 0, 40, 0, 50, 60, 4, 10, 1e-6)).toThrow(RangeError);
    expect(() => addon.softmax(heap, 0, 0, 8, 8)).not.toThrow();
    expect(() => addon.softmax(heap, 0, 0, 9, 8)).toThrow(RangeError);
    expect(() => addon.softmaxGrad(heap, 0, 0, 1, 8, 8)).toThrow(RangeError);
    expect(() => addon.reduceMiddle(heap, 0, 0, 2, 4, 8, 1)).not.toThrow();
    expect(() => addon.reduceMiddle(heap, 0, 60, 2, 4, 8, 1)).toThrow(RangeError);
    expect(() => addon.reduceMiddle(heap, 0, 0, -1, 4, 8, 1)).toThrow(RangeError);
    expect(() => addon.sgemm(heap, false, false, 2, 2, 2, 2, 0, -4, 16, 4, 32, 4, -1, 0, false)).toThrow(RangeError);
    expect(() => addon.sgemm(heap, false, false, 2, 2, 2, 2, 0, 4, 16, 4, 32, 4, 48, 30, false)).toThrow(RangeError);
    const coefficients = Float64Array.of(0.9, 0.1, 0.999, 0.001, 1e-3, 1, 1e-8, 0, 1);
    expect(() => addon.adam(heap, 0, 8, 16, 24, 32, 40, 48, 8, coefficients)).not.toThrow();
    expect(() => addon.adam(heap, 0, 8, 16, 24, 32, 40, 57, 8, coefficients)).toThrow(RangeError);
    expect(() => addon.adam(heap, 0, 8, 16, 24, 32, 40, 48, 8, coefficients.subarray(1))).toThrow(TypeError);
    expect(() =>
      addon.adam(heap, 0, 8, 16, 24, 32, 40, 48, 8, Float64Array.of(0.9, 0.1, 0.999, 0.001, 1e-3, 1, NaN, 0, 1)),
    ).toThrow(RangeError);
    expect(addon.sumOfSquares(heap.fill(2), Float64Array.of(0, 60), Float64Array.of(3, 4))).toBe(28);
    expect(() => addon.sumOfSquares(heap, Float64Array.of(61), Float64Array.of(4))).toThrow(RangeError);
    expect(() => addon.sumOfSquares(heap, Float64Array.of(0.5), Float64Array.of(4))).toThrow(RangeError);
    expect(() => addon.sumOfSquares(heap, Float64Array.of(0, 1), Float64Array.of(4))).toThrow(RangeError);
    // routerAux on (N, E) = (4, 2): logits 0, dLogits 16, losses 24; no noise
    heap.fill(0.5);
    expect(() => addon.routerAux(heap, 0, -1, -1, 16, 24, 4, 2, 1, 0, 1, 0, Float64Array.of(4))).not.toThrow();
    expect(heap[24]).toBe(0); // equal logits, equal importances: CV² = 0
    expect(() => addon.routerAux(heap, 0, -1, -1, 16, 62, 4, 2, 1, 0, 1, 0, Float64Array.of(4))).toThrow(RangeError);
    expect(() => addon.routerAux(heap, 0, -1, -1, 16, 24, 4, 2, 1, 0, 1, 0, Float64Array.of(2))).toThrow(RangeError);
    expect(() => addon.routerAux(heap, 0, -1, -1, 16, 24, 4, 3, 2, 0, 1, 0, Float64Array.of(4))).toThrow(RangeError); // 3 experts, 2 members
    expect(() => addon.routerAux(heap, 0, 40, 56, 16, 24, 4, 2, 1, 0, 1, 1, Float64Array.of(4))).toThrow(RangeError); // sigma 0 with noise
    expect(() => addon.routerAux(heap, 0, -1, -1, 16, 24, 4, 2, 1, 0, 1, 0, [4] as unknown as Float64Array)).toThrow(
      TypeError,
    );
    // routerGates on (N, H, E) = (2, 4, 2): x 0, w 8, logits 16, gates 24; its gradient: dGates 28, dx 32, dw 40
    expect(() => addon.routerGates(heap, 0, 8, -1, 16, 24, 2, 4, 2, 1)).not.toThrow();
    expect(heap[24]! + heap[25]!).toBeCloseTo(1, 6);
    expect(() => addon.routerGates(heap, 0, 8, -1, 62, 24, 2, 4, 2, 1)).toThrow(RangeError);
    expect(() => addon.routerGates(heap, 0, 8, 62, 16, 24, 2, 4, 2, 1)).toThrow(RangeError); // noise runs past the heap
    expect(() => addon.routerGates(heap, 0, 8, -1, 16, 24, 2, 4, 3, 2)).toThrow(RangeError); // 3 experts, 2 members
    expect(() => addon.routerGatesGrad(heap, 0, 8, 24, 28, -1, 32, 40, 2, 4, 2)).not.toThrow();
    expect(() => addon.routerGatesGrad(heap, 0, 8, 24, 28, -1, 32, 60, 2, 4, 2)).toThrow(RangeError);
    expect(() =>
      (addon.routerGatesGrad as unknown as (...a: unknown[]) => void)(heap, 0, 8, 24, 28, -1, 32, 40, 2, 4),
    ).toThrow(TypeError);
  });

  it('stays correct when allocating the outputs grows the wasm memory (views are taken after allocation)', () => {
    const backend = tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } };
    const heapBytes = () => backend.wasm.HEAPU8.buffer.byteLength;
    // An input as large as the whole current heap: its output cannot fit without growing it again.
    const n = heapBytes() / 4;
    const cols = 64;
    const xv = normals(n, 40, 3);
    const x = tf.tensor2d(xv, [n / cols, cols]);
    const before = heapBytes();
    const y = gelu(x);
    expect(heapBytes()).toBeGreaterThan(before);
    const yv = y.dataSync();
    const c = Math.sqrt(2 / Math.PI);
    for (let i = 0; i < n; i += 997) {
      const v = xv[i]!;
      expect(Math.abs(yv[i]! - 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v ** 3))))).toBeLessThan(
        1e-5 * (1 + Math.abs(v)),
      );
    }
    y.dispose();
    // LayerNormGrad allocates three outputs before taking its views.
    const scale = tf.ones([cols]) as tf.Tensor1D;
    const dyv = normals((heapBytes() / 4 / cols) * cols, 41);
    const dy = tf.tensor2d(dyv, [dyv.length / cols, cols]);
    const x2 = tf.tensor2d(normals(dyv.length, 42), [dyv.length / cols, cols]);
    const before2 = heapBytes();
    const [dx, , dbias] = tf
      .engine()
      .runKernel(VMOE_LAYER_NORM_GRAD, { dy, x: x2, scale }, { epsilon: 1e-6 }) as tf.Tensor[];
    expect(heapBytes()).toBeGreaterThan(before2);
    const want = new Float64Array(cols);
    for (let i = 0; i < dyv.length; i++) want[i % cols]! += dyv[i]!;
    expectClose(dbias!.dataSync(), want, 1e-4);
    expect(dx!.dataSync().every(Number.isFinite)).toBe(true);
    for (const t of [x, dy, x2, dx!, dbias!]) t.dispose();
  });
});
