/**
 * Small image operations the corruptions are built from. Images are Float32Array
 * (H, W, C) row-major with values in [0, 1]; a "plane" is one channel, (H, W).
 * Every function returns a new array unless its name ends in InPlace.
 */
import type { Rng } from '../util/rng.js';
import { DataError, UsageError } from '../util/errors.js';

/**
 * How samples outside the image are filled:
 * reflect = half-sample symmetric (d c b a | a b c d), as scipy's 'reflect';
 * nearest = repeat the edge pixel; constant = a fill value (0 unless given).
 */
export type Border = 'reflect' | 'nearest' | 'constant';

export function checkImage(img: Float32Array, h: number, w: number, c: number, who: string): void {
  if (!(img instanceof Float32Array)) throw new DataError(`${who}: image must be a Float32Array`);
  for (const [k, v] of [
    ['h', h],
    ['w', w],
    ['c', c],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new DataError(`${who}: ${k} must be a positive integer, got ${v}`);
  }
  if (img.length !== h * w * c) {
    throw new DataError(`${who}: image has ${img.length} values but (h, w, c) = (${h}, ${w}, ${c}) needs ${h * w * c}`);
  }
}

export function clip01InPlace(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    a[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return a;
}

export function clip01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

/** Spatial constants are in pixels for 28-pixel images; other sizes scale them by min(h, w) / 28. */
export function pixelScale(h: number, w: number): number {
  return Math.min(h, w) / 28;
}

export function extractPlane(img: Float32Array, h: number, w: number, c: number, ch: number): Float32Array {
  const plane = new Float32Array(h * w); // (H, W)
  for (let i = 0; i < h * w; i++) plane[i] = img[i * c + ch]!;
  return plane;
}

export function insertPlaneInPlace(img: Float32Array, plane: Float32Array, c: number, ch: number): void {
  for (let i = 0; i < plane.length; i++) img[i * c + ch] = plane[i]!;
}

/** Applies `fn` to each channel plane and reassembles (H, W, C). */
export function mapPlanes(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  fn: (plane: Float32Array, ch: number) => Float32Array,
): Float32Array {
  if (c === 1) return fn(img.slice(), 0);
  const out = new Float32Array(img.length);
  for (let ch = 0; ch < c; ch++) insertPlaneInPlace(out, fn(extractPlane(img, h, w, c, ch), ch), c, ch);
  return out;
}

/** Index into [0, n) for a possibly outside index i; -1 means "use the fill value". */
export function borderIndex(i: number, n: number, border: Border): number {
  if (i >= 0 && i < n) return i;
  if (border === 'constant') return -1;
  if (border === 'nearest') return i < 0 ? 0 : n - 1;
  const period = 2 * n;
  let m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - 1 - m;
}

/** Normalised 1-D Gaussian taps over [-r, r], r = ceil(truncate·σ); σ ≤ 0 gives the identity [1]. */
export function gaussianKernel1d(sigma: number, truncate = 4): Float32Array {
  if (!(sigma > 0)) return Float32Array.of(1);
  const r = Math.max(1, Math.ceil(truncate * sigma));
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) {
    const v = Math.exp(-(i * i) / (2 * sigma * sigma));
    k[i + r] = v;
    sum += v;
  }
  for (let i = 0; i < k.length; i++) k[i]! /= sum;
  return k;
}

/** Correlates rows, then columns, with a symmetric odd-length 1-D kernel. */
export function convolveSeparable(
  plane: Float32Array,
  h: number,
  w: number,
  kernel: Float32Array,
  border: Border = 'reflect',
): Float32Array {
  const r = (kernel.length - 1) / 2;
  const tmp = new Float32Array(h * w); // (H, W) after the row pass
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let k = -r; k <= r; k++) {
        const xx = borderIndex(x + k, w, border);
        if (xx >= 0) s += kernel[k + r]! * plane[y * w + xx]!;
      }
      tmp[y * w + x] = s;
    }
  }
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let k = -r; k <= r; k++) {
        const yy = borderIndex(y + k, h, border);
        if (yy >= 0) s += kernel[k + r]! * tmp[yy * w + x]!;
      }
      out[y * w + x] = s;
    }
  }
  return out;
}

