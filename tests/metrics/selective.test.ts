import { describe, expect, it } from 'vitest';
import {
  accuracyAtCoverage,
  aurc,
  calibrationAuc,
  coverageAtRisk,
  downsampleRiskCoverage,
  oracleCollaborativeAccuracy,
  riskCoverageCurve,
  selectiveSummary,
} from '../../src/metrics/selective.js';
import { Rng } from '../../src/util/rng.js';

// most to least confident: ✓ ✗ ✓ ✗
const conf = [0.9, 0.8, 0.7, 0.6];
const correct = [1, 0, 1, 0];

describe('risk–coverage', () => {
  it('hand case: risks 0, 1/2, 1/3, 2/4 and AURC their mean', () => {
    const c = riskCoverageCurve(conf, correct);
    expect(Array.from(c.coverage)).toEqual([0.25, 0.5, 0.75, 1]);
    expect(Array.from(c.risk)).toEqual([0, 0.5, expect.closeTo(1 / 3, 15), 0.5]);
    expect(aurc(conf, correct)).toBeCloseTo((0 + 0.5 + 1 / 3 + 0.5) / 4, 15);
  });

  it('does not depend on input order', () => {
    const perm = [2, 0, 3, 1];
    expect(
      aurc(
        perm.map((i) => conf[i]!),
        perm.map((i) => correct[i]!),
      ),
    ).toBeCloseTo(aurc(conf, correct), 15);
  });

  it('ties are averaged: two tied examples, one wrong → risk 1/2 at both coverages', () => {
    expect(Array.from(riskCoverageCurve([0.9, 0.9], [1, 0]).risk)).toEqual([0.5, 0.5]);
    expect(Array.from(riskCoverageCurve([0.9, 0.9], [0, 1]).risk)).toEqual([0.5, 0.5]);
  });

  it.each([
    { name: 'perfect ranking, 2 errors of 4', correct: [1, 1, 0, 0], expected: (0 + 0 + 1 / 3 + 2 / 4) / 4 },
    { name: 'worst ranking, 2 errors of 4', correct: [0, 0, 1, 1], expected: (1 + 1 + 2 / 3 + 2 / 4) / 4 },
    { name: 'all correct', correct: [1, 1, 1, 1], expected: 0 },
  ])('AURC $name', ({ correct: c, expected }) => {
    expect(aurc(conf, c)).toBeCloseTo(expected, 15);
  });

  it.each([
    { coverage: 0.25, expected: 1 },
    { coverage: 0.5, expected: 0.5 },
    { coverage: 0.75, expected: 2 / 3 },
    { coverage: 1, expected: 0.5 },
    { coverage: 0, expected: 1 },
  ])('accuracy at coverage $coverage = $expected', ({ coverage, expected }) => {
    expect(accuracyAtCoverage(conf, correct, coverage)).toBeCloseTo(expected, 15);
  });

  it.each([
    { risk: 0, expected: 0.25 },
    { risk: 0.34, expected: 0.75 },
    { risk: 0.5, expected: 1 },
  ])('coverage at risk $risk = $expected', ({ risk, expected }) => {
    expect(coverageAtRisk(conf, correct, risk)).toBe(expected);
  });

  it('coverage at risk is 0 when the most confident example is wrong', () => {
    expect(coverageAtRisk([0.9, 0.1], [0, 1], 0.1)).toBe(0);
  });
});

