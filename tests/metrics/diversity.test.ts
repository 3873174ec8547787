import { describe, expect, it } from 'vitest';
import {
  ambiguity,
  averagePairwiseKl,
  disagreement,
  ensembleDiversity,
  expectedEntropy,
  mutualInformation,
  mutualInformationPerExample,
  normalizedDisagreement,
  predictiveEntropy,
} from '../../src/metrics/diversity.js';
import { ensembleNll, gibbsNll } from '../../src/metrics/likelihood.js';
import { logitsFromProbs } from '../../src/metrics/softmax.js';
import { Rng } from '../../src/util/rng.js';
import { randomLabels, randomLogits } from './helpers.js';

const H = (p: number[]) => -p.reduce((s, x) => s + (x > 0 ? x * Math.log(x) : 0), 0);

describe('disagreement', () => {
  // argmax per member over 2 examples: m0 [0, 1], m1 [0, 0], m2 [1, 1]; pair differences 1 + 1 + 2 of 6
  const probs = { data: [0.9, 0.1, 0.2, 0.8, 0.7, 0.3, 0.6, 0.4, 0.4, 0.6, 0.1, 0.9], n: 2, k: 2, m: 3 };
  const z = logitsFromProbs(probs);

  it('hand case: 4 of 6 (pair, example) combinations differ', () => {
    expect(disagreement(z)).toBeCloseTo(4 / 6, 15);
  });

  it('normalised by the ensemble error', () => {
    // p̄ = [0.6, 0.4] and [0.4, 0.6]: predictions 0, 1; labels [1, 1] → error 1/2
    expect(normalizedDisagreement(z, [1, 1])).toBeCloseTo(4 / 6 / 0.5, 14);
    expect(normalizedDisagreement(z, [0, 1])).toBe(Infinity);
  });

  it('needs at least two members', () => {
    expect(() => disagreement({ data: [0, 1], n: 1, k: 2 })).toThrow(/m ≥ 2/);
  });
});

describe('pairwise KL and entropies', () => {
  it('KL hand case: members [0.5, 0.5] and [0.9, 0.1]', () => {
    const z = logitsFromProbs({ data: [0.5, 0.5, 0.9, 0.1], n: 1, k: 2, m: 2 });
    const klPQ = 0.5 * Math.log(0.5 / 0.9) + 0.5 * Math.log(0.5 / 0.1);
    const klQP = 0.9 * Math.log(0.9 / 0.5) + 0.1 * Math.log(0.1 / 0.5);
    expect(averagePairwiseKl(z)).toBeCloseTo((klPQ + klQP) / 2, 14);
    expect(mutualInformation(z)).toBeCloseTo(H([0.7, 0.3]) - (H([0.5, 0.5]) + H([0.9, 0.1])) / 2, 14);
  });

  it('confident members that disagree: predictive entropy log 2, expected entropy 0, MI log 2', () => {
    const z = logitsFromProbs({ data: [1, 0, 0, 1], n: 1, k: 2, m: 2 });
    expect(predictiveEntropy(z)[0]).toBeCloseTo(Math.log(2), 15);
    expect(expectedEntropy(z)[0]).toBe(0);
    expect(mutualInformationPerExample(z)[0]).toBeCloseTo(Math.log(2), 15);
  });

  it.each([2, 3, 5, 100])('uniform members over K = %i: entropy log K, MI 0', (k) => {
    const z = { data: new Float64Array(3 * k), n: 1, k, m: 3 };
    expect(predictiveEntropy(z)[0]).toBeCloseTo(Math.log(k), 13);
    expect(mutualInformation(z)).toBeCloseTo(0, 13);
  });
});

describe('properties on random ensembles', () => {
  it.each([1, 2, 3])('0 ≤ MI ≤ min(log M, log K) and ambiguity ≥ 0 (seed %i)', (seed) => {
    const rng = new Rng(seed);
    const m = 2 + seed;
    const k = 4;
    const z = randomLogits(rng, 300, k, m, 3);
    const y = randomLabels(rng, 300, k);
    const mi = mutualInformationPerExample(z);
    for (const v of mi) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(Math.min(Math.log(m), Math.log(k)) + 1e-12);
    }
    expect(ambiguity(z, y)).toBeGreaterThan(0);
    expect(ambiguity(z, y)).toBeCloseTo(gibbsNll(z, y) - ensembleNll(z, y), 14);
    expect(averagePairwiseKl(z)).toBeGreaterThan(0);
  });

  it('identical members: disagreement, KL, MI and ambiguity are all 0', () => {
    const rng = new Rng(4);
    const one = randomLogits(rng, 200, 5);
    const y = randomLabels(rng, 200, 5);
    const data = new Float64Array(3 * 1000);
    for (let j = 0; j < 3; j++) data.set(one.data as Float64Array, j * 1000);
    const d = ensembleDiversity({ data, n: 200, k: 5, m: 3 }, y);
    expect(d.disagreement).toBe(0);
    expect(d.normalizedDisagreement).toBe(0);
    expect(d.pairwiseKl).toBeCloseTo(0, 14);
    expect(d.mutualInformation).toBeCloseTo(0, 12);
    expect(d.ambiguity).toBeCloseTo(0, 12);
    expect(d.convention.ambiguity).toMatch(/Gibbs NLL − ensemble NLL/);
  });
});
