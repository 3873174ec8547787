/**
 * The inference path (issue #22): outside a gradient tape `VisionMoE.forward` skips the layers' customGrad
 * wrappers, reuses the per-model [q | k | v] concat and runs the dense MLP's first product and GELU as one
 * blocked kernel (VmoeDenseGelu) where the backend has it. Its logits are held against the same forward run
 * under a gradient tape (tf.variableGrads — the training path's kernels and per-call concat), on wasm-blas
 * when the addon is built and on plain wasm, for ViT, V-MoE and E³; the fused kernel against gelu(x W + b);
 * and the concat cache against an assignment to the attention weights.
 *
 * Tolerance: every op is the same kernel on the same inputs except VmoeDenseGelu, whose GEMM runs per block of
 * rows; a GEMM library may order a row block's sums differently from the whole matrix's (it picks kernels by
 * shape), which moves a value by float32 rounding — a few ulps of the pre-activation. So the checks allow
 * |a − b| ≤ 1e-5 · (1 + |b|) (about 80 ulps at 1, far below any real difference: a wrong bias, a wrong
 * block or a stale weight moves logits by 1e-2 or more), and plain wasm, which has no blocked kernel, must match
 * bit for bit.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import { hasKernel, VMOE_DENSE_GELU } from '../../src/engine/fused-kernels.js';
import { loadBlasAddon } from '../../src/engine/native-blas.js';
import { dense2d, denseGelu, gelu, recording } from '../../src/vmoe/layers.js';
import { ModelSchema, type ModelConfig } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { CACHE_BATCH_IMAGES, computeOutputs, forwardBatchSize } from '../../src/vmoe/outputs.js';
import type { ImageDataset } from '../../src/data/index.js';
import { SMALL_MODEL, SMALL_MOE } from '../helpers/small-models.js';

const blas = loadBlasAddon();
const skipReason = blas.addon ? '' : `native addon unavailable: ${blas.reason}`;
if (!blas.addon) console.warn(`[inference tests] wasm-blas cases skipped: ${skipReason}`);

const SHARED = SMALL_MODEL;
const MOE = SMALL_MOE;
const CONFIGS: Record<string, ModelConfig> = {
  vit: ModelSchema.parse({ ...SHARED, type: 'vit' }),
  vmoe: ModelSchema.parse({ ...SHARED, type: 'vmoe', moe: { ...MOE, k: 2 } }),
  e3: ModelSchema.parse({ ...SHARED, type: 'e3', moe: { ...MOE, k: 1 }, ensemble: { members: 2 } }),
  gap: ModelSchema.parse({ ...SHARED, type: 'vit', readout: 'gap', preLogits: 24 }),
};

/** A model whose head is random too (init zeroes it, which would make every logit the head bias). */
function initModel(cfg: ModelConfig, seed: number): VisionMoE {
  const model = VisionMoE.init(cfg, seed);
  const head = model.params.get('head/kernel')!;
  head.assign(tf.randomNormal(head.shape, 0, 0.5, 'float32', seed));
  return model;
}

function images(B: number, seed: number): tf.Tensor4D {
  return tf.randomUniform([B, 16, 16, 1], 0, 1, 'float32', seed) as tf.Tensor4D;
}

/** Logits and pre-logits of forward(train: false) with a gradient tape recording (the training path's kernels). */
function tapedForward(model: VisionMoE, x: tf.Tensor4D): { logits: Float32Array; pre: Float32Array } {
  let logits: Float32Array = new Float32Array(0),
    pre: Float32Array = new Float32Array(0);
  tf.tidy(() => {
    tf.variableGrads(() => {
      expect(recording()).toBe(true);
      const r = model.forward(x, { train: false, auxLosses: false });
      logits = r.logits.dataSync() as Float32Array;
      pre = r.preLogits.dataSync() as Float32Array;
      return tf.sum(r.logits) as tf.Scalar;
    }, [...model.params.values()]);
  });
  return { logits, pre };
}

