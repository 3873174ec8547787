import { describe, expect, it } from 'vitest';
import { meanNllFromLogits, topLabelEce } from '../../src/fewshot/probe-metrics.js';

describe('meanNllFromLogits', () => {
  it.each([
    { logits: [0, 0], label: 0, k: 2, nll: Math.log(2) },
    { logits: [Math.log(3), 0, 0], label: 0, k: 3, nll: Math.log(5 / 3) },
    { logits: [Math.log(3), 0, 0], label: 2, k: 3, nll: Math.log(5) },
    { logits: [1000, 0], label: 1, k: 2, nll: 1000 }, // log space: no overflow, no clipping
  ])('logits $logits, label $label → $nll', ({ logits, label, k, nll }) => {
    expect(meanNllFromLogits(new Float64Array(logits), [label], k)).toBeCloseTo(nll, 12);
  });
  it('averages over rows', () => {
    expect(meanNllFromLogits(new Float64Array([0, 0, Math.log(3), 0]), [0, 1], 2)).toBeCloseTo(
      (Math.log(2) + Math.log(4)) / 2,
      12,
    );
  });
});

describe('topLabelEce', () => {
  it('golden fixture of evaluation.md (10 bins) gives 0.378333…', () => {
    // Max probabilities at the predicted class; the other entries are smaller (rows need not sum to 1 here).
    const maxP = [0.32, 0.37, 0.39, 0.61, 0.65, 0.91];
    const pred = [1, 0, 2, 0, 1, 0];
    const labels = [1, 0, 0, 1, 0, 0];
    const probs = new Float64Array(18);
    maxP.forEach((p, i) => {
      for (let c = 0; c < 3; c++) probs[i * 3 + c] = c === pred[i] ? p : p / 2;
    });
    // bins 3: acc 2/3, conf 0.36 → 3/6·0.30667; bin 6: acc 0, conf 0.63 → 2/6·0.63; bin 9: 1/6·0.09
    expect(topLabelEce(probs, labels, 3, 10)).toBeCloseTo(0.378333333, 8);
  });
  it('confidence 1.0 falls in the last bin and a perfectly calibrated set scores 0', () => {
    expect(topLabelEce(new Float64Array([1, 0, 0, 1]), [0, 1], 2)).toBe(0);
    // two rows at confidence 0.5 (one right, one wrong) are calibrated
    expect(topLabelEce(new Float64Array([0.5, 0.5, 0.5, 0.5]), [0, 1], 2)).toBeCloseTo(0, 12);
  });
});
