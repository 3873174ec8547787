import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import { ModelSchema, checkModelConfig, type ModelConfig } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import type { MoeLayerResult } from '../../src/vmoe/moe.js';
import { modelLoss } from '../../src/train/trainer.js';
import { classificationMetrics, stackOutputs } from '../../src/eval/classification.js';
import type { Outputs } from '../../src/eval/outputs.js';
import { flopsPerImage } from '../../src/vmoe/flops.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

const base = {
  imageSize: 8, patchSize: 4, hidden: 8, depth: 4, heads: 2, mlpDim: 12, numClasses: 3,
  moe: { numExperts: 4, k: 1, groupImages: 2, capacityFactor: 1.5, expertInit: 'random', layers: { placement: 'last-n', n: 2 } },
};
const cfgOf = (over: Record<string, unknown>): ModelConfig => ModelSchema.parse({ ...base, ...over });

function randomImages(rng: Rng, B: number) {
  return tf.tensor4d(Float32Array.from({ length: B * 64 }, () => rng.normal()), [B, 8, 8, 1]);
}

/** A model whose head is random (zero heads make every prediction uniform). */
function initModel(cfg: ModelConfig, seed: number): VisionMoE {
  const m = VisionMoE.init(cfg, seed);
  const rng = new Rng(seed + 100);
  const head = m.p<tf.Variable>('head/kernel');
  head.assign(tf.tensor(Float32Array.from({ length: head.size }, () => rng.normal()), head.shape));
  return m;
}

/** Copies every parameter of `from` into a model of `cfg`, reshaping router kernels (H,E) ↔ (H,M,E/M). */
function transplant(from: VisionMoE, cfg: ModelConfig): VisionMoE {
  const values = from.values();
  const to = VisionMoE.init(cfg, 0);
  for (const [name, v] of to.params) v.assign(tf.tensor(values.get(name)!.data, v.shape));
  return to;
}

describe('E³ config checks', () => {
  it('E % M and K ≤ E/M are enforced, naming the fields', () => {
    expect(() => checkModelConfig(cfgOf({ type: 'e3', ensemble: { members: 3 } }))).toThrow(/ensemble\.members: 3 must divide/);
    expect(() => checkModelConfig(cfgOf({ type: 'e3', ensemble: { members: 4 }, moe: { ...base.moe, k: 2 } }))).toThrow(/moe\.k: 2 exceeds the experts per member/);
  });
});

