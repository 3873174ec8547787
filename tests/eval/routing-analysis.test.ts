import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import { makeBatch } from '../../src/data/index.js';
import { computeOutputs } from '../../src/vmoe/outputs.js';
import {
  DEFAULT_COLLAPSE,
  addLayerTrace,
  analyseRouting,
  collapseFlags,
  emptyLayerCounts,
  loadLossOfGroup,
  isBackgroundPatch,
  meanRouterEntropy,
  normalCdf,
  parseTrainingLog,
  processedPatches,
  processedShareByContent,
  rowNormalise,
  summariseLayer,
  traceRouting,
  trainingLogSeries,
  type LayerTrace,
  type RoutingTrace,
} from '../../src/eval/routing-analysis.js';
import { runningMean, trainingLogFigures } from '../../src/export/routing-figures.js';
import { importanceLossOfGroup } from '../../src/vmoe/aux-losses.js';
import { gelu } from '../../src/vmoe/layers.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { moeLayer } from '../../src/vmoe/moe.js';
import { topExpertsPerItem } from '../../src/vmoe/routing.js';
import { Rng } from '../../src/util/rng.js';
import { syntheticDataset, tinyConfig } from './helpers.js';
import { checkSvg, count } from './svg-check.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

const T = 5; // tokens per image of the tiny config
const ds = syntheticDataset(12);
const imagesOf = (n: number, offset = 0) => {
  const b = makeBatch(
    ds,
    Int32Array.from({ length: n }, (_, i) => i + offset),
    { scale: 'minus1to1' },
  );
  return tf.tensor4d(b.x, b.shape);
};

/** Row s of a (N, E) flat array as a plain array. */
const rowOf = (g: Float32Array, s: number, E: number) => Array.from(g.subarray(s * E, (s + 1) * E));

describe('traceRouting is the evaluation forward pass', () => {
  it.each([
    { name: 'V-MoE K=1 vanilla, drops', cfg: tinyConfig(), routing: { capacity: 1 } },
    {
      name: 'V-MoE K=2 BPR, c=0.5',
      cfg: tinyConfig({}, { k: 2 }),
      routing: { capacityFactor: 0.5, batchPriority: true },
    },
    { name: 'V-MoE GAP readout', cfg: tinyConfig({ readout: 'gap' }), routing: {} },
    {
      name: 'E³ M=2',
      cfg: tinyConfig({ type: 'e3', ensemble: { members: 2 } }),
      routing: { capacity: 2, batchPriority: true },
    },
  ])('$name: logits and stats equal VisionMoE.forward', ({ cfg, routing }) => {
    const model = VisionMoE.init(cfg, 3);
    const x = imagesOf(4);
    const trace = traceRouting(model, x, routing);
    const r = model.forward(x, { train: false, routing });
    const ref = { logits: r.logits.dataSync(), moe: r.moe };
    expect(Array.from(trace.logits)).toEqual(Array.from(ref.logits));
    expect(trace.layers.map((l) => ({ ...l.stats, block: l.block }))).toEqual(ref.moe);
    expect(trace.layers.map((l) => l.members)).toEqual([cfg.type === 'e3' ? 2 : 1]);
    x.dispose();
    model.dispose();
  });
});

