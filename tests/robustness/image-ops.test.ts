import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng.js';
import {
  borderIndex,
  centreZoom,
  boxDownsample,
  gaussianKernel1d,
  hsvToRgb,
  lineKernel,
  logGamma,
  nearestUpsample,
  plasmaFractal,
  poisson,
  rgbToHsv,
  sampleBilinear,
  warpPlane,
} from '../../src/robustness/image-ops.js';
import { diskKernel, zoomFactors } from '../../src/robustness/blur.js';
import { mean, variance } from './helpers.js';

describe('borderIndex', () => {
  it.each([
    // n = 4: reflect is d c b a | a b c d | d c b a
    [-1, 'reflect', 0],
    [-2, 'reflect', 1],
    [4, 'reflect', 3],
    [5, 'reflect', 2],
    [-5, 'reflect', 3],
    [-3, 'nearest', 0],
    [9, 'nearest', 3],
    [-1, 'constant', -1],
    [2, 'constant', 2],
  ] as const)('index %d with %s → %d', (i, border, expected) => {
    expect(borderIndex(i, 4, border)).toBe(expected);
  });
});

describe('gaussianKernel1d', () => {
  it.each([0.5, 1, 2.5])('σ = %f: sums to 1, variance σ² (up to truncation)', (sigma) => {
    const k = gaussianKernel1d(sigma);
    const r = (k.length - 1) / 2;
    let sum = 0;
    let second = 0;
    k.forEach((v, i) => {
      sum += v;
      second += v * (i - r) ** 2;
    });
    expect(sum).toBeCloseTo(1, 6);
    // sampled Gaussian: variance differs from σ² by the discretisation (≤ 1% for σ ≥ 1)
    if (sigma >= 1) expect(second).toBeCloseTo(sigma * sigma, 2);
  });
  it('σ ≤ 0 is the identity', () => expect([...gaussianKernel1d(0)]).toEqual([1]));
});

describe('resampling', () => {
  it('bilinear sample at a half-pixel is the mean of the neighbours', () => {
    const p = Float32Array.of(0, 1, 2, 3); // (2, 2)
    expect(sampleBilinear(p, 2, 2, 0.5, 0.5, 'nearest')).toBeCloseTo(1.5, 6);
    expect(sampleBilinear(p, 2, 2, 0, 1, 'constant')).toBe(1);
    expect(sampleBilinear(p, 2, 2, -1, 0, 'constant', 0.25)).toBe(0.25);
  });
  it('box downsample by 2 averages 2×2 blocks and preserves the mean for fractional factors', () => {
    const p = Float32Array.from({ length: 16 }, (_, i) => i); // (4, 4)
    expect([...boxDownsample(p, 4, 4, 2, 2)]).toEqual([2.5, 4.5, 10.5, 12.5]);
    const q = Float32Array.from({ length: 49 }, (_, i) => (i * 7) % 11);
    expect(mean(boxDownsample(q, 7, 7, 5, 3))).toBeCloseTo(mean(q), 5);
  });
  it('nearest upsample repeats each source pixel over the pixels whose centres fall in it', () => {
    const p = Float32Array.of(1, 2, 3, 4); // (2, 2)
    expect([...nearestUpsample(p, 2, 2, 4, 4)]).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  });
  it('zoom factors: 1 … max inclusive in steps', () => {
    expect(zoomFactors({ maxZoom: 1.05, step: 0.01 }).length).toBe(6);
    expect(zoomFactors({ maxZoom: 1.25, step: 0.01 }).at(-1)).toBeCloseTo(1.25, 10);
  });
});

describe('kernels', () => {
  it.each([
    [0.3, 0.4],
    [1, 0.2],
    [1.3125, 0.0875],
    [3, 0],
  ])('disk(%f, alias %f) sums to 1 and is symmetric', (r, a) => {
    const { kernel, size } = diskKernel(r, a);
    expect(mean(kernel) * kernel.length).toBeCloseTo(1, 5);
    for (let i = 0; i < size; i++)
      for (let j = 0; j < size; j++) {
        expect(kernel[i * size + j]).toBeCloseTo(kernel[j * size + (size - 1 - i)]!, 6); // 90° rotation
      }
  });
  it('disk radius 3 without alias: area ≈ π·9 cells, flat inside', () => {
    const { kernel, size } = diskKernel(3, 0);
    const c = (size - 1) / 2;
    expect(1 / kernel[c * size + c]!).toBeCloseTo(Math.PI * 9, 0);
  });
  it('motion line kernel: half Gaussian weights along the angle, 2·ceil(r)+1 taps at most', () => {
    const taps = lineKernel(3, 2, 90);
    expect(taps.length).toBe(7);
    const raw = [0, 1, 2, 3, 4, 5, 6].map((i) => Math.exp(-(i * i) / 8));
    const total = raw.reduce((a, b) => a + b);
    taps.forEach((t, i) => {
      expect(t.weight).toBeCloseTo(raw[i]! / total, 10);
      expect(t.dy).toBeCloseTo(i, 10);
      expect(t.dx).toBeCloseTo(0, 10);
    });
    const g = lineKernel(6, 1, 0);
    expect(g[1]!.weight / g[0]!.weight).toBeCloseTo(Math.exp(-0.5), 10);
  });
});

