import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng.js';
import {
  erf,
  erfc,
  erfcFast,
  gshardLoss,
  importanceLoss,
  loadLoss,
  normalCdf,
  routerAuxLosses,
  routerStats,
  squaredCoefficientOfVariation,
  zLoss,
} from '../../src/vmoe/aux-losses.js';
import { topExpertsPerItem } from '../../src/vmoe/routing.js';

const relErr = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

describe('erf / erfc / normalCdf', () => {
  // Reference values (published tables, e.g. A&S Table 7.1, to the digits shown).
  const erfTable: [number, number][] = [
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
  ];
  it.each(erfTable)('erf(%f) = %f', (x, v) => {
    expect(relErr(erf(x), v)).toBeLessThan(1e-14);
    expect(erf(-x)).toBe(-erf(x));
  });

  it('the values from the brief to 10 digits; erf(0) = 0', () => {
    expect(erf(0)).toBe(0);
    expect(erf(0.5)).toBeCloseTo(0.5204998778, 10);
    expect(erf(1)).toBeCloseTo(0.8427007929, 10);
    expect(erf(2)).toBeCloseTo(0.995322265, 10);
    expect(Number.isNaN(erf(NaN))).toBe(true);
    expect(erf(Infinity)).toBe(1);
    expect(erf(-Infinity)).toBe(-1);
  });

  const erfcTable: [number, number][] = [
    [1, 0.15729920705028513],
    [3, 2.209049699858544e-5],
    [5, 1.5374597944280349e-12],
    [10, 2.088487583762545e-45],
  ];
  it.each(erfcTable)('erfc(%f) = %f with full relative accuracy in the tail', (x, v) => {
    expect(relErr(erfc(x), v)).toBeLessThan(1e-13);
    expect(erfc(-x)).toBeCloseTo(2 - v, 15);
  });

  it('odd symmetry, erf + erfc = 1, and d/dx erf = (2/√π)·e^{-x²} (central differences)', () => {
    for (let x = -6; x <= 6; x += 0.37) {
      expect(erf(-x)).toBe(-erf(x));
      expect(Math.abs(erf(x) + erfc(x) - 1)).toBeLessThan(2e-16 * 4);
      const h = 1e-5;
      const fd = (erf(x + h) - erf(x - h)) / (2 * h);
      expect(Math.abs(fd - (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x))).toBeLessThan(1e-9);
    }
    // no jump at the internal switch points (1.5 for erfc, 2.5 for erf): the change across
    // ±h matches 2h·erf'(x) to rounding
    const h = 1e-9;
    for (const x of [1.5, 2.5]) {
      const slope = (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x);
      expect(Math.abs(erf(x + h) - erf(x - h) - 2 * h * slope)).toBeLessThan(5e-16);
      expect(Math.abs(erfc(x + h) - erfc(x - h) + 2 * h * slope)).toBeLessThan(1e-14 * erfc(x));
    }
  });

  it('normalCdf', () => {
    expect(normalCdf(0)).toBe(0.5);
    expect(relErr(normalCdf(1), 0.8413447460685429)).toBeLessThan(1e-14);
    expect(relErr(normalCdf(-1), 0.15865525393145707)).toBeLessThan(1e-14);
    expect(relErr(normalCdf(1.96), 0.9750021048517795)).toBeLessThan(1e-14);
    expect(relErr(normalCdf(-10), 7.619853024160527e-24)).toBeLessThan(1e-12);
  });
});

describe('squaredCoefficientOfVariation', () => {
  it('population std over mean, squared', () => {
    // [1, 3]: mean 2, population std 1 → 1/4
    expect(squaredCoefficientOfVariation([1, 3])).toBeCloseTo(0.25, 15);
    expect(squaredCoefficientOfVariation([5, 5, 5])).toBe(0);
    expect(() => squaredCoefficientOfVariation([0, 0], 'load')).toThrow(/load has mean 0/);
    expect(() => squaredCoefficientOfVariation([])).toThrow(/empty/);
  });
});

