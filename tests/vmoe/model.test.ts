import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import { ModelSchema, checkModelConfig, moeBlocks, type ModelConfig } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { countParams } from '../../src/vmoe/params.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

const tiny = (over: Record<string, unknown> = {}): ModelConfig =>
  ModelSchema.parse({
    imageSize: 8,
    patchSize: 4,
    hidden: 8,
    depth: 2,
    heads: 2,
    mlpDim: 12,
    numClasses: 3,
    moe: { numExperts: 4, k: 2, groupImages: 2, layers: { placement: 'list', list: [1] } },
    ...over,
  });

describe('MoE placement (docs/spec/model.md §5)', () => {
  it.each([
    { placement: 'last-n', n: 2, depth: 8, want: [5, 7] },
    { placement: 'last-n', n: 1, depth: 4, want: [3] },
    { placement: 'last-n', n: 5, depth: 8, want: [1, 3, 5, 7] },
    { placement: 'every-n', n: 2, depth: 8, want: [1, 3, 5, 7] },
    { placement: 'every-n', n: 3, depth: 8, want: [2, 5] },
    { placement: 'list', n: 1, depth: 4, want: [0, 2] },
  ])('$placement n=$n depth=$depth', ({ placement, n, depth, want }) => {
    const cfg = ModelSchema.parse({ depth, moe: { layers: { placement, n, list: [2, 0] } } });
    expect(moeBlocks(cfg)).toEqual(want);
  });
  it('dense ViT has no MoE block', () => {
    expect(moeBlocks(ModelSchema.parse({ type: 'vit' }))).toEqual([]);
  });
  it('cross-field errors name the fields', () => {
    expect(() => checkModelConfig(ModelSchema.parse({ imageSize: 28, patchSize: 5 }))).toThrow(/model\.patchSize/);
    expect(() => checkModelConfig(ModelSchema.parse({ hidden: 30, heads: 4 }))).toThrow(/model\.heads/);
    expect(() => checkModelConfig(ModelSchema.parse({ moe: { k: 9, numExperts: 8 } }))).toThrow(/model\.moe\.k/);
  });
  it('E³: members must divide the experts, and K ≤ E/M', () => {
    expect(() => checkModelConfig(tiny({ type: 'e3', ensemble: { members: 3 } }))).toThrow(
      /ensemble\.members: 3 must divide/,
    );
    expect(() => checkModelConfig(tiny({ type: 'e3', ensemble: { members: 4 } }))).toThrow(
      /moe\.k: 2 exceeds the experts per member/,
    );
  });
});

describe('parameter count', () => {
  it('matches a hand count for a tiny V-MoE', () => {
    const cfg = tiny();
    const H = 8,
      P = 16,
      T = 5,
      M = 12,
      E = 4,
      C = 3;
    const attn = 4 * (H * H + H),
      ln = 2 * H;
    const dense = H * M + M + M * H + H;
    const moe = H * E + E * dense;
    const want = P * H + H + H + T * H + 2 * (2 * ln + attn) + dense + moe + ln + H * C + C;
    const got = countParams(cfg);
    expect(got.total).toBe(want);
    expect(got.activePerToken).toBe(want - E * dense + 2 * dense);
  });
});

describe('patchify', () => {
  it('flattens p×p patches row-major (row, col, channel), patches in raster order', () => {
    const cfg = tiny({ imageSize: 4, patchSize: 2, channels: 2 });
    const model = VisionMoE.init(cfg, 0);
    // pixel value encodes (y, x, c)
    const img = tf.tensor4d(
      Array.from({ length: 4 * 4 * 2 }, (_, i) => i),
      [1, 4, 4, 2],
    );
    const p = model.patchify(img).arraySync()[0]!;
    const value = (y: number, x: number, c: number) => (y * 4 + x) * 2 + c;
    for (let py = 0; py < 2; py++)
      for (let px = 0; px < 2; px++) {
        const want: number[] = [];
        for (let y = 0; y < 2; y++)
          for (let x = 0; x < 2; x++) for (let c = 0; c < 2; c++) want.push(value(py * 2 + y, px * 2 + x, c));
        expect(p[py * 2 + px]).toEqual(want);
      }
    model.dispose();
  });
});

