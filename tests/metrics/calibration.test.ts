import { describe, expect, it } from 'vitest';
import {
  CalibrationAccumulator,
  confidenceAndCorrect,
  ece,
  equalWidthBin,
  reliabilityDiagram,
  topLabelEce,
} from '../../src/metrics/calibration.js';
import { probsFromLogits } from '../../src/metrics/softmax.js';
import { Rng } from '../../src/util/rng.js';
import { randomLabels, randomLogits, sampleClass } from './helpers.js';

// Golden fixture of docs/spec/evaluation.md §3: max-probabilities [0.32, 0.37, 0.39, 0.61, 0.65, 0.91], predicted classes
// [1, 0, 2, 0, 1, 0], labels [1, 0, 0, 1, 0, 0]. Rows need not sum to one for top-label ECE.
const goldenRows = [
  [0.31, 0.32, 0.27],
  [0.37, 0.33, 0.3],
  [0.3, 0.31, 0.39],
  [0.61, 0.38, 0.01],
  [0.1, 0.65, 0.25],
  [0.91, 0.05, 0.04],
];
const goldenLabels = [1, 0, 0, 1, 0, 0];
const golden = { data: goldenRows.flat(), n: 6, k: 3 };
// bins 3 (acc 2/3, conf 0.36), 6 (acc 0, conf 0.63), 9 (acc 1, conf 0.91)
const goldenGaps = [
  { w: 3 / 6, gap: 0.36 - 2 / 3 },
  { w: 2 / 6, gap: 0.63 },
  { w: 1 / 6, gap: -0.09 },
];
const goldenEce = goldenGaps.reduce((s, g) => s + g.w * Math.abs(g.gap), 0);

describe('golden ECE fixture (spec)', () => {
  it('ECE = 0.378333… with 10 bins and counts [0,0,0,3,0,0,2,0,0,1]', () => {
    const r = ece(golden, goldenLabels, { bins: 10 });
    expect(goldenEce).toBeCloseTo(0.3783333333, 9);
    expect(r.value).toBeCloseTo(0.378333333333, 12);
    expect(r.reliability.map((b) => b.count)).toEqual([0, 0, 0, 3, 0, 0, 2, 0, 0, 1]);
    expect(r.reliability[3]!.accuracy).toBeCloseTo(2 / 3, 14);
    expect(r.reliability[3]!.confidence).toBeCloseTo(0.36, 14);
    expect(r.reliability[6]).toMatchObject({ accuracy: 0, lo: 0.6, hi: 0.7 });
    expect(r.reliability[0]!.accuracy).toBeNaN();
    expect(r.convention).toMatchObject({
      name: 'ece',
      bins: 10,
      binning: 'equal-width',
      norm: 'l1',
      labels: 'top-label',
    });
  });

  it('streaming 4 rows then 2 equals one update with all 6', () => {
    const acc = new CalibrationAccumulator({ bins: 10 });
    acc.update({ data: goldenRows.slice(0, 4).flat(), n: 4, k: 3 }, goldenLabels.slice(0, 4));
    acc.update({ data: goldenRows.slice(4).flat(), n: 2, k: 3 }, goldenLabels.slice(4));
    const oneShot = new CalibrationAccumulator({ bins: 10 }).update(golden, goldenLabels).result();
    expect(acc.result()).toEqual(oneShot);
    expect(acc.result().value).toBeCloseTo(0.378333333333, 12);
  });

  it('same value from confidences and correctness directly', () => {
    const conf = [0.32, 0.37, 0.39, 0.61, 0.65, 0.91];
    const correct = [true, true, false, false, false, true];
    expect(topLabelEce(conf, correct, { bins: 10 }).value).toBeCloseTo(goldenEce, 14);
  });

  it.each([
    {
      norm: 'l2' as const,
      signed: false,
      name: 'rmsce',
      expected: Math.sqrt(goldenGaps.reduce((s, g) => s + g.w * g.gap ** 2, 0)),
    },
    { norm: 'max' as const, signed: false, name: 'mce', expected: 0.63 },
    {
      norm: 'l1' as const,
      signed: true,
      name: 'signed-ece',
      expected: goldenGaps.reduce((s, g) => s + g.w * g.gap, 0),
    },
  ])('$name on the fixture', ({ norm, signed, name, expected }) => {
    const r = ece(golden, goldenLabels, { bins: 10, norm, signed });
    expect(r.value).toBeCloseTo(expected, 12);
    expect(r.convention.name).toBe(name);
    expect(r.convention.norm).toBe(norm);
  });
});

