/**
 * The wasm-blas backend against independent references: float64 loops in
 * JavaScript (products, slices, tanh), the plain wasm kernels (reductions,
 * split, unstack), closed-form matMul gradients
 * (dA = W·Bᵀ, dB = Aᵀ·W for the loss Σ W⊙(A·B)), and the plain wasm backend
 * (same process, same tensors: the two names share one backend instance).
 * Tests that need the addon skip, saying so, when it is not built.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import {
  checkAddon,
  chooseCoreType,
  chooseGemm,
  defaultAddonPath,
  loadBlasAddon,
  selfCheck,
  type BlasAddon,
  type GemmLibrary,
} from '../../src/engine/native-blas.js';
import { OptimSchema } from '../../src/config/experiment.js';
import { Adam } from '../../src/train/optimizer.js';
import { dense2d } from '../../src/vmoe/layers.js';
import { ModelSchema } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { Rng } from '../../src/util/rng.js';

describe('chooseCoreType', () => {
  const avx512 = new Set(['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512dq', 'avx512vl']);
  it.each([
    ["the user's OPENBLAS_CORETYPE wins", { OPENBLAS_CORETYPE: 'Zen', VMOE_BLAS_CORETYPE: 'Haswell' }, avx512, 'Zen'],
    ['VMOE_BLAS_CORETYPE=none leaves detection to OpenBLAS', { VMOE_BLAS_CORETYPE: 'none' }, avx512, null],
    ['VMOE_BLAS_CORETYPE names a core', { VMOE_BLAS_CORETYPE: 'Sandybridge' }, avx512, 'Sandybridge'],
    ['AVX-512 → SkylakeX', {}, avx512, 'SkylakeX'],
    ['AVX2 + FMA → Haswell', {}, new Set(['avx2', 'fma']), 'Haswell'],
    ['AVX-512F alone is not enough for SkylakeX kernels', {}, new Set(['avx2', 'fma', 'avx512f']), 'Haswell'],
    ['older CPUs: no forcing', {}, new Set(['sse2', 'sse3']), null],
  ])('%s', (_, env, flags, want) => {
    expect(chooseCoreType(env as NodeJS.ProcessEnv, flags)).toBe(want);
  });
});

describe('chooseGemm', () => {
  /** An addon stand-in that records setGemm calls. */
  function fakeAddon(libs: GemmLibrary[]) {
    let current: GemmLibrary = libs[0]!;
    const addon = {
      setGemm: (n: GemmLibrary) => {
        current = n;
      },
      info: () => ({
        coreName: 'Haswell',
        config: '',
        threads: 1,
        gemm: current,
        gemmLibraries: libs,
        onednnVersion: libs.includes('onednn') ? '2.6.3' : null,
      }),
    } as unknown as BlasAddon;
    return { addon, current: () => current };
  }
  it.each([
    ['oneDNN first when linked', ['onednn', 'openblas'], undefined, 'onednn 2.6.3'],
    ['VMOE_GEMM=openblas picks OpenBLAS and names its kernels', ['onednn', 'openblas'], 'openblas', 'openblas Haswell'],
    ['an OpenBLAS-only build', ['openblas'], undefined, 'openblas Haswell'],
  ] as const)('%s', (_, libs, want, described) => {
    const f = fakeAddon([...libs]);
    expect(chooseGemm(f.addon, want)).toBe(described);
    expect(f.current()).toBe(described.split(' ')[0]);
  });
  it('names the libraries the build has when VMOE_GEMM asks for another', () => {
    expect(() => chooseGemm(fakeAddon(['openblas']).addon, 'onednn')).toThrow(
      /VMOE_GEMM=onednn, but this addon has only openblas .*libdnnl-dev/,
    );
    expect(() => chooseGemm(fakeAddon(['onednn', 'openblas']).addon, 'mkl')).toThrow(/has only onednn, openblas/);
  });
});

describe('defaultAddonPath', () => {
  it('finds the addon in the nearest ancestor node_modules/.cache, and otherwise names it under the package root', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-addon-'));
    const deep = path.join(root, 'node_modules', '.cache', 'other', 'src', 'engine');
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(root, 'package.json'), '{}');
    const want = path.join(root, 'node_modules', '.cache', 'vmoe-blas', 'build', 'Release', 'vmoe_blas.node');
    expect(defaultAddonPath(deep)).toBe(want); // not built: the package root's location
    fs.mkdirSync(path.dirname(want), { recursive: true });
    fs.writeFileSync(want, '');
    expect(defaultAddonPath(deep)).toBe(want);
    fs.rmSync(root, { recursive: true, force: true });
  });
});

describe('selfCheck', () => {
  it('reports a BLAS that computes wrong products', () => {
    const broken = { sgemm: () => {} } as unknown as BlasAddon; // leaves C untouched
    expect(selfCheck(broken)).toMatch(/self-check failed/);
  });
});