export function gaussianBlurPlane(
  plane: Float32Array,
  h: number,
  w: number,
  sigma: number,
  border: Border = 'reflect',
  truncate = 4,
): Float32Array {
  if (!(sigma > 0)) return plane.slice();
  return convolveSeparable(plane, h, w, gaussianKernel1d(sigma, truncate), border);
}

/** 2-D correlation with a (kh, kw) kernel centred at ((kh-1)/2, (kw-1)/2); kh, kw odd. */
export function convolve2d(
  plane: Float32Array,
  h: number,
  w: number,
  kernel: Float32Array,
  kh: number,
  kw: number,
  border: Border = 'reflect',
): Float32Array {
  const ry = (kh - 1) / 2;
  const rx = (kw - 1) / 2;
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = 0; i < kh; i++) {
        const yy = borderIndex(y + i - ry, h, border);
        if (yy < 0) continue;
        for (let j = 0; j < kw; j++) {
          const kv = kernel[i * kw + j]!;
          if (kv === 0) continue;
          const xx = borderIndex(x + j - rx, w, border);
          if (xx >= 0) s += kv * plane[yy * w + xx]!;
        }
      }
      out[y * w + x] = s;
    }
  }
  return out;
}

/** Bilinear sample at fractional (y, x) in pixel-centre coordinates (pixel (0,0) is at 0,0). */
export function sampleBilinear(
  plane: Float32Array,
  h: number,
  w: number,
  y: number,
  x: number,
  border: Border,
  fill = 0,
): number {
  const y0 = Math.floor(y);
  const x0 = Math.floor(x);
  const fy = y - y0;
  const fx = x - x0;
  // zero-weight neighbours are skipped: exact integer positions then never read outside the image
  const r0 = bilinearRow(plane, h, w, y0, x0, fx, border, fill);
  return fy === 0 ? r0 : (1 - fy) * r0 + fy * bilinearRow(plane, h, w, y0 + 1, x0, fx, border, fill);
}

/** One row of a bilinear sample: (1 − fx)·p[yy, x0] + fx·p[yy, x0 + 1], borders applied (no closures: hot path). */
function bilinearRow(
  plane: Float32Array,
  h: number,
  w: number,
  yy: number,
  x0: number,
  fx: number,
  border: Border,
  fill: number,
): number {
  const by = borderIndex(yy, h, border);
  const bx = borderIndex(x0, w, border);
  const a = by < 0 || bx < 0 ? fill : plane[by * w + bx]!;
  if (fx === 0) return a;
  const bx1 = borderIndex(x0 + 1, w, border);
  return (1 - fx) * a + fx * (by < 0 || bx1 < 0 ? fill : plane[by * w + bx1]!);
}

/**
 * Resamples a plane through an inverse map: output pixel (y, x) takes the input
 * value at source(y, x), which `source` writes into `to` as [sy, sx].
 */
export function warpPlane(
  plane: Float32Array,
  h: number,
  w: number,
  source: (y: number, x: number, to: [number, number]) => void,
  border: Border,
  fill = 0,
): Float32Array {
  const out = new Float32Array(h * w);
  const to: [number, number] = [0, 0];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      source(y, x, to);
      out[y * w + x] = sampleBilinear(plane, h, w, to[0], to[1], border, fill);
    }
  }
  return out;
}

/** 2×3 affine inverse map [sy, sx] = M·[y, x, 1] that keeps the point (cy, cx) fixed. */
export function centredAffine(a: [[number, number], [number, number]], cy: number, cx: number): number[] {
  // [sy, sx] = A·([y, x] − c) + c
  return [a[0][0], a[0][1], cy - a[0][0] * cy - a[0][1] * cx, a[1][0], a[1][1], cx - a[1][0] * cy - a[1][1] * cx];
}

export function affineSource(m: number[]): (y: number, x: number, to: [number, number]) => void {
  return (y, x, to) => {
    to[0] = m[0]! * y + m[1]! * x + m[2]!;
    to[1] = m[3]! * y + m[4]! * x + m[5]!;
  };
}

