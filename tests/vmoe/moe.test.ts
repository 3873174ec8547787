import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import { packExpertRows, planExpertChoice, planTopK, planTopKPacked } from '../../src/vmoe/dispatch.js';
import { loadBlasAddon } from '../../src/engine/native-blas.js';
import { topExpertsPerItem, topItemsPerExpert } from '../../src/vmoe/routing.js';
import { expertCapacity } from '../../src/vmoe/capacity.js';
import { importanceLoss, loadLoss } from '../../src/vmoe/aux-losses.js';
import { moeLayer, routerNoise, type MoeWeights, type RoutingSettings } from '../../src/vmoe/moe.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

function randomGates(rng: Rng, n: number, e: number): number[][] {
  return Array.from({ length: n }, () => {
    const z = Array.from({ length: e }, () => rng.normal() * 2);
    const m = Math.max(...z);
    const ex = z.map((v) => Math.exp(v - m));
    const s = ex.reduce((a, b) => a + b, 0);
    return ex.map((v) => v / s);
  });
}

describe('planTopK equals the pure reference router, group by group', () => {
  const cases = [
    { k: 1, c: 1.0, bpr: false },
    { k: 2, c: 1.05, bpr: false },
    { k: 2, c: 0.5, bpr: true },
    { k: 1, c: 0.25, bpr: true },
    { k: 3, c: 2.0, bpr: false },
    { k: 2, c: 0.1, bpr: true },
  ];
  it.each(cases)('k=$k c=$c bpr=$bpr', ({ k, c, bpr }) => {
    const rng = new Rng(11 + k);
    const E = 6,
      S = 20,
      G = 3;
    const gates = randomGates(rng, S * G, E);
    const cap = (s: number) => expertCapacity({ groupSize: s, numExperts: E, k, capacityFactor: c });
    const plan = planTopK(Float64Array.from(gates.flat()), S * G, E, {
      k,
      groupSize: S,
      capacity: cap,
      batchPriority: bpr,
    });
    let processed = 0;
    for (let g = 0; g < G; g++) {
      const ref = topExpertsPerItem(gates.slice(g * S, (g + 1) * S), { k, capacityFactor: c, batchPriority: bpr });
      expect(plan.capacities[g]).toBe(ref.capacity);
      for (let i = 0; i < S; i++) {
        const t = g * S + i;
        for (let j = 0; j < k; j++) {
          expect(plan.expert![t * k + j]).toBe(ref.expert[i]![j]);
          expect(plan.slot![t * k + j]).toBe(ref.slot[i]![j]);
          expect(plan.kept![t * k + j] === 1).toBe(ref.kept[i]![j]);
          if (ref.kept[i]![j]) processed++;
        }
      }
    }
    expect(plan.processed).toBe(processed);
    // Every kept assignment occupies exactly one buffer row, and rows point back to it.
    const R = plan.rowsPerExpert;
    let filled = 0;
    for (let r = 0; r < E * R; r++) {
      if (plan.rowToken[r] === 0) continue;
      filled++;
      const t = plan.rowToken[r]! - 1,
        e = Math.floor(r / R);
      expect(plan.rowGate[r]).toBe(t * E + e + 1);
    }
    expect(filled).toBe(processed);
  });
});

describe('planExpertChoice equals the pure reference', () => {
  it.each([0.5, 1, 2])('capacity factor %s', (c) => {
    const rng = new Rng(5);
    const E = 4,
      S = 12,
      G = 2;
    const gates = randomGates(rng, S * G, E);
    const capOf = (s: number) => Math.ceil((s * c) / E);
    const plan = planExpertChoice(Float64Array.from(gates.flat()), S * G, E, { groupSize: S, capacity: capOf });
    const R = plan.rowsPerExpert;
    for (let g = 0; g < G; g++) {
      const ref = topItemsPerExpert(gates.slice(g * S, (g + 1) * S), { capacity: capOf(S) });
      for (let e = 0; e < E; e++) {
        for (let j = 0; j < ref.token[e]!.length; j++) {
          expect(plan.rowToken[e * R + g * capOf(S) + j]).toBe(g * S + ref.token[e]![j]! + 1);
        }
      }
    }
  });
});

