import { describe, expect, it } from 'vitest';
import { auroc, aurocFromLabels, averagePrecision, fprAtTpr } from '../../src/metrics/ranking.js';
import { Rng } from '../../src/util/rng.js';

function bruteForceAuroc(pos: number[], neg: number[]): number {
  let u = 0;
  for (const p of pos) for (const q of neg) u += p > q ? 1 : p === q ? 0.5 : 0;
  return u / (pos.length * neg.length);
}

/** Without ties: mean over positives of the precision at that positive's rank. */
function bruteForceAp(pos: number[], neg: number[]): number {
  let s = 0;
  for (const p of pos) {
    const above = pos.filter((x) => x >= p).length;
    const falseAbove = neg.filter((x) => x >= p).length;
    s += above / (above + falseAbove);
  }
  return s / pos.length;
}

describe('auroc', () => {
  it.each([
    { name: 'perfect separation', pos: [3, 4, 5], neg: [0, 1, 2], expected: 1 },
    { name: 'reversed', pos: [0, 1, 2], neg: [3, 4, 5], expected: 0 },
    { name: 'all tied', pos: [1, 1, 1], neg: [1, 1], expected: 0.5 },
    { name: 'hand case', pos: [0.9, 0.6], neg: [0.8, 0.3], expected: 3 / 4 },
    { name: 'hand case with a tie', pos: [0.5, 0.9], neg: [0.5, 0.1], expected: (0.5 + 1 + 1 + 1) / 4 },
  ])('$name → $expected', ({ pos, neg, expected }) => {
    expect(auroc(pos, neg)).toBeCloseTo(expected, 15);
  });

  it.each([1, 2, 3, 4])('equals the Mann–Whitney U over all pairs on random tied scores (seed %i)', (seed) => {
    const rng = new Rng(seed);
    const pos = Array.from({ length: 150 + seed * 13 }, () => Math.round(rng.normal() * 4 + 1) / 4);
    const neg = Array.from({ length: 120 }, () => Math.round(rng.normal() * 4) / 4);
    expect(auroc(pos, neg)).toBeCloseTo(bruteForceAuroc(pos, neg), 14);
  });

  it('from 0/1 labels; one class only is an error', () => {
    expect(aurocFromLabels([0.9, 0.2, 0.6, 0.3], [1, 0, 0, 1])).toBeCloseTo(
      bruteForceAuroc([0.9, 0.3], [0.2, 0.6]),
      15,
    );
    expect(() => aurocFromLabels([0.1, 0.2], [1, 1])).toThrow(/2 positives and 0 negatives/);
    expect(() => auroc([1, NaN], [0])).toThrow(/positive scores\[1\] is NaN/);
  });
});

describe('average precision', () => {
  it.each([
    { name: 'hand case', pos: [0.9, 0.6], neg: [0.8, 0.3], expected: 0.5 * 1 + 0.5 * (2 / 3) },
    { name: 'perfect', pos: [5, 4], neg: [1, 2, 3], expected: 1 },
    { name: 'all tied: one threshold, precision = base rate', pos: [1], neg: [1, 1, 1], expected: 1 / 4 },
    { name: 'worst: positives last', pos: [0, 1], neg: [2, 3], expected: 0.5 * (1 / 3) + 0.5 * (2 / 4) },
  ])('$name → $expected', ({ pos, neg, expected }) => {
    expect(averagePrecision(pos, neg)).toBeCloseTo(expected, 15);
  });

  it.each([5, 6, 7])('equals mean precision at each positive on random untied scores (seed %i)', (seed) => {
    const rng = new Rng(seed);
    const pos = Array.from({ length: 80 }, () => rng.normal() + 1);
    const neg = Array.from({ length: 200 }, () => rng.normal());
    expect(averagePrecision(pos, neg)).toBeCloseTo(bruteForceAp(pos, neg), 13);
  });
});

describe('FPR at 95% TPR', () => {
  it('hand case: 20 positives at 1..20, negatives [0.5, 1.5, 2.5, 10.5, 30]', () => {
    // TPR ≥ 0.95 needs 19 positives → threshold 2 → negatives ≥ 2 are 2.5, 10.5, 30 → 3/5
    const pos = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(fprAtTpr(pos, [0.5, 1.5, 2.5, 10.5, 30])).toBeCloseTo(3 / 5, 15);
  });

  it.each([
    { name: 'perfect separation', pos: [5, 6, 7], neg: [1, 2], expected: 0 },
    { name: 'reversed', pos: [1, 2], neg: [5, 6, 7], expected: 1 },
    { name: 'all tied', pos: [1, 1], neg: [1, 1, 1], expected: 1 },
  ])('$name → $expected', ({ pos, neg, expected }) => {
    expect(fprAtTpr(pos, neg)).toBe(expected);
  });

  it('other TPR levels', () => {
    expect(fprAtTpr([4, 3, 2, 1], [3.5, 2.5, 1.5, 0.5], 0.5)).toBe(0.25);
    expect(() => fprAtTpr([1], [0], 0)).toThrow(/tpr must be in/);
  });
});
