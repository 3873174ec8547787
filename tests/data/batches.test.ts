import { describe, expect, it } from 'vitest';
import { BatchSampler, makeBatch, sequentialBatches, type SamplerState } from '../../src/data/batches.js';
import { DataError } from '../../src/util/errors.js';
import type { ImageDataset } from '../../src/data/registry.js';
import { Rng } from '../../src/util/rng.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const take = (s: BatchSampler, k: number) => Array.from({ length: k }, () => Array.from(s.next()));

function toyDataset(
  n: number,
  h: number,
  w: number,
  c: number,
  pixel: (img: number, i: number, j: number, ch: number) => number,
): ImageDataset {
  const images = new Uint8Array(n * h * w * c);
  for (let b = 0; b < n; b++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++)
        for (let ch = 0; ch < c; ch++) images[((b * h + i) * w + j) * c + ch] = pixel(b, i, j, ch);
  return {
    name: 'toy',
    split: 'test',
    n,
    height: h,
    width: w,
    channels: c,
    numClasses: 3,
    classNames: ['a', 'b', 'c'],
    images,
    labels: Int32Array.from(range(n), (i) => i % 3),
    source: 'memory',
  };
}

describe('BatchSampler', () => {
  it.each([
    // n, batch, drop → expected batch sizes of one epoch
    [10, 3, false, [3, 3, 3, 1]],
    [10, 3, true, [3, 3, 3]],
    [9, 3, false, [3, 3, 3]],
    [9, 3, true, [3, 3, 3]],
    [5, 8, false, [5]],
  ] as const)('n=%i batch=%i drop=%s: epoch batch sizes %j, each epoch a permutation', (n, bs, drop, sizes) => {
    const s = new BatchSampler(n, { batchSize: bs, seed: 1, dropRemainder: drop });
    expect(s.stepsPerEpoch).toBe(sizes.length);
    const epochs: number[][] = [];
    for (let e = 0; e < 4; e++) {
      expect(s.epoch).toBe(e);
      const batches = take(s, sizes.length);
      expect(batches.map((b) => b.length)).toEqual(sizes);
      const flat = batches.flat();
      expect(new Set(flat).size).toBe(flat.length); // no repeats within an epoch
      if (!drop) expect([...flat].sort((a, b) => a - b)).toEqual(range(n));
      else expect(flat.every((i) => i >= 0 && i < n)).toBe(true);
      epochs.push(flat);
    }
    if (n >= 9) expect(new Set(epochs.map((e) => e.join())).size).toBeGreaterThan(1); // reshuffled between epochs
  });

  it('different seeds give different orders, the same seed the same order', () => {
    const a = take(new BatchSampler(100, { batchSize: 10, seed: 1 }), 10).flat();
    const b = take(new BatchSampler(100, { batchSize: 10, seed: 2 }), 10).flat();
    const a2 = take(new BatchSampler(100, { batchSize: 10, seed: 1 }), 10).flat();
    expect(a).not.toEqual(b);
    expect(a2).toEqual(a);
    expect(a).not.toEqual(range(100));
  });

  it('shuffle: false visits 0..n-1 in order every epoch', () => {
    const s = new BatchSampler(5, { batchSize: 2, shuffle: false });
    expect(take(s, 6)).toEqual([[0, 1], [2, 3], [4], [0, 1], [2, 3], [4]]);
  });

  it.each([0, 1, 3, 4, 5, 11, 12, 13])('state after %i batches (JSON round trip) continues identically', (k) => {
    for (const dropRemainder of [false, true]) {
      const original = new BatchSampler(10, { batchSize: 3, seed: 42, dropRemainder });
      take(original, k);
      const state = JSON.parse(JSON.stringify(original.getState())) as SamplerState;
      const resumed = new BatchSampler(10, { batchSize: 3, seed: 999, dropRemainder });
      resumed.setState(state);
      expect(resumed.epoch).toBe(original.epoch);
      expect(take(resumed, 15)).toEqual(take(original, 15));
    }
  });

  it('refuses a state from a different sampler and bad constructor arguments', () => {
    const state = new BatchSampler(10, { batchSize: 3 }).getState();
    const other = new BatchSampler(11, { batchSize: 3 });
    expect(() => other.setState(state)).toThrow(/saved n = 10 but this sampler has n = 11/);
    expect(() => new BatchSampler(10, { batchSize: 3, dropRemainder: true }).setState(state)).toThrow(/dropRemainder/);
    expect(() => new BatchSampler(0, { batchSize: 3 })).toThrow(DataError);
    expect(() => new BatchSampler(10, { batchSize: 0 })).toThrow(/batchSize/);
    expect(() => new BatchSampler(2, { batchSize: 3, dropRemainder: true })).toThrow(/no batches/);
  });
});

describe('sequentialBatches', () => {
  it('covers 0..n-1 in order, last batch smaller', () => {
    expect([...sequentialBatches(7, 3)].map((b) => Array.from(b))).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    expect([...sequentialBatches(0, 3)]).toEqual([]);
  });
});