describe('importanceLoss', () => {
  it('is 0 for uniform gates', () => {
    const E = 8;
    expect(importanceLoss(Array.from({ length: 5 }, () => new Array(E).fill(1 / E)))).toBeCloseTo(0, 15);
  });
  it('hand 2×2 case', () => {
    // Imp = [0.9+0.7, 0.1+0.3] = [1.6, 0.4]; mean 1.0; population std 0.6 → 0.36
    expect(
      importanceLoss([
        [0.9, 0.1],
        [0.7, 0.3],
      ]),
    ).toBeCloseTo(0.36, 14);
  });
  it('hand case, all mass on one of E experts: Imp = [S,0,…,0] → CV² = E − 1', () => {
    const E = 4;
    const gates = Array.from({ length: 3 }, () => [1, 0, 0, 0]);
    expect(importanceLoss(gates)).toBeCloseTo(E - 1, 12);
  });
  it('rejects ragged input', () => {
    expect(() => importanceLoss([[0.5, 0.5], [1]])).toThrow(/gatesClean is ragged/);
  });
});

describe('loadLoss', () => {
  it('hand case, K=1, σ=1: Load = [Φ(0), Φ(−1)]', () => {
    const logits = [
      [1, 0],
      [1, 0],
    ];
    const l0 = 0.5,
      l1 = 0.15865525393145707; // Φ(0), Φ(−1) = 1 − Φ(1)
    const expected = ((l0 - l1) / (l0 + l1)) ** 2; // (std/mean)² of two values
    expect(loadLoss(logits, logits, 1, 1)).toBeCloseTo(expected, 12);
  });

  it('hand case, K=2 of E=2: thr = smaller noisy logit, Load = [Φ(1), Φ(0)]', () => {
    const logits = [[1, 0]];
    const l0 = 0.8413447460685429,
      l1 = 0.5;
    expect(loadLoss(logits, logits, 2, 1)).toBeCloseTo(((l0 - l1) / (l0 + l1)) ** 2, 12);
  });

  it('uses the noisy threshold against the clean logits', () => {
    // thr = noisy top-1 = 2 (expert 1); p0 = Φ((1−2)/1), p1 = Φ((0−2)/1) per the clean logits.
    const clean = [[1, 0]];
    const noisy = [[1, 2]];
    const p0 = 0.15865525393145707; // Φ(−1)
    const p1 = 0.022750131948179195; // Φ(−2)
    expect(loadLoss(clean, noisy, 1, 1)).toBeCloseTo(((p0 - p1) / (p0 + p1)) ** 2, 12);
  });

  it('σ → 0 approaches the CV² of the hard top-K counts', () => {
    const rng = new Rng(4);
    for (let trial = 0; trial < 10; trial++) {
      const S = 6 + rng.int(20);
      const E = 2 + rng.int(6);
      const K = 1 + rng.int(E - 1);
      // distinct logits with gaps ≥ 0.1 per row (a shuffled grid), so top-K is unambiguous
      const logits = Array.from({ length: S }, () =>
        Array.from(rng.permutation(E), (i) => 0.1 * i + rng.uniform() * 0.01),
      );
      // shifting every noisy logit down by δ < gap puts thr strictly between the K-th and (K+1)-th clean logit
      const noisy = logits.map((row) => row.map((v) => v - 0.03));
      const counts = new Array(E).fill(0);
      for (const row of logits) {
        const ranked = row.map((v, e) => [v, e] as const).sort((a, b) => b[0] - a[0]);
        for (let j = 0; j < K; j++) counts[ranked[j]![1]]++;
      }
      const mean = counts.reduce((a, b) => a + b, 0) / E;
      const hard = counts.reduce((a, c) => a + (c - mean) ** 2, 0) / E / mean ** 2;
      expect(loadLoss(logits, noisy, K, 1e-3)).toBeCloseTo(hard, 10);
      // and a larger σ is visibly different unless the hard loads are balanced
      if (hard > 0.05) expect(Math.abs(loadLoss(logits, noisy, K, 1) - hard)).toBeGreaterThan(1e-3);
    }
  });

  it('rejects bad input', () => {
    expect(() =>
      loadLoss(
        [[1, 0]],
        [
          [1, 0],
          [0, 1],
        ],
        1,
        1,
      ),
    ).toThrow(/noisyLogits shape \(2, 2\) must match/);
    expect(() => loadLoss([[1, 0]], [[1, 0]], 3, 1)).toThrow(/k must be an integer in \[1, 2\]/);
    expect(() => loadLoss([[1, 0]], [[1, 0]], 1, 0)).toThrow(/sigma must be/);
  });
});

