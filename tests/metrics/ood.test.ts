import { describe, expect, it } from 'vitest';
import { expectedEntropy, mutualInformationPerExample, predictiveEntropy } from '../../src/metrics/diversity.js';
import { OOD_SCORE_NAMES, energyScore, maxLogitScore, mspScore, oodMetrics, oodScore } from '../../src/metrics/ood.js';
import { auroc, averagePrecision, fprAtTpr } from '../../src/metrics/ranking.js';
import { logitsFromProbs } from '../../src/metrics/softmax.js';
import { Rng } from '../../src/util/rng.js';
import { randomLogits } from './helpers.js';

describe('OOD scores (higher = more OOD)', () => {
  it('MSP hand case: p = [0.7, 0.2, 0.1] → 0.3; members averaged first', () => {
    expect(mspScore(logitsFromProbs({ data: [0.7, 0.2, 0.1], n: 1, k: 3 }))[0]).toBeCloseTo(0.3, 14);
    expect(mspScore(logitsFromProbs({ data: [0.9, 0.1, 0.3, 0.7], n: 1, k: 2, m: 2 }))[0]).toBeCloseTo(0.4, 14);
  });

  it('max-logit and energy hand cases (ensemble: mean of member scores)', () => {
    const z = { data: [1, 3, 2], n: 1, k: 3 };
    expect(maxLogitScore(z)[0]).toBe(-3);
    expect(energyScore(z)[0]).toBeCloseTo(-Math.log(Math.E + Math.E ** 3 + Math.E ** 2), 14);
    const ens = { data: [1, 3, 0, 5], n: 1, k: 2, m: 2 };
    expect(maxLogitScore(ens)[0]).toBe(-(3 + 5) / 2);
    expect(energyScore(ens)[0]).toBeCloseTo(-(Math.log(Math.E + Math.E ** 3) + Math.log(1 + Math.E ** 5)) / 2, 14);
  });

  it('oodScore dispatches every name to its function', () => {
    const z = randomLogits(new Rng(1), 10, 4, 3);
    const direct = {
      msp: mspScore(z),
      'max-logit': maxLogitScore(z),
      energy: energyScore(z),
      entropy: predictiveEntropy(z),
      'expected-entropy': expectedEntropy(z),
      'mutual-information': mutualInformationPerExample(z),
    };
    for (const name of OOD_SCORE_NAMES) expect(oodScore(z, name)).toEqual(direct[name]);
    expect(() => oodScore(z, 'odin' as never)).toThrow(/unknown OOD score 'odin'/);
  });

  it('entropy-based scores separate confident in-distribution logits from flat OOD logits', () => {
    const rng = new Rng(2);
    const inLogits = randomLogits(rng, 200, 10, undefined, 6);
    const oodLogits = randomLogits(rng, 200, 10, undefined, 0.3);
    for (const name of ['msp', 'entropy', 'energy', 'max-logit'] as const) {
      expect(oodMetrics(oodScore(inLogits, name), oodScore(oodLogits, name)).auroc).toBeGreaterThan(0.9);
    }
  });
});

describe('oodMetrics conventions', () => {
  const inScores = [0.1, 0.4, 0.35, 0.8];
  const ood = [0.9, 0.5, 0.3];

  it('OOD positive by default', () => {
    const r = oodMetrics(inScores, ood);
    expect(r.convention.positive).toBe('ood');
    expect(r.auroc).toBeCloseTo(auroc(ood, inScores), 15);
    expect(r.auprc).toBeCloseTo(averagePrecision(ood, inScores), 15);
    expect(r.fpr95).toBe(fprAtTpr(ood, inScores));
    expect([r.nIn, r.nOod]).toEqual([4, 3]);
  });

  it('in-distribution positive: same AUROC, PR and FPR from negated scores', () => {
    const r = oodMetrics(inScores, ood, { positive: 'in-distribution' });
    const negIn = inScores.map((s) => -s);
    const negOod = ood.map((s) => -s);
    expect(r.convention.positive).toBe('in-distribution');
    expect(r.auroc).toBeCloseTo(oodMetrics(inScores, ood).auroc, 15);
    expect(r.auprc).toBeCloseTo(averagePrecision(negIn, negOod), 15);
    expect(r.fpr95).toBe(fprAtTpr(negIn, negOod));
  });
});
