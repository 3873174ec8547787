/** Digital corruptions: brightness, contrast, saturate, elastic transform, pixelate, JPEG. */
import type { Rng } from '../util/rng.js';
import {
  clip01,
  clip01InPlace,
  extractPlane,
  gaussianBlurPlane,
  hsvToRgb,
  insertPlaneInPlace,
  mapPlanes,
  pixelScale,
  boxDownsample,
  nearestUpsample,
  rgbToHsv,
  sampleBilinear,
  uniformIn,
} from './image-ops.js';
import { jpegRoundTrip } from './jpeg-codec.js';

/**
 * HSV value + δ, clipped to [0, 1], hue and saturation kept. For RGB this scales a
 * pixel's channels by V'/V (black becomes grey δ). A grey pixel is its own value
 * (S = 0), so on 1-channel images — and per channel for other channel counts —
 * the exact analogue is clip(x + δ); MNIST-C's grey→HSV→grey round trip gives the same.
 */
export function brightness(img: Float32Array, h: number, w: number, c: number, delta: number): Float32Array {
  const out = new Float32Array(img.length);
  if (c !== 3) {
    for (let i = 0; i < img.length; i++) out[i] = clip01(img[i]! + delta);
    return out;
  }
  for (let p = 0; p < h * w; p++) {
    const [hue, s, v] = rgbToHsv(img[3 * p]!, img[3 * p + 1]!, img[3 * p + 2]!);
    const rgb = hsvToRgb(hue, s, clip01(v + delta));
    out.set(rgb, 3 * p);
  }
  return clip01InPlace(out);
}

/** (x − mean)·f + mean per channel, mean over the image. */
export function contrast(img: Float32Array, h: number, w: number, c: number, factor: number): Float32Array {
  return clip01InPlace(
    mapPlanes(img, h, w, c, (p) => {
      let mean = 0;
      for (const v of p) mean += v;
      mean /= p.length;
      const out = new Float32Array(p.length);
      for (let i = 0; i < p.length; i++) out[i] = (p[i]! - mean) * factor + mean;
      return out;
    }),
  );
}

export interface SaturateConstant {
  /** S' = clip(S·scale + shift). */
  scale: number;
  shift: number;
}

/**
 * HSV saturation S' = clip(S·a + b). RGB: through HSV (grey pixels have hue 0, so a
 * positive shift tints them red, as in the reference).
 *
 * 1-channel analogue: a grey image has no saturation, so the literal HSV rule
 * would be (nearly) the identity. On the toolkit's grey data (a bright object on
 * black) the grey level plays the part of colour strength — how much "ink" a
 * pixel carries — so we scale it: x' = clip(a·x + b). Desaturating (a < 1) fades
 * the object towards the black background, oversaturating (a > 1) burns it out to
 * white. This is also, up to a faint tint, what MNIST-C's grey saturate computes
 * (it scales and shifts the whole HSV triple, V included). Other channel counts
 * use this per channel.
 */
export function saturate(img: Float32Array, h: number, w: number, c: number, k: SaturateConstant): Float32Array {
  if (c === 3) {
    const out = new Float32Array(img.length);
    for (let p = 0; p < h * w; p++) {
      const [hue, s, v] = rgbToHsv(img[3 * p]!, img[3 * p + 1]!, img[3 * p + 2]!);
      out.set(hsvToRgb(hue, clip01(s * k.scale + k.shift), v), 3 * p);
    }
    return clip01InPlace(out);
  }
  const out = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = clip01(img[i]! * k.scale + k.shift);
  return out;
}

export interface ElasticConstant {
  /** Magnitude of the smooth displacement field (pixels at 28×28). */
  alpha: number;
  /** Smoothness (Gaussian σ) of the displacement field (pixels at 28×28). */
  sigma: number;
  /** Largest jitter of the three affine anchor points (pixels at 28×28). */
  affine: number;
  /** Fill for samples outside the image: mirror (ImageNet-C) or black (MNIST-C). */
  border?: 'reflect' | 'constant';
}

/** Solves the 2×3 affine map taking three points `from` to `to` ([y, x] each). */
export function affineFromPoints(from: number[][], to: number[][]): number[] {
  // [ty, tx] = M·[y, x, 1]: two 3×3 systems sharing the matrix [[y, x, 1], ...]
  const a = from.map(([y, x]) => [y!, x!, 1]);
  const det = (m: number[][]): number =>
    m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) -
    m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) +
    m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!);
  const d = det(a);
  if (Math.abs(d) < 1e-12) throw new RangeError('affineFromPoints: the three anchor points are collinear');
  const solve = (rhs: number[]): number[] =>
    [0, 1, 2].map((col) => det(a.map((row, i) => row.map((v, j) => (j === col ? rhs[i]! : v)))) / d);
  return [...solve(to.map((p) => p[0]!)), ...solve(to.map((p) => p[1]!))];
}