function lossOf(model: VisionMoE, x: tf.Tensor4D, y: tf.Tensor1D): tf.Scalar {
  const r = model.forward(x, { train: false });
  const ce = tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(y, 3), tf.logSoftmax(r.logits)), -1)));
  return tf.add(ce, r.aux) as tf.Scalar;
}

describe('whole-model gradient against finite differences', () => {
  it.each([
    { type: 'vmoe', readout: 'token', preLogits: null },
    { type: 'vit', readout: 'token', preLogits: null },
    { type: 'vmoe', readout: 'gap', preLogits: 8 },
    { type: 'e3', readout: 'token', preLogits: null },
  ])(
    '$type, $readout readout, pre-logits $preLogits: directional derivatives agree',
    ({ type, readout, preLogits }) => {
      // Capacity ≥ S so nothing drops, and K = every expert a token can reach, so no top-k choice can flip under
      // the perturbation (a flip is a true discontinuity that finite differences cannot cross).
      const k = type === 'e3' ? 2 : 4;
      const cfg = tiny({
        type,
        readout,
        preLogits,
        ensemble: { members: 2 },
        moe: {
          numExperts: 4,
          k,
          groupImages: 2,
          capacity: 64,
          expertInit: 'random',
          layers: { placement: 'list', list: [1] },
        },
      });
      const model = VisionMoE.init(cfg, 1);
      const rng = new Rng(2);
      // Nonzero head so every parameter matters; O(1) class token and positions, because LayerNorm of
      // a near-zero token (zero cls + 0.02-scale positions) is too curved for finite differences.
      const randomise = (name: string, scale: number) => {
        const v = model.p<tf.Variable>(name);
        v.assign(
          tf.tensor(
            Float32Array.from({ length: v.size }, () => rng.normal() * scale),
            v.shape,
          ),
        );
      };
      randomise('head/kernel', 0.5);
      if (readout === 'token') randomise('cls', 1);
      randomise('pos', 1);
      const x = tf.tensor4d(
        Float32Array.from({ length: 4 * 64 }, () => rng.normal()),
        [4, 8, 8, 1],
      );
      const y = tf.tensor1d([0, 1, 2, 1], 'int32');
      const vars = [...model.params.values()];
      const { grads } = tf.variableGrads(() => lossOf(model, x, y), vars);
      const original = new Map(vars.map((v) => [v.name, v.dataSync().slice()]));
      for (let trial = 0; trial < 3; trial++) {
        const dirs = new Map(vars.map((v) => [v.name, Float32Array.from({ length: v.size }, () => rng.normal())]));
        let analytic = 0;
        for (const v of vars) {
          const g = grads[v.name]!.dataSync(),
            d = dirs.get(v.name)!;
          for (let i = 0; i < g.length; i++) analytic += g[i]! * d[i]!;
        }
        const at = (eps: number) => {
          for (const v of vars) {
            const o = original.get(v.name)!,
              d = dirs.get(v.name)!;
            v.assign(
              tf.tensor(
                o.map((val, i) => val + eps * d[i]!),
                v.shape,
              ),
            );
          }
          return tf.tidy(() => lossOf(model, x, y).dataSync()[0]!);
        };
        const eps = 1e-3;
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        expect(Math.abs(numeric - analytic)).toBeLessThan(5e-3 * Math.max(1, Math.abs(analytic)));
      }
      model.dispose();
    },
  );
});