describe('gshardLoss', () => {
  it('is 1 for perfectly balanced uniform gates', () => {
    const E = 4;
    expect(gshardLoss(Array.from({ length: 6 }, () => new Array(E).fill(1 / E)))).toBeCloseTo(1, 14);
    expect(
      gshardLoss([
        [1, 0],
        [0, 1],
      ]),
    ).toBeCloseTo(1, 15); // f = P = [½, ½] → 4·¼ = 1
  });
  it('hand case', () => {
    // argmax both tokens = 0 → f = [1, 0]; P = [0.8, 0.2]; E²·mean(f·P) = 4 · 0.4 = 1.6
    expect(
      gshardLoss([
        [0.9, 0.1],
        [0.7, 0.3],
      ]),
    ).toBeCloseTo(1.6, 14);
  });
});

describe('zLoss', () => {
  it('hand case: rows [0,0] and [ln 3, 0] → mean(ln²2, ln²4) = 2.5·ln²2', () => {
    expect(
      zLoss([
        [0, 0],
        [Math.log(3), 0],
      ]),
    ).toBeCloseTo(2.5 * Math.LN2 ** 2, 14);
  });
  it('is stable for large logits', () => {
    expect(relErr(zLoss([[1000, 1000]]), (1000 + Math.LN2) ** 2)).toBeLessThan(1e-14);
  });
});

describe('routerStats', () => {
  it('golden vanilla routing: kept (t0,e0),(t0,e2),(t1,e0),(t2,e2)', () => {
    const gates = [
      [0.4, 0, 0.2],
      [0.5, 0.1, 0.4],
      [0.3, 0.2, 0.6],
    ];
    const st = routerStats(topExpertsPerItem(gates, { k: 2, capacity: 2 }), 3);
    expect(st.keptPerExpert).toEqual([2, 0, 2]);
    expect(st.load).toEqual([0.5, 0, 0.5]);
    expect(st.dropFraction).toBeCloseTo(2 / 6, 15);
    expect(st.fullyDroppedTokenFraction).toBe(0);
  });
  it('counts tokens whose every choice was dropped', () => {
    const gates = [
      [0.9, 0.1],
      [0.8, 0.2],
      [0.7, 0.3],
    ];
    const st = routerStats(topExpertsPerItem(gates, { k: 1, capacity: 1 }), 2);
    expect(st.keptPerExpert).toEqual([1, 0]);
    expect(st.load).toEqual([1, 0]);
    expect(st.dropFraction).toBeCloseTo(2 / 3, 15);
    expect(st.fullyDroppedTokenFraction).toBeCloseTo(2 / 3, 15);
  });
});

describe('erfcFast', () => {
  it('is within 1.2e-7 relative of the accurate erfc over [-6, 9]', () => {
    let worst = 0;
    for (let x = -6; x <= 9; x += 0.01) worst = Math.max(worst, relErr(erfcFast(x), erfc(x)));
    expect(worst).toBeLessThan(1.2e-7);
  });
});

