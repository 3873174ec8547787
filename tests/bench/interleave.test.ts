import { describe, expect, it } from 'vitest';
import { timeInterleaved } from '../../bench/lib/cases.js';

describe('timeInterleaved', () => {
  it('calls every variant warmup + runs times, each round starting at the next variant', () => {
    const calls: number[] = [];
    const fns = [0, 1, 2].map((k) => () => {
      calls.push(k);
    });
    const r = timeInterleaved(fns, { warmup: 1, runs: 4 });
    expect(calls.slice(0, 3)).toEqual([0, 1, 2]); // warm-up round
    expect(calls.slice(3)).toEqual([0, 1, 2, 1, 2, 0, 2, 0, 1, 0, 1, 2]);
    for (const k of [0, 1, 2]) expect(calls.filter((c) => c === k)).toHaveLength(5);
    expect(r.median).toHaveLength(3);
    r.min.forEach((m, k) => expect(m).toBeLessThanOrEqual(r.median[k]!));
  });
  it('orders variants by their cost', () => {
    const spin = (ms: number) => () => {
      const t0 = performance.now();
      while (performance.now() - t0 < ms);
    };
    const r = timeInterleaved([spin(8), spin(1)], { warmup: 0, runs: 5 });
    expect(r.min[0]!).toBeGreaterThanOrEqual(8);
    expect(r.min[1]!).toBeGreaterThanOrEqual(1);
    expect(r.min[0]!).toBeGreaterThan(r.min[1]!);
  });
});