describe('makeBatch', () => {
  // 2 images of 1×4×1 with pixel values chosen for exact hand arithmetic
  const ds = toyDataset(
    2,
    1,
    4,
    1,
    (b, _i, j) =>
      [
        [0, 255, 51, 204],
        [102, 153, 0, 255],
      ][b]![j]!,
  );

  it.each([
    [
      'minus1to1',
      [
        [1, 0],
        [-1, 1, 51 / 127.5 - 1, 204 / 127.5 - 1, 102 / 127.5 - 1, 153 / 127.5 - 1, -1, 1],
      ],
    ],
    [
      'zero1',
      [
        [1, 0],
        [0, 1, 0.2, 0.8, 0.4, 0.6, 0, 1],
      ],
    ],
  ] as const)('scale %s on hand-picked pixels (batch order follows indices)', (scale, [idx, expected]) => {
    const { x, y, shape } = makeBatch(ds, idx, { scale });
    expect(shape).toEqual([2, 1, 4, 1]);
    expect(Array.from(y)).toEqual([1, 0]);
    // image 1 first: rotate the expected halves accordingly
    const want = [...expected.slice(4), ...expected.slice(0, 4)];
    want.forEach((v, i) => expect(x[i]).toBeCloseTo(v, 6));
  });

  it('default scale is [-1, 1]', () => {
    expect(Array.from(makeBatch(ds, [0]).x)).toEqual([-1, 1, 51 / 127.5 - 1, 204 / 127.5 - 1].map(Math.fround));
  });

  it('random crop with pad 0 (and no flip) is the identity and draws nothing', () => {
    const big = toyDataset(3, 5, 6, 2, (b, i, j, c) => (b * 60 + i * 12 + j * 2 + c) % 256);
    const rng = new Rng(5);
    const before = rng.getState();
    const plain = makeBatch(big, [2, 0, 1]);
    const cropped = makeBatch(big, [2, 0, 1], { augment: { randomCrop: 0 }, rng });
    expect(Array.from(cropped.x)).toEqual(Array.from(plain.x));
    expect(rng.getState()).toEqual(before);
  });

  it('random crop shifts by at most pad, fills with background, and reaches every offset', () => {
    // 5×5 image, one bright pixel at the centre (2, 2)
    const dot = toyDataset(1, 5, 5, 1, (_b, i, j) => (i === 2 && j === 2 ? 255 : 0));
    const pad = 1;
    const rng = new Rng(3);
    const offsets = new Set<string>();
    for (let t = 0; t < 200; t++) {
      const { x } = makeBatch(dot, [0], { scale: 'zero1', augment: { randomCrop: pad }, rng });
      const bright = [...x.keys()].filter((k) => x[k] === 1);
      expect(bright.length).toBe(1); // the dot survives (|shift| ≤ pad < 2) and nothing else lights up
      expect([...x].filter((v) => v !== 0 && v !== 1)).toEqual([]);
      const [i, j] = [Math.floor(bright[0]! / 5), bright[0]! % 5];
      expect(Math.abs(i - 2)).toBeLessThanOrEqual(pad);
      expect(Math.abs(j - 2)).toBeLessThanOrEqual(pad);
      offsets.add(`${i},${j}`);
    }
    expect(offsets.size).toBe((2 * pad + 1) ** 2);
  });

  it('flip mirrors columns (keeping channel order) about half of the time', () => {
    // 1×2×3 image: pixel 0 = (1,2,3), pixel 1 = (4,5,6)
    const rgb = toyDataset(1, 1, 2, 3, (_b, _i, j, c) => 1 + 3 * j + c);
    const rng = new Rng(11);
    let mirrored = 0;
    const trials = 400;
    for (let t = 0; t < trials; t++) {
      const v = Array.from(makeBatch(rgb, [0], { scale: 'zero1', augment: { flip: true }, rng }).x, (f) =>
        Math.round(f * 255),
      );
      if (v[0] === 4) {
        expect(v).toEqual([4, 5, 6, 1, 2, 3]);
        mirrored++;
      } else expect(v).toEqual([1, 2, 3, 4, 5, 6]);
    }
    // Binomial(400, 1/2): 5 standard deviations = 50
    expect(Math.abs(mirrored - trials / 2)).toBeLessThan(50);
  });

  it('errors name the problem', () => {
    expect(() => makeBatch(ds, [2])).toThrow(/index 2 at batch position 0 outside data set 'toy' of 2/);
    expect(() => makeBatch(ds, [0], { augment: { flip: true } })).toThrow(/needs opts.rng/);
    expect(() => makeBatch(ds, [0], { augment: { randomCrop: -1 }, rng: new Rng(1) })).toThrow(/randomCrop/);
    expect(() => makeBatch(ds, [0], { scale: 'raw' as never })).toThrow(/unknown scale 'raw'/);
  });
});
