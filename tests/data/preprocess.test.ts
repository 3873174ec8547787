/**
 * Preprocessing against hand-computed cases: bilinear resize (up, down, of a crop), crop boxes, grey ↔ RGB,
 * pad-crop and flip, and the keyed randomness (same (seed, step, example) → same augmentation); mixup and its
 * Beta draws against their moments.
 */
import { describe, expect, it } from 'vitest';
import {
  augmentImage,
  centralCropBox,
  centralCropImages,
  convertChannels,
  fitImages,
  inceptionCropBox,
  keyedRng,
  makeBatch,
  mixupBatch,
  resizeBilinear,
  sampleBeta,
  type ImageDataset,
} from '../../src/data/index.js';
import { Rng } from '../../src/util/rng.js';

describe('resizeBilinear (half-pixel centres)', () => {
  it('2×2 → 4×4 of a linear ramp: sample points 0, ¼, ¾, 1 on each axis', () => {
    // v(y, x) = 10x + 20y; bilinear interpolation reproduces a linear function exactly
    const out = resizeBilinear([0, 10, 20, 30], 2, 2, 1, 4, 4);
    const c = [0, 0.25, 0.75, 1];
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 4; j++) expect(out[i * 4 + j]).toBeCloseTo(10 * c[j]! + 20 * c[i]!, 6);
    expect(out[1 * 4 + 2]).toBeCloseTo(12.5, 6);
  });

  it('4×4 → 2×2 averages each 2×2 block; a crop box resizes only the crop', () => {
    const src = Array.from({ length: 16 }, (_, i) => i);
    expect([...resizeBilinear(src, 4, 4, 1, 2, 2)]).toEqual([2.5, 4.5, 10.5, 12.5]);
    expect([...resizeBilinear(src, 4, 4, 1, 2, 2, { y: 1, x: 1, h: 2, w: 2 })]).toEqual([5, 6, 9, 10]);
  });

  it('channels are interpolated independently', () => {
    const out = resizeBilinear([0, 100, 10, 110], 1, 2, 2, 1, 1); // 1×2 RGB-like pixels (2 channels) → 1×1
    expect([...out]).toEqual([5, 105]);
  });
});

describe('crops and channels', () => {
  it('central crop box', () => {
    expect(centralCropBox(10, 10, 0.5)).toEqual({ y: 2, x: 2, h: 5, w: 5 });
    expect(centralCropBox(224, 224, 0.875)).toEqual({ y: 14, x: 14, h: 196, w: 196 });
    expect(() => centralCropBox(4, 4, 0)).toThrow(/fraction/);
  });

  it('inception crop boxes lie inside the image with area 5–100 % and aspect 3/4–4/3 (up to rounding)', () => {
    const rng = new Rng(1);
    for (let t = 0; t < 500; t++) {
      const b = inceptionCropBox(rng, 64, 48);
      expect(b.y >= 0 && b.x >= 0 && b.y + b.h <= 64 && b.x + b.w <= 48).toBe(true);
      if (b.h === 64 && b.w === 48) continue; // the fallback
      expect((b.h * b.w) / (64 * 48)).toBeGreaterThan(0.04);
      expect(b.w / b.h).toBeGreaterThan(0.7);
      expect(b.w / b.h).toBeLessThan(1.42);
    }
  });

  it('grey → RGB repeats; RGB → grey is BT.601 luma, rounded', () => {
    expect([...convertChannels(Uint8Array.from([7, 200]), 1, 3)]).toEqual([7, 7, 7, 200, 200, 200]);
    // 0.299·10 + 0.587·20 + 0.114·30 = 18.15
    expect([...convertChannels(Uint8Array.from([10, 20, 30, 255, 255, 255]), 3, 1)]).toEqual([18, 255]);
  });

  it('centralCropImages: the central half of a 4×4 resized back to 4×4, rounded', () => {
    // crop of v(y, x) = 10·(4y + x) is rows/cols 1..2: 50 60 / 90 100; upsampled at 0, ¼, ¾, 1 of its grid
    const ds = { n: 1, height: 4, width: 4, channels: 1, images: Uint8Array.from({ length: 16 }, (_, i) => 10 * i) };
    const c = [0, 0.25, 0.75, 1];
    const out = centralCropImages(ds, 0.5).images;
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 4; j++) expect(out[i * 4 + j]).toBe(Math.round(50 + 10 * c[j]! + 40 * c[i]!));
    expect(out[1 * 4 + 2]).toBe(68); // 67.5 rounded half up
  });

  it('fitImages resizes every image and rounds; a fitting set is returned as is', () => {
    const ds = { n: 2, height: 2, width: 2, channels: 1, images: Uint8Array.from([0, 10, 20, 30, 1, 1, 1, 1]) };
    expect(fitImages(ds, 2, 1)).toBe(ds);
    const up = fitImages(ds, 4, 3);
    expect([up.n, up.height, up.width, up.channels]).toEqual([2, 4, 4, 3]);
    // pixel (1, 2) of image 0: 12.5 → 13 (round half up), in all three channels
    expect([...up.images.subarray((1 * 4 + 2) * 3, (1 * 4 + 2) * 3 + 3)]).toEqual([13, 13, 13]);
    expect(up.images[48 + 5]).toBe(1);
  });
});

