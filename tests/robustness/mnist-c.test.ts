import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng.js';
import { MNIST_C, getMnistC, rotate, scale, shear, translate } from '../../src/robustness/mnist-c.js';
import { cannyEdges } from '../../src/robustness/canny.js';
import { CorruptionError } from '../../src/util/errors.js';
import { constantImage, mean, mnistDigits, noiseImage, toFloat } from './helpers.js';

const NAMES = Object.keys(MNIST_C);
const RANDOM = new Set([
  'shot_noise',
  'impulse_noise',
  'glass_blur',
  'motion_blur',
  'shear',
  'rotate',
  'translate',
  'fog',
  'spatter',
  'dotted_line',
  'zigzag',
]);
const run = (name: string, img: Float32Array, h: number, w: number, seed = 1, severity = 1): Float32Array =>
  MNIST_C[name]!.fn(img, h, w, 1, severity, new Rng(seed));

/** Intensity-weighted centre of mass [y, x] of a (h, w) plane. */
function centroid(p: Float32Array, w: number): [number, number] {
  let m = 0;
  let y = 0;
  let x = 0;
  p.forEach((v, i) => {
    m += v;
    y += v * Math.floor(i / w);
    x += v * (i % w);
  });
  return [y / m, x / m];
}

function dot(h: number, w: number, y: number, x: number): Float32Array {
  const img = constantImage(h, w, 1, 0);
  img[y * w + x] = 1;
  return img;
}

describe('MNIST-C registry', () => {
  it('holds the 15 MNIST-C corruptions', () => {
    expect(NAMES.sort()).toEqual([
      'brightness',
      'canny_edges',
      'dotted_line',
      'fog',
      'glass_blur',
      'impulse_noise',
      'motion_blur',
      'rotate',
      'scale',
      'shear',
      'shot_noise',
      'spatter',
      'stripe',
      'translate',
      'zigzag',
    ]);
  });
  it.each([
    ['shot_noise', 5, 3],
    ['impulse_noise', 4, 0.17],
    ['rotate', 2, 0.4],
    ['shear', 2, 0.4],
    ['translate', 3, 3],
    ['brightness', 5, 0.5],
  ])('%s uses MNIST-C level %d, constant %f', (name, level, constant) => {
    expect(MNIST_C[name]!.level).toBe(level);
    expect(MNIST_C[name]!.constant).toBe(constant);
  });
  it('unknown names and severities other than 0/1 are clear errors', () => {
    expect(() => getMnistC('rotation')).toThrow(/unknown MNIST-C corruption 'rotation'/);
    expect(() => run('rotate', noiseImage(28, 28, 1), 28, 28, 1, 2)).toThrow(CorruptionError);
  });
});

describe.each(NAMES)('MNIST-C %s: generic properties', (name) => {
  const digit = toFloat(mnistDigits(1), 0, 784);
  it('severity 0 is an equal copy; severity 1 changes the image and stays in [0, 1]', () => {
    expect(run(name, digit, 28, 28, 1, 0)).toEqual(digit);
    const out = run(name, digit, 28, 28);
    expect(out).not.toEqual(digit);
    expect(out.every((v) => v >= 0 && v <= 1)).toBe(true);
  });
  it('same seed → same output; different seeds differ for the random ones', () => {
    const a = run(name, digit, 28, 28, 3);
    expect(run(name, digit, 28, 28, 3)).toEqual(a);
    if (!RANDOM.has(name)) expect(run(name, digit, 28, 28, 4)).toEqual(a);
    else {
      // a random sign has two outcomes: some seed among a few must differ
      const differs = [4, 5, 6, 7, 8].some((s) => run(name, digit, 28, 28, s).some((v, i) => v !== a[i]));
      expect(differs).toBe(true);
    }
  });
});

describe('affine MNIST-C corruptions', () => {
  const n = 29;
  const c = 14;
  it.each(['rotate', 'shear', 'scale'])('%s keeps the centre pixel fixed', (name) => {
    for (let seed = 0; seed < 6; seed++) expect(run(name, dot(n, n, c, c), n, n, seed)[c * n + c]).toBeCloseTo(1, 10);
  });
  it.each([
    // inverse maps: output p samples c + A·(p − c), so a dot at offset o lands at A⁻¹·o
    ['rotate +0.4', (img: Float32Array) => rotate(img, n, n, 1, 0.4), [0, 6], [-6 * Math.sin(0.4), 6 * Math.cos(0.4)]],
    ['rotate −0.4', (img: Float32Array) => rotate(img, n, n, 1, -0.4), [0, 6], [6 * Math.sin(0.4), 6 * Math.cos(0.4)]],
    ['shear 0.4', (img: Float32Array) => shear(img, n, n, 1, 0.4), [5, 0], [5 / Math.cos(0.4), 5 * Math.tan(0.4)]],
    ['scale 1/0.7', (img: Float32Array) => scale(img, n, n, 1, 1 / 0.7), [0, 7], [0, 4.9]],
  ] as const)('%s moves a dot where the geometry says', (_label, f, off, expected) => {
    const out = f(dot(n, n, c + off[0], c + off[1]));
    const [y, x] = centroid(out, n);
    expect(Math.abs(y - c - expected[0])).toBeLessThan(0.3);
    expect(Math.abs(x - c - expected[1])).toBeLessThan(0.3);
  });
  it('translate by (dy, dx) moves a dot by (−dy, −dx) exactly; the MNIST-C entry picks ±3 on each axis', () => {
    const m = 28; // at 28×28 the MNIST-C shift is exactly 3 pixels
    const out = translate(dot(m, m, c, c), m, m, 1, 3, -3);
    expect(out[(c - 3) * m + c + 3]).toBe(1);
    expect(out.reduce((a, b) => a + b)).toBe(1);
    const seen = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const o = run('translate', dot(m, m, c, c), m, m, seed);
      const i = o.indexOf(1);
      seen.add(`${Math.floor(i / m) - c},${(i % m) - c}`);
    }
    expect([...seen].sort()).toEqual(['-3,-3', '-3,3', '3,-3', '3,3']);
  });
  it('rotate and shear pick both signs over seeds', () => {
    for (const name of ['rotate', 'shear']) {
      const outs = new Set<string>();
      for (let seed = 0; seed < 20; seed++)
        outs.add(
          centroid(run(name, dot(n, n, c + 5, c + 5), n, n, seed), n)
            .map((v) => v.toFixed(3))
            .join(),
        );
      expect(outs.size).toBe(2);
    }
  });
});