describe('downsampled curve and the one-sort summary', () => {
  // N = 10, most confident first: ✓ ✓ ✗ ✓ ✗ ✓ ✓ ✗ ✗ ✓ → errors among the i most confident
  const c10 = Array.from({ length: 10 }, (_, i) => 1 - i / 20);
  const ok10 = [1, 1, 0, 1, 0, 1, 1, 0, 0, 1];
  const errors = [0, 0, 1, 1, 2, 2, 2, 3, 4, 4];

  it.each([
    // ranks round(j·10/4) = round(2.5), 5, round(7.5), 10 = 3, 5, 8, 10 (Math.round rounds .5 up)
    { maxPoints: 4, ranks: [3, 5, 8, 10] },
    { maxPoints: 3, ranks: [3, 7, 10] },
    { maxPoints: 1, ranks: [10] },
    { maxPoints: 10, ranks: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
    { maxPoints: 200, ranks: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
  ])('at most $maxPoints points: ranks $ranks', ({ maxPoints, ranks }) => {
    const d = downsampleRiskCoverage(riskCoverageCurve(c10, ok10), maxPoints);
    expect(Array.from(d.coverage)).toEqual(ranks.map((i) => i / 10));
    expect(Array.from(d.risk)).toEqual(ranks.map((i) => errors[i - 1]! / i));
  });

  it('rejects a non-positive point count', () => {
    expect(() => downsampleRiskCoverage(riskCoverageCurve(c10, ok10), 0)).toThrow(
      /maxPoints must be a positive integer/,
    );
  });

  it('selectiveSummary: AURC on the full curve, accuracy at coverage, coverage at risk (hand)', () => {
    const s = selectiveSummary(c10, ok10, { coverages: [0.2, 0.5, 1], risks: [0, 0.25, 0.4], maxPoints: 4 });
    expect(s.aurc).toBeCloseTo(errors.reduce((a, e, i) => a + e / (i + 1), 0) / 10, 15);
    // 2 of 2, 3 of 5, 6 of 10 right
    expect(s.accuracyAtCoverage).toEqual([
      { coverage: 0.2, accuracy: 1 },
      { coverage: 0.5, accuracy: 3 / 5 },
      { coverage: 1, accuracy: 6 / 10 },
    ]);
    // risk ≤ 0 up to i = 2; ≤ 1/4 up to i = 4 (1/4); ≤ 0.4 up to i = 10 (4/10)
    expect(s.coverageAtRisk).toEqual([
      { risk: 0, coverage: 0.2 },
      { risk: 0.25, coverage: 0.4 },
      { risk: 0.4, coverage: 1 },
    ]);
    expect(Array.from(s.curve.coverage)).toEqual([0.3, 0.5, 0.8, 1]);
    expect(s.convention.curvePoints).toMatch(/at most 4/);
  });

  it('selectiveSummary equals the separate functions on random data, with the default 200 points', () => {
    const rng = new Rng(5);
    const n = 997;
    // confidences on a coarse grid, so that there are ties
    const c = Array.from({ length: n }, () => Math.round(rng.uniform() * 50) / 50);
    const ok = c.map((x) => (rng.uniform() < x ? 1 : 0));
    const s = selectiveSummary(c, ok);
    expect(s.aurc).toBe(aurc(c, ok));
    for (const a of s.accuracyAtCoverage) expect(a.accuracy).toBe(accuracyAtCoverage(c, ok, a.coverage));
    for (const a of s.coverageAtRisk) expect(a.coverage).toBe(coverageAtRisk(c, ok, a.risk));
    expect(s.accuracyAtCoverage.map((a) => a.coverage)).toEqual([0.5, 0.8, 0.9, 0.95, 0.99]);
    expect(s.coverageAtRisk.map((a) => a.risk)).toEqual([0.01, 0.02, 0.05, 0.1]);
    const full = riskCoverageCurve(c, ok);
    expect(s.curve.coverage).toHaveLength(200);
    expect(s.curve.coverage[199]).toBe(1);
    for (let j = 0; j < 200; j++) {
      const i = Math.round(((j + 1) * n) / 200);
      expect(s.curve.risk[j]).toBe(full.risk[i - 1]);
    }
  });
});

describe('calibration AUC and oracle-collaborative accuracy', () => {
  it.each([
    { name: 'correct ones more confident', correct: [1, 1, 0, 0], expected: 1 },
    { name: 'wrong ones more confident', correct: [0, 0, 1, 1], expected: 0 },
    { name: 'hand case', correct: [1, 0, 1, 0], expected: 3 / 4 },
  ])('calibration AUC: $name', ({ correct: c, expected }) => {
    expect(calibrationAuc(conf, c)).toBeCloseTo(expected, 15);
  });

  it.each([
    { fraction: 0, expected: 2 / 4 },
    { fraction: 0.25, expected: 3 / 4 },
    { fraction: 0.5, expected: 3 / 4 },
    { fraction: 0.75, expected: 1 },
    { fraction: 1, expected: 1 },
  ])('oracle fraction $fraction → $expected', ({ fraction, expected }) => {
    expect(oracleCollaborativeAccuracy(conf, correct, fraction)).toBeCloseTo(expected, 15);
  });

  it('oracle accuracy equals base accuracy + errors among the handed-over least confident / N (random)', () => {
    const rng = new Rng(3);
    const n = 1000;
    const c = Array.from({ length: n }, () => rng.uniform());
    const ok: number[] = c.map((x) => (rng.uniform() < x ? 1 : 0));
    const order = c.map((_, i) => i).sort((a, b) => c[a]! - c[b]!);
    for (const f of [0.005, 0.01, 0.02, 0.05]) {
      const handed = order.slice(0, Math.round(f * n));
      const fixed = handed.filter((i) => !ok[i]).length;
      const base = ok.reduce((s, x) => s + x, 0);
      expect(oracleCollaborativeAccuracy(c, ok, f)).toBeCloseTo((base + fixed) / n, 14);
    }
  });
});