describe('plasma fractal', () => {
  it('is normalised to exactly [0, 1] and deterministic per seed', () => {
    const a = plasmaFractal(32, 2, new Rng(3));
    expect(Math.min(...a)).toBe(0);
    expect(Math.max(...a)).toBe(1);
    expect(plasmaFractal(32, 2, new Rng(3))).toEqual(a);
    expect(plasmaFractal(32, 2, new Rng(4))).not.toEqual(a);
  });
  it('a larger decay gives a smoother field (smaller neighbour differences)', () => {
    const rough = (d: number): number => {
      let s = 0;
      for (let seed = 0; seed < 5; seed++) {
        const f = plasmaFractal(64, d, new Rng(seed));
        for (let i = 0; i < 64 * 63; i++) s += Math.abs(f[i + 64]! - f[i]!);
      }
      return s;
    };
    expect(rough(3)).toBeLessThan(rough(1.5));
  });
});

describe('colour', () => {
  it.each([
    [
      [1, 0, 0],
      [0, 1, 1],
    ],
    [
      [0, 1, 0],
      [1 / 3, 1, 1],
    ],
    [
      [0, 0, 1],
      [2 / 3, 1, 1],
    ],
    [
      [0.5, 0.5, 0.5],
      [0, 0, 0.5],
    ],
    [
      [0.2, 0.4, 0.6],
      [7 / 12, 2 / 3, 0.6],
    ],
  ])('rgb %j ↔ hsv %j', (rgb, hsv) => {
    const got = rgbToHsv(rgb[0]!, rgb[1]!, rgb[2]!);
    got.forEach((v, i) => expect(v).toBeCloseTo(hsv[i]!, 10));
    hsvToRgb(got[0], got[1], got[2]).forEach((v, i) => expect(v).toBeCloseTo(rgb[i]!, 10));
  });
});

describe('poisson and logGamma', () => {
  it.each([
    [1, 1],
    [4, 24],
    [10, 3628800],
  ])('logGamma(%d + 1) = log %d', (k, factorial) => {
    expect(logGamma(k + 1)).toBeCloseTo(Math.log(factorial), 8);
  });
  it('logGamma(0.5) = log √π', () => expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 10));
  it.each([0.7, 4, 25, 250])('Poisson(%f): mean and variance λ', (lambda) => {
    const rng = new Rng(11);
    const n = 20000;
    const xs = Array.from({ length: n }, () => poisson(lambda, rng));
    expect(xs.every((x) => Number.isInteger(x) && x >= 0)).toBe(true);
    expect(Math.abs(mean(xs) - lambda)).toBeLessThan(4 * Math.sqrt(lambda / n));
    expect(variance(xs) / lambda).toBeGreaterThan(0.95);
    expect(variance(xs) / lambda).toBeLessThan(1.05);
  });
});

describe('centreZoom (precomputed taps)', () => {
  it('equals the generic warpPlane with the centre-zoom map and edge borders, bit for bit', () => {
    for (const [h, w] of [
      [28, 28],
      [17, 32],
      [5, 3],
    ] as const) {
      const plane = Float32Array.from({ length: h * w }, (_, i) => Math.sin(i * 12.9898) * 0.5 + 0.5);
      for (const zoom of [1, 1.01, 1.37, 2.5, 0.8]) {
        const cy = (h - 1) / 2;
        const cx = (w - 1) / 2;
        const want = warpPlane(
          plane,
          h,
          w,
          (y, x, to) => {
            to[0] = cy + (y - cy) / zoom;
            to[1] = cx + (x - cx) / zoom;
          },
          'nearest',
        );
        // twice: the second call reads the cached plan
        for (let r = 0; r < 2; r++)
          expect(Array.from(centreZoom(plane, h, w, zoom)), `${h}x${w} @${zoom}`).toEqual(Array.from(want));
      }
    }
  });
});
