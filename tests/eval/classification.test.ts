/** classificationMetrics (the source of `vmoe eval`'s results.json): the calibration and selective-prediction details. */
import { describe, expect, it } from 'vitest';
import { percentKey } from '../../src/eval/classification.js';
import { classificationMetrics } from '../../src/eval/harness.js';
import type { Outputs } from '../../src/vmoe/outputs.js';
import {
  accuracyAtCoverage,
  confidenceAndCorrect,
  coverageAtRisk,
  ece,
  probsFromLogits,
  riskCoverageCurve,
} from '../../src/metrics/index.js';
import { Rng } from '../../src/util/rng.js';

function outputs(logits: Float32Array, labels: number[], n: number, k: number, members = 1): Outputs {
  return {
    n,
    numClasses: k,
    members,
    logits,
    preLogits: new Float32Array(0),
    preLogitsDim: 0,
    labels: Int32Array.from(labels),
    router: [],
    seconds: 1,
  };
}

// K = 2, logits log p: confidences 0.95 ✓, 0.85 ✓, 0.75 ✗, 0.65 ✗ (no confidence near a bin edge of 3 bins)
const P = [
  [0.95, 0.05],
  [0.15, 0.85],
  [0.75, 0.25],
  [0.35, 0.65],
];
const hand = outputs(Float32Array.from(P.flat().map(Math.log)), [0, 1, 1, 0], 4, 2);
// float32 logits move the probabilities by ~1e-8
const digits = 6;

describe('classificationMetrics: ECE variants, reliability bins, selective prediction', () => {
  const r = classificationMetrics(hand, 3);

  it.each([
    // equal-width [0,1/3) [1/3,2/3) [2/3,1]: {0.65 ✗} and {0.75 ✗, 0.85 ✓, 0.95 ✓} (conf 0.85, acc 2/3)
    { key: 'ece', value: r.ece, expected: 0.25 * 0.65 + 0.75 * (0.85 - 2 / 3) },
    { key: 'rmsce', value: r.calibration.rmsce, expected: Math.sqrt(0.25 * 0.65 ** 2 + 0.75 * (0.85 - 2 / 3) ** 2) },
    { key: 'mce', value: r.calibration.mce, expected: 0.65 },
    // both gaps over-confident
    { key: 'signed_ece', value: r.calibration.signed_ece, expected: 0.25 * 0.65 + 0.75 * (0.85 - 2 / 3) },
    // equal mass, ranks [0,1) [1,2) [2,4) ascending: {0.65 ✗}, {0.75 ✗}, {0.85 ✓, 0.95 ✓}
    {
      key: 'ece_equal_mass',
      value: r.calibration.ece_equal_mass,
      expected: 0.25 * 0.65 + 0.25 * 0.75 + 0.5 * (1 - 0.9),
    },
    // class 0: {0.15 ✗} {0.35 ✓} {0.75 ✗, 0.95 ✓}; class 1 the mirror image (p1 = 1 − p0) → same ECE
    {
      key: 'classwise_ece',
      value: r.calibration.classwise_ece,
      expected: 0.25 * 0.15 + 0.25 * 0.65 + 0.5 * (0.85 - 0.5),
    },
    // most confident first ✓ ✓ ✗ ✗: risks 0, 0, 1/3, 1/2
    { key: 'aurc', value: r.aurc, expected: (0 + 0 + 1 / 3 + 1 / 2) / 4 },
  ])('$key by hand', ({ value, expected }) => {
    expect(value).toBeCloseTo(expected, digits);
  });

  it('reliability bins: edges, counts, mean confidence and accuracy', () => {
    const bins = r.calibration.reliability;
    expect(bins.map((b) => [b.lo, b.hi, b.count])).toEqual([
      [0, 1 / 3, 0],
      [1 / 3, 2 / 3, 1],
      [2 / 3, 1, 3],
    ]);
    expect(bins[0]!.accuracy).toBeNaN();
    expect(bins[1]!.confidence).toBeCloseTo(0.65, digits);
    expect(bins[1]!.accuracy).toBe(0);
    expect(bins[2]!.confidence).toBeCloseTo(0.85, digits);
    expect(bins[2]!.accuracy).toBeCloseTo(2 / 3, 15);
  });

  it.each([
    // round(c·4) most confident: 2 → 2/2, 3 → 2/3, 4 → 2/4
    { coverage: 0.5, expected: 1 },
    { coverage: 0.8, expected: 2 / 3 },
    { coverage: 0.9, expected: 0.5 },
    { coverage: 0.95, expected: 0.5 },
    { coverage: 0.99, expected: 0.5 },
  ])('accuracy at coverage $coverage = $expected', ({ coverage, expected }) => {
    expect(r.selective_prediction.accuracy_at_coverage[percentKey(coverage)]).toBeCloseTo(expected, 15);
  });

  it('coverage at risk and the risk–coverage curve', () => {
    // risk 0 holds up to the 2 most confident, 1/3 from the third on
    expect(r.selective_prediction.coverage_at_risk).toEqual({ '1%': 0.5, '2%': 0.5, '5%': 0.5, '10%': 0.5 });
    expect(r.selective_prediction.risk_coverage.coverage).toEqual([0.25, 0.5, 0.75, 1]);
    expect(r.selective_prediction.risk_coverage.risk).toEqual([0, 0, 1 / 3, 0.5]);
  });

  it('conventions name bins, binning and norm of every variant', () => {
    const c = r.conventions.calibration as Record<
      string,
      { bins: number; binning: string; norm?: string; labels: string }
    >;
    expect(c.ece_equal_mass).toMatchObject({ bins: 3, binning: 'equal-mass', norm: 'l1', labels: 'top-label' });
    expect(c.classwise_ece).toMatchObject({ bins: 3, binning: 'equal-width', norm: 'l1', labels: 'classwise' });
    expect(c.rmsce).toMatchObject({ bins: 3, binning: 'equal-width', norm: 'l2', name: 'rmsce' });
    expect(c.mce).toMatchObject({ bins: 3, binning: 'equal-width', norm: 'max', name: 'mce' });
    expect(c.signed_ece).toMatchObject({ bins: 3, norm: 'l1', signed: true });
    expect((c.signed_ece as unknown as { weighting: string }).weighting).not.toMatch(/\|/);
    expect(c.reliability).toMatchObject({ bins: 3, binning: 'equal-width' });
    expect(r.conventions.selective_prediction).toMatchObject({ confidence: 'max p̄' });
    // the existing keys are still there
    expect(r.conventions).toHaveProperty('ece');
    expect(r.conventions).toHaveProperty('selective');
  });

  it.each([
    { f: 0.5, key: '50%' },
    { f: 0.95, key: '95%' },
    { f: 0.07, key: '7%' },
    { f: 0.005, key: '0.5%' },
  ])('percentKey($f) = $key', ({ f, key }) => {
    expect(percentKey(f)).toBe(key);
  });
});