describe('training sanity', () => {
  it('a tiny V-MoE overfits a small batch', async () => {
    const { Adam } = await import('../../src/train/optimizer.js');
    const { OptimSchema } = await import('../../src/config/experiment.js');
    const cfg = tiny();
    const model = VisionMoE.init(cfg, 3);
    const rng = new Rng(5);
    const n = 12;
    const x = tf.tensor4d(
      Float32Array.from({ length: n * 64 }, () => rng.normal()),
      [n, 8, 8, 1],
    );
    const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
    const y = tf.tensor1d(labels, 'int32');
    const opt = new Adam(
      OptimSchema.parse({ lr: 1e-2, weightDecay: 0, warmupSteps: 0, schedule: 'constant' }),
      () => true,
    );
    const vars = [...model.params.values()];
    const names = new Map([...model.params.entries()].map(([n2, v]) => [v.name, n2]));
    let first = NaN,
      last = NaN;
    for (let s = 0; s < 150; s++) {
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => {
          const r = model.forward(x, { train: true, rng });
          return tf.add(
            tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(y, 3), tf.logSoftmax(r.logits)), -1))),
            r.aux,
          ) as tf.Scalar;
        }, vars);
        last = value.dataSync()[0]!;
        if (s === 0) first = last;
        opt.apply(model.params, Object.fromEntries(Object.entries(grads).map(([k, g]) => [names.get(k)!, g])), 1e-2);
      });
    }
    expect(first).toBeGreaterThan(0.9); // ≈ log 3 at init (zero head)
    expect(last).toBeLessThan(0.1);
    const pred = tf.tidy(() => tf.argMax(model.forward(x, { train: false }).logits, -1).dataSync());
    expect(Array.from(pred)).toEqual(Array.from(labels));
    model.dispose();
    opt.dispose();
  });
});

describe('FLOPs per image', () => {
  it('matches a hand count for a tiny V-MoE', async () => {
    const { flopsPerImage } = await import('../../src/vmoe/flops.js');
    // imageSize 8, patch 4 → 4 patches + cls = 5 tokens; H 8, M 12, E 4, K 2, group 2 images (S = 10).
    const cfg = tiny();
    const T = 5,
      H = 8,
      M = 12,
      E = 4,
      S = 10;
    const C = 4 * Math.ceil(Math.ceil((S * 2 * 1.05) / E) / 4); // ceil(5.25) = 6 → 8
    const embed = 2 * 4 * 16 * H;
    const attn = 2 * (2 * T * H * 3 * H + 4 * T * T * H + 2 * T * H * H);
    const dense = 2 * T * 2 * H * M;
    const router = 2 * T * H * E;
    const experts = 2 * ((E * C) / 2) * 2 * H * M;
    const head = 2 * H * 3;
    const f = flopsPerImage(cfg);
    expect(f.moe[0]!.capacity).toBe(C);
    expect(f.total).toBe(embed + attn + dense + router + experts + head);
    // Capacity factor 0.5 → C = ceil(10·2·0.5/4) = 3 → 4: experts cost half.
    expect(flopsPerImage(cfg, { capacityFactor: 0.5 }).experts).toBe(experts / 2);
  });

  it('E³: blocks from the first MoE block on and the head run M times', async () => {
    const { flopsPerImage } = await import('../../src/vmoe/flops.js');
    const e3 = ModelSchema.parse({
      imageSize: 8,
      patchSize: 4,
      hidden: 8,
      depth: 4,
      heads: 2,
      mlpDim: 12,
      numClasses: 3,
      type: 'e3',
      ensemble: { members: 2 },
      moe: { numExperts: 4, k: 1, groupImages: 2, capacityFactor: 1.5, layers: { placement: 'last-n', n: 2 } },
    });
    const f = flopsPerImage(e3);
    const T = 5,
      H = 8,
      Mlp = 12,
      E = 4,
      gi = 2,
      K = 1,
      M = 2;
    const S = gi * T * M; // 20 tokens per group
    const C = 4 * Math.ceil(Math.ceil((S * K * 1.5) / E) / 4); // ceil(7.5) = 8 → 8
    const attn = 2 * T * H * 3 * H + 4 * T * T * H + 2 * T * H * H;
    const dense = 2 * T * 2 * H * Mlp;
    const want =
      2 * 4 * 16 * H + // embed
      (1 + M + M + M) * attn + // blocks 0 | 1,2,3 (first MoE block is 1)
      (1 + M) * dense + // dense MLPs in blocks 0 and 2
      2 * M * 2 * T * H * E + // routers of blocks 1 and 3
      2 * 2 * ((E * C) / gi) * 2 * H * Mlp + // experts: E·C rows per group of gi images
      M * 2 * H * 3; // head
    expect(f.total).toBe(want);
  });
});