describe('checkAddon', () => {
  const names = [
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
    'adam',
    'sumOfSquares',
    'reduceMiddle',
    'combineRows',
    'combineRowsGrad',
    'encoderBlock',
    'patchEmbed',
    'expertMlp',
    'packWeights',
    'normals',
    'planTopK',
    'routerAux',
    'routerGates',
    'routerGatesGrad',
    'expertDense',
    'expertDenseGrad',
    'setThreads',
    'setGemm',
    'info',
  ];
  const fake = (over: Record<string, unknown>) =>
    ({ ...Object.fromEntries(names.map((n) => [n, () => {}])), ...over }) as unknown as BlasAddon;
  it('asks for a rebuild when a stale build lacks entry points, instead of failing later', () => {
    const stale = fake({ gelu: undefined, adam: undefined });
    expect(checkAddon(stale)).toMatch(
      /older than this code \(it has no gelu, adam\); rebuild it: npm run build:native/,
    );
  });
  it('turns a throwing self-check (an sgemm with another signature) into a reason', () => {
    const throwing = fake({
      sgemm: () => {
        throw new TypeError('vmoe_blas.sgemm expects 15 arguments');
      },
    });
    expect(checkAddon(throwing)).toMatch(/self-check threw \(vmoe_blas.sgemm expects 15 arguments\); rebuild/);
  });
  it('blames a forced core type only for wrong products', () => {
    expect(checkAddon(fake({}), 'Haswell')).toMatch(
      /self-check failed .* with OPENBLAS_CORETYPE=Haswell; try VMOE_BLAS_CORETYPE=none/,
    );
    expect(checkAddon(fake({ gelu: undefined }), 'Haswell')).not.toMatch(/CORETYPE/);
  });
  it('passes the built addon', () => {
    const blasStatus = loadBlasAddon();
    if (blasStatus.addon) expect(checkAddon(blasStatus.addon)).toBeNull();
  });
});

/** Row-major op(A)·op(B) per batch, float64, with numpy-style broadcasting of the batch dims. */
function refMatMul(
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
  ta: boolean,
  tb: boolean,
): { data: Float64Array; shape: number[] } {
  const ar = aShape.length,
    br = bShape.length;
  const M = ta ? aShape[ar - 1]! : aShape[ar - 2]!,
    K = ta ? aShape[ar - 2]! : aShape[ar - 1]!;
  const N = tb ? bShape[br - 2]! : bShape[br - 1]!;
  const aB = aShape.slice(0, -2),
    bB = bShape.slice(0, -2);
  const rank = Math.max(aB.length, bB.length);
  const pad = (s: number[]) => [...Array(rank - s.length).fill(1), ...s] as number[];
  const pa = pad(aB),
    pb = pad(bB);
  const outB = pa.map((d, i) => Math.max(d, pb[i]!));
  const total = outB.reduce((p, d) => p * d, 1);
  const out = new Float64Array(total * M * N);
  for (let n = 0; n < total; n++) {
    let rem = n,
      ai = 0,
      bi = 0,
      mulA = 1,
      mulB = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const idx = rem % outB[d]!;
      rem = Math.floor(rem / outB[d]!);
      ai += (pa[d] === 1 ? 0 : idx) * mulA;
      bi += (pb[d] === 1 ? 0 : idx) * mulB;
      mulA *= pa[d]!;
      mulB *= pb[d]!;
    }
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          s += a[ai * M * K + (ta ? k * M + i : i * K + k)]! * b[bi * K * N + (tb ? j * K + k : k * N + j)]!;
        }
        out[n * M * N + i * N + j] = s;
      }
    }
  }
  return { data: out, shape: [...outB, M, N] };
}

function values(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-4): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++)
    worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  expect(worst).toBeLessThan(tol);
}

const blas = loadBlasAddon();
if (!blas.addon) console.warn(`[native-blas tests] skipped: ${blas.reason}`);