describe('which assignments are kept (docs/spec/routing.md §6)', () => {
  // 4 images, 2 per group → 2 groups of S = 10 tokens; absolute capacity 2 forces drops.
  const C = 2,
    S = 2 * T;

  it.each([true, false])(
    'K=1, batchPriority=%s: per group and expert, the kept tokens are the top-C by top-1 gate (BPR) or the first C by position (vanilla)',
    (bpr) => {
      const model = VisionMoE.init(tinyConfig(), 11);
      const x = imagesOf(4);
      const layer = traceRouting(model, x, { capacity: C, batchPriority: bpr }).layers[0]!;
      const E = layer.numExperts;
      let dropped = 0;
      for (let g = 0; g < 2; g++) {
        for (let e = 0; e < E; e++) {
          const toks: number[] = [];
          for (let t = g * S; t < (g + 1) * S; t++) {
            const row = rowOf(layer.gatesClean, t, E);
            if (row.indexOf(Math.max(...row)) === e) toks.push(t);
          }
          const top1 = (t: number) => Math.max(...rowOf(layer.gatesClean, t, E));
          const ranked = bpr ? toks.slice().sort((a, b) => top1(b) - top1(a) || a - b) : toks;
          const want = new Set(ranked.slice(0, C));
          for (const t of toks) expect(layer.kept[t] === 1, `group ${g} expert ${e} token ${t}`).toBe(want.has(t));
          dropped += toks.length - want.size;
        }
      }
      expect(dropped).toBeGreaterThan(0); // the case exercises dropping
      expect(layer.stats.dropFraction).toBeCloseTo(dropped / (2 * S), 12);
      x.dispose();
      model.dispose();
    },
  );

  it('ties in the top-1 gate go by position: with a zero router every token ties, picks expert 0, and BPR keeps the first C', () => {
    const model = VisionMoE.init(tinyConfig(), 5);
    const kernel = model.params.get('block1/moe/router/kernel')!;
    kernel.assign(tf.zerosLike(kernel));
    const x = imagesOf(4);
    const layer = traceRouting(model, x, { capacity: C, batchPriority: true }).layers[0]!;
    expect(Array.from(layer.expert)).toEqual(new Array(2 * S).fill(0));
    const want = Array.from({ length: 2 * S }, (_, t) => (t % S < C ? 1 : 0));
    expect(Array.from(layer.kept)).toEqual(want);
    x.dispose();
    model.dispose();
  });

  it.each([true, false])('K=2, batchPriority=%s: the plan equals the pure reference router group by group', (bpr) => {
    const model = VisionMoE.init(tinyConfig({}, { k: 2 }), 2);
    const x = imagesOf(4);
    const layer = traceRouting(model, x, { capacity: 3, batchPriority: bpr }).layers[0]!;
    const E = layer.numExperts;
    for (let g = 0; g < 2; g++) {
      const gates = Array.from({ length: S }, (_, s) => rowOf(layer.gatesClean, g * S + s, E));
      const ref = topExpertsPerItem(gates, { k: 2, capacity: 3, batchPriority: bpr });
      const slice = (a: ArrayLike<number>) =>
        Array.from({ length: S }, (_, s) => [a[(g * S + s) * 2]!, a[(g * S + s) * 2 + 1]!]);
      expect(slice(layer.expert)).toEqual(ref.expert);
      expect(slice(layer.kept).map((r) => r.map((v) => v === 1))).toEqual(ref.kept);
    }
    x.dispose();
    model.dispose();
  });
});

describe('capacity ≥ S never drops', () => {
  it('capacity S and 10·S: nothing dropped, identical logits', () => {
    const model = VisionMoE.init(tinyConfig({}, { k: 2 }), 4);
    const x = imagesOf(4);
    const S = 2 * T;
    const a = traceRouting(model, x, { capacity: S, batchPriority: true });
    const b = traceRouting(model, x, { capacity: 10 * S, batchPriority: false });
    for (const t of [a, b]) {
      expect(Array.from(t.layers[0]!.kept).every((v) => v === 1)).toBe(true);
      expect(t.layers[0]!.stats.processedFraction).toBe(1);
    }
    Array.from(a.logits).forEach((v, i) => expect(v).toBeCloseTo(b.logits[i]!, 5));
    x.dispose();
    model.dispose();
  });

  it('the MoE layer with capacity S equals the capacity-free mixture Σ_top-k gate·expert(x)', () => {
    const model = VisionMoE.init(tinyConfig({}, { k: 2 }), 8);
    const N = 10,
      H = 8,
      E = 4;
    const rng = new Rng(9);
    const xs = Float32Array.from({ length: N * H }, () => rng.normal());
    tf.tidy(() => {
      const x = tf.tensor2d(xs, [N, H]);
      const w = {
        router: model.p<tf.Tensor2D>('block1/moe/router/kernel'),
        w1: model.p<tf.Tensor3D>('block1/moe/w1'),
        b1: model.p<tf.Tensor2D>('block1/moe/b1'),
        w2: model.p<tf.Tensor3D>('block1/moe/w2'),
        b2: model.p<tf.Tensor2D>('block1/moe/b2'),
      };
      const r = moeLayer(x, w, model.routingFor({ capacity: N, k: 2 }), { train: false, noiseSeed: null });
      const gates = tf.softmax(tf.matMul(x, w.router)).arraySync() as number[][];
      const expertOut = Array.from({ length: E }, (_, e) => {
        const h = gelu(tf.add(tf.matMul(x, tf.gather(w.w1, e)), tf.gather(w.b1, e)));
        return tf.add(tf.matMul(h as tf.Tensor2D, tf.gather(w.w2, e)), tf.gather(w.b2, e)).arraySync() as number[][];
      });
      const want = gates.map((g, t) => {
        const top = g
          .map((v, e) => [v, e] as const)
          .sort((p, q) => q[0] - p[0])
          .slice(0, 2);
        return Array.from({ length: H }, (_, h) => top.reduce((s, [v, e]) => s + v * expertOut[e]![t]![h]!, 0));
      });
      const got = r.y.arraySync();
      got.forEach((row, t) => row.forEach((v, h) => expect(v).toBeCloseTo(want[t]![h]!, 5)));
    });
    model.dispose();
  });
});

