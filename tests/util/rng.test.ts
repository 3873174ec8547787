import { describe, expect, it } from 'vitest';
import { Rng, standardNormals } from '../../src/util/rng.js';
import { loadBlasAddon } from '../../src/engine/native-blas.js';

describe('Rng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng(7),
      b = new Rng(7),
      c = new Rng(8);
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
    let su = 0,
      su2 = 0,
      sn = 0,
      sn2 = 0;
    for (let i = 0; i < n; i++) {
      const u = r.uniform();
      su += u;
      su2 += u * u;
      const z = r.normal();
      sn += z;
      sn2 += z * z;
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
  it.each([200_001, 200_000])(
    'standardNormals(%i): mean 0, variance 1, odd/even neighbours uncorrelated, deterministic per seed',
    (n) => {
      const z = standardNormals(n, 11);
      expect(z.length).toBe(n);
      let s = 0,
        s2 = 0,
        pair = 0,
        fourth = 0;
      for (let i = 0; i < n; i++) {
        s += z[i]!;
        s2 += z[i]! * z[i]!;
        fourth += z[i]! ** 4;
      }
      for (let i = 0; i + 1 < n; i += 2) pair += z[i]! * z[i + 1]!;
      expect(Math.abs(s / n)).toBeLessThan(5 / Math.sqrt(n));
      expect(Math.abs(s2 / n - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
      // the two values of a Box–Muller pair are independent: E[z₁z₂] = 0 with variance 1 per pair
      expect(Math.abs(pair / Math.floor(n / 2))).toBeLessThan(5 / Math.sqrt(n / 2));
      // E[z⁴] = 3 for a normal (a uniform or mis-scaled radius would miss it); Var z⁴ = 96
      expect(Math.abs(fourth / n - 3)).toBeLessThan(5 * Math.sqrt(96 / n));
      expect(standardNormals(n, 11)).toEqual(z);
      expect(standardNormals(8, 12)).not.toEqual(z.subarray(0, 8));
      // an odd count is the prefix of the next even one
      expect(standardNormals(7, 11)).toEqual(z.subarray(0, 7));
    },
  );
});

const blas = loadBlasAddon();
describe.skipIf(!blas.addon)(
  `standardNormals with the native generator (${blas.addon ? 'addon loaded' : `skipped: ${blas.reason}`})`,
  () => {
    it.each([
      { n: 2_000_000, seed: 1, scale: 1 }, // ~24 000 wedge draws and ~50 tail draws
      { n: 25_600, seed: 7, scale: 0.125 }, // the bench router's noise: 3200 tokens × 8 experts, σ = 1/8
      { n: 1_000_003, seed: 2 ** 31 - 1, scale: 3.5 },
      { n: 1, seed: 0, scale: 1 },
      { n: 0, seed: 5, scale: 1 },
    ])('equals the JavaScript generator bit for bit: n=$n seed=$seed scale=$scale', ({ n, seed, scale }) => {
      const js = standardNormals(n, seed, scale);
      const native = standardNormals(n, seed, scale, blas.addon);
      expect(native.length).toBe(n);
      let mismatches = 0,
        tail = 0;
      for (let i = 0; i < n; i++) {
        if (!Object.is(native[i], js[i])) mismatches++;
        if (Math.abs(js[i]! / scale) > 3.442619855899) tail++;
      }
      expect(mismatches).toBe(0);
      if (n >= 1_000_000) expect(tail).toBeGreaterThan(10); // the tail branch ran
    });
    it('rejects wrong table sizes and argument types', () => {
      const addon = blas.addon!;
      const t = () => new Float64Array(128);
      expect(() =>
        addon.normals(new Uint32Array(4), t(), t(), new Float64Array(127), 3.4, 1, new Float32Array(4)),
      ).toThrow(RangeError);
      expect(() => addon.normals(new Uint32Array(3), t(), t(), t(), 3.4, 1, new Float32Array(4))).toThrow(RangeError);
      expect(() =>
        addon.normals(new Uint32Array(4), t(), t(), t(), 3.4, 1, new Float64Array(4) as unknown as Float32Array),
      ).toThrow(TypeError);
    });
  },
);