describe('routerAuxLosses (whole batch, with gradient)', () => {
  /**
   * The reference: per (group, member), the plain per-group definitions on that member's
   * rows and experts, averaged; the noisy logits move with the logits (fixed noise).
   */
  function reference(
    logits: Float64Array,
    noise: Float64Array,
    N: number,
    E: number,
    sizes: number[],
    M: number,
    K: number,
    sigma: number,
    w: { importance: number; load: number },
  ) {
    const Em = E / M;
    let imp = 0,
      load = 0,
      parts = 0,
      start = 0;
    for (const S of sizes) {
      for (let m = 0; m < M; m++) {
        const L: number[][] = [],
          NL: number[][] = [];
        for (let t = start + m; t < start + S; t += M) {
          L.push(Array.from({ length: Em }, (_, e) => logits[t * E + m * Em + e]!));
          NL.push(
            Array.from({ length: Em }, (_, e) => logits[t * E + m * Em + e]! + sigma * noise[t * E + m * Em + e]!),
          );
        }
        // softmax over the member's experts (the masked ones carry e^-1e9 = 0)
        const G = L.map((row) => {
          const mx = Math.max(...row);
          const ex = row.map((v) => Math.exp(v - mx));
          const z = ex.reduce((a, b) => a + b, 0);
          return ex.map((v) => v / z);
        });
        imp += importanceLoss(G);
        load += loadLoss(L, NL, K, sigma);
        parts++;
      }
      start += S;
    }
    return { importance: imp / parts, load: load / parts, weighted: (w.importance * imp + w.load * load) / parts };
  }

  it.each([
    { name: 'even groups', N: 24, E: 4, sizes: [12, 12], M: 1, K: 2 },
    { name: 'an uneven last group', N: 20, E: 4, sizes: [8, 8, 4], M: 1, K: 1 },
    { name: 'E³, 2 members', N: 24, E: 6, sizes: [12, 12], M: 2, K: 2 },
  ])(
    'values and ∂/∂logits equal the per-group definitions and their central differences: $name',
    ({ N, E, sizes, M, K }) => {
      const rng = new Rng(21);
      const sigma = 1 / (E / M),
        w = { importance: 0.7, load: 1.3 };
      const Em = E / M;
      const logits = Float64Array.from({ length: N * E }, () => rng.normal());
      const noise = Float64Array.from({ length: N * E }, () => rng.normal());
      // E³: each row sees only its member's experts (the partition mask)
      for (let t = 0; t < N; t++)
        for (let e = 0; e < E; e++) if (Math.floor(e / Em) !== t % M) logits[t * E + e] = -1e9;
      const inputs = (lg: Float64Array) => {
        const gates = new Float64Array(N * E),
          noisy = new Float64Array(N * E),
          kth = new Int32Array(N);
        for (let t = 0; t < N; t++) {
          const row = Array.from(lg.subarray(t * E, (t + 1) * E));
          const mx = Math.max(...row);
          const ex = row.map((v) => Math.exp(v - mx));
          const z = ex.reduce((a, b) => a + b, 0);
          for (let e = 0; e < E; e++) {
            gates[t * E + e] = ex[e]! / z;
            noisy[t * E + e] = lg[t * E + e]! + sigma * noise[t * E + e]!;
          }
          const order = Array.from({ length: E }, (_, e) => e).sort(
            (a, b) => noisy[t * E + b]! - noisy[t * E + a]! || a - b,
          );
          kth[t] = order[K - 1]!;
        }
        return {
          numTokens: N,
          numExperts: E,
          logits: lg,
          gates,
          noisy,
          kthExpert: kth,
          sigma,
          groupSizes: sizes,
          members: M,
          weights: w,
        };
      };
      const got = routerAuxLosses(inputs(logits));
      const ref = reference(logits, noise, N, E, sizes, M, K, sigma, w);
      expect(relErr(got.importance, ref.importance)).toBeLessThan(1e-12);
      expect(relErr(got.load, ref.load)).toBeLessThan(1e-6); // erfcFast: ~1e-7 relative
      expect(relErr(got.weighted, ref.weighted)).toBeLessThan(1e-6);
      const h = 1e-5;
      let worst = 0,
        scale = 0;
      for (let i = 0; i < N * E; i++) {
        if (logits[i]! < -1e8) {
          expect(got.dLogits[i]).toBe(0);
          continue;
        }
        const up = Float64Array.from(logits),
          dn = Float64Array.from(logits);
        up[i]! += h;
        dn[i]! -= h;
        const fd =
          (reference(up, noise, N, E, sizes, M, K, sigma, w).weighted -
            reference(dn, noise, N, E, sizes, M, K, sigma, w).weighted) /
          (2 * h);
        worst = Math.max(worst, Math.abs(got.dLogits[i]! - fd));
        scale = Math.max(scale, Math.abs(fd));
      }
      expect(scale).toBeGreaterThan(1e-3);
      expect(worst / scale).toBeLessThan(1e-4);
    },
  );

  it('without noise gives the importance loss alone (load NaN) and its gradient only', () => {
    const N = 8,
      E = 4;
    const rng = new Rng(5);
    const gates = new Float64Array(N * E);
    for (let t = 0; t < N; t++) {
      let z = 0;
      for (let e = 0; e < E; e++) {
        gates[t * E + e] = Math.exp(rng.normal());
        z += gates[t * E + e]!;
      }
      for (let e = 0; e < E; e++) gates[t * E + e]! /= z;
    }
    const r = routerAuxLosses({
      numTokens: N,
      numExperts: E,
      logits: new Float64Array(N * E),
      gates,
      noisy: null,
      kthExpert: null,
      sigma: 0,
      groupSizes: [N],
      members: 1,
      weights: { importance: 2, load: 5 },
    });
    const rows = Array.from({ length: N }, (_, t) => Array.from(gates.subarray(t * E, (t + 1) * E)));
    expect(r.importance).toBeCloseTo(importanceLoss(rows), 12);
    expect(r.load).toBeNaN();
    expect(r.weighted).toBeCloseTo(2 * importanceLoss(rows), 12);
    // the softmax gradient of any loss sums to zero over each token's experts
    for (let t = 0; t < N; t++)
      expect(Math.abs(r.dLogits.subarray(t * E, (t + 1) * E).reduce((a, b) => a + b, 0))).toBeLessThan(1e-7);
  });
});