describe('pure statistics', () => {
  it.each([
    { gates: [0.25, 0.25, 0.25, 0.25], E: 4, want: Math.log(4) },
    { gates: [1, 0, 0, 0], E: 4, want: 0 },
    { gates: [0.5, 0.5, 0, 0, 1, 0, 0, 0], E: 4, want: Math.log(2) / 2 },
  ])('mean router entropy of $gates', ({ gates, E, want }) => {
    expect(meanRouterEntropy(gates, gates.length / E, E)).toBeCloseTo(want, 12);
  });

  it.each([
    { gates: [0.75, 0.25, 0.25, 0.75], E: 2, M: 1, want: 0 }, // Imp = [1, 1]
    { gates: [1, 0, 1, 0], E: 2, M: 1, want: 1 }, // Imp = [2, 0]: var 1, mean² 1
    { gates: [0.9, 0.1, 0.5, 0.5], E: 2, M: 1, want: 0.16 }, // Imp = [1.4, 0.6]: var 0.16, mean 1
    // E³, rows member-fastest: member 0 = row 0 on experts 0–1 → Imp [.5,.5] → 0; member 1 = row 1 on experts 2–3 → [1, 0] → 1
    { gates: [0.5, 0.5, 0, 0, 0, 0, 1, 0], E: 4, M: 2, want: 0.5 },
  ])('importance loss CV² of $gates (E=$E, M=$M)', ({ gates, E, M, want }) => {
    expect(importanceLossOfGroup(gates, 0, gates.length / E, E, M)).toBeCloseTo(want, 12);
  });

  it.each([
    { z: 0, want: 0.5 },
    { z: 1, want: 0.8413447460685429 },
    { z: -1.96, want: 0.024997895148220435 },
    { z: 3, want: 0.9986501019683699 },
    { z: Infinity, want: 1 },
    { z: -Infinity, want: 0 },
  ])('Φ($z)', ({ z, want }) => {
    expect(normalCdf(z)).toBeCloseTo(want, 7);
  });

  it('load loss: one token, logits (0, −1), σ = 0.5 → Load = (1/2, 1 − Φ(2)) → CV² = ((1/2 − q)/(1/2 + q))²', () => {
    const g = [1 / (1 + Math.exp(-1)), Math.exp(-1) / (1 + Math.exp(-1))];
    const q = 1 - 0.9772498680518208;
    expect(loadLossOfGroup(g, 0, 1, 2, 1, 0.5)).toBeCloseTo(((0.5 - q) / (0.5 + q)) ** 2, 6);
    // a mirrored second token balances the loads exactly
    expect(loadLossOfGroup([...g, g[1]!, g[0]!], 0, 2, 2, 1, 0.5)).toBeCloseTo(0, 12);
    expect(loadLossOfGroup(g, 0, 1, 2, 1, 0)).toBeNaN();
  });

  it('importance loss matches the tensor MoE layer (V-MoE and E³)', () => {
    for (const cfg of [tinyConfig({}, { k: 2 }), tinyConfig({ type: 'e3', ensemble: { members: 2 } })]) {
      const model = VisionMoE.init(cfg, 6);
      const x = imagesOf(4);
      const layer = traceRouting(model, x).layers[0]!;
      let s = 0,
        start = 0;
      for (const S of layer.groupSizes) {
        s += importanceLossOfGroup(layer.gatesClean, start, S, layer.numExperts, layer.members);
        start += S;
      }
      expect(s / layer.groupSizes.length).toBeCloseTo(layer.stats.importanceLoss, 5);
      x.dispose();
      model.dispose();
    }
  });

  it('rowNormalise: rows sum to 1, an empty row is NaN', () => {
    expect(rowNormalise([1, 3, 0, 0, 2, 2], 3, 2)).toEqual([
      [0.25, 0.75],
      [NaN, NaN],
      [0.5, 0.5],
    ]);
  });

  it.each([
    {
      share: [0.6, 0.2, 0.195, 0.005],
      want: [
        { expert: 0, kind: 'dominant' },
        { expert: 3, kind: 'starved' },
      ],
    },
    { share: [0.5, 0.25, 0.24, 0.01], want: [] }, // thresholds are strict
    { share: [0.97, 0.02, 0.01], want: [] }, // fewer than 4 experts: not judged
    { share: [0.25, 0.25, 0.25, 0.25], want: [] },
  ])('collapse flags of $share', ({ share, want }) => {
    expect(collapseFlags(share, DEFAULT_COLLAPSE).map(({ expert, kind }) => ({ expert, kind }))).toEqual(want);
  });
});

