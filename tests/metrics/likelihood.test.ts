import { describe, expect, it } from 'vitest';
import { accuracy, brier, ensembleNll, gibbsNll, memberNlls, nll } from '../../src/metrics/likelihood.js';
import { logitsFromProbs, probsFromLogits } from '../../src/metrics/softmax.js';
import { Rng } from '../../src/util/rng.js';
import { randomLabels, randomLogits } from './helpers.js';

describe('nll', () => {
  it.each([2, 3, 10, 1000])('uniform logits over K = %i classes give log K', (k) => {
    const n = 4;
    const labels = Array.from({ length: n }, (_, i) => i % k);
    expect(nll({ data: new Float64Array(n * k).fill(3.5), n, k }, labels)).toBeCloseTo(Math.log(k), 12);
  });

  it.each([
    { logits: [0, Math.log(3)], label: 1, expected: -Math.log(3 / 4) },
    { logits: [0, Math.log(3)], label: 0, expected: -Math.log(1 / 4) },
    { logits: [1000, 0], label: 1, expected: 1000 },
    { logits: [2, 1, 0], label: 2, expected: Math.log(Math.exp(2) + Math.exp(1) + 1) },
  ])('hand case logits $logits, label $label', ({ logits, label, expected }) => {
    expect(nll({ data: logits, n: 1, k: logits.length }, [label])).toBeCloseTo(expected, 10);
  });

  it('ensemble, Gibbs and member NLL on a hand case', () => {
    // members [0.2, 0.8] and [0.6, 0.4]; label 1 → p̄(y) = 0.6
    const z = logitsFromProbs({ data: [0.2, 0.8, 0.6, 0.4], n: 1, k: 2, m: 2 });
    expect(ensembleNll(z, [1])).toBeCloseTo(-Math.log(0.6), 14);
    expect(memberNlls(z, [1])).toEqual([expect.closeTo(-Math.log(0.8), 14), expect.closeTo(-Math.log(0.4), 14)]);
    expect(gibbsNll(z, [1])).toBeCloseTo((-Math.log(0.8) - Math.log(0.4)) / 2, 14);
  });

  it.each([1, 2, 3, 4])('ensemble NLL ≤ Gibbs NLL (Jensen) on random data, seed %i', (seed) => {
    const rng = new Rng(seed);
    const z = randomLogits(rng, 200, 6, 2 + seed);
    const y = randomLabels(rng, 200, 6);
    expect(ensembleNll(z, y)).toBeLessThanOrEqual(gibbsNll(z, y) + 1e-12);
    expect(gibbsNll(z, y) - ensembleNll(z, y)).toBeGreaterThan(1e-3);
  });

  it('ensemble NLL = Gibbs NLL = single NLL when members are identical', () => {
    const rng = new Rng(9);
    const one = randomLogits(rng, 100, 5);
    const y = randomLabels(rng, 100, 5);
    const three = { data: new Float64Array(300 * 5), n: 100, k: 5, m: 3 };
    for (let j = 0; j < 3; j++) three.data.set(one.data as Float64Array, j * 500);
    const single = nll(one, y);
    expect(ensembleNll(three, y)).toBeCloseTo(single, 12);
    expect(gibbsNll(three, y)).toBeCloseTo(single, 12);
  });

  it('rejects labels outside [0, K) naming the index', () => {
    expect(() => nll({ data: [0, 0, 0, 0], n: 2, k: 2 }, [0, 2])).toThrow(/labels\[1\] = 2/);
  });
});

describe('brier', () => {
  it.each([
    { name: 'one-hot correct', p: [1, 0, 0], y: 0, expected: 0 },
    { name: 'one-hot wrong', p: [0, 1, 0], y: 0, expected: 2 },
    { name: 'hand case', p: [0.7, 0.2, 0.1], y: 0, expected: 0.09 + 0.04 + 0.01 },
    { name: 'uniform K=4', p: [0.25, 0.25, 0.25, 0.25], y: 3, expected: 1 - 1 / 4 },
  ])('$name', ({ p, y, expected }) => {
    expect(brier({ data: p, n: 1, k: p.length }, [y])).toBeCloseTo(expected, 14);
  });

  it('averages members before scoring', () => {
    // p̄ = [0.4, 0.6], y = 1 → 0.16 + 0.16
    expect(brier({ data: [0.2, 0.8, 0.6, 0.4], n: 1, k: 2, m: 2 }, [1])).toBeCloseTo(0.32, 14);
  });
});

describe('accuracy', () => {
  it('hand case, including a member-averaged ensemble', () => {
    expect(accuracy({ data: [0.9, 0.1, 0.3, 0.7, 0.6, 0.4], n: 3, k: 2 }, [0, 1, 1])).toBeCloseTo(2 / 3, 15);
    // members disagree; p̄ = [0.4, 0.6] → predicts 1
    expect(accuracy({ data: [0.2, 0.8, 0.6, 0.4], n: 1, k: 2, m: 2 }, [1])).toBe(1);
  });

  it('equals the fraction of argmax hits on random logits', () => {
    const rng = new Rng(3);
    const z = randomLogits(rng, 300, 4);
    const y = randomLabels(rng, 300, 4);
    let hits = 0;
    for (let i = 0; i < 300; i++) {
      const row = Array.from(z.data).slice(i * 4, i * 4 + 4);
      if (row.indexOf(Math.max(...row)) === y[i]) hits++;
    }
    expect(accuracy(probsFromLogits(z), y)).toBe(hits / 300);
  });
});