describe('classificationMetrics on a random ensemble: details = the library functions', () => {
  const rng = new Rng(11);
  const n = 613,
    k = 5,
    m = 3;
  const logits = Float32Array.from({ length: m * n * k }, () => 2 * rng.normal());
  const labels = Array.from({ length: n }, () => rng.int(k));
  const out = outputs(logits, labels, n, k, m);
  const r = classificationMetrics(out, 15);
  const pbar = probsFromLogits({ data: logits, n, k, m });
  const { confidence, correct } = confidenceAndCorrect(pbar, labels);

  it('ECE variants equal ece() with the matching options', () => {
    expect(r.calibration.ece_equal_mass).toBe(ece(pbar, labels, { bins: 15, binning: 'equal-mass' }).value);
    expect(r.calibration.classwise_ece).toBe(ece(pbar, labels, { bins: 15, classwise: true }).value);
    expect(r.calibration.rmsce).toBe(ece(pbar, labels, { bins: 15, norm: 'l2' }).value);
    expect(r.calibration.mce).toBe(ece(pbar, labels, { bins: 15, norm: 'max' }).value);
    expect(r.calibration.signed_ece).toBe(ece(pbar, labels, { bins: 15, signed: true }).value);
    expect(r.calibration.reliability).toHaveLength(15);
    expect(r.calibration.reliability.reduce((s, b) => s + b.count, 0)).toBe(n);
  });

  it('selective numbers equal accuracyAtCoverage / coverageAtRisk; the curve is cut to 200 exact points', () => {
    for (const c of [0.5, 0.8, 0.9, 0.95, 0.99]) {
      expect(r.selective_prediction.accuracy_at_coverage[percentKey(c)]).toBe(
        accuracyAtCoverage(confidence, correct, c),
      );
    }
    for (const q of [0.01, 0.02, 0.05, 0.1]) {
      expect(r.selective_prediction.coverage_at_risk[percentKey(q)]).toBe(coverageAtRisk(confidence, correct, q));
    }
    const full = riskCoverageCurve(confidence, correct);
    const rc = r.selective_prediction.risk_coverage;
    expect(rc.coverage).toHaveLength(200);
    expect(rc.coverage.at(-1)).toBe(1);
    rc.coverage.forEach((c, j) => expect(rc.risk[j]).toBe(full.risk[Math.round(c * n) - 1]));
  });

  it('serialises as plain JSON arrays (typed arrays would become objects)', () => {
    const back = JSON.parse(JSON.stringify(r));
    expect(Array.isArray(back.selective_prediction.risk_coverage.risk)).toBe(true);
    expect(back.calibration.reliability[0]).toHaveProperty('lo');
    expect(back.gibbs_nll).toBeGreaterThanOrEqual(back.nll);
  });
});