describe('E³ model', () => {
  it('with M = 1 equals the V-MoE with the same weights', () => {
    const vmoe = initModel(cfgOf({ type: 'vmoe' }), 1);
    const e3 = transplant(vmoe, cfgOf({ type: 'e3', ensemble: { members: 1 } }));
    const x = randomImages(new Rng(2), 4);
    const a = vmoe.forward(x, { train: false }).logits.dataSync();
    const b = e3.forward(x, { train: false });
    expect(b.memberLogits).toBeUndefined();
    expect(Array.from(b.logits.dataSync())).toEqual(Array.from(a));
  });

  it.each(['repeat', 'tile'] as const)('%s layout: no member ever reaches another member\'s experts (train and eval)', (layout) => {
    const M = 2, E = 4;
    const model = initModel(cfgOf({ type: 'e3', ensemble: { members: M, layout }, moe: { ...base.moe, k: 2 } }), 3);
    const x = randomImages(new Rng(4), 6);
    let layers = 0;
    const check = (_b: number, r: MoeLayerResult) => {
      layers++;
      const { expert, kept, numTokens } = { ...r.plan, numTokens: r.plan.numTokens };
      const K = 2;
      for (let t = 0; t < numTokens; t++) {
        const m = t % M;
        for (let c = 0; c < K; c++) {
          const e = expert![t * K + c]!;
          expect(Math.floor(e / (E / M))).toBe(m);
          void kept;
        }
      }
      // gates outside the member's partition are exactly zero
      const g = r.gatesClean.dataSync();
      for (let t = 0; t < numTokens; t++) for (let e = 0; e < E; e++) if (Math.floor(e / (E / M)) !== t % M) expect(g[t * E + e]).toBe(0);
    };
    model.forward(x, { train: false, onMoeLayer: check });
    model.forward(x, { train: true, rng: new Rng(5), onMoeLayer: check });
    expect(layers).toBe(4); // 2 MoE layers × 2 passes
  });

  it('repeat puts member m of image i at row i·M + m, tile at m·B + i, and both give the same predictions', () => {
    const M = 2, B = 3;
    const rep = initModel(cfgOf({ type: 'e3', ensemble: { members: M, layout: 'repeat' } }), 6);
    const til = transplant(rep, cfgOf({ type: 'e3', ensemble: { members: M, layout: 'tile' } }));
    const rows = tf.tensor3d(Float32Array.from({ length: B * 2 * 1 }, (_, i) => i), [B, 2, 1]); // image i holds [2i, 2i+1]
    const r = rep.repeatMembers(rows, M).arraySync() as number[][][];
    const t = til.repeatMembers(rows, M).arraySync() as number[][][];
    for (let i = 0; i < B; i++) for (let m = 0; m < M; m++) {
      expect(r[i * M + m]).toEqual([[2 * i], [2 * i + 1]]);
      expect(t[m * B + i]).toEqual([[2 * i], [2 * i + 1]]);
    }
    const x = randomImages(new Rng(7), 4);
    const a = rep.forward(x, { train: false }), b = til.forward(x, { train: false });
    const da = a.memberLogits!.dataSync(), db = b.memberLogits!.dataSync();
    for (let i = 0; i < da.length; i++) expect(da[i]).toBeCloseTo(db[i]!, 5);
    const pa = a.logits.dataSync(), pb = b.logits.dataSync();
    for (let i = 0; i < pa.length; i++) expect(pa[i]).toBeCloseTo(pb[i]!, 5);
  });

  it('the prediction is log of the mean of the members\' probabilities', () => {
    const M = 2, B = 4, K = 3;
    const model = initModel(cfgOf({ type: 'e3', ensemble: { members: M } }), 8);
    const r = model.forward(randomImages(new Rng(9), B), { train: false });
    const ml = r.memberLogits!.arraySync() as number[][][];
    const lp = r.logits.arraySync() as number[][];
    for (let i = 0; i < B; i++) for (let c = 0; c < K; c++) {
      let mean = 0;
      for (let m = 0; m < M; m++) {
        const row = ml[m]![i]!;
        const z = row.reduce((s, v) => s + Math.exp(v), 0);
        mean += Math.exp(row[c]!) / z / M;
      }
      expect(lp[i]![c]).toBeCloseTo(Math.log(mean), 5);
    }
  });

  it('the training loss is the mean of the members\' own cross-entropies', () => {
    const M = 2, B = 4;
    const model = initModel(cfgOf({ type: 'e3', ensemble: { members: M } }), 10);
    const labels = tf.tensor1d([0, 2, 1, 1], 'int32');
    const r = model.forward(randomImages(new Rng(11), B), { train: false });
    const loss = modelLoss(r, labels, 3, 0).dataSync()[0]!;
    const ml = r.memberLogits!.arraySync() as number[][][];
    const y = [0, 2, 1, 1];
    let want = 0;
    for (let m = 0; m < M; m++) for (let i = 0; i < B; i++) {
      const row = ml[m]![i]!;
      want += (Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[y[i]!]!) / (M * B);
    }
    expect(loss).toBeCloseTo(want, 5);
  });

  it('initialised from a V-MoE, each member\'s gates are the V-MoE gates restricted to its partition', () => {
    const M = 2, E = 4, Em = E / M;
    const vmoe = initModel(cfgOf({ type: 'vmoe' }), 12);
    const e3 = transplant(vmoe, cfgOf({ type: 'e3', ensemble: { members: M } }));
    const x = randomImages(new Rng(13), 2);
    let gv: Float32Array | null = null, ge: Float32Array | null = null;
    vmoe.forward(x, { train: false, onMoeLayer: (b, r) => { if (b === 1) gv = r.gatesClean.dataSync() as Float32Array; } });
    e3.forward(x, { train: false, onMoeLayer: (b, r) => { if (b === 1) ge = r.gatesClean.dataSync() as Float32Array; } });
    // first MoE block (1): its input is identical for both (blocks before it are shared and run once)
    const N = gv!.length / E; // V-MoE tokens (image, token)
    for (let t = 0; t < N; t++) for (let m = 0; m < M; m++) {
      let z = 0;
      for (let e = m * Em; e < (m + 1) * Em; e++) z += gv![t * E + e]!;
      for (let e = m * Em; e < (m + 1) * Em; e++) expect(ge![(t * M + m) * E + e]).toBeCloseTo(gv![t * E + e]! / z, 5);
    }
  });

  it('FLOPs: blocks from the first MoE block on and the head run M times', () => {
    const M = 2;
    const e3 = cfgOf({ type: 'e3', ensemble: { members: M } });
    const f = flopsPerImage(e3);
    const T = 5, H = 8, Mlp = 12, E = 4, gi = 2, K = 1;
    const S = gi * T * M; // 20 tokens per group
    const C = 4 * Math.ceil(Math.ceil((S * K * 1.5) / E) / 4); // ceil(7.5) = 8 → 8
    const attn = 2 * T * H * 3 * H + 4 * T * T * H + 2 * T * H * H;
    const dense = 2 * T * 2 * H * Mlp;
    const want = 2 * 4 * 16 * H // embed
      + (1 + M + M + M) * attn // blocks 0 | 1,2,3 (first MoE block is 1)
      + (1 + M) * dense // dense MLPs in blocks 0 and 2
      + 2 * M * 2 * T * H * E // routers of blocks 1 and 3
      + 2 * 2 * ((E * C) / gi) * 2 * H * Mlp // experts: E·C rows per group of gi images
      + M * 2 * H * 3; // head
    expect(f.total).toBe(want);
  });
});

describe('ensembles of outputs', () => {
  it('averaging identical members returns the member\'s own prediction', () => {
    const rng = new Rng(14);
    const n = 50, k = 4;
    const one: Outputs = {
      n, numClasses: k, members: 1, logits: Float32Array.from({ length: n * k }, () => rng.normal() * 2),
      preLogits: new Float32Array(0), preLogitsDim: 0, labels: Int32Array.from({ length: n }, () => rng.int(k)), router: [], seconds: 0,
    };
    const single = classificationMetrics(one);
    const ens = classificationMetrics(stackOutputs([one, one, one]));
    expect(ens.members).toBe(3);
    expect(ens.accuracy).toBe(single.accuracy);
    expect(ens.nll).toBeCloseTo(single.nll, 6);
    expect(ens.gibbs_nll).toBeCloseTo(single.nll, 6);
    expect(ens.diversity!.disagreement).toBe(0);
    expect(ens.diversity!.mutualInformation).toBeCloseTo(0, 9);
  });
});
