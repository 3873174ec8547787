import { describe, expect, it } from 'vitest';
import { expertCapacity, expertChoiceCapacity, fuzzyCeil, fuzzyRound } from '../../src/vmoe/capacity.js';

const upTo4 = (n: number): number => n + ((4 - (n % 4)) % 4);

describe('expertCapacity', () => {
  // [S, K, c, E]; the ideal value S·K·c/E in these rows is not hit by FP fuzz, so the plain formulas apply.
  const table: [number, number, number, number][] = [
    [400, 2, 1.05, 8],
    [400, 1, 1.0, 8],
    [3, 2, 1.0, 3],
    [128, 2, 1.25, 8],
    [197 * 8, 2, 1.05, 8],
    [50, 1, 0.5, 8],
    [10, 1, 0.1, 32],
    [17, 2, 2.0, 3],
  ];
  it.each(table)('S=%i K=%i c=%f E=%i: multiple-of-4 / none / round', (S, K, c, E) => {
    const ideal = (S * K * c) / E;
    expect(expertCapacity({ groupSize: S, numExperts: E, k: K, capacityFactor: c })).toBe(upTo4(Math.ceil(ideal)));
    expect(expertCapacity({ groupSize: S, numExperts: E, k: K, capacityFactor: c, rounding: 'none' })).toBe(
      Math.ceil(ideal),
    );
    if (Math.round(ideal) >= 1) {
      expect(expertCapacity({ groupSize: S, numExperts: E, k: K, capacityFactor: c, rounding: 'round' })).toBe(
        Math.round(ideal),
      );
    }
  });

  it('hand cases', () => {
    // 400·2·1.05/8 = 105 → ceil 105 → next multiple of 4 is 108
    expect(expertCapacity({ groupSize: 400, numExperts: 8, k: 2, capacityFactor: 1.05 })).toBe(108);
    expect(expertCapacity({ groupSize: 400, numExperts: 8, k: 2, capacityFactor: 1.05, rounding: 'none' })).toBe(105);
    // 50·1·0.5/8 = 3.125 → ceil 4; round 3
    expect(expertCapacity({ groupSize: 50, numExperts: 8, k: 1, capacityFactor: 0.5, rounding: 'none' })).toBe(4);
    expect(expertCapacity({ groupSize: 50, numExperts: 8, k: 1, capacityFactor: 0.5, rounding: 'round' })).toBe(3);
    // 10·1·0.1/32 = 0.03125 → ceil 1 → 4
    expect(expertCapacity({ groupSize: 10, numExperts: 32, k: 1, capacityFactor: 0.1 })).toBe(4);
    // 20·1·0.5/8 = 1.25 → round 1; 4·1·1.25/2 = 2.5 → round half up 3
    expect(expertCapacity({ groupSize: 20, numExperts: 8, k: 1, capacityFactor: 0.5, rounding: 'round' })).toBe(1);
    expect(expertCapacity({ groupSize: 4, numExperts: 2, k: 1, capacityFactor: 1.25, rounding: 'round' })).toBe(3);
  });

  it('does not add a slot for floating-point fuzz', () => {
    // In doubles 100·1·1.1/10 = 11.000000000000002; the intended value is exactly 11.
    expect((100 * 1 * 1.1) / 10).toBeGreaterThan(11);
    expect(expertCapacity({ groupSize: 100, numExperts: 10, k: 1, capacityFactor: 1.1, rounding: 'none' })).toBe(11);
    expect(expertCapacity({ groupSize: 100, numExperts: 1, k: 1, capacityFactor: 1.1, rounding: 'none' })).toBe(110);
    // The helpers on values a few ULPs off an integer / half-integer, and on values genuinely off.
    expect(fuzzyCeil(12.000000000000002)).toBe(12);
    expect(fuzzyCeil(12.0001)).toBe(13);
    expect(fuzzyCeil(11.999999999999998)).toBe(12);
    expect(fuzzyRound(2.4999999999999996)).toBe(3);
    expect(fuzzyRound(2.4999)).toBe(2);
    expect(fuzzyRound(2.5)).toBe(3);
  });

  it('uses an absolute capacity as is', () => {
    expect(expertCapacity({ groupSize: 3, numExperts: 3, k: 2, capacity: 2 })).toBe(2);
    expect(expertCapacity({ groupSize: 3, numExperts: 3, k: 2, capacity: 7, rounding: 'multiple-of-4' })).toBe(7);
  });

  it('rejects bad input with errors naming the field', () => {
    const base = { groupSize: 8, numExperts: 4, k: 1 };
    expect(() => expertCapacity({ ...base })).toThrow(/exactly one of capacity \/ capacityFactor/);
    expect(() => expertCapacity({ ...base, capacity: 2, capacityFactor: 1 })).toThrow(/exactly one/);
    expect(() => expertCapacity({ ...base, capacity: 0 })).toThrow(/capacity must be an integer ≥ 1/);
    expect(() => expertCapacity({ ...base, capacity: 1.5 })).toThrow(/capacity must be an integer ≥ 1/);
    expect(() => expertCapacity({ ...base, capacityFactor: 0 })).toThrow(/capacityFactor must be/);
    expect(() => expertCapacity({ ...base, capacityFactor: NaN })).toThrow(/capacityFactor must be/);
    expect(() => expertCapacity({ ...base, groupSize: 0, capacityFactor: 1 })).toThrow(/groupSize/);
    expect(() => expertCapacity({ ...base, numExperts: 2.5, capacityFactor: 1 })).toThrow(/numExperts/);
    expect(() => expertCapacity({ ...base, k: 0, capacityFactor: 1 })).toThrow(/\bk must/);
    expect(() => expertCapacity({ ...base, capacityFactor: 1, rounding: 'floor' as unknown as 'round' })).toThrow(
      /rounding must be one of/,
    );
    // 8·1·0.2/4 = 0.4 → round 0 < 1
    expect(() => expertCapacity({ ...base, capacityFactor: 0.2, rounding: 'round' })).toThrow(
      /capacity 0 < 1 from groupSize=8, k=1, capacityFactor=0.2, numExperts=4/,
    );
  });
});

describe('expertChoiceCapacity', () => {
  const table: [number, number, number][] = [
    [400, 1.0, 8],
    [400, 1.05, 8],
    [10, 0.5, 3],
    [7, 2, 4],
    [3, 0.01, 8],
  ];
  it.each(table)('S=%i c=%f E=%i → ceil(S·c/E)', (S, c, E) => {
    expect(expertChoiceCapacity({ groupSize: S, numExperts: E, capacityFactor: c })).toBe(Math.ceil((S * c) / E));
  });
  it('hand case and fuzz', () => {
    expect(expertChoiceCapacity({ groupSize: 400, numExperts: 8, capacityFactor: 1.05 })).toBe(53); // 52.5 → 53
    expect(expertChoiceCapacity({ groupSize: 100, numExperts: 10, capacityFactor: 1.1 })).toBe(11);
    expect(() => expertChoiceCapacity({ groupSize: 4, numExperts: 2, capacityFactor: -1 })).toThrow(/capacityFactor/);
  });
});
