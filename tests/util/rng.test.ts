import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng.js';

describe('Rng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng(7), b = new Rng(7), c = new Rng(8);
    const da = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(da);
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(da);
  });
  it('resumes exactly from a saved state', () => {
    const a = new Rng(3);
    for (let i = 0; i < 10; i++) a.uniform();
    const b = new Rng(a.getState());
    expect(Array.from({ length: 8 }, () => b.normal())).toEqual(Array.from({ length: 8 }, () => a.normal()));
  });
  it('uniform has mean 1/2 and variance 1/12; normal has mean 0 and variance 1', () => {
    const r = new Rng(1);
    const n = 200_000;
    let su = 0, su2 = 0, sn = 0, sn2 = 0;
    for (let i = 0; i < n; i++) {
      const u = r.uniform(); su += u; su2 += u * u;
      const z = r.normal(); sn += z; sn2 += z * z;
    }
    // tolerances: ~5 standard errors
    expect(Math.abs(su / n - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(su2 / n - (su / n) ** 2 - 1 / 12)).toBeLessThan(2e-3);
    expect(Math.abs(sn / n)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(sn2 / n - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
  });
  it('permutation contains every index once', () => {
    const p = Array.from(new Rng(5).permutation(1000)).sort((x, y) => x - y);
    expect(p).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });
});