/**
 * Elastic deformation: a random affine (three anchor points around the centre,
 * each jittered by up to ±affine pixels) composed with a Gaussian-smoothed
 * uniform(−1, 1) displacement field scaled by alpha. The two maps are composed
 * and sampled once (bilinear), rather than resampled twice as in the reference.
 */
export function elasticTransform(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  k: ElasticConstant,
  rng: Rng,
): Float32Array {
  const s = pixelScale(h, w);
  const jitter = k.affine * s;
  const cy = Math.floor(h / 2);
  const cx = Math.floor(w / 2);
  const sq = Math.floor(Math.min(h, w) / 3);
  const anchors = [
    [cy + sq, cx + sq],
    [cy + sq, cx - sq],
    [cy - sq, cx - sq],
  ];
  const moved = anchors.map(([y, x]) => [y! + uniformIn(rng, -jitter, jitter), x! + uniformIn(rng, -jitter, jitter)]);
  // inverse map: an output point at a moved anchor samples the original anchor
  const m = affineFromPoints(moved, anchors);
  const field = (): Float32Array => {
    const f = new Float32Array(h * w);
    for (let i = 0; i < f.length; i++) f[i] = uniformIn(rng, -1, 1);
    const smooth = gaussianBlurPlane(f, h, w, k.sigma * s, 'reflect', 3);
    for (let i = 0; i < smooth.length; i++) smooth[i]! *= k.alpha * s;
    return smooth;
  };
  const dx = field();
  const dy = field();
  const border = k.border ?? 'reflect';
  const out = new Float32Array(img.length);
  for (let ch = 0; ch < c; ch++) {
    const plane = c === 1 ? img : extractPlane(img, h, w, c, ch);
    const res = new Float32Array(h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const yy = y + dy[y * w + x]!;
        const xx = x + dx[y * w + x]!;
        const sy = m[0]! * yy + m[1]! * xx + m[2]!;
        const sx = m[3]! * yy + m[4]! * xx + m[5]!;
        res[y * w + x] = sampleBilinear(plane, h, w, sy, sx, border, 0);
      }
    }
    insertPlaneInPlace(out, res, c, ch);
  }
  return clip01InPlace(out);
}

/** Box-average down to floor(size·f) pixels a side, then enlarge back with a box (nearest-centre) filter. */
export function pixelate(img: Float32Array, h: number, w: number, c: number, factor: number): Float32Array {
  const nh = Math.max(1, Math.floor(h * factor));
  const nw = Math.max(1, Math.floor(w * factor));
  return clip01InPlace(mapPlanes(img, h, w, c, (p) => nearestUpsample(boxDownsample(p, h, w, nh, nw), nh, nw, h, w)));
}

/**
 * Encode to JPEG at the given quality and decode (jpeg-js: baseline, no chroma
 * subsampling; PIL, used by the reference, subsamples chroma 4:2:0, so colour
 * images lose a little less colour detail here). Values are rounded to bytes first. Grey images
 * go through as R = G = B (the chroma planes are then flat) and come back as the
 * mean of the decoded channels; other channel counts go through one channel at a time.
 */
export function jpegCompression(img: Float32Array, h: number, w: number, c: number, quality: number): Float32Array {
  const roundTrip = (rgb: (p: number, ch: number) => number): Uint8Array => {
    const rgba = new Uint8Array(h * w * 4);
    for (let p = 0; p < h * w; p++) {
      for (let ch = 0; ch < 3; ch++) rgba[4 * p + ch] = Math.round(clip01(rgb(p, ch)) * 255);
      rgba[4 * p + 3] = 255;
    }
    return jpegRoundTrip(rgba, w, h, quality); // (H, W, 4)
  };
  if (c === 3) {
    const dec = roundTrip((p, ch) => img[3 * p + ch]!);
    const out = new Float32Array(img.length);
    for (let p = 0; p < h * w; p++) for (let ch = 0; ch < 3; ch++) out[3 * p + ch] = dec[4 * p + ch]! / 255;
    return out;
  }
  return mapPlanes(img, h, w, c, (plane) => {
    const dec = roundTrip((p) => plane[p]!);
    const out = new Float32Array(h * w);
    for (let p = 0; p < h * w; p++) out[p] = (dec[4 * p]! + dec[4 * p + 1]! + dec[4 * p + 2]!) / 3 / 255;
    return out;
  });
}
