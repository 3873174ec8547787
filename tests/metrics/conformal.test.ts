import { describe, expect, it } from 'vitest';
import {
  calibrateConformal,
  classConditionalQuantiles,
  conformalCurve,
  conformalPredict,
  conformalQuantile,
  conformalReport,
  conformalStreams,
  tuneRaps,
} from '../../src/metrics/conformal.js';
import {
  type ConformalMethod,
  classRanks,
  conformalRank,
  conformalScoreMatrix,
  conformalScores,
  minCalibrationSize,
  predictionSets,
  setsToLists,
  uniformDraws,
} from '../../src/metrics/conformal-scores.js';
import * as metrics from '../../src/metrics/index.js';
import { softmax } from '../../src/metrics/softmax.js';
import type { Probs } from '../../src/metrics/types.js';
import { DataError, UsageError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { randomLogits, sampleClass } from './helpers.js';

/** (N, K) probabilities from rows. */
const P = (rows: number[][]): Probs => ({ data: Float64Array.from(rows.flat()), n: rows.length, k: rows[0]!.length });
const L = (labels: number[]) => Int32Array.from(labels);

// One row, dyadic so every sum below is exact. Ranking (descending p, ties → lower index first):
// class 1 (0.5), class 2 (0.1875), class 3 (0.1875, tie with 2, higher index → below), class 0 (0.125).
const ROW = [0.125, 0.5, 0.1875, 0.1875];

describe('conformal rank k = ⌈(n+1)(1−α)⌉', () => {
  it.each([
    // [n, α, k by hand]
    [9, 0.1, 9], // 10·0.9 = 9
    [9, 0.7, 3], // 10·0.3 = 3 (floating point: 10·(1 − 0.7) = 3.0000000000000004 → naive ceil 4)
    [99, 0.41, 59], // 100·0.59 = 59 (naive 100·(1 − 0.41) → 60)
    [149, 0.18, 123], // 150·0.82 = 123 (naive → 124)
    [19, 0.05, 19], // 20·0.95 = 19
    [104, 0.1, 95], // ⌈105·0.9⌉ = ⌈94.5⌉ = 95
    [4, 0.1, 5], // ⌈5·0.9⌉ = ⌈4.5⌉ = 5 > n
    [8, 0.1, 9], // 9·0.9 = 8.1 → 9 > n
    [999, 0.001, 999], // 1000·0.999 = 999
    [0, 0.5, 1], // ⌈1·0.5⌉ = 1 > 0
  ])('n = %d, α = %d → k = %d', (n, alpha, k) => {
    expect(conformalRank(n, alpha)).toBe(k);
  });

  it('equals integer arithmetic for every α = j/100 and n < 200', () => {
    // (n+1)(1 − j/100) = ((n+1)(100 − j))/100 exactly; ceil of a/100 for integers = ⌊(a + 99)/100⌋.
    for (let j = 1; j < 100; j++) {
      for (let n = 0; n < 200; n++) {
        const a = (n + 1) * (100 - j);
        expect(conformalRank(n, j / 100)).toBe(Math.floor((a + 99) / 100));
      }
    }
  });

  it('minCalibrationSize = ⌈1/α⌉ − 1 is the first n with k ≤ n', () => {
    expect(minCalibrationSize(0.1)).toBe(9); // 10 − 1
    expect(minCalibrationSize(0.05)).toBe(19); // 20 − 1
    expect(minCalibrationSize(0.3)).toBe(3); // ⌈3.33⌉ − 1
    expect(minCalibrationSize(0.07)).toBe(14); // ⌈14.29⌉ − 1
    for (const alpha of [0.5, 0.3, 0.2, 0.1, 0.07, 0.05, 0.01, 0.003]) {
      const m = minCalibrationSize(alpha);
      expect(conformalRank(m, alpha)).toBeLessThanOrEqual(m);
      expect(conformalRank(m - 1, alpha)).toBeGreaterThan(m - 1);
    }
  });
});

describe('conformalQuantile', () => {
  const scores = [0.3, 0.1, 0.4, 0.2, 0.5]; // sorted 0.1 0.2 0.3 0.4 0.5, n = 5
  it('k-th smallest', () => {
    expect(conformalQuantile(scores, 0.2)).toBe(0.5); // ⌈6·0.8⌉ = ⌈4.8⌉ = 5
    expect(conformalQuantile(scores, 0.4)).toBe(0.4); // ⌈6·0.6⌉ = ⌈3.6⌉ = 4
    expect(conformalQuantile(scores, 0.5)).toBe(0.3); // 6·0.5 = 3
  });
  it('k > n → +Infinity', () => {
    expect(conformalQuantile(scores, 0.1)).toBe(Infinity); // ⌈6·0.9⌉ = ⌈5.4⌉ = 6 > 5
    expect(conformalQuantile([], 0.5)).toBe(Infinity);
  });
  it('n = 9, α = 0.1 uses the 9th smallest, not +Infinity', () => {
    expect(conformalQuantile([9, 8, 7, 6, 5, 4, 3, 2, 1], 0.1)).toBe(9);
  });
  it('rejects NaN scores', () => {
    expect(() => conformalQuantile([0.1, NaN], 0.5)).toThrow(DataError);
  });
});

describe('scores', () => {
  it('LAC: 1 − p_y', () => {
    const s = conformalScoreMatrix(P([ROW]), { method: 'lac' });
    expect(Array.from(s.data)).toEqual([0.875, 0.5, 0.8125, 0.8125]);
    expect(Array.from(conformalScores(P([ROW, ROW]), L([1, 3]), { method: 'lac' }))).toEqual([0.5, 0.8125]);
  });

  it('APS non-randomised: mass ranked above y plus p_y', () => {
    // class 1: 0.5; class 2: 0.5 + 0.1875 = 0.6875; class 3: 0.6875 + 0.1875 = 0.875; class 0: 0.875 + 0.125 = 1
    const s = conformalScoreMatrix(P([ROW]), { method: 'aps' });
    expect(Array.from(s.data)).toEqual([1, 0.5, 0.6875, 0.875]);
  });

  it('APS randomised: mass above y plus u·p_y, one u per row', () => {
    // u = 0.5: class 1: 0.25; class 2: 0.5 + 0.09375 = 0.59375; class 3: 0.6875 + 0.09375 = 0.78125;
    // class 0: 0.875 + 0.0625 = 0.9375.   u = 0: the mass strictly above: 0, 0.5, 0.6875, 0.875.
    const s = conformalScoreMatrix(P([ROW, ROW]), { method: 'aps', u: [0.5, 0] });
    expect(Array.from(s.data)).toEqual([0.9375, 0.25, 0.59375, 0.78125, 0.875, 0, 0.5, 0.6875]);
  });

  it('RAPS: APS + λ·max(0, rank − k_reg)', () => {
    // ranks: class 1 → 1, class 2 → 2, class 3 → 3, class 0 → 4.
    // λ = 0.25, k_reg = 1: penalties 0, 0.25, 0.5, 0.75 → 0.5, 0.9375, 1.375, 1.75 (classes 1, 2, 3, 0)
    let s = conformalScoreMatrix(P([ROW]), { method: 'raps', lambda: 0.25, kReg: 1 });
    expect(Array.from(s.data)).toEqual([1.75, 0.5, 0.9375, 1.375]);
    // k_reg = 2: penalties 0, 0, 0.25, 0.5 → class 3: 1.125, class 0: 1.5
    s = conformalScoreMatrix(P([ROW]), { method: 'raps', lambda: 0.25, kReg: 2 });
    expect(Array.from(s.data)).toEqual([1.5, 0.5, 0.6875, 1.125]);
    // randomised u = 0.5 with λ = 0.25, k_reg = 1: 0.25, 0.59375 + 0.25, 0.78125 + 0.5, 0.9375 + 0.75
    s = conformalScoreMatrix(P([ROW]), { method: 'raps', lambda: 0.25, kReg: 1, u: [0.5] });
    expect(Array.from(s.data)).toEqual([1.6875, 0.25, 0.84375, 1.28125]);
  });

  it('ties: equal probabilities → the lower index ranks first', () => {
    expect(Array.from(classRanks(P([[0.25, 0.25, 0.5]])))).toEqual([2, 3, 1]);
    expect(Array.from(classRanks(P([[0.25, 0.25, 0.25, 0.25]])))).toEqual([1, 2, 3, 4]);
    // APS on the uniform row: 0.25, 0.5, 0.75, 1 in index order
    expect(Array.from(conformalScoreMatrix(P([[0.25, 0.25, 0.25, 0.25]]), { method: 'aps' }).data)).toEqual([
      0.25, 0.5, 0.75, 1,
    ]);
    // [0.25, 0.25, 0.5]: class 2 → 0.5, class 0 → 0.75, class 1 → 1
    expect(Array.from(conformalScoreMatrix(P([[0.25, 0.25, 0.5]]), { method: 'aps' }).data)).toEqual([0.75, 1, 0.5]);
  });
});

describe('prediction sets', () => {
  it('LAC: {y : 1 − p_y ≤ q̂}', () => {
    // q̂ = 0.8125 → p_y ≥ 0.1875 → classes 1, 2, 3
    expect(setsToLists(predictionSets(conformalScoreMatrix(P([ROW]), { method: 'lac' }), 0.8125), 4)).toEqual([
      [1, 2, 3],
    ]);
    expect(setsToLists(predictionSets(conformalScoreMatrix(P([ROW]), { method: 'lac' }), 0.4), 4)).toEqual([[]]);
    expect(setsToLists(predictionSets(conformalScoreMatrix(P([ROW]), { method: 'lac' }), Infinity), 4)).toEqual([
      [0, 1, 2, 3],
    ]);
  });

  it('APS: non-randomised and randomised with the row’s u shared by its labels', () => {
    // q̂ = 0.6: u = 1 → scores 1, 0.5, 0.6875, 0.875 → {1}; u = 0.5 → 0.9375, 0.25, 0.59375, 0.78125 → {1, 2};
    // u = 0 → 0.875, 0, 0.5, 0.6875 → {1, 2}
    const det = conformalScoreMatrix(P([ROW]), { method: 'aps' });
    expect(setsToLists(predictionSets(det, 0.6), 4)).toEqual([[1]]);
    const rnd = conformalScoreMatrix(P([ROW, ROW]), { method: 'aps', u: [0.5, 0] });
    expect(setsToLists(predictionSets(rnd, 0.6), 4)).toEqual([
      [1, 2],
      [1, 2],
    ]);
    // q̂ = 0.4 below the top class's 0.5 → the non-randomised set is empty; u = 0.5 keeps class 1 (0.25),
    // u = 0 keeps class 1 (0) but not class 2 (0.5)
    expect(setsToLists(predictionSets(det, 0.4), 4)).toEqual([[]]);
    expect(setsToLists(predictionSets(rnd, 0.4), 4)).toEqual([[1], [1]]);
  });

  it('RAPS: penalised scores against q̂', () => {
    // λ = 0.25, k_reg = 1: 1.75, 0.5, 0.9375, 1.375 → q̂ = 1 → {1, 2}
    const s = conformalScoreMatrix(P([ROW]), { method: 'raps', lambda: 0.25, kReg: 1 });
    expect(setsToLists(predictionSets(s, 1), 4)).toEqual([[1, 2]]);
  });

  it('per-class thresholds (Mondrian rule)', () => {
    // LAC scores 0.875, 0.5, 0.8125, 0.8125 against q̂_y = 0.9, 0.4, 0.85, 0.8 → {0, 2}
    const s = conformalScoreMatrix(P([ROW]), { method: 'lac' });
    expect(setsToLists(predictionSets(s, [0.9, 0.4, 0.85, 0.8]), 4)).toEqual([[0, 2]]);
  });

  it('APS / RAPS sets are top-r prefixes of the ranking', () => {
    const rng = new Rng(3);
    const n = 200;
    const k = 7;
    const probs = { data: softmax(randomLogits(rng, n, k)), n, k };
    const ranks = classRanks(probs);
    const u = uniformDraws(n, rng);
    for (const params of [
      { method: 'aps' as const },
      { method: 'aps' as const, u },
      { method: 'raps' as const, lambda: 0.1, kReg: 2, u },
    ]) {
      const mask = predictionSets(conformalScoreMatrix(probs, params), 0.7);
      for (let i = 0; i < n; i++) {
        let size = 0;
        for (let y = 0; y < k; y++) size += mask[i * k + y]!;
        for (let y = 0; y < k; y++) expect(mask[i * k + y]).toBe(ranks[i * k + y]! <= size ? 1 : 0);
      }
    }
  });
});

describe('class-conditional (Mondrian) quantiles', () => {
  it('hand case', () => {
    // LAC scores 1 − p_y. Class 0: 0.25, 0.5, 0.125 → n = 3, α = 0.5, k = ⌈4·0.5⌉ = 2 → q̂_0 = 0.25.
    // Class 1: 0.375 → n = 1, k = ⌈2·0.5⌉ = 1 → q̂_1 = 0.375. Class 2: none → k = 1 > 0 → +Infinity.
    const calib = {
      probs: P([
        [0.75, 0.25, 0],
        [0.5, 0.5, 0],
        [0.875, 0.125, 0],
        [0.375, 0.625, 0],
      ]),
      labels: L([0, 0, 0, 1]),
    };
    const scores = conformalScores(calib.probs, calib.labels, { method: 'lac' });
    expect(Array.from(classConditionalQuantiles(scores, calib.labels, 3, 0.5))).toEqual([0.25, 0.375, Infinity]);
    const cal = calibrateConformal(calib, 0.5, { method: 'lac', classConditional: true });
    expect(Array.from(cal.qhat as Float64Array)).toEqual([0.25, 0.375, Infinity]);
    expect(Array.from(cal.rank as Int32Array)).toEqual([2, 1, 1]);
    expect(cal.warnings).toHaveLength(1);
    expect(cal.warnings[0]).toMatch(/1 of 3 classes \(2\)/);
    // test rows: [0.6875, 0.3125, 0]: class 0 score 0.3125 > 0.25, class 1 0.6875 > 0.375, class 2 always → {2}
    //            [0.25, 0.75, 0]:     class 1 score 0.25 ≤ 0.375 → {1, 2}
    //            [0.8125, 0.1875, 0]: class 0 score 0.1875 ≤ 0.25 → {0, 2}
    const test = P([
      [0.6875, 0.3125, 0],
      [0.25, 0.75, 0],
      [0.8125, 0.1875, 0],
    ]);
    expect(setsToLists(conformalPredict(cal, test), 3)).toEqual([[2], [1, 2], [0, 2]]);
    // marginal on the same data: scores 0.125, 0.25, 0.375, 0.5, n = 4, k = ⌈5·0.5⌉ = 3 → q̂ = 0.375;
    // class 2's score 1 is never ≤ 0.375 → {0}, {1}, {0}
    const marginal = calibrateConformal(calib, 0.5, { method: 'lac' });
    expect(marginal.qhat).toBe(0.375);
    expect(setsToLists(conformalPredict(marginal, test), 3)).toEqual([[0], [1], [0]]);
  });
});

describe('conformalReport', () => {
  // Calibration LAC scores: 1 − 0.5 = 0.5, 1 − 0.375 = 0.625, 1 − 0.25 = 0.75. α = 0.5, n = 3, k = 2 → q̂ = 0.625:
  // sets are {y : p_y ≥ 0.375}.
  const calib = {
    probs: P([
      [0.5, 0.25, 0.25],
      [0.375, 0.5, 0.125],
      [0.5, 0.25, 0.25],
    ]),
    labels: L([0, 0, 1]),
  };
  const test = {
    probs: P([
      [0.5, 0.375, 0.125], // label 1 → {0, 1}, covered
      [0.25, 0.25, 0.5], // label 0 → {2}, missed
      [0.75, 0.125, 0.125], // label 0 → {0}, covered
      [0.3125, 0.34375, 0.34375], // label 2 → {}, missed
      [0.375, 0.375, 0.25], // label 2 → {0, 1}, missed
    ]),
    labels: L([1, 0, 0, 2, 2]),
  };

  it('hand case (LAC)', () => {
    const r = conformalReport(calib, test, { method: 'lac', alpha: 0.5, returnSets: true });
    expect(r.method).toBe('lac');
    expect(r.alpha).toBe(0.5);
    expect(r.n_calib).toBe(3);
    expect(r.n_test).toBe(5);
    expect(r.quantile_rank).toBe(2);
    expect(r.qhat).toBe(0.625);
    expect(r.quantile_rule).toMatch(/ceil\(\(n\+1\)\(1-alpha\)\)-th smallest/);
    expect(r.prediction_sets).toEqual([[0, 1], [2], [0], [], [0, 1]]);
    expect(r.coverage).toBe(2 / 5);
    expect(r.mean_set_size).toBe(6 / 5); // sizes 2, 1, 1, 0, 2
    expect(r.median_set_size).toBe(1); // sorted 0 1 1 2 2
    expect(r.set_size_histogram).toEqual([1, 2, 2, 0]);
    expect(r.size_stratified_coverage).toEqual([0, 0.5, 0.5, null]); // size 1: rows 2 (miss), 3 (hit)
    expect(r.sscv).toBe(0.5); // max(|0 − 0.5|, |0.5 − 0.5|, |0.5 − 0.5|)
    expect(r.class_conditional_coverage).toEqual([0.5, 1, 0]); // class 0: miss, hit; class 1: hit; class 2: miss, miss
    expect(r.worst_class_coverage).toBe(0);
    expect(r.empty_fraction).toBe(0.2);
    expect(r.singleton_fraction).toBe(0.4);
    expect(r.singleton_accuracy).toBe(0.5);
    expect(r.raps).toBeNull();
    expect(r.seed).toBeNull();
    expect(r.warnings).toEqual([]);
  });

  it('median of an even count is the mean of the two middle sizes', () => {
    const four = {
      probs: P([
        [0.5, 0.375, 0.125],
        [0.25, 0.25, 0.5],
        [0.75, 0.125, 0.125],
        [0.375, 0.375, 0.25],
      ]),
      labels: L([1, 0, 0, 2]),
    };
    // sizes 2, 1, 1, 2 → sorted 1 1 2 2 → (1 + 2)/2
    expect(conformalReport(calib, four, { method: 'lac', alpha: 0.5 }).median_set_size).toBe(1.5);
  });

  it('an empty APS set', () => {
    // APS calibration scores: [0.25, 0.75] label 1 → 0.75; [0.625, 0.375] label 0 → 0.625;
    // [0.5, 0.5] label 1 → class 0 ranks first (tie) → 0.5 + 0.5 = 1. n = 3, α = 0.5, k = 2 → q̂ = 0.75.
    const c = {
      probs: P([
        [0.25, 0.75],
        [0.625, 0.375],
        [0.5, 0.5],
      ]),
      labels: L([1, 0, 1]),
    };
    // test [0.125, 0.875]: class 1 → 0.875 > 0.75, class 0 → 1 → {} (label 1 missed)
    //      [0.25, 0.75]:   class 1 → 0.75 ≤ 0.75 → {1} (covered)
    //      [0.5, 0.5]:     class 0 → 0.5 → {0}; class 1 → 1 (label 0 covered)
    const t = {
      probs: P([
        [0.125, 0.875],
        [0.25, 0.75],
        [0.5, 0.5],
      ]),
      labels: L([1, 1, 0]),
    };
    const r = conformalReport(c, t, { method: 'aps', alpha: 0.5, returnSets: true });
    expect(r.qhat).toBe(0.75);
    expect(r.prediction_sets).toEqual([[], [1], [0]]);
    expect(r.empty_fraction).toBe(1 / 3);
    expect(r.coverage).toBe(2 / 3);
    expect(r.set_size_histogram).toEqual([1, 2, 0]);
    expect(r.sscv).toBe(0.5); // size 0: |0 − 0.5|; size 1: |1 − 0.5|
  });

  it('k > n: q̂ = +Infinity, every label, and a warning', () => {
    // n = 3 < ⌈1/0.1⌉ − 1 = 9
    const r = conformalReport(calib, test, { method: 'aps', alpha: 0.1 });
    expect(r.qhat).toBe(Infinity);
    expect(r.quantile_rank).toBe(4); // ⌈4·0.9⌉ = ⌈3.6⌉ = 4 > 3
    expect(r.coverage).toBe(1);
    expect(r.mean_set_size).toBe(3);
    expect(r.set_size_histogram).toEqual([0, 0, 0, 5]);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(/n_calib = 3 .*ceil\(1\/alpha\) - 1 = 9/);
  });

  it('Mondrian report: per-class q̂ and counts', () => {
    // class 0: scores 0.5, 0.625 → n = 2, α = 0.5, k = ⌈1.5⌉ = 2 → 0.625; class 1: 0.75, k = 1 → 0.75;
    // class 2: none → +Infinity. Test row 2 ([0.25, 0.25, 0.5], label 0): class 0 score 0.75 > 0.625,
    // class 1 0.75 ≤ 0.75, class 2 always → {1, 2}.
    const r = conformalReport(calib, test, { method: 'lac', alpha: 0.5, classConditional: true, returnSets: true });
    expect(r.qhat).toEqual([0.625, 0.75, Infinity]);
    expect(r.quantile_rank).toEqual([2, 1, 1]);
    expect(r.n_calib_per_class).toEqual([2, 1, 0]);
    expect(r.class_conditional).toBe(true);
    expect(r.prediction_sets![1]).toEqual([1, 2]);
    expect(r.warnings).toHaveLength(1);
  });

  it('ensemble members (M, N, K) are averaged first', () => {
    // two members whose mean is the hand-case test set: ±1/16 moved between classes 0 and 1 (all stay ≥ 0)
    const mean = Array.from(test.probs.data);
    const shift = (sign: number) =>
      mean.map((v, e) => (e % 3 === 0 ? v + sign * 0.0625 : e % 3 === 1 ? v - sign * 0.0625 : v));
    const members = [...shift(1), ...shift(-1)];
    const ens = { probs: { data: Float64Array.from(members), n: 5, k: 3, m: 2 }, labels: test.labels };
    const r = conformalReport(calib, ens, { method: 'lac', alpha: 0.5, returnSets: true });
    expect(r.prediction_sets).toEqual([[0, 1], [2], [0], [], [0, 1]]);
  });

  it('curve over α: one report per α, q̂ and mean size not decreasing as α falls', () => {
    const { calib: c, test: t } = synthetic(new Rng(11), 300, 400, 5);
    const curve = conformalCurve(c, t, { method: 'lac', alphas: [0.3, 0.2, 0.1, 0.05] });
    expect(curve.map((r) => r.alpha)).toEqual([0.3, 0.2, 0.1, 0.05]);
    for (let j = 1; j < curve.length; j++) {
      expect(curve[j]!.qhat as number).toBeGreaterThanOrEqual(curve[j - 1]!.qhat as number);
      expect(curve[j]!.mean_set_size).toBeGreaterThanOrEqual(curve[j - 1]!.mean_set_size);
    }
    expect(curve[2]).toEqual(conformalReport(c, t, { method: 'lac', alpha: 0.1 }));
  });

  it('randomised APS reproduces with the seed and uses the calib stream for q̂', () => {
    const { calib: c, test: t } = synthetic(new Rng(5), 60, 50, 4);
    const r1 = conformalReport(c, t, { method: 'aps', alpha: 0.1, randomized: true, seed: 7 });
    const r2 = conformalReport(c, t, { method: 'aps', alpha: 0.1, randomized: true, seed: 7 });
    expect(r1).toEqual(r2);
    // reference: q̂ from a plain re-implementation with the documented calibration draws
    const u = uniformDraws(60, conformalStreams(7).calib);
    const scores = Array.from({ length: 60 }, (_, i) => {
      const row = Array.from(c.probs.data.slice(i * 4, i * 4 + 4));
      const y = c.labels[i]!;
      const above = row.reduce((s, p, j) => (p > row[y]! || (p === row[y]! && j < y) ? s + p : s), 0);
      return above + u[i]! * row[y]!;
    }).sort((x, y) => x - y);
    // k = ⌈61·0.9⌉ = ⌈54.9⌉ = 55
    expect(r1.qhat as number).toBeCloseTo(scores[54]!, 12);
  });
});

describe('RAPS tuning', () => {
  it('k_reg: the (1−α) "higher" quantile of the true-label ranks', () => {
    // every row ranks classes 0, 1, 2; labels 0, 0, 0, 1, 2 → ranks 1, 1, 1, 2, 3
    const tune = { probs: P(Array.from({ length: 5 }, () => [0.5, 0.3, 0.2])), labels: L([0, 0, 0, 1, 2]) };
    // α = 0.2: position (5 − 1)·0.8 = 3.2 → higher → index 4 → rank 3
    expect(tuneRaps(tune, 0.2, { lambda: 0.1 }).kReg).toBe(3);
    // α = 0.25: position 4·0.75 = 3 → index 3 → rank 2
    expect(tuneRaps(tune, 0.25, { lambda: 0.1 }).kReg).toBe(2);
    expect(tuneRaps(tune, 0.25, { lambda: 0.1 }).grid).toEqual([]);
  });

  it('λ: the grid value of least mean size at coverage ≥ 1 − α, each checked against a fixed-λ calibration', () => {
    const { calib: tune } = synthetic(new Rng(21), 300, 1, 10, 1);
    const alpha = 0.1;
    const grid = [0, 0.01, 0.1, 0.5, 1];
    const t = tuneRaps(tune, alpha, { lambdaGrid: grid });
    expect(t.grid.map((g) => g.lambda)).toEqual(grid);
    for (const g of t.grid) {
      // the same rows calibrate and are measured (the reference's size criterion)
      const r = conformalReport(tune, tune, { method: 'raps', alpha, lambda: g.lambda, kReg: t.kReg });
      expect(g.mean_set_size).toBe(r.mean_set_size);
      expect(g.coverage).toBe(r.coverage);
      expect(g.coverage).toBeGreaterThanOrEqual(1 - alpha);
    }
    const best = Math.min(...t.grid.map((g) => g.mean_set_size));
    expect(t.grid.find((g) => g.lambda === t.lambda)!.mean_set_size).toBe(best);
    expect(t.grid.findIndex((g) => g.mean_set_size === best)).toBe(grid.indexOf(t.lambda));
  });

  it('report: 30% of the rows tune, the rest calibrate', () => {
    const { calib: c, test: t } = synthetic(new Rng(8), 50, 40, 5);
    const r = conformalReport(c, t, { method: 'raps', alpha: 0.1, seed: 3 });
    expect(r.raps!.tuned).toBe(true);
    expect(r.raps!.n_tune).toBe(15); // ⌊50·0.3⌋
    expect(r.n_calib).toBe(35);
    expect(r.quantile_rank).toBe(33); // ⌈36·0.9⌉ = ⌈32.4⌉ = 33
    expect(r.raps!.lambda_grid).toEqual([0.001, 0.01, 0.1, 0.2, 0.5]);
    expect(r.raps!.lambda_grid).toContain(r.raps!.lambda);
    expect(r.seed).toBe(3);
    const fixed = conformalReport(c, t, { method: 'raps', alpha: 0.1, lambda: 0.2, kReg: 2 });
    expect(fixed.raps).toEqual({
      lambda: 0.2,
      k_reg: 2,
      tuned: false,
      n_tune: 0,
      tune_fraction: null,
      lambda_grid: null,
      grid: null,
    });
    expect(fixed.n_calib).toBe(50);
  });
});

/** Exchangeable synthetic data: softmax of Gaussian logits, labels drawn from those probabilities. */
function synthetic(rng: Rng, nCalib: number, nTest: number, k: number, scale = 2) {
  const draw = (n: number) => {
    const probs = { data: softmax(randomLogits(rng, n, k, undefined, scale)), n, k };
    const labels = Int32Array.from({ length: n }, (_, i) => sampleClass(rng, probs.data, i * k, k));
    return { probs, labels };
  };
  return { calib: draw(nCalib), test: draw(nTest) };
}

/** Rows `idx` of a labelled set. */
function take(set: { probs: { data: Float64Array; k: number }; labels: Int32Array }, idx: ArrayLike<number>) {
  const { k } = set.probs;
  const data = new Float64Array(idx.length * k);
  const labels = new Int32Array(idx.length);
  for (let j = 0; j < idx.length; j++) {
    data.set(set.probs.data.subarray(idx[j]! * k, (idx[j]! + 1) * k), j * k);
    labels[j] = set.labels[idx[j]!]!;
  }
  return { probs: { data, n: idx.length, k }, labels };
}

describe('coverage guarantee on exchangeable data (random calibration/test splits)', () => {
  // n = 104, α = 0.1: k = ⌈105·0.9⌉ = 95. With continuous scores (no ties), the coverage over random
  // splits has mean exactly k/(n+1) = 95/105 ∈ [1 − α, 1 − α + 1/(n+1)] = [0.9, 0.9095].
  const nCalib = 104;
  const nTest = 300;
  const alpha = 0.1;
  const trials = 500;
  const pool = synthetic(new Rng(2024), 2000, 1, 6).calib;

  const cases: { name: string; method: ConformalMethod; opts: object }[] = [
    { name: 'LAC', method: 'lac', opts: {} },
    { name: 'APS', method: 'aps', opts: {} },
    { name: 'randomised APS', method: 'aps', opts: { randomized: true } },
    { name: 'RAPS (λ = 0.05, k_reg = 2)', method: 'raps', opts: { lambda: 0.05, kReg: 2, randomized: true } },
  ];
  it.each(cases)('$name', ({ method, opts }) => {
    const rng = new Rng(99);
    const cov: number[] = [];
    for (let t = 0; t < trials; t++) {
      const perm = rng.permutation(pool.labels.length);
      const c = take(pool, perm.subarray(0, nCalib));
      const s = take(pool, perm.subarray(nCalib, nCalib + nTest));
      cov.push(conformalReport(c, s, { method, alpha, seed: t, ...opts }).coverage);
    }
    const m = cov.reduce((a, b) => a + b, 0) / trials;
    const se = Math.sqrt(cov.reduce((a, b) => a + (b - m) ** 2, 0) / (trials - 1) / trials);
    expect(se).toBeGreaterThan(0);
    expect(se).toBeLessThan(0.003);
    expect(m).toBeGreaterThanOrEqual(1 - alpha - 3 * se);
    expect(m).toBeLessThanOrEqual(1 - alpha + 1 / (nCalib + 1) + 3 * se);
    expect(Math.abs(m - 95 / 105)).toBeLessThanOrEqual(4 * se);
  });

  it('Mondrian: every class covered at ≥ 1 − α on average', () => {
    const k = 3;
    const data = synthetic(new Rng(77), 3000, 1, k, 1).calib;
    const rng = new Rng(5);
    const sums = new Float64Array(k);
    const sq = new Float64Array(k);
    const counts = new Float64Array(k);
    for (let t = 0; t < 200; t++) {
      const perm = rng.permutation(data.labels.length);
      const r = conformalReport(take(data, perm.subarray(0, 150)), take(data, perm.subarray(150, 450)), {
        method: 'lac',
        alpha,
        classConditional: true,
      });
      r.class_conditional_coverage.forEach((c, y) => {
        if (c === null) return;
        sums[y]! += c;
        sq[y]! += c * c;
        counts[y]!++;
      });
    }
    for (let y = 0; y < k; y++) {
      const m = sums[y]! / counts[y]!;
      const se = Math.sqrt((sq[y]! / counts[y]! - m * m) / counts[y]!);
      expect(m).toBeGreaterThanOrEqual(1 - alpha - 3 * se);
    }
  });
});

describe('bad input', () => {
  const calib = {
    probs: P([
      [0.5, 0.25, 0.25],
      [0.25, 0.5, 0.25],
    ]),
    labels: L([0, 1]),
  };
  const test = { probs: P([[0.5, 0.25, 0.25]]), labels: L([2]) };

  it.each([0, 1, -0.1, 1.5, NaN, Infinity])('α = %d → UsageError naming alpha', (alpha) => {
    expect(() => conformalReport(calib, test, { method: 'lac', alpha })).toThrow(UsageError);
    expect(() => conformalReport(calib, test, { method: 'lac', alpha })).toThrow(/alpha must be a number in \(0, 1\)/);
    expect(() => conformalRank(10, alpha)).toThrow(UsageError);
  });

  it('different class counts → DataError', () => {
    const t4 = { probs: P([[0.25, 0.25, 0.25, 0.25]]), labels: L([0]) };
    expect(() => conformalReport(calib, t4, { method: 'lac', alpha: 0.1 })).toThrow(DataError);
    expect(() => conformalReport(calib, t4, { method: 'lac', alpha: 0.1 })).toThrow(/K = 3 .*K = 4/);
  });

  it('labels out of range or not integers → DataError naming the row', () => {
    expect(() => conformalReport({ ...calib, labels: L([0, 3]) }, test, { method: 'lac', alpha: 0.5 })).toThrow(
      /calibration labels\[1\] = 3 is not a class index in \[0, 3\)/,
    );
    expect(() => conformalReport(calib, { ...test, labels: [1.5] }, { method: 'lac', alpha: 0.5 })).toThrow(DataError);
    expect(() => conformalReport(calib, { ...test, labels: [-1] }, { method: 'lac', alpha: 0.5 })).toThrow(
      /test labels\[0\] = -1/,
    );
    expect(() => conformalReport({ ...calib, labels: L([0]) }, test, { method: 'lac', alpha: 0.5 })).toThrow(DataError);
  });

  it('non-finite, negative or unnormalised probabilities → DataError naming the entry', () => {
    const bad = (row: number[]) => ({ probs: P([row]), labels: L([0]) });
    expect(() => conformalReport(calib, bad([0.5, NaN, 0.5]), { method: 'aps', alpha: 0.5 })).toThrow(
      /test probabilities: row 0, class 1 is NaN/,
    );
    expect(() => conformalReport(calib, bad([Infinity, 0, 0]), { method: 'aps', alpha: 0.5 })).toThrow(DataError);
    expect(() => conformalReport(calib, bad([2.1, -0.3, -0.8]), { method: 'aps', alpha: 0.5 })).toThrow(DataError); // logits
    expect(() => conformalReport(calib, bad([0.5, 0.5, 0.5]), { method: 'aps', alpha: 0.5 })).toThrow(
      /row 0 sums to 1.5/,
    );
    expect(() => classRanks(P([[0.5, NaN, 0.5]]))).toThrow(DataError);
  });

  it('option misuse → UsageError', () => {
    expect(() => conformalReport(calib, test, { method: 'lac', alpha: 0.5, randomized: true })).toThrow(UsageError);
    expect(() => conformalReport(calib, test, { method: 'thr' as ConformalMethod, alpha: 0.5 })).toThrow(
      /unknown conformal method 'thr'/,
    );
    expect(() => conformalReport(calib, test, { method: 'aps', alpha: 0.5, lambda: 0.1 })).toThrow(UsageError);
    expect(() => conformalReport(calib, test, { method: 'raps', alpha: 0.5, lambda: -1, kReg: 1 })).toThrow(UsageError);
    expect(() => conformalScoreMatrix(P([ROW]), { method: 'aps', u: [0.5, 0.5] })).toThrow(/u has length 2/);
    expect(() => conformalScoreMatrix(P([ROW]), { method: 'raps', lambda: 0.1 })).toThrow(/need both lambda and kReg/);
    expect(() => conformalScoreMatrix(P([ROW]), { method: 'raps', lambda: 0.1, kReg: 1.5 })).toThrow(
      /kReg must be an integer/,
    );
    expect(() => conformalScoreMatrix(P([ROW]), { method: 'lac', u: [0.5] })).toThrow(UsageError);
    expect(() => conformalCurve(calib, test, { method: 'lac', alphas: [] })).toThrow(UsageError);
  });

  it('RAPS tuning with too few rows → DataError', () => {
    // ⌊2·0.3⌋ = 0 rows to tune
    expect(() => conformalReport(calib, test, { method: 'raps', alpha: 0.5 })).toThrow(
      /raps: 2 calibration rows leave 0 to tune/,
    );
  });
});

describe('exports', () => {
  it('the metrics index re-exports the conformal functions', () => {
    expect(metrics.conformalReport).toBe(conformalReport);
    expect(metrics.conformalScoreMatrix).toBe(conformalScoreMatrix);
  });
});