describe('overlay MNIST-C corruptions', () => {
  it('stripe inverts columns 0–6 and 21–27 and nothing else', () => {
    const x = noiseImage(28, 28, 1, 2);
    const out = run('stripe', x, 28, 28);
    out.forEach((v, i) => {
      const col = i % 28;
      expect(v).toBeCloseTo(col < 7 || col >= 21 ? 1 - x[i]! : x[i]!, 6);
    });
  });
  it('dotted line: every other 2-column block carries the line, the others stay empty', () => {
    for (let seed = 0; seed < 5; seed++) {
      const out = run('dotted_line', constantImage(28, 28, 1, 0), 28, 28, seed);
      for (let x = 0; x < 28; x++) {
        const colMax = Math.max(...Array.from({ length: 28 }, (_, y) => out[y * 28 + x]!));
        // the line's centre passes within half a row of some pixel: log(1 − 0.5/2.3) + 1 ≥ 0.75
        if (Math.floor(x / 2) % 2 === 0) expect(colMax).toBe(0);
        else if (x < 27) expect(colMax).toBeGreaterThan(0.75);
      }
    }
  });
  it('zigzag adds to the image and, when it stays inside, is one unbroken stroke across columns 2–24', () => {
    const digit = toFloat(mnistDigits(1), 0, 784);
    let inside = 0;
    for (let seed = 0; seed < 20; seed++) {
      const out = run('zigzag', digit, 28, 28, seed);
      out.forEach((v, i) => expect(v).toBeGreaterThanOrEqual(digit[i]! - 1e-7));
      const black = run('zigzag', constantImage(28, 28, 1, 0), 28, 28, seed);
      // the start row is random, so the stroke may run off the top or bottom: judge only strokes well inside
      const rows = black.reduce<number[]>((acc, v, i) => (v > 0 ? [...acc, Math.floor(i / 28)] : acc), []);
      if (Math.min(...rows) < 3 || Math.max(...rows) > 24) continue;
      inside++;
      for (let x = 0; x < 28; x++) {
        const colMax = Math.max(...Array.from({ length: 28 }, (_, y) => black[y * 28 + x]!));
        // the centre line passes within half a row of a pixel: log(1 − 0.5/2.3) + 1 ≥ 0.75
        if (x >= 2 && x < 25) expect(colMax).toBeGreaterThan(0.75);
        else if (x < 2 || x > 25) expect(colMax).toBe(0);
      }
    }
    expect(inside).toBeGreaterThanOrEqual(5);
  });
});

describe('canny edges', () => {
  it('a constant image has no edges', () => {
    expect(cannyEdges(constantImage(28, 28, 1, 0.7), 28, 28).every((v) => v === 0)).toBe(true);
  });
  it('a filled square gives a binary outline at its border, nothing inside or far outside', () => {
    const sq = constantImage(28, 28, 1, 0);
    for (let y = 9; y < 19; y++) for (let x = 9; x < 19; x++) sq[y * 28 + x] = 1;
    const e = cannyEdges(sq, 28, 28);
    expect(e.every((v) => v === 0 || v === 1)).toBe(true);
    for (let y = 12; y < 16; y++) for (let x = 12; x < 16; x++) expect(e[y * 28 + x]).toBe(0);
    for (let y = 0; y < 28; y++)
      for (let x = 0; x < 28; x++) {
        if (y < 6 || y > 21 || x < 6 || x > 21) expect(e[y * 28 + x]).toBe(0);
      }
    // each side: on the middle row/column an edge sits within one pixel of the step
    const row = 14;
    expect([8, 9, 10].some((x) => e[row * 28 + x] === 1)).toBe(true);
    expect([17, 18, 19].some((x) => e[row * 28 + x] === 1)).toBe(true);
    expect([8, 9, 10].some((y) => e[y * 28 + row] === 1)).toBe(true);
    expect(mean(e)).toBeGreaterThan(0);
  });
});