/**
 * Area-weighted resize of a plane (exact box filter with fractional overlaps),
 * the usual way to shrink an image without aliasing.
 */
export function boxDownsample(plane: Float32Array, h: number, w: number, nh: number, nw: number): Float32Array {
  const rows = areaWeights(h, nh); // per output row: [inputIndex, weight][]
  const cols = areaWeights(w, nw);
  const tmp = new Float32Array(h * nw); // (H, nW)
  for (let y = 0; y < h; y++) {
    for (let j = 0; j < nw; j++) {
      let s = 0;
      for (const [x, wt] of cols[j]!) s += wt * plane[y * w + x]!;
      tmp[y * nw + j] = s;
    }
  }
  const out = new Float32Array(nh * nw); // (nH, nW)
  for (let i = 0; i < nh; i++) {
    for (let j = 0; j < nw; j++) {
      let s = 0;
      for (const [y, wt] of rows[i]!) s += wt * tmp[y * nw + j]!;
      out[i * nw + j] = s;
    }
  }
  return out;
}

function areaWeights(n: number, m: number): Array<Array<[number, number]>> {
  const scale = n / m; // input pixels per output pixel
  const out: Array<Array<[number, number]>> = [];
  for (let j = 0; j < m; j++) {
    const lo = j * scale;
    const hi = (j + 1) * scale;
    const taps: Array<[number, number]> = [];
    for (let i = Math.floor(lo); i < Math.min(n, Math.ceil(hi)); i++) {
      const overlap = Math.min(hi, i + 1) - Math.max(lo, i);
      if (overlap > 1e-12) taps.push([i, overlap / scale]);
    }
    out.push(taps);
  }
  return out;
}

/** Nearest upsampling by pixel centre (what a box filter does when enlarging): blockwise constant. */
export function nearestUpsample(plane: Float32Array, nh: number, nw: number, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(nh - 1, Math.floor(((y + 0.5) * nh) / h));
    for (let x = 0; x < w; x++) {
      const sx = Math.min(nw - 1, Math.floor(((x + 0.5) * nw) / w));
      out[y * w + x] = plane[sy * nw + sx]!;
    }
  }
  return out;
}

/** Zooms into the image centre by `zoom` ≥ 1, keeping the size (the zoomed-out border is cropped). */
export function centreZoom(plane: Float32Array, h: number, w: number, zoom: number): Float32Array {
  // The same as warpPlane(plane, h, w, centre-zoom map, 'nearest') — sampleBilinear's arithmetic in its order —
  // with the taps and fractions, which depend only on (h, w, zoom), computed once: zoom blur and snow call this
  // for every image at the same few zooms, and the per-pixel map and border look-ups were most of their time.
  const p = zoomPlan(h, w, zoom);
  const out = new Float32Array(h * w);
  for (let i = 0; i < h * w; i++) {
    const fx = p.fx[i]!;
    const fy = p.fy[i]!;
    const j = 4 * i;
    const r0 = fx === 0 ? plane[p.taps[j]!]! : (1 - fx) * plane[p.taps[j]!]! + fx * plane[p.taps[j + 1]!]!;
    out[i] =
      fy === 0
        ? r0
        : (1 - fy) * r0 +
          fy * (fx === 0 ? plane[p.taps[j + 2]!]! : (1 - fx) * plane[p.taps[j + 2]!]! + fx * plane[p.taps[j + 3]!]!);
  }
  return out;
}

/** Per output pixel of a centre zoom: the 4 edge-clamped source indices (y0x0, y0x1, y1x0, y1x1) and fractions. */
interface ZoomPlan {
  taps: Int32Array;
  fy: Float64Array;
  fx: Float64Array;
}

const zoomPlans = new Map<string, ZoomPlan>();
let zoomPlanBytes = 0;

