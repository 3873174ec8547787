import { describe, expect, it } from 'vitest';
import {
  averageMembers,
  ensembleLogProbs,
  logSoftmax,
  logitsFromProbs,
  logsumexp,
  meanProbs,
  softmax,
} from '../../src/metrics/softmax.js';
import { Rng } from '../../src/util/rng.js';
import { randomLogits } from './helpers.js';

describe('logsumexp', () => {
  it.each([
    { x: [0, 0], expected: Math.log(2) },
    { x: [1000, 1000], expected: 1000 + Math.log(2) },
    { x: [-1000, -1000, -1000], expected: -1000 + Math.log(3) },
    { x: [0, -Infinity], expected: 0 },
    { x: [-Infinity, -Infinity], expected: -Infinity },
    { x: [Math.log(1), Math.log(2), Math.log(3)], expected: Math.log(6) },
  ])('logsumexp($x) = $expected', ({ x, expected }) => {
    const v = logsumexp(x);
    if (Number.isFinite(expected)) expect(v).toBeCloseTo(expected, 12);
    else expect(v).toBe(expected);
  });

  it('respects offset and length', () => {
    expect(logsumexp([99, Math.log(2), Math.log(5), 99], 1, 2)).toBeCloseTo(Math.log(7), 12);
  });
});

describe('logSoftmax / softmax', () => {
  it('hand case [0, log 3] → [1/4, 3/4]', () => {
    const p = softmax({ data: [0, Math.log(3)], n: 1, k: 2 });
    expect(p[0]).toBeCloseTo(0.25, 14);
    expect(p[1]).toBeCloseTo(0.75, 14);
  });

  it('rows sum to one and are invariant to adding a constant per row', () => {
    const rng = new Rng(1);
    const z = randomLogits(rng, 20, 7, 3, 30);
    const shifted = Float64Array.from(z.data as Float64Array);
    for (let r = 0; r < 60; r++) for (let c = 0; c < 7; c++) shifted[r * 7 + c]! += 500 * (r - 30);
    const a = logSoftmax(z);
    const b = logSoftmax({ ...z, data: shifted });
    for (let r = 0; r < 60; r++) {
      let s = 0;
      for (let c = 0; c < 7; c++) s += Math.exp(a[r * 7 + c]!);
      expect(s).toBeCloseTo(1, 12);
    }
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 9);
  });

  it('extreme logits stay finite in log space', () => {
    const l = logSoftmax({ data: [1000, 0], n: 1, k: 2 });
    expect(l[1]).toBeCloseTo(-1000, 10);
    expect(l[0]).toBe(0);
  });

  it('rejects data of the wrong length, naming the dims', () => {
    expect(() => logSoftmax({ data: [1, 2, 3], n: 2, k: 2 })).toThrow(/length 3, expected m·n·k = 1·2·2 = 4/);
  });
});

describe('ensemble mean', () => {
  it('p̄ of members [0.2,0.8] and [0.6,0.4] is [0.4,0.6]', () => {
    const probs = { data: [0.2, 0.8, 0.6, 0.4], n: 1, k: 2, m: 2 };
    const pbar = meanProbs(logitsFromProbs(probs));
    expect(pbar.data[0]).toBeCloseTo(0.4, 14);
    expect(pbar.data[1]).toBeCloseTo(0.6, 14);
    const avg = averageMembers(probs);
    expect(avg.data[0]).toBeCloseTo(0.4, 15);
    expect(avg.m).toBeUndefined();
  });

  it('log p̄ equals log of the averaged softmax on random members', () => {
    const rng = new Rng(2);
    const z = randomLogits(rng, 15, 5, 4);
    const logpbar = ensembleLogProbs(z);
    const avg = averageMembers({ ...z, data: softmax(z) });
    for (let e = 0; e < 75; e++) expect(logpbar[e]).toBeCloseTo(Math.log(avg.data[e]!), 12);
  });
});
