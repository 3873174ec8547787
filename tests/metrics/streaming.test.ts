/** Streaming accumulators: any batching of the examples gives the one-shot numbers. */
import { describe, expect, it } from 'vitest';
import { DiversityAccumulator, ensembleDiversity } from '../../src/metrics/diversity.js';
import {
  AccuracyAccumulator,
  BrierAccumulator,
  NllAccumulator,
  accuracy,
  brier,
  gibbsNll,
  memberNlls,
  nll,
} from '../../src/metrics/likelihood.js';
import { logitsFromProbs, probsFromLogits } from '../../src/metrics/softmax.js';
import type { ClassScores } from '../../src/metrics/types.js';
import { Rng } from '../../src/util/rng.js';
import { randomLabels, randomLogits } from './helpers.js';

/** Examples [a, b) of every member: (M, b−a, K). */
function rows(x: ClassScores, a: number, b: number): ClassScores {
  const m = x.m ?? 1;
  const data = new Float64Array(m * (b - a) * x.k);
  for (let j = 0; j < m; j++)
    data.set(Array.from(x.data).slice((j * x.n + a) * x.k, (j * x.n + b) * x.k), j * (b - a) * x.k);
  return x.m === undefined ? { data, n: b - a, k: x.k } : { data, n: b - a, k: x.k, m };
}

/** Uneven batches [start, end) covering 0..n: sizes 1, 7, 2, 30, … drawn at random (never one batch). */
function batches(rng: Rng, n: number): [number, number][] {
  const out: [number, number][] = [[0, 1]];
  for (let a = 1; a < n; ) {
    const b = Math.min(n, a + 1 + rng.int(40));
    out.push([a, b]);
    a = b;
  }
  return out;
}

function expectRel(actual: number, expected: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-12 * Math.abs(expected));
}

const cases = [
  { name: 'single model, K = 10', n: 301, k: 10, m: undefined },
  { name: 'ensemble M = 2, K = 3', n: 257, k: 3, m: 2 },
  { name: 'ensemble M = 5, K = 7 (sharp logits)', n: 190, k: 7, m: 5, scale: 6 },
];

describe.each(cases)('streaming = one-shot: $name', ({ n, k, m, scale }) => {
  const rng = new Rng(n * 31 + k);
  const z = randomLogits(rng, n, k, m, scale);
  const y = randomLabels(rng, n, k);
  const p = probsFromLogits(z);
  const parts = batches(rng, n);

  it('the batches are uneven and cover every example once', () => {
    expect(parts.length).toBeGreaterThan(3);
    expect(new Set(parts.map(([a, b]) => b - a)).size).toBeGreaterThan(2);
    expect(parts.reduce((s, [a, b]) => s + b - a, 0)).toBe(n);
  });

  it('accuracy and Brier', () => {
    const acc = new AccuracyAccumulator();
    const br = new BrierAccumulator();
    for (const [a, b] of parts) {
      acc.update(rows(p, a, b), y.subarray(a, b));
      br.update(rows(p, a, b), y.subarray(a, b));
    }
    expect(acc.count).toBe(n);
    expectRel(acc.result(), accuracy(p, y));
    expectRel(br.result(), brier(p, y));
  });

  it('NLL: ensemble (or single), Gibbs and per member', () => {
    const acc = new NllAccumulator();
    for (const [a, b] of parts) acc.update(rows(z, a, b), y.subarray(a, b));
    const r = acc.result();
    expectRel(r.nll, nll(z, y));
    expectRel(r.gibbsNll, gibbsNll(z, y));
    const per = memberNlls(z, y);
    expect(r.memberNlls).toHaveLength(m ?? 1);
    r.memberNlls.forEach((v, j) => expectRel(v, per[j]!));
  });

  it.runIf(m !== undefined)('diversity: disagreement, pairwise KL, mutual information, ambiguity', () => {
    const acc = new DiversityAccumulator();
    for (const [a, b] of parts) acc.update(rows(z, a, b), y.subarray(a, b));
    const s = acc.result();
    const o = ensembleDiversity(z, y);
    for (const key of [
      'disagreement',
      'normalizedDisagreement',
      'pairwiseKl',
      'mutualInformation',
      'ambiguity',
      'gibbsNll',
      'ensembleNll',
    ] as const) {
      expectRel(s[key], o[key]);
    }
    expect(s.convention).toBe(o.convention);
  });
});

describe('streaming hand cases and errors', () => {
  it('NLL of members [0.2, 0.8] and [0.6, 0.4] over two batches of one example each', () => {
    // example 1: label 1 → p̄(y) = 0.6; example 2: members [0.5, 0.5] twice, label 0 → p̄(y) = 0.5
    const acc = new NllAccumulator()
      .update(logitsFromProbs({ data: [0.2, 0.8, 0.6, 0.4], n: 1, k: 2, m: 2 }), [1])
      .update(logitsFromProbs({ data: [0.5, 0.5, 0.5, 0.5], n: 1, k: 2, m: 2 }), [0]);
    const r = acc.result();
    expect(r.nll).toBeCloseTo((-Math.log(0.6) - Math.log(0.5)) / 2, 14);
    expect(r.memberNlls[0]).toBeCloseTo((-Math.log(0.8) - Math.log(0.5)) / 2, 14);
    expect(r.memberNlls[1]).toBeCloseTo((-Math.log(0.4) - Math.log(0.5)) / 2, 14);
    expect(r.gibbsNll).toBeCloseTo((r.memberNlls[0]! + r.memberNlls[1]!) / 2, 15);
  });

  it('accuracy over batches of 3 and 1 examples: 3 right of 4', () => {
    const acc = new AccuracyAccumulator()
      .update({ data: [0.9, 0.1, 0.2, 0.8, 0.6, 0.4], n: 3, k: 2 }, [0, 1, 1])
      .update({ data: [0.3, 0.7], n: 1, k: 2 }, [1]);
    expect(acc.result()).toBe(3 / 4);
  });

  it.each([
    { name: 'accuracy', make: () => new AccuracyAccumulator() },
    { name: 'Brier', make: () => new BrierAccumulator() },
    { name: 'NLL', make: () => new NllAccumulator() },
  ])('$name: result before any update throws; a batch with another K or M is refused', ({ make }) => {
    const acc = make();
    expect(() => acc.result()).toThrow(/no examples yet/);
    acc.update({ data: [0.5, 0.5], n: 1, k: 2 }, [0]);
    expect(() => acc.update({ data: [0.2, 0.3, 0.5], n: 1, k: 3 }, [0])).toThrow(/k = 3 differs from k = 2/);
    expect(() => acc.update({ data: [0.5, 0.5, 0.5, 0.5], n: 1, k: 2, m: 2 }, [0])).toThrow(
      /m = 2 members but earlier updates had m = 1/,
    );
  });

  it('diversity needs two members, and the same M in every batch', () => {
    const acc = new DiversityAccumulator();
    expect(() => acc.update({ data: [0, 1], n: 1, k: 2 }, [0])).toThrow(/m ≥ 2/);
    expect(() => acc.result()).toThrow(/no examples yet/);
    acc.update({ data: [0, 1, 1, 0], n: 1, k: 2, m: 2 }, [0]);
    expect(() => acc.update({ data: [0, 1, 1, 0, 0, 0], n: 1, k: 2, m: 3 }, [0])).toThrow(/m = 3 members/);
    // one example, the two members disagree: disagreement 1, ensemble p̄ = [1/2, 1/2]
    expect(acc.result().disagreement).toBe(1);
  });
});
