import { describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { CORRUPTIONS } from '../../src/robustness/corruptions.js';
import { MNIST_C } from '../../src/robustness/mnist-c.js';
import { corruptBatch, corruptionNames, imageRng } from '../../src/robustness/batch.js';
import { encodePng, previewGrid } from '../../src/robustness/preview.js';
import { CorruptionError } from '../../src/util/errors.js';
import { mnistDigits, toFloat } from './helpers.js';

const n = 6;
const digits = mnistDigits(n);
const shape = { n, h: 28, w: 28, c: 1 };

describe('corruptBatch', () => {
  it('applies the corruption per image with imageRng(seed, index) and rounds to bytes', () => {
    const out = corruptBatch(digits, shape, 'gaussian_noise', 3, 42);
    for (let i = 0; i < n; i++) {
      const f = CORRUPTIONS.gaussian_noise!.fn(toFloat(digits, i * 784, 784), 28, 28, 1, 3, imageRng(42, i));
      for (let j = 0; j < 784; j++) expect(out[i * 784 + j]).toBe(Math.round(f[j]! * 255));
    }
  });
  it('does not depend on batch boundaries (startIndex)', () => {
    for (const name of ['shot_noise', 'glass_blur', 'snow', 'elastic_transform']) {
      const whole = corruptBatch(digits, shape, name, 4, 9);
      const a = corruptBatch(digits.subarray(0, 2 * 784), { ...shape, n: 2 }, name, 4, 9);
      const b = corruptBatch(digits.subarray(2 * 784), { ...shape, n: n - 2 }, name, 4, 9, { startIndex: 2 });
      expect([...a, ...b]).toEqual([...whole]);
    }
  });
  it('severity 0 returns the images unchanged; seeds and images get different streams', () => {
    expect(corruptBatch(digits, shape, 'fog', 0, 1)).toEqual(digits);
    expect(corruptBatch(digits, shape, 'fog', 2, 1)).not.toEqual(corruptBatch(digits, shape, 'fog', 2, 2));
    expect(imageRng(1, 0).nextUint32()).not.toBe(imageRng(1, 1).nextUint32());
    expect(imageRng(1, 0).nextUint32()).not.toBe(imageRng(2, 0).nextUint32());
    expect(imageRng(5, 7).getState()).toEqual(imageRng(5, 7).getState());
  });
  it('runs the MNIST-C suite (severity 1 = its fixed severity)', () => {
    expect(corruptionNames('mnist-c')).toEqual(Object.keys(MNIST_C));
    const out = corruptBatch(digits, shape, 'stripe', 1, 0, { suite: 'mnist-c' });
    expect(out[0]).toBe(255 - digits[0]!);
    expect(() => corruptBatch(digits, shape, 'stripe', 2, 0, { suite: 'mnist-c' })).toThrow(
      /severity must be an integer in 0\.\.1/,
    );
  });
  it('bad shapes, names and suites are clear errors', () => {
    expect(() => corruptBatch(digits, { ...shape, n: 7 }, 'fog', 1, 0)).toThrow(
      /hold 4704 values but shape \(7, 28, 28, 1\) needs 5488/,
    );
    expect(() => corruptBatch(digits, shape, 'rain', 1, 0)).toThrow(CorruptionError);
    expect(() => corruptBatch(digits, shape, 'shear', 1, 0)).toThrow(/unknown corruption 'shear'/);
    expect(() => corruptBatch(digits, shape, 'fog', 1, 0, { suite: 'x' as 'c' })).toThrow(
      /unknown corruption suite 'x'/,
    );
  });
});

describe('preview grid', () => {
  it('places cell j of row r at the documented offsets, magnified', () => {
    // 2 rows × 3 columns of k = 2 images, 2×3 pixels each, zoom 2
    const cell = (v: number) => new Uint8Array(2 * 2 * 3).fill(v);
    const rows = [{ cells: [cell(10), cell(20), cell(30)] }, { cells: [cell(40), cell(50), cell(60)] }];
    const g = previewGrid(rows, { h: 2, w: 3, c: 1, k: 2, zoom: 2 });
    const cellW = 2 * 3 + 1; // k·w + (k − 1) gaps
    expect(g.width).toBe((4 + 3 * (cellW + 4)) * 2);
    expect(g.height).toBe((4 + 2 * (2 + 4)) * 2);
    const at = (y: number, x: number) => g.rgba[(y * g.width + x) * 4];
    // row 1, column 2, second image, its top-left pixel
    const x0 = 4 + 2 * (cellW + 4) + 1 * (3 + 1);
    const y0 = 4 + 1 * (2 + 4);
    expect(at(y0 * 2, x0 * 2)).toBe(60);
    expect(at(y0 * 2 + 1, x0 * 2 + 1)).toBe(60);
    expect(at(0, 0)).toBe(70); // gap colour
    expect(() =>
      previewGrid([{ cells: [cell(1)] }, { cells: [cell(1), cell(2)] }], { h: 2, w: 3, c: 1, k: 2 }),
    ).toThrow(/row 1 has 2 cells/);
  });
  it('writes a PNG that decodes back to the same pixels', () => {
    const rgba = Uint8Array.from({ length: 5 * 4 * 4 }, (_, i) => (i * 13) % 256);
    const png = PNG.sync.read(encodePng(rgba, 5, 4));
    expect([png.width, png.height]).toEqual([5, 4]);
    expect([...png.data]).toEqual([...rgba]);
  });
});