function zoomPlan(h: number, w: number, zoom: number): ZoomPlan {
  const key = `${h}x${w}@${zoom}`;
  const hit = zoomPlans.get(key);
  if (hit) return hit;
  const cy = (h - 1) / 2;
  const cx = (w - 1) / 2;
  const n = h * w;
  const plan: ZoomPlan = { taps: new Int32Array(4 * n), fy: new Float64Array(n), fx: new Float64Array(n) };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const sy = cy + (y - cy) / zoom;
      const sx = cx + (x - cx) / zoom;
      const y0 = Math.floor(sy);
      const x0 = Math.floor(sx);
      plan.fy[i] = sy - y0;
      plan.fx[i] = sx - x0;
      const ya = borderIndex(y0, h, 'nearest') * w;
      const yb = borderIndex(y0 + 1, h, 'nearest') * w;
      const xa = borderIndex(x0, w, 'nearest');
      const xb = borderIndex(x0 + 1, w, 'nearest');
      plan.taps.set([ya + xa, ya + xb, yb + xa, yb + xb], 4 * i);
    }
  }
  const bytes = 32 * n;
  if (zoomPlanBytes + bytes > 64 * 2 ** 20) {
    zoomPlans.clear(); // bounded: a few zooms of a few image sizes fit; more start over
    zoomPlanBytes = 0;
  }
  zoomPlans.set(key, plan);
  zoomPlanBytes += bytes;
  return plan;
}

/**
 * Taps of a one-sided motion-blur line kernel: offsets i·(sin θ, cos θ) for
 * i = 0 … 2·ceil(radius), weights exp(−i²/2σ²), normalised. This is the kernel
 * ImageMagick's motion blur uses (a half Gaussian trailing along the angle).
 */
export function lineKernel(
  radius: number,
  sigma: number,
  angleDeg: number,
): Array<{ dy: number; dx: number; weight: number }> {
  const n = 2 * Math.ceil(Math.max(radius, 0)) + 1;
  const theta = (angleDeg * Math.PI) / 180;
  const taps: Array<{ dy: number; dx: number; weight: number }> = [];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const weight = sigma > 0 ? Math.exp(-(i * i) / (2 * sigma * sigma)) : i === 0 ? 1 : 0;
    if (weight < 1e-6) continue;
    taps.push({ dy: i * Math.sin(theta), dx: i * Math.cos(theta), weight });
    sum += weight;
  }
  for (const t of taps) t.weight /= sum;
  return taps;
}

/** Motion blur along a line kernel; samples between pixels are bilinear, outside ones repeat the edge. */
export function motionBlurPlane(
  plane: Float32Array,
  h: number,
  w: number,
  radius: number,
  sigma: number,
  angleDeg: number,
): Float32Array {
  const taps = lineKernel(radius, sigma, angleDeg);
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (const t of taps) s += t.weight * sampleBilinear(plane, h, w, y + t.dy, x + t.dx, 'nearest');
      out[y * w + x] = s;
    }
  }
  return out;
}

/**
 * Diamond–square plasma fractal on a (size, size) torus, normalised to [0, 1].
 * The random offset at each octave shrinks by decay² (the reference generator
 * scales a uniform(−a, a) draw by a again, so `decay` acts twice per octave).
 */
export function plasmaFractal(size: number, decay: number, rng: Rng): Float32Array {
  if (!Number.isInteger(size) || size < 2 || (size & (size - 1)) !== 0) {
    throw new UsageError(`plasmaFractal: size must be a power of two ≥ 2, got ${size}`);
  }
  const m = new Float64Array(size * size); // (size, size)
  const at = (y: number, x: number): number => m[((y + size) % size) * size + ((x + size) % size)]!;
  let amp = 100 * 100;
  for (let step = size; step >= 2; step >>= 1) {
    const half = step >> 1;
    const jitter = (): number => amp * (2 * rng.uniform() - 1);
    for (let y = 0; y < size; y += step) {
      for (let x = 0; x < size; x += step) {
        const s = at(y, x) + at(y + step, x) + at(y, x + step) + at(y + step, x + step);
        m[(y + half) * size + x + half] = s / 4 + jitter();
      }
    }
    for (let y = 0; y < size; y += step) {
      for (let x = 0; x < size; x += step) {
        // the two diamond centres owned by this square: right-middle of its top edge, and its left-middle
        const top = at(y - half, x + half) + at(y + half, x + half) + at(y, x) + at(y, x + step);
        m[y * size + x + half] = top / 4 + jitter();
        const left = at(y + half, x - half) + at(y + half, x + half) + at(y, x) + at(y + step, x);
        m[(y + half) * size + x] = left / 4 + jitter();
      }
    }
    amp /= decay * decay;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of m) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out = new Float32Array(size * size);
  const span = hi - lo || 1;
  for (let i = 0; i < m.length; i++) out[i] = (m[i]! - lo) / span;
  return out;
}