describe('equal-width bin edges', () => {
  it.each([
    { conf: 0, bins: 10, bin: 0 },
    { conf: 0.1, bins: 10, bin: 1 },
    { conf: 0.0999, bins: 10, bin: 0 },
    { conf: 0.3, bins: 10, bin: 3 },
    { conf: 0.5, bins: 10, bin: 5 },
    { conf: 0.6, bins: 10, bin: 6 },
    { conf: 0.7, bins: 10, bin: 7 },
    { conf: 1, bins: 10, bin: 9 },
    { conf: 1, bins: 15, bin: 14 },
    { conf: 0.9999, bins: 15, bin: 14 },
  ])('confidence $conf with $bins bins → bin $bin', ({ conf, bins, bin }) => {
    expect(equalWidthBin(conf, bins)).toBe(bin);
  });

  it.each([7, 10, 15, 20, 30])('every edge b/B (B = %i) opens bin b, just below it is bin b−1', (bins) => {
    for (let b = 1; b < bins; b++) {
      expect(equalWidthBin(b / bins, bins)).toBe(b);
      expect(equalWidthBin(b / bins - 1e-12, bins)).toBe(b - 1);
    }
  });
});

describe('perfect and worst-case calibration', () => {
  it.each([
    { name: 'always right at confidence 1', conf: 1, correct: true, expected: 0 },
    { name: 'always wrong at confidence 1', conf: 1, correct: false, expected: 1 },
    { name: 'right half the time at 0.5', conf: 0.5, correct: 'alternate', expected: 0 },
  ])('$name → $expected', ({ conf, correct, expected }) => {
    const n = 100;
    const c = Array.from({ length: n }, (_, i) => (correct === 'alternate' ? i % 2 === 0 : correct === true));
    expect(topLabelEce(new Array(n).fill(conf), c).value).toBeCloseTo(expected, 14);
  });

  it.each([
    { binning: 'equal-width' as const, classwise: false },
    { binning: 'equal-mass' as const, classwise: false },
    { binning: 'equal-width' as const, classwise: true },
  ])(
    'labels drawn from the stated probabilities give ECE ≈ 0 ($binning, classwise $classwise)',
    ({ binning, classwise }) => {
      const rng = new Rng(11);
      const n = 40000;
      const k = 5;
      const probs = probsFromLogits(randomLogits(rng, n, k, undefined, 1.5));
      const y = new Int32Array(n);
      for (let i = 0; i < n; i++) y[i] = sampleClass(rng, probs.data, i * k, k);
      const r = ece(probs, y, { binning, classwise });
      expect(r.value).toBeLessThan(0.012);
      // an over-confident version of the same predictions (logits × 3) is clearly miscalibrated
      const sharp = probsFromLogits({ ...randomLogits(new Rng(11), n, k, undefined, 4.5) });
      expect(ece(sharp, y, { binning, classwise }).value).toBeGreaterThan(0.05);
    },
  );
});