describe('augmentation', () => {
  const H = 3;
  const W = 4;
  const src = Uint8Array.from({ length: H * W }, (_, i) => i * 20); // 1 channel

  it('pad-crop shifts by the offsets drawn (row, then column) and fills with 0 (→ −1); flip mirrors', () => {
    const out = new Float32Array(H * W);
    const rng = new Rng(5);
    const ref = new Rng(5);
    augmentImage(src, H, W, 1, { randomCrop: 1, flip: true }, rng, out);
    const dy = ref.int(3) - 1;
    const dx = ref.int(3) - 1;
    const mirrored = ref.uniform() < 0.5;
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        const si = i + dy;
        const sj = (mirrored ? W - 1 - j : j) + dx;
        const v = si >= 0 && si < H && sj >= 0 && sj < W ? src[si * W + sj]! : 0;
        expect(out[i * W + j]).toBeCloseTo(v / 127.5 - 1, 6);
      }
    }
  });

  it('no augmentation is x/127.5 − 1; evalCrop 0.5 of a 4×4 is its centre 2×2 resized back', () => {
    const out = new Float32Array(H * W);
    augmentImage(src, H, W, 1, {}, null, out);
    expect(out[5]).toBeCloseTo(100 / 127.5 - 1, 6);
    const sq = Uint8Array.from({ length: 16 }, (_, i) => i * 10);
    const o2 = new Float32Array(16);
    augmentImage(sq, 4, 4, 1, {}, null, o2, 0.5);
    const expected = resizeBilinear(sq, 4, 4, 1, 4, 4, { y: 1, x: 1, h: 2, w: 2 });
    for (let k = 0; k < 16; k++) expect(o2[k]).toBeCloseTo(expected[k]! / 127.5 - 1, 5);
  });

  it('keyed batches depend only on (seed, step, example): same key same pixels, in any batch order', () => {
    const n = 6;
    const ds: ImageDataset = {
      name: 't',
      split: 'train',
      n,
      height: 8,
      width: 8,
      channels: 3,
      numClasses: 2,
      classNames: ['a', 'b'],
      images: Uint8Array.from({ length: n * 192 }, (_, i) => (i * 37) % 256),
      labels: Int32Array.from({ length: n }, (_, i) => i % 2),
      source: '',
    };
    const aug = { inceptionCrop: true, flip: true };
    const a = makeBatch(ds, [0, 1, 2, 3], { augment: aug, keyed: { seed: 9, step: 4 } });
    const b = makeBatch(ds, [3, 2, 1, 0], { augment: aug, keyed: { seed: 9, step: 4 } });
    for (let k = 0; k < 4; k++) {
      expect([...a.x.subarray(k * 192, (k + 1) * 192)]).toEqual([...b.x.subarray((3 - k) * 192, (4 - k) * 192)]);
    }
    const c = makeBatch(ds, [0, 1, 2, 3], { augment: aug, keyed: { seed: 9, step: 5 } });
    expect([...c.x]).not.toEqual([...a.x]);
    expect(keyedRng(1, 2, 3).nextUint32()).toBe(keyedRng(1, 2, 3).nextUint32());
    expect(keyedRng(1, 2, 3).nextUint32()).not.toBe(keyedRng(1, 3, 2).nextUint32());
  });
});

describe('mixup', () => {
  it('mixes each image with the previous one, targets likewise', () => {
    const x = Float32Array.from([1, 1, 3, 3, 5, 5]); // B = 3 images of 2 values
    const y = Int32Array.from([0, 1, 2]);
    const m = mixupBatch(x, y, 3, 0.4, new Rng(2));
    const l = m.lambda;
    expect(l).toBeGreaterThanOrEqual(0);
    expect(l).toBeLessThanOrEqual(1);
    expect(m.x[0]).toBeCloseTo(l * 1 + (1 - l) * 5, 6); // image 0 with image 2 (cyclic)
    expect(m.x[2]).toBeCloseTo(l * 3 + (1 - l) * 1, 6);
    expect([...m.targets.subarray(3, 6)].map((v) => +v.toFixed(6))).toEqual([+(1 - l).toFixed(6), +l.toFixed(6), 0]);
  });

  it('Beta(α, α) draws have mean ½ and variance 1/(4(2α+1))', () => {
    for (const alpha of [0.2, 2]) {
      const rng = new Rng(7);
      const n = 20000;
      const v = Array.from({ length: n }, () => sampleBeta(rng, alpha));
      const mean = v.reduce((a, b) => a + b) / n;
      const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
      expect(mean).toBeCloseTo(0.5, 1);
      expect(Math.abs(variance - 1 / (4 * (2 * alpha + 1)))).toBeLessThan(0.01);
    }
  });
});