/** A hand-made layer: 2 images × 2 tokens, K=1, E=2. */
const handLayer = (over: Partial<LayerTrace> = {}): LayerTrace => ({
  block: 1,
  numExperts: 2,
  k: 1,
  members: 1,
  groupSizes: [4],
  capacities: [2],
  expert: Int32Array.from([0, 1, 1, 1]),
  kept: Uint8Array.from([1, 1, 0, 1]),
  gatesClean: Float32Array.from([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
  stats: {
    processedFraction: 0.75,
    dropFraction: 0.25,
    expertLoad: [1 / 3, 2 / 3],
    capacity: 2,
    groupSize: 4,
    importanceLoss: 0,
    loadLoss: NaN,
  },
  ...over,
});

describe('layer summaries', () => {
  it('hand case: load, demand, drops and affinity', () => {
    const c = emptyLayerCounts(1, 2, 1, 2);
    addLayerTrace(c, handLayer(), [0, 1], 2, 0.5);
    const s = summariseLayer(c);
    expect(s.expertDemand).toEqual([0.25, 0.75]);
    expect(s.expertLoad).toEqual([1 / 3, 2 / 3]);
    expect(s.dropFraction).toBe(0.25);
    // class 0 = tokens 0,1 → e0, e1; class 1 = token 2 (dropped), token 3 → e1
    expect(s.affinity).toEqual([
      [0.5, 0.5],
      [0, 1],
    ]);
    expect(s.routerEntropy).toBeCloseTo(Math.log(2), 6);
    expect(s.maxEntropy).toBeCloseTo(Math.log(2), 12);
  });

  it('refuses labels that do not cover the routed rows', () => {
    expect(() => addLayerTrace(emptyLayerCounts(1, 2, 1, 2), handLayer(), [0], 2, 0.5)).toThrow(
      /4 routed rows but 1 labels/,
    );
  });

  it.each([
    { name: 'V-MoE K=2', cfg: tinyConfig({}, { k: 2, capacityFactor: 0.5, batchPriority: true }) },
    { name: 'E³ M=2', cfg: tinyConfig({ type: 'e3', ensemble: { members: 2 } }, { capacityFactor: 0.5 }) },
  ])(
    '$name over a data set: shares sum to 1, affinity rows sum to 1, processed fraction agrees with computeOutputs',
    ({ cfg }) => {
      const model = VisionMoE.init(cfg, 12);
      const [s] = analyseRouting(model, ds, { batchSize: 4, scale: 'minus1to1' });
      expect(s!.expertLoad.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      expect(s!.expertDemand.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      for (const row of s!.affinity) expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      expect(s!.routerEntropy).toBeLessThanOrEqual(Math.log(cfg.moe.numExperts / (cfg.type === 'e3' ? 2 : 1)) + 1e-6);
      // one batch holding every routing group: its per-batch shares are the pooled shares
      const out = computeOutputs(model, ds, { batchSize: ds.n, scale: 'minus1to1' });
      expect(s!.processedFraction).toBeCloseTo(out.router[0]!.processedFraction, 12);
      expect(s!.expertLoad.every((v, e) => Math.abs(v - out.router[0]!.expertLoad[e]!) < 1e-9)).toBe(true);
      model.dispose();
    },
  );
});

describe('processed share by patch content', () => {
  // 4×4 image, 2×2 patches: patch 0 fully lit, patch 1 one pixel at 255 (1 of 4 = 25% ≥ 10%: object),
  // patch 2 dim (25 ≤ 25.5: background), patch 3 black
  const pixels = [200, 200, 255, 0, 200, 200, 0, 0, 25, 25, 0, 0, 25, 25, 0, 0];
  it('classifies patches by the lit-pixel rule', () => {
    expect([0, 1, 2, 3].map((p) => isBackgroundPatch(pixels, 4, 2, p))).toEqual([false, false, true, true]);
  });
  it('averages the processed share over background and object patches of all images', () => {
    const r = processedShareByContent(
      [
        { pixels, shares: [1, 0.5, 0, 0.5] },
        { pixels, shares: [0, 0.5, 1, 1] },
      ],
      4,
      2,
    );
    expect(r.object).toBeCloseTo((1 + 0.5 + 0 + 0.5) / 4, 12);
    expect(r.background).toBeCloseTo((0 + 0.5 + 1 + 1) / 4, 12);
    expect([r.object_patches, r.background_patches]).toEqual([4, 4]);
    expect(processedShareByContent([{ pixels: new Array(16).fill(0), shares: [1, 1, 1, 1] }], 4, 2).object).toBeNull();
  });
});

describe('processed patches', () => {
  it('class token left out; share of the K choices kept per patch', () => {
    const layer = handLayer({
      k: 2,
      expert: new Int32Array(12),
      kept: Uint8Array.from([1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0]),
    });
    const trace: RoutingTrace = { numImages: 2, tokensPerImage: 3, logits: new Float32Array(0), layers: [layer] };
    expect(processedPatches(trace, true)).toEqual([[[0.5, 0]], [[1, 0]]]);
    expect(processedPatches(trace, false)).toEqual([[[1, 0.5, 0]], [[0.5, 1, 0]]]);
  });
  it('E³ rows are (image, token, member): a patch counts all its members', () => {
    const layer = handLayer({ members: 2, kept: Uint8Array.from([1, 0, 1, 1]) });
    const trace: RoutingTrace = { numImages: 1, tokensPerImage: 2, logits: new Float32Array(0), layers: [layer] };
    expect(processedPatches(trace, false)).toEqual([[[0.5, 1]]]);
  });
});

describe('training log', () => {
  const log = [
    JSON.stringify({
      step: 1,
      loss: 2,
      moe: [
        { block: 1, drop: 0.2, load: [0.7, 0.3] },
        { block: 3, drop: 0.1, load: [0.5, 0.5] },
      ],
    }),
    JSON.stringify({ step: 1, split: 'val', accuracy: 0.5 }),
    '',
    JSON.stringify({
      step: 2,
      loss: 1.5,
      moe: [
        { block: 1, drop: 0.05, load: [0.4, 0.6] },
        { block: 3, drop: 0, load: [0.45, 0.55] },
      ],
    }),
  ].join('\n');

  it('keeps training lines, skips evaluation lines, and gives per-block series', () => {
    const series = trainingLogSeries(parseTrainingLog(log, 'm.jsonl'));
    expect(series).toEqual([
      {
        block: 1,
        drop: [
          [1, 0.2],
          [2, 0.05],
        ],
        maxLoad: [
          [1, 0.7],
          [2, 0.6],
        ],
        expertLoad: [
          [
            [1, 0.7],
            [2, 0.4],
          ],
          [
            [1, 0.3],
            [2, 0.6],
          ],
        ],
      },
      {
        block: 3,
        drop: [
          [1, 0.1],
          [2, 0],
        ],
        maxLoad: [
          [1, 0.5],
          [2, 0.55],
        ],
        expertLoad: [
          [
            [1, 0.5],
            [2, 0.45],
          ],
          [
            [1, 0.5],
            [2, 0.55],
          ],
        ],
      },
    ]);
    const figs = trainingLogFigures(series);
    expect(count(checkSvg(figs.drop), 'polyline')).toBe(2);
    expect(count(checkSvg(figs.maxLoad), 'polyline')).toBe(2);
    // one figure per block, one line per expert
    expect(figs.expertLoad.map((f) => f.block)).toEqual([1, 3]);
    for (const f of figs.expertLoad) expect(count(checkSvg(f.svg), 'polyline')).toBe(2);
  });
  it.each([
    { w: 1, want: [1, 3, 2] },
    { w: 2, want: [1, 2, 2.5] },
    { w: 5, want: [1, 2, 2] },
  ])('running mean over $w points', ({ w, want }) => {
    expect(
      runningMean(
        [
          [0, 1],
          [1, 3],
          [2, 2],
        ],
        w,
      ),
    ).toEqual(want.map((y, i) => [i, y]));
  });
  it('names the file and line of a bad record', () => {
    expect(() =>
      parseTrainingLog('{"step": 1, "moe": []}\n{oops\n{"step": 2, "moe": []}\n', 'runs/x/metrics.jsonl'),
    ).toThrow(/runs\/x\/metrics\.jsonl:2: not valid JSON/);
  });
  it('leaves out a last line cut by a crash (no newline after it) and keeps the rest', () => {
    const line = (step: number) => JSON.stringify({ step, moe: [{ block: 1, drop: 0.1, load: [0.5, 0.5] }] });
    const recs = parseTrainingLog(`${line(1)}\n${line(2)}\n${line(3).slice(0, 20)}`, 'm.jsonl');
    expect(recs.map((r) => r.step)).toEqual([1, 2]);
    expect(() => parseTrainingLog('{"step": 1, "moe": [{"block": 1}]}', 'f')).toThrow(/f:1: moe\[0\] needs/);
  });
});