/** Top-left (h, w) crop of a plasma fractal of the next power-of-two size ≥ max(h, w, minSize). */
export function plasmaPlane(h: number, w: number, decay: number, rng: Rng, minSize = 2): Float32Array {
  let size = 2;
  while (size < Math.max(h, w, minSize)) size *= 2;
  const full = plasmaFractal(size, decay, rng);
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = full[y * size + x]!;
  return out;
}

/** ITU-R 601 luma, the grey level the corruptions use for a colour. */
export function luma(r: number, g: number, b: number): number {
  return 0.299 * r + 0.587 * g + 0.114 * b;
}

/** (H, W) grey version: the image itself for 1 channel, luma for RGB, the channel mean otherwise. */
export function toGray(img: Float32Array, h: number, w: number, c: number): Float32Array {
  if (c === 1) return img.slice();
  const out = new Float32Array(h * w);
  for (let i = 0; i < h * w; i++) {
    if (c === 3) out[i] = luma(img[3 * i]!, img[3 * i + 1]!, img[3 * i + 2]!);
    else {
      let s = 0;
      for (let ch = 0; ch < c; ch++) s += img[i * c + ch]!;
      out[i] = s / c;
    }
  }
  return out;
}

/** RGB in [0,1] → [h, s, v], h in [0, 1); grey pixels get h = 0, s = 0 (as skimage). */
export function rgbToHsv(r: number, g: number, b: number): [number, number, number] {
  const v = Math.max(r, g, b);
  const d = v - Math.min(r, g, b);
  const s = v === 0 ? 0 : d / v;
  if (d === 0) return [0, s, v];
  let hue: number;
  if (v === r) hue = (g - b) / d;
  else if (v === g) hue = 2 + (b - r) / d;
  else hue = 4 + (r - g) / d;
  hue /= 6;
  if (hue < 0) hue += 1;
  return [hue, s, v];
}

export function hsvToRgb(hue: number, s: number, v: number): [number, number, number] {
  const h6 = (((hue % 1) + 1) % 1) * 6;
  const i = Math.floor(h6) % 6;
  const f = h6 - Math.floor(h6);
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  switch (i) {
    case 0:
      return [v, t, p];
    case 1:
      return [q, v, p];
    case 2:
      return [p, v, t];
    case 3:
      return [p, q, v];
    case 4:
      return [t, p, v];
    default:
      return [v, p, q];
  }
}

/** Draws a Poisson(λ) variate: multiplication for small λ, Hörmann's PTRS rejection for λ ≥ 10. */
export function poisson(lambda: number, rng: Rng): number {
  if (!(lambda > 0)) return 0;
  if (lambda < 10) {
    const limit = Math.exp(-lambda);
    let k = 0;
    let p = rng.uniform();
    while (p > limit) {
      k++;
      p *= rng.uniform();
    }
    return k;
  }
  const slam = Math.sqrt(lambda);
  const loglam = Math.log(lambda);
  const b = 0.931 + 2.53 * slam;
  const a = -0.059 + 0.02483 * b;
  const invAlpha = 1.1239 + 1.1328 / (b - 3.4);
  const vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const u = rng.uniform() - 0.5;
    const v = rng.uniform();
    const us = 0.5 - Math.abs(u);
    const k = Math.floor(((2 * a) / us + b) * u + lambda + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (Math.log(v) + Math.log(invAlpha) - Math.log(a / (us * us) + b) <= -lambda + k * loglam - logGamma(k + 1))
      return k;
  }
}

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** log Γ(x) for x > 0 (Lanczos, g = 7). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const xx = x - 1;
  let a = LANCZOS[0]!;
  const t = xx + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (xx + i);
  return 0.5 * Math.log(2 * Math.PI) + (xx + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Uniform real in [lo, hi). */
export function uniformIn(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng.uniform();
}
