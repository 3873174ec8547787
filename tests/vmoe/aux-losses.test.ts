import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng.js';
import {
  erf,
  erfc,
  gshardLoss,
  importanceLoss,
  loadLoss,
  normalCdf,
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
    expect(importanceLoss([[0.9, 0.1], [0.7, 0.3]])).toBeCloseTo(0.36, 14);
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
    const logits = [[1, 0], [1, 0]];
    const l0 = 0.5, l1 = 0.15865525393145707; // Φ(0), Φ(−1) = 1 − Φ(1)
    const expected = ((l0 - l1) / (l0 + l1)) ** 2; // (std/mean)² of two values
    expect(loadLoss(logits, logits, 1, 1)).toBeCloseTo(expected, 12);
  });

  it('hand case, K=2 of E=2: thr = smaller noisy logit, Load = [Φ(1), Φ(0)]', () => {
    const logits = [[1, 0]];
    const l0 = 0.8413447460685429, l1 = 0.5;
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
      const logits = Array.from({ length: S }, () => Array.from(rng.permutation(E), (i) => 0.1 * i + rng.uniform() * 0.01));
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
    expect(() => loadLoss([[1, 0]], [[1, 0], [0, 1]], 1, 1)).toThrow(/noisyLogits shape \(2, 2\) must match/);
    expect(() => loadLoss([[1, 0]], [[1, 0]], 3, 1)).toThrow(/k must be an integer in \[1, 2\]/);
    expect(() => loadLoss([[1, 0]], [[1, 0]], 1, 0)).toThrow(/sigma must be/);
  });
});

describe('gshardLoss', () => {
  it('is 1 for perfectly balanced uniform gates', () => {
    const E = 4;
    expect(gshardLoss(Array.from({ length: 6 }, () => new Array(E).fill(1 / E)))).toBeCloseTo(1, 14);
    expect(gshardLoss([[1, 0], [0, 1]])).toBeCloseTo(1, 15); // f = P = [½, ½] → 4·¼ = 1
  });
  it('hand case', () => {
    // argmax both tokens = 0 → f = [1, 0]; P = [0.8, 0.2]; E²·mean(f·P) = 4 · 0.4 = 1.6
    expect(gshardLoss([[0.9, 0.1], [0.7, 0.3]])).toBeCloseTo(1.6, 14);
  });
});

describe('zLoss', () => {
  it('hand case: rows [0,0] and [ln 3, 0] → mean(ln²2, ln²4) = 2.5·ln²2', () => {
    expect(zLoss([[0, 0], [Math.log(3), 0]])).toBeCloseTo(2.5 * Math.LN2 ** 2, 14);
  });
  it('is stable for large logits', () => {
    expect(relErr(zLoss([[1000, 1000]]), (1000 + Math.LN2) ** 2)).toBeLessThan(1e-14);
  });
});

describe('routerStats', () => {
  it('golden vanilla routing: kept (t0,e0),(t0,e2),(t1,e0),(t2,e2)', () => {
    const gates = [[0.4, 0, 0.2], [0.5, 0.1, 0.4], [0.3, 0.2, 0.6]];
    const st = routerStats(topExpertsPerItem(gates, { k: 2, capacity: 2 }), 3);
    expect(st.keptPerExpert).toEqual([2, 0, 2]);
    expect(st.load).toEqual([0.5, 0, 0.5]);
    expect(st.dropFraction).toBeCloseTo(2 / 6, 15);
    expect(st.fullyDroppedTokenFraction).toBe(0);
  });
  it('counts tokens whose every choice was dropped', () => {
    const gates = [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]];
    const st = routerStats(topExpertsPerItem(gates, { k: 1, capacity: 1 }), 2);
    expect(st.keptPerExpert).toEqual([1, 0]);
    expect(st.load).toEqual([1, 0]);
    expect(st.dropFraction).toBeCloseTo(2 / 3, 15);
    expect(st.fullyDroppedTokenFraction).toBeCloseTo(2 / 3, 15);
  });
});