function inferenceForward(model: VisionMoE, x: tf.Tensor4D): { logits: Float32Array; pre: Float32Array } {
  return tf.tidy(() => {
    expect(recording()).toBe(false);
    const r = model.forward(x, { train: false, auxLosses: false });
    return { logits: r.logits.dataSync() as Float32Array, pre: r.preLogits.dataSync() as Float32Array };
  });
}

function maxRelErr(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!)));
  return m;
}

const TOL = 1e-5;

for (const backend of ['wasm-blas', 'wasm'] as const) {
  const skip = backend === 'wasm-blas' && !blas.addon;
  describe.skipIf(skip)(`inference path on ${backend}`, () => {
    it('logits and pre-logits equal the taped forward (ViT, V-MoE, E³, GAP + pre-logits)', async () => {
      await initEngine({ backend, threads: 1, quiet: true });
      for (const [name, cfg] of Object.entries(CONFIGS)) {
        const model = initModel(cfg, 5);
        const x = images(9, 11);
        // Twice: the second inference call runs on the cached [q | k | v] concat.
        const first = inferenceForward(model, x);
        const second = inferenceForward(model, x);
        const taped = tapedForward(model, x);
        const err = Math.max(maxRelErr(first.logits, taped.logits), maxRelErr(first.pre, taped.pre));
        if (backend === 'wasm') expect(err, name).toBe(0);
        else expect(err, name).toBeLessThanOrEqual(TOL);
        expect(Array.from(second.logits), name).toEqual(Array.from(first.logits));
        // The logits are not trivially equal: another batch gives others.
        expect(maxRelErr(inferenceForward(model, images(9, 12)).logits, first.logits), name).toBeGreaterThan(1e-3);
        x.dispose();
        model.dispose();
      }
    });

    it('an assignment to the attention weights is seen by the next inference call (the concat is remade)', async () => {
      await initEngine({ backend, threads: 1, quiet: true });
      const model = initModel(CONFIGS.vit!, 6);
      const x = images(5, 13);
      const before = inferenceForward(model, x).logits;
      const v = model.params.get('block1/attn/key/kernel')!;
      const data = (v.dataSync() as Float32Array).map((a) => a * 3 + 0.05);
      v.assign(tf.tensor(data, v.shape));
      const bias = model.params.get('block0/attn/value/bias')!;
      bias.assign(tf.fill(bias.shape, 0.3));
      const after = inferenceForward(model, x).logits;
      expect(maxRelErr(after, before)).toBeGreaterThan(1e-3);
      const taped = tapedForward(model, x).logits;
      expect(maxRelErr(after, taped)).toBeLessThanOrEqual(backend === 'wasm' ? 0 : TOL);
      // Disposing the model frees the cached concats with the parameters.
      const live = tf.memory().numTensors;
      model.dispose();
      expect(live - tf.memory().numTensors).toBe(model.params.size + 2 * 3);
      x.dispose();
    });

    it('denseGelu equals gelu(x W + b) on a row count that is not a multiple of the block', async () => {
      await initEngine({ backend, threads: 1, quiet: true });
      expect(hasKernel(VMOE_DENSE_GELU)).toBe(backend === 'wasm-blas');
      for (const [N, I, O] of [
        [300, 20, 256],
        [1, 3, 5],
        [517, 64, 100],
        [1100, 16, 300], // blocks of 400 rows: 400, 400, 300
      ] as const) {
        tf.tidy(() => {
          const x = tf.randomNormal([N, I], 0, 1, 'float32', 1) as tf.Tensor2D;
          const w = tf.randomNormal([I, O], 0, 0.3, 'float32', 2) as tf.Tensor2D;
          const b = tf.randomNormal([O], 0, 1, 'float32', 3) as tf.Tensor1D;
          const got = denseGelu(x, w, b).dataSync() as Float32Array;
          // Independent float64 reference of the tanh-form GELU over the product.
          const xs = x.dataSync(),
            ws = w.dataSync(),
            bs = b.dataSync();
          const c = Math.sqrt(2 / Math.PI);
          let worst = 0;
          for (let n = 0; n < N; n++) {
            for (let o = 0; o < O; o++) {
              let s = bs[o]!;
              for (let i = 0; i < I; i++) s += xs[n * I + i]! * ws[i * O + o]!;
              const ref = 0.5 * s * (1 + Math.tanh(c * (s + 0.044715 * s * s * s)));
              worst = Math.max(worst, Math.abs(got[n * O + o]! - ref) / (1 + Math.abs(ref)));
            }
          }
          expect(worst, `${N}×${I}×${O}`).toBeLessThan(2e-5);
          // And against the composed float32 path the training forward takes.
          const composed = gelu(dense2d(x, w, b)).dataSync() as Float32Array;
          expect(maxRelErr(got, composed), `${N}×${I}×${O}`).toBeLessThanOrEqual(TOL);
        });
      }
    });
  });
}