function randomWeights(rng: Rng, H: number, E: number, M: number): MoeWeights {
  const t = (shape: number[], scale: number) =>
    tf.tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale),
      shape,
    );
  return {
    router: t([H, E], 1) as tf.Tensor2D,
    w1: t([E, H, M], 0.5) as tf.Tensor3D,
    b1: t([E, M], 0.1) as tf.Tensor2D,
    w2: t([E, M, H], 0.5) as tf.Tensor3D,
    b2: t([E, H], 0.1) as tf.Tensor2D,
  };
}

function settings(over: Partial<RoutingSettings>): RoutingSettings {
  return {
    router: 'top-k',
    k: 2,
    capacityFactor: 1.0,
    capacity: null,
    rounding: 'multiple-of-4',
    groupSize: 16,
    batchPriority: false,
    noiseStd: 1,
    aux: { importance: 0.005, load: 0.005, gshard: 0, zloss: 0 },
    ...over,
  };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('gather dispatch equals dense one-hot dispatch', () => {
  const cases: Partial<RoutingSettings>[] = [
    { k: 2, capacityFactor: 1.0 },
    { k: 1, capacityFactor: 0.5, batchPriority: true },
    { k: 2, capacityFactor: 0.3 },
    { router: 'expert-choice', capacityFactor: 1.0 },
    { k: 2, capacityFactor: 1.05, groupSize: 24 },
  ];
  it.each(cases)('%o: outputs and gradients', (over) => {
    const rng = new Rng(3);
    const H = 8,
      E = 4,
      M = 12,
      N = 48;
    const w = randomWeights(rng, H, E, M);
    const x = tf.tensor2d(
      Float32Array.from({ length: N * H }, () => rng.normal()),
      [N, H],
    );
    const r = settings(over);
    const run = (impl: 'gather' | 'dense') => {
      const f = (xi: tf.Tensor, r1: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor) => {
        const out = moeLayer(
          xi as tf.Tensor2D,
          { ...w, router: r1 as tf.Tensor2D, w1: w1 as tf.Tensor3D, w2: w2 as tf.Tensor3D },
          r,
          { train: false, noiseSeed: null, impl },
        );
        // A fixed random projection makes every output coordinate matter to the gradient.
        return tf.sum(tf.mul(out.y, tf.sin(tf.add(tf.range(0, N * H).reshape([N, H]), 0.5))));
      };
      const y = moeLayer(x, w, r, { train: false, noiseSeed: null, impl }).y.dataSync();
      const grads = tf
        .grads(f)([x, w.router, w.w1, w.w2])
        .map((g) => g.dataSync());
      return { y, grads };
    };
    const a = run('gather'),
      b = run('dense');
    expect(maxAbsDiff(a.y, b.y)).toBeLessThan(1e-5);
    for (let i = 0; i < a.grads.length; i++) expect(maxAbsDiff(a.grads[i]!, b.grads[i]!)).toBeLessThan(1e-4);
  });
});

describe('expert MLPs as one batched product (cpu) equal the per-expert loop (plain wasm)', () => {
  it.each<Partial<RoutingSettings>>([
    { k: 2, capacityFactor: 1.05 },
    { k: 1, capacityFactor: 0.5 },
    { router: 'expert-choice', capacityFactor: 1 },
  ])('%o: outputs, aux loss and gradients for x and every weight, training mode with noise', async (over) => {
    const rng = new Rng(4);
    const H = 8,
      E = 4,
      M = 12,
      N = 48;
    const w = randomWeights(rng, H, E, M);
    const xs = Float32Array.from({ length: N * H }, () => rng.normal());
    const r = settings(over);
    const run = () => {
      const x = tf.tensor2d(xs, [N, H]);
      const ws = [w.router, w.w1, w.b1, w.w2, w.b2].map((t) => tf.tensor(t.dataSync(), t.shape));
      const f = (xi: tf.Tensor, r1: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor) => {
        const weights = {
          router: r1 as tf.Tensor2D,
          w1: w1 as tf.Tensor3D,
          b1: b1 as tf.Tensor2D,
          w2: w2 as tf.Tensor3D,
          b2: b2 as tf.Tensor2D,
        };
        const out = moeLayer(xi as tf.Tensor2D, weights, r, { train: true, noiseSeed: 5 });
        return tf.add(tf.sum(tf.mul(out.y, tf.sin(tf.add(tf.range(0, N * H).reshape([N, H]), 0.5)))), out.aux);
      };
      const { value, grads } = tf.valueAndGrads(f)([x, ...ws]);
      return { value: value.dataSync()[0]!, grads: grads.map((g) => g.dataSync()) };
    };
    const looped = run();
    await tf.setBackend('cpu');
    let batched: ReturnType<typeof run>;
    try {
      batched = run();
    } finally {
      await tf.setBackend('wasm');
    }
    expect(Math.abs(batched.value - looped.value)).toBeLessThan(1e-4 * (1 + Math.abs(looped.value)));
    for (let i = 0; i < looped.grads.length; i++)
      expect(maxAbsDiff(batched.grads[i]!, looped.grads[i]!)).toBeLessThan(1e-4);
  });
});

describe('MoE layer semantics', () => {
  it('with capacity ≥ S nothing drops and y = Σ_k gate_k · expert_k(x), gates not renormalised', () => {
    const rng = new Rng(9);
    const H = 6,
      E = 5,
      M = 7,
      N = 20,
      K = 2;
    const w = randomWeights(rng, H, E, M);
    const xs = Float32Array.from({ length: N * H }, () => rng.normal());
    const res = moeLayer(tf.tensor2d(xs, [N, H]), w, settings({ k: K, capacity: N, groupSize: 10 }), {
      train: false,
      noiseSeed: null,
    });
    expect(res.stats.dropFraction).toBe(0);
    const y = res.y.arraySync();
    // Direct per-token computation on the host.
    const R = w.router.arraySync(),
      W1 = w.w1.arraySync(),
      B1 = w.b1.arraySync(),
      W2 = w.w2.arraySync(),
      B2 = w.b2.arraySync();
    const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    for (let t = 0; t < N; t++) {
      const x = Array.from(xs.subarray(t * H, (t + 1) * H));
      const logits = Array.from({ length: E }, (_, e) => x.reduce((s, xv, h) => s + xv * R[h]![e]!, 0));
      const mx = Math.max(...logits);
      const ex = logits.map((l) => Math.exp(l - mx));
      const z = ex.reduce((a, b) => a + b, 0);
      const p = ex.map((v) => v / z);
      const order = [...p.keys()].sort((a, b) => p[b]! - p[a]! || a - b).slice(0, K);
      const expect_ = new Array(H).fill(0);
      for (const e of order) {
        const hdn = Array.from({ length: M }, (_, m) =>
          gelu(x.reduce((s, xv, h) => s + xv * W1[e]![h]![m]!, B1[e]![m]!)),
        );
        for (let o = 0; o < H; o++) expect_[o] += p[e]! * hdn.reduce((s, hv, m) => s + hv * W2[e]![m]![o]!, B2[e]![o]!);
      }
      for (let o = 0; o < H; o++) expect(y[t]![o]!).toBeCloseTo(expect_[o], 4);
    }
  });

  it('a token whose every choice is dropped gets MoE output exactly 0', () => {
    const rng = new Rng(21);
    const H = 4,
      E = 2,
      M = 5,
      N = 16;
    const w = randomWeights(rng, H, E, M);
    const x = tf.tensor2d(
      Float32Array.from({ length: N * H }, () => rng.normal()),
      [N, H],
    );
    // K=1, capacity 1 per expert: at most 2 tokens processed per group of 16.
    const res = moeLayer(x, w, settings({ k: 1, capacity: 1, groupSize: 16 }), { train: false, noiseSeed: null });
    const y = res.y.arraySync();
    const kept = res.plan.kept!;
    let dropped = 0;
    for (let t = 0; t < N; t++) {
      if (!kept[t]) {
        dropped++;
        expect(y[t]!.every((v) => v === 0)).toBe(true);
      } else {
        expect(y[t]!.some((v) => v !== 0)).toBe(true);
      }
    }
    expect(dropped).toBe(N - 2);
  });

  it('importance and load losses equal the pure per-group definitions', () => {
    const rng = new Rng(4);
    const H = 6,
      E = 4,
      M = 5,
      N = 32,
      S = 16,
      K = 2,
      seed = 1234;
    const w = randomWeights(rng, H, E, M);
    const xs = Float32Array.from({ length: N * H }, () => rng.normal());
    const r = settings({ k: K, groupSize: S, aux: { importance: 1, load: 0, gshard: 0, zloss: 0 } });
    const res = moeLayer(tf.tensor2d(xs, [N, H]), w, r, { train: true, noiseSeed: seed });
    const logits = tf.matMul(tf.tensor2d(xs, [N, H]), w.router);
    const sigma = r.noiseStd / E;
    const noisy = tf.add(logits, tf.tensor2d(routerNoise(N, E, seed, sigma), [N, E]));
    const L = logits.arraySync() as number[][],
      NL = noisy.arraySync() as number[][];
    const gatesClean = tf.softmax(logits).arraySync() as number[][];
    let imp = 0,
      load = 0;
    for (let g = 0; g < N / S; g++) {
      imp += importanceLoss(gatesClean.slice(g * S, (g + 1) * S));
      load += loadLoss(L.slice(g * S, (g + 1) * S), NL.slice(g * S, (g + 1) * S), K, sigma);
    }
    expect(res.stats.importanceLoss).toBeCloseTo(imp / (N / S), 5);
    expect(res.stats.loadLoss).toBeCloseTo(load / (N / S), 4);
    // aux = 1·importance with these weights
    expect(res.aux.dataSync()[0]).toBeCloseTo(imp / (N / S), 5);
  });
});

describe('aux losses over uneven groups and E³ members', () => {
  it.each([
    { N: 40, S: 16, members: 1 }, // groups of 16, 16 and 8
    { N: 40, S: 16, members: 2 }, // and per member: rows ≡ m (mod 2), experts [2m, 2m+2)
    { N: 48, S: 12, members: 2 },
  ])(
    'importance and load losses for $N tokens in groups of $S, $members member(s), equal the pure per-(group, member) definitions',
    ({ N, S, members }) => {
      const rng = new Rng(8);
      const H = 6,
        E = 4,
        M = 5,
        K = 1,
        seed = 99;
      const Em = E / members;
      const w = randomWeights(rng, H, E, M);
      const xs = Float32Array.from({ length: N * H }, () => rng.normal());
      const r = settings({ k: K, groupSize: S, aux: { importance: 1, load: 0, gshard: 0, zloss: 0 } });
      const res = moeLayer(tf.tensor2d(xs, [N, H]), w, r, { train: true, noiseSeed: seed, members });
      const logits = tf.matMul(tf.tensor2d(xs, [N, H]), w.router).arraySync() as number[][];
      const sigma = r.noiseStd / Em;
      const noise = tf.tensor2d(routerNoise(N, E, seed), [N, E]).arraySync() as number[][];
      let imp = 0,
        load = 0,
        parts = 0;
      for (let start = 0; start < N; start += S) {
        const rows = Array.from({ length: Math.min(S, N - start) }, (_, i) => start + i);
        for (let m = 0; m < members; m++) {
          const own = rows.filter((t) => t % members === m);
          const L = own.map((t) => logits[t]!.slice(m * Em, (m + 1) * Em));
          const NL = own.map((t, i) => L[i]!.map((v, e) => v + sigma * noise[t]![m * Em + e]!));
          const gates = tf.softmax(tf.tensor2d(L)).arraySync() as number[][];
          imp += importanceLoss(gates);
          load += loadLoss(L, NL, K, sigma);
          parts++;
        }
      }
      expect(res.stats.importanceLoss).toBeCloseTo(imp / parts, 5);
      expect(res.stats.loadLoss).toBeCloseTo(load / parts, 4);
    },
  );
});

describe('optional router losses', () => {
  it('GShard and z-loss on tensors equal the pure per-group definitions', async () => {
    const { gshardLoss, zLoss } = await import('../../src/vmoe/aux-losses.js');
    const rng = new Rng(31);
    const H = 6,
      E = 4,
      M = 5,
      N = 32,
      S = 16;
    const w = randomWeights(rng, H, E, M);
    const xs = Float32Array.from({ length: N * H }, () => rng.normal());
    const run = (aux: RoutingSettings['aux']) =>
      moeLayer(tf.tensor2d(xs, [N, H]), w, settings({ k: 2, groupSize: S, aux }), {
        train: false,
        noiseSeed: null,
      }).aux.dataSync()[0]!;
    const logits = tf.matMul(tf.tensor2d(xs, [N, H]), w.router).arraySync() as number[][];
    const gates = tf.softmax(tf.tensor2d(logits)).arraySync() as number[][];
    let gs = 0;
    for (let g = 0; g < N / S; g++) gs += gshardLoss(gates.slice(g * S, (g + 1) * S)) / (N / S);
    expect(run({ importance: 0, load: 0, gshard: 1, zloss: 0 })).toBeCloseTo(gs, 5);
    expect(run({ importance: 0, load: 0, gshard: 0, zloss: 1 })).toBeCloseTo(zLoss(logits), 4);
  });
});

describe('planTopK with K = 2 (its one-pass selection)', () => {
  it('chooses what the general K-loop chooses first and second: ties to the lower index, NaN and -Infinity last', () => {
    const E = 5;
    const rows = [
      [0.2, 0.4, 0.4, 0.1, 0.4], // a three-way tie for first
      [0.3, 0.3, 0.1, 0.3, 0.0], // ties for first and second
      [NaN, 0.5, NaN, 0.2, 0.2],
      [-Infinity, 0.7, -Infinity, -Infinity, -Infinity], // one real choice: the second falls back to the lowest index
      [NaN, NaN, NaN, NaN, NaN],
      [0.9, -Infinity, NaN, -Infinity, NaN],
      [0.1, 0.2, 0.3, 0.4, 0.5],
    ];
    const rng = new Rng(23);
    for (let i = 0; i < 40; i++) rows.push(Array.from({ length: E }, () => Math.round(rng.uniform() * 4) / 4)); // many ties
    const N = rows.length;
    for (const gates of [Float64Array.from(rows.flat()), Float32Array.from(rows.flat())]) {
      const opts = (k: number) => ({ k, groupSize: N, capacity: () => N, batchPriority: false });
      const two = planTopK(gates, N, E, opts(2)),
        three = planTopK(gates, N, E, opts(3));
      for (let t = 0; t < N; t++) {
        expect([two.expert![2 * t], two.expert![2 * t + 1]]).toEqual([three.expert![3 * t], three.expert![3 * t + 1]]);
      }
      expect(Array.from(two.expert!.subarray(0, 14))).toEqual([1, 2, 0, 1, 1, 3, 1, 0, 0, 1, 0, 1, 4, 3]);
    }
  });
});

describe('packExpertRows', () => {
  it.each([
    { N: 40, E: 4, K: 2, S: 20, cf: 1.5 }, // capacity slack: empty slots to skip
    { N: 30, E: 3, K: 1, S: 10, cf: 0.5 }, // drops: experts full
  ])(
    'keeps every (token, gate) pair with its expert, filled rows first in order: N=$N E=$E K=$K S=$S cf=$cf',
    ({ N, E, K, S, cf }) => {
      const rng = new Rng(17);
      const gates = Float32Array.from({ length: N * E }, () => rng.uniform());
      const plan = planTopK(gates, N, E, {
        k: K,
        groupSize: S,
        batchPriority: false,
        capacity: (s) => expertCapacity({ groupSize: s, numExperts: E, k: K, capacityFactor: cf }),
      });
      const packed = packExpertRows(plan);
      const R = plan.rowsPerExpert;
      let emptySomewhere = false;
      for (let e = 0; e < E; e++) {
        const want: string[] = [];
        for (let i = e * R; i < (e + 1) * R; i++)
          if (plan.rowToken[i]) want.push(`${plan.rowToken[i]}:${plan.rowGate[i]}`);
        expect(packed.rows[e]).toBe(want.length);
        const got = Array.from({ length: R }, (_, i) => `${packed.rowToken[e * R + i]}:${packed.rowGate[e * R + i]}`);
        expect(got.slice(0, want.length)).toEqual(want);
        expect(got.slice(want.length).every((v) => v === '0:0')).toBe(true);
        if (want.length < R) emptySomewhere = true;
      }
      if (cf > 1) expect(emptySomewhere).toBe(true); // the case exercises skipping
    },
  );
});

const blas = loadBlasAddon();
describe.skipIf(!blas.addon)(`native planTopK (${blas.addon ? 'addon loaded' : `skipped: ${blas.reason}`})`, () => {
  // Gates rounded to quarters (many ties), rows with NaN / -Infinity / ±0 tops, uneven last groups, drops and slack.
  it.each([
    { N: 50, E: 5, K: 2, S: 16, cf: 1.05, bpr: false },
    { N: 50, E: 5, K: 2, S: 16, cf: 0.5, bpr: true },
    { N: 64, E: 8, K: 1, S: 64, cf: 1.0, bpr: true },
    { N: 37, E: 6, K: 3, S: 10, cf: 2.0, bpr: false },
    { N: 37, E: 6, K: 3, S: 10, cf: 0.25, bpr: true },
    { N: 9, E: 1, K: 1, S: 4, cf: 1.0, bpr: false },
    { N: 0, E: 4, K: 2, S: 8, cf: 1.0, bpr: false },
  ])(
    'equals planTopK + packExpertRows field by field: N=$N E=$E K=$K S=$S cf=$cf bpr=$bpr',
    ({ N, E, K, S, cf, bpr }) => {
      const rng = new Rng(31 + N + K);
      const gates = Float32Array.from({ length: N * E }, () => Math.round(rng.uniform() * 4) / 4);
      if (N > 3 && E > 1) {
        gates.fill(NaN, 0, E);
        gates.fill(-Infinity, E, 2 * E - 1);
        gates[2 * E] = NaN;
        for (let e = 0; e < E; e++) gates[3 * E + e] = e === 0 ? -0 : -0.25; // top-1 gates −0 and +0: equal for BPR's order
        for (let e = 0; e < E; e++) gates[4 * E + e] = e === 1 ? 0 : -0.5;
      }
      const opts = {
        k: K,
        groupSize: S,
        batchPriority: bpr,
        capacity: (s: number) => expertCapacity({ groupSize: s, numExperts: E, k: K, capacityFactor: cf }),
      };
      const want = planTopK(gates, N, E, opts);
      const wantPacked = packExpertRows(want);
      const got = planTopKPacked(gates, N, E, opts, blas.addon);
      expect(got.plan).toEqual(want);
      expect(got.packed).toEqual(wantPacked);
      if (cf < 1 && N > 0) expect(want.processed).toBeLessThan(want.requested); // the case drops assignments
    },
  );

  it('checks its arguments: types, lengths, and group sizes that must add up to N', () => {
    const addon = blas.addon!;
    const i32 = (n: number) => new Int32Array(n);
    const call = (over: Partial<Record<number, unknown>>) => {
      // N = 4 tokens, E = 2, K = 1, one group of 4 with capacity 2: R = 2
      const args: unknown[] = [
        new Float32Array(8),
        4,
        2,
        1,
        Int32Array.of(4),
        Int32Array.of(2),
        false,
        i32(4),
        i32(4),
        new Uint8Array(4),
        i32(4),
        i32(4),
        i32(4),
        i32(4),
        i32(2),
      ];
      for (const [k, v] of Object.entries(over)) args[Number(k)] = v;
      return () => (addon.planTopK as unknown as (...a: unknown[]) => number)(...args);
    };
    expect(call({})()).toBe(2); // equal gates: all four tokens pick expert 0, which keeps two
    expect(call({ 0: new Float64Array(8) })).toThrow(TypeError);
    expect(call({ 9: new Int32Array(4) })).toThrow(TypeError);
    expect(call({ 4: Int32Array.of(3) })).toThrow(/add up to N/);
    expect(call({ 10: i32(3) })).toThrow(RangeError);
    expect(call({ 3: 3 })).toThrow(RangeError); // K > E
    expect(call({ 5: Int32Array.of(-1) })).toThrow(RangeError);
  });
});