describe('equal-mass and classwise hand cases', () => {
  it('equal-mass: 4 examples in 2 bins, independent of input order', () => {
    // sorted bins {0.1 ✗, 0.2 ✓} and {0.3 ✓, 0.4 ✓}: gaps |0.15 − 0.5| and |0.35 − 1|
    const expected = 0.5 * 0.35 + 0.5 * 0.65;
    const a = topLabelEce([0.1, 0.2, 0.3, 0.4], [0, 1, 1, 1], { bins: 2, binning: 'equal-mass' });
    const b = topLabelEce([0.4, 0.1, 0.3, 0.2], [1, 0, 1, 1], { bins: 2, binning: 'equal-mass' });
    expect(a.value).toBeCloseTo(expected, 14);
    expect(b.value).toBeCloseTo(expected, 14);
    expect(a.reliability.map((x) => [x.lo, x.hi, x.count])).toEqual([
      [0.1, 0.2, 2],
      [0.3, 0.4, 2],
    ]);
    expect(a.convention.binning).toBe('equal-mass');
  });

  it('equal-mass with more bins than examples skips the empty bins', () => {
    const r = topLabelEce([0.9, 0.8], [1, 0], { bins: 5, binning: 'equal-mass' });
    expect(r.reliability.filter((b) => b.count > 0)).toHaveLength(2);
    expect(r.value).toBeCloseTo(0.5 * 0.1 + 0.5 * 0.8, 14);
  });

  it('classwise: binary hand case', () => {
    // class 0: 0.8 (label 0) and 0.6 (label 1) → gaps 0.2, 0.6; class 1 mirrors it → 0.4 each
    const r = ece({ data: [0.8, 0.2, 0.6, 0.4], n: 2, k: 2 }, [0, 1], { bins: 10, classwise: true });
    expect(r.value).toBeCloseTo(0.4, 14);
    expect(r.perClass!.map((c) => c.value)).toEqual([expect.closeTo(0.4, 14), expect.closeTo(0.4, 14)]);
    expect(r.convention).toMatchObject({
      name: 'classwise-ece',
      labels: 'classwise',
      classReduction: 'mean over classes',
    });
  });
});

describe('streaming equals one-shot', () => {
  it.each([
    { classwise: false, bins: 15 },
    { classwise: true, bins: 15 },
    { classwise: false, bins: 7 },
  ])('random batches (classwise $classwise, $bins bins)', ({ classwise, bins }) => {
    const rng = new Rng(21);
    const n = 1000;
    const k = 6;
    const probs = probsFromLogits(randomLogits(rng, n, k, 3));
    const y = randomLabels(rng, n, k);
    const acc = new CalibrationAccumulator({ bins, classwise });
    const mk = n * k;
    for (let start = 0; start < n; ) {
      const size = Math.min(n - start, 1 + rng.int(200));
      const batch = new Float64Array(3 * size * k);
      for (let j = 0; j < 3; j++) {
        batch.set((probs.data as Float64Array).subarray(j * mk + start * k, j * mk + (start + size) * k), j * size * k);
      }
      acc.update({ data: batch, n: size, k, m: 3 }, y.subarray(start, start + size));
      start += size;
    }
    for (const norm of ['l1', 'l2', 'max'] as const) {
      expect(acc.result({ norm })).toEqual(ece(probs, y, { bins, classwise, norm }));
    }
    expect(acc.count).toBe(n);
  });
});

describe('validation', () => {
  it.each([
    { opts: { bins: 0 }, msg: /bins must be a positive integer/ },
    { opts: { norm: 'l2' as const, signed: true }, msg: /signed .* only for norm 'l1'/ },
    { opts: { binning: 'quantile' as never }, msg: /binning must be/ },
  ])('rejects $opts', ({ opts, msg }) => {
    expect(() => ece(golden, goldenLabels, opts)).toThrow(msg);
  });

  it('reliability diagram is the ECE bins', () => {
    expect(reliabilityDiagram(golden, goldenLabels, { bins: 10 })).toEqual(
      ece(golden, goldenLabels, { bins: 10 }).reliability,
    );
    expect(confidenceAndCorrect(golden, goldenLabels).correct).toEqual(Uint8Array.from([1, 1, 0, 0, 0, 1]));
  });
});
