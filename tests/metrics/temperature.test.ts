import { describe, expect, it } from 'vitest';
import { applyTemperature, fitTemperature } from '../../src/metrics/temperature.js';
import { ensembleNll, memberNlls, nll } from '../../src/metrics/likelihood.js';
import { softmax } from '../../src/metrics/softmax.js';
import type { Logits } from '../../src/metrics/types.js';
import { Rng } from '../../src/util/rng.js';
import { randomLabels, randomLogits, sampleClass } from './helpers.js';

/** Labels drawn from softmax(z); the returned logits are z·tTrue, so the right temperature is tTrue. */
function generated(rng: Rng, n: number, k: number, tTrue: number): { logits: Logits; labels: Int32Array } {
  const z = randomLogits(rng, n, k, undefined, 2);
  const p = softmax(z);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = sampleClass(rng, p, i * k, k);
  return { logits: applyTemperature(z, 1 / tTrue), labels };
}

describe('applyTemperature', () => {
  it('divides logits by T, per member when given a list', () => {
    const z = { data: [2, 4, 6, 8], n: 1, k: 2, m: 2 };
    expect(Array.from(applyTemperature(z, 2).data)).toEqual([1, 2, 3, 4]);
    expect(Array.from(applyTemperature(z, [2, 4]).data)).toEqual([1, 2, 1.5, 2]);
    expect(() => applyTemperature(z, [1])).toThrow(/1 temperatures for 2 members/);
    expect(() => applyTemperature(z, -1)).toThrow(/positive/);
  });
});

describe('fitTemperature (single model)', () => {
  it.each([0.5, 1, 2, 3])('recovers T_true = %f from logits z·T_true with labels ~ softmax(z)', (tTrue) => {
    const { logits, labels } = generated(new Rng(100 + tTrue * 10), 20000, 10, tTrue);
    const fit = fitTemperature(logits, labels);
    expect(fit.mode).toBe('single');
    expect(Math.abs(fit.temperatures[0]! / tTrue - 1)).toBeLessThan(0.05);
  });

  it.each([1, 2, 3, 4, 5, 6])('never raises NLL on the fit split and sits at a minimum (seed %i)', (seed) => {
    const rng = new Rng(seed);
    // random labels unrelated to logits push T to large values; scale varies the case
    const logits = randomLogits(rng, 300, 5, undefined, seed);
    const labels = randomLabels(rng, 300, 5);
    const fit = fitTemperature(logits, labels);
    const t = fit.temperatures[0]!;
    expect(fit.nllBefore).toBeCloseTo(nll(logits, labels), 12);
    expect(fit.nllAfter).toBeLessThanOrEqual(fit.nllBefore);
    expect(fit.nllAfter).toBeCloseTo(nll(applyTemperature(logits, t), labels), 12);
    if (t < Math.exp(5) * 0.999) {
      for (const f of [0.99, 1.01]) {
        expect(nll(applyTemperature(logits, t * f), labels)).toBeGreaterThanOrEqual(fit.nllAfter - 1e-12);
      }
    }
  });

  it('keeps T = 1 when it is the best point in the search range', () => {
    const { logits, labels } = generated(new Rng(5), 2000, 4, 1);
    const fit = fitTemperature(logits, labels, { logTRange: [0, 0.001] });
    expect(fit.nllAfter).toBeLessThanOrEqual(fit.nllBefore);
    expect(() => fitTemperature(logits, labels, { logTRange: [1, 2] })).toThrow(/containing 0/);
  });

  it('falls back to T = 1 when a coarse search only visits worse points', () => {
    // tolerance 20 stops the search after its first probes (log T ≈ ±1.18 and the ends ±5),
    // all worse than T = 1 on data generated at T = 1
    const { logits, labels } = generated(new Rng(6), 3000, 4, 1);
    const fit = fitTemperature(logits, labels, { tolerance: 20 });
    expect(fit.temperatures).toEqual([1]);
    expect(fit.nllAfter).toBe(fit.nllBefore);
  });
});

describe('fitTemperature (ensembles)', () => {
  function stack(parts: Logits[]): Logits {
    const { n, k } = parts[0]!;
    const data = new Float64Array(parts.length * n * k);
    parts.forEach((p, j) => data.set(p.data as Float64Array, j * n * k));
    return { data, n, k, m: parts.length };
  }

  it('per-member recovers each member’s own temperature', () => {
    const rng = new Rng(7);
    const z = randomLogits(rng, 15000, 8, undefined, 2);
    const p = softmax(z);
    const labels = new Int32Array(15000);
    for (let i = 0; i < 15000; i++) labels[i] = sampleClass(rng, p, i * 8, 8);
    const tTrue = [0.7, 1.5, 2.5];
    const ens = stack(tTrue.map((t) => applyTemperature(z, 1 / t)));
    const fit = fitTemperature(ens, labels, { mode: 'per-member' });
    expect(fit.mode).toBe('per-member');
    fit.temperatures.forEach((t, j) => expect(Math.abs(t / tTrue[j]! - 1)).toBeLessThan(0.05));
    const before = memberNlls(ens, labels);
    const after = memberNlls(applyTemperature(ens, fit.temperatures), labels);
    after.forEach((a, j) => expect(a).toBeLessThanOrEqual(before[j]!));
    expect(fit.ensembleNllBefore).toBeCloseTo(ensembleNll(ens, labels), 12);
  });

  it('pooled recovers the shared temperature of identical members and never raises ensemble NLL', () => {
    const { logits, labels } = generated(new Rng(8), 15000, 6, 2);
    const fit = fitTemperature(stack([logits, logits]), labels, { mode: 'pooled' });
    expect(fit.temperatures).toHaveLength(1);
    expect(Math.abs(fit.temperatures[0]! / 2 - 1)).toBeLessThan(0.05);
    expect(fit.nllAfter).toBeLessThanOrEqual(fit.nllBefore);
    expect(fit.ensembleNllAfter).toBe(fit.nllAfter);
  });

  it('requires an explicit mode for ensembles', () => {
    const rng = new Rng(9);
    expect(() => fitTemperature(randomLogits(rng, 10, 3, 2), randomLabels(rng, 10, 3))).toThrow(/per-member.*pooled/);
  });
});