describe('evaluation sub-batches (forwardBatchSize)', () => {
  it('splits into multiples of the routing group that divide the batch; never with MC dropout', () => {
    const vit = CONFIGS.vit!,
      vmoe = CONFIGS.vmoe!; // groupImages 4
    expect(CACHE_BATCH_IMAGES).toBe(64);
    expect(forwardBatchSize(vit, 256)).toBe(64);
    expect(forwardBatchSize(vit, 64)).toBe(64);
    expect(forwardBatchSize(vit, 32)).toBe(32);
    expect(forwardBatchSize(vit, 100)).toBe(100); // 64 does not divide 100
    expect(forwardBatchSize(vit, 256, { mcDropout: true })).toBe(256);
    expect(forwardBatchSize(vmoe, 256)).toBe(64);
    expect(forwardBatchSize(vmoe, 256, { routing: { groupImages: 24 } })).toBe(256); // 48 does not divide 256
    expect(forwardBatchSize(vmoe, 288, { routing: { groupImages: 24 } })).toBe(48);
    expect(forwardBatchSize(vmoe, 400, { routing: { groupImages: 100 } })).toBe(100);
  });

  it('computeOutputs in sub-batches gives the logits of one forward over each whole batch (V-MoE, E³)', async () => {
    await initEngine({ backend: blas.addon ? 'wasm-blas' : 'wasm', threads: 1, quiet: true });
    for (const name of ['vmoe', 'e3'] as const) {
      const cfg = { ...CONFIGS[name]!, moe: { ...CONFIGS[name]!.moe, groupImages: 8 } };
      const model = initModel(cfg, 7);
      const n = 140; // batches of 128 (two sub-batches of 64) and 12
      const images = new Uint8Array(n * 256).map((_, i) => (i * 2654435761) % 251);
      const ds: ImageDataset = {
        name: 'synthetic',
        split: 'test',
        n,
        height: 16,
        width: 16,
        channels: 1,
        numClasses: 7,
        classNames: [],
        images,
        labels: new Int32Array(n),
        source: 'synthetic',
      };
      expect(forwardBatchSize(cfg, 128)).toBe(64);
      const got = computeOutputs(model, ds, { batchSize: 128, scale: 'zero1' });
      // Reference: one forward per whole batch of 128 (and the 12 left), as evaluation ran before.
      const M = name === 'e3' ? 2 : 1;
      const ref = new Float32Array(M * n * 7);
      for (const [start, b] of [
        [0, 128],
        [128, 12],
      ] as const) {
        tf.tidy(() => {
          const x = tf.tensor4d(
            Float32Array.from(images.subarray(start * 256, (start + b) * 256), (v) => v * (1 / 255)),
            [b, 16, 16, 1],
          );
          const r = model.forward(x, { train: false, auxLosses: false });
          const lg = (r.memberLogits ?? r.logits).dataSync();
          for (let j = 0; j < M; j++) ref.set(lg.subarray(j * b * 7, (j + 1) * b * 7), (j * n + start) * 7);
        });
      }
      expect(maxRelErr(got.logits as Float32Array, ref), name).toBeLessThanOrEqual(TOL);
      model.dispose();
    }
  });
});

afterAll(async () => {
  await initEngine({ backend: 'wasm', threads: 1, quiet: true });
});