describe.skipIf(!blas.addon)('wasm-blas backend (needs the native addon)', () => {
  beforeAll(async () => {
    const info = await initEngine({ backend: 'wasm-blas', threads: 1, quiet: true });
    expect(info.backend).toBe('wasm-blas');
    expect(tf.getBackend()).toBe('wasm-blas');
  });

  const size = (s: number[]) => s.reduce((p, d) => p * d, 1);

  const libraries: GemmLibrary[] = blas.addon ? blas.addon.info().gemmLibraries : [];
  const active = blas.addon?.info().gemm;
  describe.each(libraries)('products on %s', (lib) => {
    beforeAll(() => blas.addon!.setGemm(lib));
    afterAll(() => blas.addon!.setGemm(active!));
    it.each([
      ['2-D', [37, 45], [45, 29], false, false],
      ['2-D, A transposed', [45, 37], [45, 29], true, false],
      ['2-D, B transposed', [37, 45], [29, 45], false, true],
      ['2-D, both transposed', [45, 37], [29, 45], true, true],
      ['1×1 by 1×1', [1, 1], [1, 1], false, false],
      ['batched, attention scores q·kᵀ', [8, 50, 16], [8, 50, 16], false, true],
      ['batched, both transposed', [3, 7, 5], [3, 9, 7], true, true],
      ['batch broadcast: 2-D A, batched B', [4, 6], [3, 6, 5], false, false],
      ['batch broadcast: batch-1 A', [1, 4, 6], [3, 6, 5], false, false],
      ['batch broadcast: crossed dims (offsets path)', [2, 1, 4, 6], [3, 6, 5], false, false],
      ['batch broadcast: crossed, transposed', [2, 1, 6, 4], [1, 3, 5, 6], true, true],
      ['empty rows', [0, 5], [5, 3], false, false],
    ])('matMul %s equals the float64 reference', (_, aShape, bShape, ta, tb) => {
      const av = values(size(aShape as number[]), 1),
        bv = values(size(bShape as number[]), 2);
      const ref = refMatMul(av, aShape as number[], bv, bShape as number[], ta as boolean, tb as boolean);
      const y = tf.matMul(
        tf.tensor(av, aShape as number[]),
        tf.tensor(bv, bShape as number[]),
        ta as boolean,
        tb as boolean,
      );
      expect(y.shape).toEqual(ref.shape);
      expectClose(y.dataSync(), ref.data);
    });

    it.each([
      ['2-D', [13, 7], [7, 11], false, false],
      ['2-D transposes', [7, 13], [11, 7], true, true],
      ['batched attention-shaped, B transposed', [6, 9, 4], [6, 9, 4], false, true],
      ['batched, A transposed', [6, 4, 9], [6, 4, 5], true, false],
    ])('matMul gradients (%s) equal the closed form dA = W·Bᵀ, dB = Aᵀ·W', (_, aShape, bShape, ta, tb) => {
      const as = aShape as number[],
        bs = bShape as number[];
      const av = values(size(as), 3),
        bv = values(size(bs), 4);
      const y = refMatMul(av, as, bv, bs, ta as boolean, tb as boolean);
      const wv = values(y.data.length, 5);
      const a = tf.tensor(av, as),
        b = tf.tensor(bv, bs),
        w = tf.tensor(wv, y.shape);
      const [ga, gb] = tf.grads((x: tf.Tensor, z: tf.Tensor) =>
        tf.sum(tf.mul(tf.matMul(x, z, ta as boolean, tb as boolean), w)),
      )([a, b]);
      // Closed forms on the un-transposed operands: with C = A·B, dA = W·Bᵀ and dB = Aᵀ·W;
      // a transposed operand's gradient is the transpose of that.
      const batch = as.length === 3 ? as[0]! : 1;
      const M = y.shape[y.shape.length - 2]!,
        N = y.shape[y.shape.length - 1]!,
        K = ta ? as[as.length - 2]! : as[as.length - 1]!;
      const wantA = new Float64Array(av.length),
        wantB = new Float64Array(bv.length);
      for (let n = 0; n < batch; n++) {
        for (let i = 0; i < M; i++) {
          for (let k = 0; k < K; k++) {
            let sa = 0;
            for (let j = 0; j < N; j++)
              sa += wv[n * M * N + i * N + j]! * bv[n * K * N + (tb ? j * K + k : k * N + j)]!;
            wantA[n * M * K + (ta ? k * M + i : i * K + k)] = sa;
          }
        }
        for (let k = 0; k < K; k++) {
          for (let j = 0; j < N; j++) {
            let sb = 0;
            for (let i = 0; i < M; i++)
              sb += av[n * M * K + (ta ? k * M + i : i * K + k)]! * wv[n * M * N + i * N + j]!;
            wantB[n * K * N + (tb ? j * K + k : k * N + j)] = sb;
          }
        }
      }
      expectClose(ga!.dataSync(), wantA);
      expectClose(gb!.dataSync(), wantB);
    });
  });

  it('dense2d forward and gradients match the wasm backend', async () => {
    const x = tf.tensor2d(values(33 * 17, 6), [33, 17]);
    const w = tf.tensor2d(values(17 * 23, 7), [17, 23]);
    const b = tf.tensor1d(values(23, 8));
    const run = () => {
      const f = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
        tf.sum(tf.square(dense2d(xi as tf.Tensor2D, wi as tf.Tensor2D, bi as tf.Tensor1D)));
      const { value, grads } = tf.valueAndGrads(f)([x, w, b]);
      return [value.dataSync(), ...grads.map((g) => g.dataSync())];
    };
    const native = run();
    await tf.setBackend('wasm');
    const plain = run();
    await tf.setBackend('wasm-blas');
    native.forEach((v, i) => expectClose(v, plain[i]!));
  });

  it('fused matMul with bias and ReLU equals the reference; PReLU falls back to the wasm kernel', () => {
    const av = values(9 * 12, 9),
      bv = values(12 * 7, 10),
      biasv = values(7, 11);
    const ref = refMatMul(av, [9, 12], bv, [12, 7], false, false).data.map((v, i) => v + biasv[i % 7]!);
    const a = tf.tensor2d(av, [9, 12]),
      b = tf.tensor2d(bv, [12, 7]),
      bias = tf.tensor1d(biasv);
    const relu = tf.fused.matMul({ a, b, bias, activation: 'relu' });
    expectClose(
      relu.dataSync(),
      ref.map((v) => Math.max(v, 0)),
    );
    const alpha = tf.fill([7], 0.1);
    const prelu = tf.fused.matMul({ a, b, bias, activation: 'prelu', preluActivationWeights: alpha });
    expectClose(
      prelu.dataSync(),
      ref.map((v) => (v > 0 ? v : 0.1 * v)),
    );
  });

  it('stays correct after the wasm memory grows (views are taken after allocation)', () => {
    const av = values(20 * 30, 12),
      bv = values(30 * 10, 13);
    const ref = refMatMul(av, [20, 30], bv, [30, 10], false, false).data;
    const a = tf.tensor2d(av, [20, 30]),
      b = tf.tensor2d(bv, [30, 10]);
    expectClose(tf.matMul(a, b).dataSync(), ref);
    const big = tf.zeros([96 * 2 ** 20]); // 384 MB: forces the heap to grow
    expectClose(tf.matMul(a, b).dataSync(), ref);
    big.dispose();
  });

  it.each([
    ['contiguous rows', [6, 5], [2, 0], [3, 5]],
    ['columns (strided)', [6, 5], [0, 1], [6, 3]],
    ['3-D middle block', [4, 5, 6], [1, 2, 3], [2, 2, 2]],
    ['4-D with a size-1 dim', [2, 3, 4, 5], [1, 0, 1, 2], [1, 3, 2, 3]],
    ['6-D', [2, 2, 3, 2, 2, 3], [1, 0, 1, 0, 1, 1], [1, 2, 2, 2, 1, 2]],
    ['empty', [4, 4], [1, 1], [0, 2]],
  ])('slice %s equals index arithmetic', (_, shape, begin, sz) => {
    const s = shape as number[],
      bg = begin as number[],
      z = sz as number[];
    const xv = Float32Array.from({ length: size(s) }, (_, i) => i);
    const strides = s.map((__, d) => size(s.slice(d + 1)));
    const want: number[] = [];
    const idx = new Array(z.length).fill(0);
    for (let n = 0; n < size(z); n++) {
      want.push(idx.reduce((acc, v, d) => acc + (v + bg[d]!) * strides[d]!, 0));
      for (let d = z.length - 1; d >= 0; d--) {
        if (++idx[d] < z[d]!) break;
        idx[d] = 0;
      }
    }
    for (const dtype of ['float32', 'int32'] as const) {
      const y = tf.slice(tf.tensor(xv, s, dtype), bg, z);
      expect(y.shape).toEqual(z);
      expect(y.dtype).toBe(dtype);
      expect(Array.from(y.dataSync())).toEqual(want);
    }
  });

  /** f's value on wasm-blas and on plain wasm (same process; the wasm kernels are the reference). */
  async function againstPlainWasm(f: () => ArrayLike<number>[]): Promise<[ArrayLike<number>[], ArrayLike<number>[]]> {
    const native = f();
    await tf.setBackend('wasm');
    try {
      return [native, f()];
    } finally {
      await tf.setBackend('wasm-blas');
    }
  }

  it.each([
    ['leading axis (bias gradient)', [37, 29], [0], false],
    ['leading axes, keepDims', [3, 5, 7], [0, 1], true],
    ['middle axis (batched bias gradient)', [4, 9, 6], [1], false],
    ['middle block of a 4-D tensor', [2, 3, 4, 5], [1, 2], true],
    ['trailing axis', [11, 50], [-1], false],
    ['all axes', [6, 7], [0, 1], false],
    ['unsorted axes', [3, 4, 5], [2, 1], false],
    ['repeated axes (wasm kernel)', [3, 4, 5], [2, 1, 2], false],
    ['non-contiguous axes (wasm kernel)', [3, 4, 5], [0, 2], false],
  ])('sum and mean over %s equal the wasm kernels', async (_, shape, axes, keepDims) => {
    const xv = values(size(shape as number[]), 15);
    const [native, plain] = await againstPlainWasm(() => {
      const x = tf.tensor(xv, shape as number[]);
      const s = tf.sum(x, axes as number[], keepDims as boolean),
        m = tf.mean(x, axes as number[], keepDims as boolean);
      expect(s.shape).toEqual(m.shape);
      return [s.dataSync(), m.dataSync(), Float32Array.from(s.shape)];
    });
    native.forEach((v, i) => expectClose(v, plain[i]!, 1e-5));
  });

  it('split (the gradient of concat) and unstack equal the wasm kernels, float32 and int32, any axis', async () => {
    const xv = values(4 * 6 * 5, 16);
    const [native, plain] = await againstPlainWasm(() => {
      const out: ArrayLike<number>[] = [];
      for (const dtype of ['float32', 'int32'] as const) {
        const x = tf.cast(tf.mul(tf.tensor3d(xv, [4, 6, 5]), 100), dtype);
        for (const [sizes, axis] of [
          [[1, 3, 2], 1],
          [2, 0],
          [[2, -1], 2],
          [[0, 4], 0],
        ] as const) {
          for (const piece of tf.split(x, sizes as number | number[], axis))
            out.push(Float32Array.from([...piece.shape, ...piece.dataSync()]));
        }
        for (const axis of [0, 1, -1]) {
          for (const piece of tf.unstack(x, axis)) out.push(Float32Array.from([...piece.shape, ...piece.dataSync()]));
        }
      }
      return out;
    });
    expect(native.length).toBe(plain.length);
    native.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(plain[i]!)));
  });

  it('fused matMul with one bias row per product (batched expert MLPs) equals matMul + add, with gradients', () => {
    const E = 3,
      R = 7,
      H = 5,
      O = 9;
    const x = tf.tensor3d(values(E * R * H, 17), [E, R, H]);
    const w = tf.tensor3d(values(E * H * O, 18), [E, H, O]);
    const b = tf.tensor3d(values(E * O, 19), [E, 1, O]);
    const cot = tf.tensor3d(values(E * R * O, 20), [E, R, O]);
    const grads = (f: (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor) =>
      tf.valueAndGrads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(f(xi, wi, bi), cot)))([x, w, b]);
    const fused = grads((xi, wi, bi) => tf.fused.matMul({ a: xi as tf.Tensor3D, b: wi as tf.Tensor3D, bias: bi }));
    const ref = grads((xi, wi, bi) => tf.add(tf.matMul(xi, wi), bi));
    const want = refMatMul(
      x.dataSync() as Float32Array,
      [E, R, H],
      w.dataSync() as Float32Array,
      [E, H, O],
      false,
      false,
    ).data.map((v, i) => v + b.dataSync()[Math.floor(i / (R * O)) * O + (i % O)]!);
    expectClose(tf.fused.matMul({ a: x, b: w, bias: b }).dataSync(), want);
    expectClose(fused.value.dataSync(), ref.value.dataSync());
    fused.grads.forEach((g, i) => {
      expect(g.shape).toEqual(ref.grads[i]!.shape);
      expectClose(g.dataSync(), ref.grads[i]!.dataSync());
    });
  });

  it('tanh matches Math.tanh to float precision, keeps signed zeros, saturates and propagates NaN', () => {
    const xs = [
      -1e4,
      -20,
      -9.5,
      -3,
      -0.3,
      -0.25,
      -0.2499,
      -1e-3,
      -1e-20,
      -0,
      0,
      1e-30,
      0.01,
      0.2,
      0.26,
      1,
      2.5,
      8.9,
      12,
      88,
      Infinity,
      -Infinity,
    ];
    const grid = Array.from({ length: 2001 }, (_, i) => -10 + i / 100);
    const all = [...xs, ...grid];
    const y = tf.tanh(tf.tensor1d(all)).dataSync();
    all.forEach((x, i) => {
      const want = Math.tanh(Math.fround(x));
      expect(Math.abs(y[i]! - want)).toBeLessThanOrEqual(1e-7 + 4e-7 * Math.abs(want));
    });
    expect(Object.is(y[xs.indexOf(-0)], -0)).toBe(true);
    expect(Number.isNaN(tf.tanh(tf.tensor1d([NaN])).dataSync()[0])).toBe(true);
  });

  it('Add: residual, bias and position shapes in either order give the float32 sums; other broadcasts too', () => {
    // fround(a + b) is the float32 sum: a double holds the exact sum of two floats to within one rounding that the
    // second rounding to float cannot turn (53 ≥ 2·24 + 2), so this is the IEEE single-precision add.
    const rng = new Rng(11);
    const fill = (n: number) =>
      Float32Array.from({ length: n }, (_, i) => (i % 97 === 5 ? 1e30 : i % 89 === 3 ? -0 : (rng.uniform() - 0.5) * 8));
    const cases: [number[], number[]][] = [
      [
        [3, 50, 64],
        [3, 50, 64],
      ], // residual; large enough for the threads (≥ 64 K values)
      [[700, 130], [130]], // bias row over every row, 91 000 values
      [[130], [700, 130]], // the repeated operand first
      [
        [2, 5, 4],
        [1, 5, 4],
      ], // position embedding, leading 1 kept in the output shape
      [[4], [1, 1, 4]],
      [[6, 3], [1]], // a scalar
      [
        [6, 3],
        [6, 1],
      ], // not a trailing shape: the wasm kernel
      [
        [2, 1],
        [1, 2],
      ],
    ];
    expect(tf.getKernel(tf.Add, 'wasm-blas')!.kernelFunc).not.toBe(tf.getKernel(tf.Add, 'wasm')!.kernelFunc);
    // On 2 threads too: the chunks of a repeated operand start mid-row.
    for (const threads of [1, 2]) {
      blas.addon!.setThreads(threads);
      for (const [sa, sb] of cases) {
        const av = fill(sa.reduce((p, d) => p * d, 1));
        const bv = fill(sb.reduce((p, d) => p * d, 1));
        const y = tf.add(tf.tensor(av, sa), tf.tensor(bv, sb));
        const shape = tf.backend_util.assertAndGetBroadcastShape(sa, sb);
        expect(y.shape).toEqual(shape);
        // The reference: index both operands through the broadcast by hand.
        const strides = (s: number[]) => {
          const padded = [...new Array<number>(shape.length - s.length).fill(1), ...s];
          const st = new Array<number>(padded.length).fill(0);
          for (let d = padded.length - 1, acc = 1; d >= 0; d--) {
            st[d] = padded[d] === 1 ? 0 : acc;
            acc *= padded[d]!;
          }
          return st;
        };
        const [ta, tb] = [strides(sa), strides(sb)];
        const got = y.dataSync();
        const total = shape.reduce((p, d) => p * d, 1);
        for (let i = 0, mismatches = 0; i < total && mismatches < 3; i++) {
          let rest = i,
            ia = 0,
            ib = 0;
          for (let d = shape.length - 1; d >= 0; d--) {
            const c = rest % shape[d]!;
            rest = Math.floor(rest / shape[d]!);
            ia += c * ta[d]!;
            ib += c * tb[d]!;
          }
          const want = Math.fround(av[ia]! + bv[ib]!);
          if (!Object.is(got[i], want)) {
            mismatches++;
            expect(`${sa}+${sb} @${i}: ${got[i]}`).toBe(`${sa}+${sb} @${i}: ${want}`);
          }
        }
      }
    }
    blas.addon!.setThreads(1);
  });

  it('clone and same-dtype cast share data safely: the copy outlives the original', () => {
    const before = tf.memory().numTensors;
    const x = tf.tensor1d([1.5, -2, 3]);
    const c = tf.clone(x);
    const k = tf.cast(x, 'float32');
    x.dispose();
    expect(Array.from(c.dataSync())).toEqual([1.5, -2, 3]);
    expect(Array.from(k.dataSync())).toEqual([1.5, -2, 3]);
    const asInt = tf.cast(c, 'int32');
    expect(Array.from(asInt.dataSync())).toEqual([1, -2, 3]);
    asInt.dispose();
    c.dispose();
    expect(Array.from(k.dataSync())).toEqual([1.5, -2, 3]);
    k.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a V-MoE training step gives the same loss and gradients as plain wasm', async () => {
    const cfg = ModelSchema.parse({
      type: 'vmoe',
      hidden: 32,
      mlpDim: 64,
      depth: 2,
      heads: 2,
      moe: { layers: { placement: 'list', list: [1] }, numExperts: 4, k: 2, groupImages: 2 },
    });
    const model = VisionMoE.init(cfg, 0);
    const images = tf.tensor4d(values(4 * 28 * 28, 14), [4, 28, 28, 1]);
    const labels = tf.oneHot(tf.tensor1d([0, 3, 7, 9], 'int32'), 10);
    const vars = [...model.params.values()];
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => {
          const r = model.forward(images, { train: true, rng: new Rng(5) });
          return tf.add(tf.losses.softmaxCrossEntropy(labels, r.logits), r.aux) as tf.Scalar;
        }, vars);
        return { loss: value.dataSync()[0]!, grads: vars.map((v) => grads[v.name]!.dataSync()) };
      });
    const native = step();
    await tf.setBackend('wasm');
    const plain = step();
    await tf.setBackend('wasm-blas');
    expect(Math.abs(native.loss - plain.loss)).toBeLessThan(1e-5 * (1 + Math.abs(plain.loss)));
    native.grads.forEach((g, i) => expectClose(g, plain.grads[i]!, 1e-3));
    model.dispose();
  });

  // The cut is oneDNN's path (OpenBLAS runs its own threads, which may split K).
  it.skipIf(blas.addon?.info().gemm !== 'onednn')(
    'products large enough to be cut over 2 threads (by rows, or by columns when rows are few) equal the 1-thread product bit for bit, with and without the bias + ReLU epilogue',
    () => {
      // (M, N, K, transA, transB): the inference and training shapes of the tiny and S/32 models, a K of 3200 (dw),
      // and few rows with many columns.
      const shapes = [
        [3200, 192, 64, false, false],
        [64, 192, 3200, true, false],
        [3200, 64, 192, false, true],
        [50, 2048, 512, false, false],
        [7, 3000, 300, false, false],
      ] as const;
      const heap = new Float32Array(4 << 20);
      heap.set(values(2 << 20, 21));
      const BIAS = 3 << 20;
      heap.set(values(4096, 22), BIAS);
      try {
        for (const [M, N, K, ta, tb] of shapes) {
          for (const withBias of [false, true]) {
            // the bias row and ReLU are added per thread block after its product (the epilogue)
            const outs = [1, 2].map((threads) => {
              blas.addon!.setThreads(threads);
              heap.fill(Number.NaN, 2 << 20, (2 << 20) + M * N); // C is written, never read
              blas.addon!.sgemm(
                heap,
                ta,
                tb,
                M,
                N,
                K,
                1,
                0,
                0,
                1 << 20,
                0,
                2 << 20,
                0,
                withBias ? BIAS : -1,
                0,
                withBias,
              );
              return heap.slice(2 << 20, (2 << 20) + M * N);
            });
            // Against a float64 product too, on a few entries: the cut must not misplace blocks.
            for (const [i, j] of [
              [0, 0],
              [M - 1, N - 1],
              [M >> 1, N >> 1],
              [M - 1, 0],
              [0, N - 1],
            ] as const) {
              let ref = withBias ? heap[BIAS + j]! : 0;
              for (let k = 0; k < K; k++)
                ref += heap[ta ? k * M + i : i * K + k]! * heap[(1 << 20) + (tb ? j * K + k : k * N + j)]!;
              if (withBias) ref = Math.max(0, ref);
              expect(Math.abs(outs[1]![i * N + j]! - ref)).toBeLessThan(1e-4 * (1 + Math.abs(ref)));
            }
            expect(
              outs[1]!.every((v, i) => v === outs[0]![i]),
              `${M}×${N}×${K}${withBias ? ' + bias, ReLU' : ''}`,
            ).toBe(true);
            if (withBias) expect(outs[1]!.some((v) => v === 0) && outs[1]!.some((v) => v > 0)).toBe(true);
          }
        }
      } finally {
        blas.addon!.setThreads(1);
      }
    },
  );

  it('layerNormGrad over row parts on 2 threads equals 1 thread bit for bit, and a float64 definition', () => {
    // 3200 × 64: the tiny models' training shape (13 parts of 256 rows, the last one short); 1000 × 80 too.
    for (const [rows, cols] of [
      [3200, 64],
      [1000, 80],
    ] as const) {
      const n = rows * cols;
      const heap = new Float32Array(3 * n + 3 * cols); // dy, x, scale, dx, dscale, dbias
      heap.set(values(n, 31), 0); // dy
      heap.set(
        values(n, 32).map((v, i) => v * 3 + (i % cols) * 0.1),
        n,
      ); // x
      heap.set(values(cols, 33), 2 * n); // scale
      const [DX, DS, DB] = [2 * n + cols, 3 * n + cols, 3 * n + 2 * cols];
      const outs = [1, 2].map((threads) => {
        blas.addon!.setThreads(threads);
        heap.fill(Number.NaN, DX);
        blas.addon!.layerNormGrad(heap, 0, n, 2 * n, DX, DS, DB, rows, cols, 1e-6);
        return heap.slice(DX);
      });
      blas.addon!.setThreads(1);
      const firstDiff = outs[1]!.findIndex((v, i) => !Object.is(v, outs[0]![i]));
      expect(firstDiff, `${rows}×${cols}: ${outs[1]![firstDiff]} vs ${outs[0]![firstDiff]}`).toBe(-1);
      const ds = new Float64Array(cols),
        db = new Float64Array(cols);
      let worst = 0;
      for (let r = 0; r < rows; r++) {
        const x = Array.from(heap.subarray(n + r * cols, n + (r + 1) * cols));
        const dy = Array.from(heap.subarray(r * cols, (r + 1) * cols));
        const mean = x.reduce((a, b) => a + b, 0) / cols;
        const rstd = 1 / Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / cols + 1e-6);
        const xhat = x.map((v) => (v - mean) * rstd);
        const g = dy.map((v, j) => v * heap[2 * n + j]!);
        const mg = g.reduce((a, b) => a + b, 0) / cols;
        const mgx = g.reduce((a, b, j) => a + b * xhat[j]!, 0) / cols;
        for (let j = 0; j < cols; j++) {
          const want = rstd * (g[j]! - mg - xhat[j]! * mgx);
          worst = Math.max(worst, Math.abs(outs[1]![r * cols + j]! - want) / (1 + Math.abs(want)));
          ds[j]! += dy[j]! * xhat[j]!;
          db[j]! += dy[j]!;
        }
      }
      expect(worst).toBeLessThan(1e-5);
      for (let j = 0; j < cols; j++) {
        expect(Math.abs(outs[1]![n + j]! - ds[j]!)).toBeLessThan(1e-4 * (1 + Math.abs(ds[j]!)));
        expect(Math.abs(outs[1]![n + cols + j]! - db[j]!)).toBeLessThan(1e-5 * (1 + Math.abs(db[j]!)));
      }
    }
  });

  it('expertDense and expertDenseGrad with the experts on 2 threads equal 1 thread bit for bit (packed rows and tokens)', () => {
    // E = 8 experts filled unevenly (one empty, one full), N = 600 tokens routed twice (K = 2), I 64 → O 256.
    const [E, R, I, O, N] = [8, 160, 64, 256, 600];
    const filled = [160, 0, 37, 151, 90, 160, 12, 128];
    const layout: Record<string, number> = {};
    let end = 0;
    for (const [name, size] of [
      ['x', E * R * I], // also (N, I) tokens' rows
      ['w', E * I * O],
      ['b', E * O],
      ['rows', E],
      ['tokens', E * R],
      ['y', E * R * O],
      ['dy', E * R * O],
      ['dx', E * R * I],
      ['dw', E * I * O],
      ['db', E * O],
    ] as const) {
      layout[name] = end;
      end += size;
    }
    const heap = new Float32Array(end);
    const ints = new Int32Array(heap.buffer);
    heap.set(values(E * R * I, 41), layout.x!);
    heap.set(values(E * I * O, 42), layout.w!);
    heap.set(values(E * O, 43), layout.b!);
    heap.set(values(E * R * O, 44), layout.dy!);
    ints.set(filled, layout.rows!);
    const rng = new Rng(45);
    for (let e = 0; e < E; e++) {
      for (let i = 0; i < R; i++) ints[layout.tokens! + e * R + i] = i < filled[e]! ? 1 + rng.int(N) : 0;
      heap.fill(0, layout.dy! + (e * R + filled[e]!) * O, layout.dy! + (e + 1) * R * O);
    }
    for (const gathered of [false, true]) {
      const outs = [1, 2].map((threads) => {
        blas.addon!.setThreads(threads);
        heap.fill(Number.NaN, layout.y!, layout.dy!);
        heap.fill(Number.NaN, layout.dx!);
        const tok = gathered ? layout.tokens! : -1;
        const n = gathered ? N : 0;
        blas.addon!.expertDense(heap, layout.x!, layout.w!, layout.b!, layout.rows!, tok, layout.y!, E, R, I, O, n);
        blas.addon!.expertDenseGrad(
          heap,
          layout.dy!,
          layout.x!,
          layout.w!,
          layout.rows!,
          tok,
          layout.dx!,
          layout.dw!,
          layout.db!,
          E,
          R,
          I,
          O,
          n,
        );
        return [
          heap.slice(layout.y!, layout.dy!),
          heap.slice(layout.dx!, layout.dx! + (gathered ? N * I : E * R * I)),
          heap.slice(layout.dw!),
        ];
      });
      blas.addon!.setThreads(1);
      for (const k of [0, 1, 2]) {
        const a = outs[0]![k]!,
          b = outs[1]![k]!;
        expect(a.some((v) => Number.isNaN(v))).toBe(false);
        expect(
          b.findIndex((v, i) => !Object.is(v, a[i])),
          `${gathered ? 'tokens' : 'packed'} ${['y', 'dx', 'dw, db'][k]}`,
        ).toBe(-1);
      }
    }
  });

  it('a seeded run of five training steps gives the same losses with 1 and 2 threads', () => {
    const cfg = ModelSchema.parse({
      type: 'vmoe',
      hidden: 32,
      mlpDim: 64,
      depth: 2,
      heads: 2,
      moe: { layers: { placement: 'list', list: [1] }, numExperts: 4, k: 2, groupImages: 2 },
    });
    const images = tf.tensor4d(values(8 * 28 * 28, 15), [8, 28, 28, 1]);
    const labels = tf.oneHot(tf.tensor1d([0, 3, 7, 9, 1, 2, 5, 6], 'int32'), 10);
    const run = (threads: number) => {
      blas.addon!.setThreads(threads);
      const model = VisionMoE.init(cfg, 0);
      const opt = new Adam(OptimSchema.parse({ optimizer: 'adam' }), () => true);
      const vars = [...model.params.values()];
      const nameOf = new Map([...model.params].map(([n, v]) => [v.name, n]));
      const rng = new Rng(9);
      const losses: number[] = [];
      for (let step = 0; step < 5; step++) {
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => {
            const r = model.forward(images, { train: true, rng });
            return tf.add(tf.losses.softmaxCrossEntropy(labels, r.logits), r.aux) as tf.Scalar;
          }, vars);
          losses.push(value.dataSync()[0]!);
          opt.apply(model.params, Object.fromEntries(Object.entries(grads).map(([v, g]) => [nameOf.get(v)!, g])), 1e-2);
        });
      }
      opt.dispose();
      model.dispose();
      return losses;
    };
    try {
      const one = run(1),
        two = run(2);
      expect(one[4]).not.toBe(one[0]); // it trains
      two.forEach((l, i) => expect(Math.abs(l - one[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(one[i]!))));
    } finally {
      blas.addon!.setThreads(1);
    }
  });
});
