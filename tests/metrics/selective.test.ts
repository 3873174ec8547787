import { describe, expect, it } from 'vitest';
import {
  accuracyAtCoverage,
  aurc,
  calibrationAuc,
  coverageAtRisk,
  oracleCollaborativeAccuracy,
  riskCoverageCurve,
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
    expect(aurc(perm.map((i) => conf[i]!), perm.map((i) => correct[i]!))).toBeCloseTo(aurc(conf, correct), 15);
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
