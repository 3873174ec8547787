/**
 * Image preprocessing as the V-MoE / E³ fine-tuning recipes do it, in pure array code (no tensors):
 * fitting a data set to the model's input (bilinear resize, grey ↔ RGB), crops (random, central, inception),
 * horizontal flips, values in [−1, 1], and mixup. Every random choice comes from an `Rng` keyed by
 * (seed, step, example) — `keyedRng` — so an augmented batch never depends on the order work was scheduled in.
 */
import { Rng } from '../util/rng.js';
import { DataError } from '../util/errors.js';

/** A crop rectangle in source pixels: top-left corner (y, x) and size (h, w), all integers. */
export interface CropBox {
  y: number;
  x: number;
  h: number;
  w: number;
}

function mix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * A generator that depends only on (seed, step, example): the augmentation of one example at one training step,
 * the same whichever worker draws it and whenever.
 */
export function keyedRng(seed: number, step: number, example: number): Rng {
  const a = mix32(seed + 0x9e3779b9);
  const b = mix32((step ^ a) + 0x7f4a7c15);
  const c = mix32((example ^ b) + 0x94d049bb);
  return new Rng([a, b, c, mix32(a ^ b ^ c ^ 0x2545f491)]);
}

/**
 * Bilinear resize of one (H, W, C) image to (outH, outW, C) with half-pixel centres (source coordinate
 * (i + ½)·H/outH − ½, clamped to the image), as `tf.image.resize(..., 'bilinear')` without antialiasing.
 * `box` resizes only that crop of the source. Returns float values (not rounded).
 */
export function resizeBilinear(
  src: ArrayLike<number>,
  H: number,
  W: number,
  C: number,
  outH: number,
  outW: number,
  box: CropBox = { y: 0, x: 0, h: H, w: W },
  out: Float32Array = new Float32Array(outH * outW * C),
): Float32Array {
  const sy = box.h / outH;
  const sx = box.w / outW;
  // Column taps and weights once per call (the same for every row): offsets of x0, x1 in pixels·C, and wx.
  const col0 = new Int32Array(outW);
  const col1 = new Int32Array(outW);
  const colW = new Float64Array(outW);
  for (let j = 0; j < outW; j++) {
    const fx = Math.min(Math.max(box.x + (j + 0.5) * sx - 0.5, box.x), box.x + box.w - 1);
    const x0 = Math.floor(fx);
    col0[j] = x0 * C;
    col1[j] = Math.min(x0 + 1, box.x + box.w - 1) * C;
    colW[j] = fx - x0;
  }
  for (let i = 0; i < outH; i++) {
    const fy = Math.min(Math.max(box.y + (i + 0.5) * sy - 0.5, box.y), box.y + box.h - 1);
    const y0 = Math.floor(fy);
    const r0 = y0 * W * C;
    const r1 = Math.min(y0 + 1, box.y + box.h - 1) * W * C;
    const wy = fy - y0;
    for (let j = 0; j < outW; j++) {
      const a = col0[j]!;
      const b = col1[j]!;
      const wx = colW[j]!;
      const o = (i * outW + j) * C;
      for (let c = 0; c < C; c++) {
        const top = src[r0 + a + c]! * (1 - wx) + src[r0 + b + c]! * wx;
        const bot = src[r1 + a + c]! * (1 - wx) + src[r1 + b + c]! * wx;
        out[o + c] = top * (1 - wy) + bot * wy;
      }
    }
  }
  return out;
}

/**
 * Converts (n·P, C) pixels to `toC` channels: grey → RGB repeats the value, RGB → grey is the ITU-R BT.601 luma
 * 0.299 R + 0.587 G + 0.114 B (as `tf.image.rgb_to_grayscale`), rounded.
 */
export function convertChannels(src: Uint8Array, fromC: number, toC: number): Uint8Array {
  if (fromC === toC) return src;
  const pixels = src.length / fromC;
  const out = new Uint8Array(pixels * toC);
  if (fromC === 1 && toC === 3) {
    for (let p = 0; p < pixels; p++) out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = src[p]!;
  } else if (fromC === 3 && toC === 1) {
    for (let p = 0; p < pixels; p++) {
      out[p] = Math.round(0.299 * src[3 * p]! + 0.587 * src[3 * p + 1]! + 0.114 * src[3 * p + 2]!);
    }
  } else {
    throw new DataError(`cannot convert images with ${fromC} channels to ${toC} (only 1 ↔ 3)`);
  }
  return out;
}

/** The images of a data set, (n, H, W, C) uint8, with their geometry. */
export interface ImageArray {
  n: number;
  height: number;
  width: number;
  channels: number;
  images: Uint8Array;
}

/**
 * Fits (n, H, W, C) uint8 images to the model's input (size × size × channels): channels converted, then each
 * image resized bilinearly and rounded. Returns the input unchanged when it already fits.
 */
export function fitImages<T extends ImageArray>(ds: T, size: number | undefined, channels: number | undefined): T {
  const toC = channels ?? ds.channels;
  const toH = size ?? ds.height;
  const toW = size ?? ds.width;
  if (toC === ds.channels && toH === ds.height && toW === ds.width) return ds;
  const conv = convertChannels(ds.images, ds.channels, toC);
  if (toH === ds.height && toW === ds.width) return { ...ds, channels: toC, images: conv };
  const inPix = ds.height * ds.width * toC;
  const outPix = toH * toW * toC;
  const images = new Uint8Array(ds.n * outPix);
  const tmp = new Float32Array(outPix);
  for (let i = 0; i < ds.n; i++) {
    resizeBilinear(conv.subarray(i * inPix, (i + 1) * inPix), ds.height, ds.width, toC, toH, toW, undefined, tmp);
    for (let k = 0; k < outPix; k++) images[i * outPix + k] = Math.round(tmp[k]!);
  }
  return { ...ds, height: toH, width: toW, channels: toC, images };
}

/**
 * Every image's central crop of `fraction` of each side, resized back to H×W (bilinear, rounded): the evaluation
 * crop of recipes that resize to size/fraction and crop `size`.
 */
export function centralCropImages<T extends ImageArray>(ds: T, fraction: number): T {
  const { n, height: H, width: W, channels: C } = ds;
  const box = centralCropBox(H, W, fraction);
  const pixels = H * W * C;
  const images = new Uint8Array(n * pixels);
  const tmp = new Float32Array(pixels);
  for (let i = 0; i < n; i++) {
    resizeBilinear(ds.images.subarray(i * pixels, (i + 1) * pixels), H, W, C, H, W, box, tmp);
    for (let k = 0; k < pixels; k++) images[i * pixels + k] = Math.round(tmp[k]!);
  }
  return { ...ds, images };
}

/** The central crop keeping `fraction` of each side (at least one pixel), e.g. 0.875 as Inception's evaluation. */
export function centralCropBox(H: number, W: number, fraction: number): CropBox {
  if (!(fraction > 0 && fraction <= 1)) throw new DataError(`central crop fraction must be in (0, 1], got ${fraction}`);
  const h = Math.max(1, Math.round(H * fraction));
  const w = Math.max(1, Math.round(W * fraction));
  return { y: Math.floor((H - h) / 2), x: Math.floor((W - w) / 2), h, w };
}

/**
 * Inception crop (Szegedy et al. 2015; big_vision's `inception_crop`): a random box covering `areaMin`..1 of the
 * image with aspect ratio log-uniform in [3/4, 4/3]; after 10 failed draws, the whole image.
 */
export function inceptionCropBox(rng: Rng, H: number, W: number, areaMin = 0.05): CropBox {
  const logLo = Math.log(3 / 4);
  const logHi = Math.log(4 / 3);
  for (let attempt = 0; attempt < 10; attempt++) {
    const area = H * W * (areaMin + (1 - areaMin) * rng.uniform());
    const ratio = Math.exp(logLo + (logHi - logLo) * rng.uniform());
    const w = Math.round(Math.sqrt(area * ratio));
    const h = Math.round(Math.sqrt(area / ratio));
    if (w >= 1 && h >= 1 && w <= W && h <= H) return { y: rng.int(H - h + 1), x: rng.int(W - w + 1), h, w };
  }
  return { y: 0, x: 0, h: H, w: W };
}

/** Training augmentation of `augmentImage`: pad-and-crop, inception crop, flip. */
export interface ImageAugment {
  /** Zero-pad each side by this many pixels, then crop back to H×W at a random offset. */
  randomCrop?: number;
  /** Inception crop (random area/aspect box resized back to H×W); `randomCrop` is then ignored. */
  inceptionCrop?: boolean;
  /** Smallest area fraction of the inception crop (default 0.05, big_vision's). */
  inceptionAreaMin?: number;
  /** Mirror left-right with probability ½. */
  flip?: boolean;
}

/**
 * One (H, W, C) uint8 image → float (H, W, C) in [−1, 1] (x/127.5 − 1, or `scale`), augmented with draws from `rng` in a fixed
 * order: the inception box (or the pad-crop row and column), then the flip. Without augmentation it is a pure
 * scaling. `evalCrop` < 1 takes the central crop and resizes it back (evaluation).
 */
export function augmentImage(
  src: Uint8Array,
  H: number,
  W: number,
  C: number,
  aug: ImageAugment,
  rng: Rng | null,
  out: Float32Array,
  evalCrop = 1,
  scale: { mul: number; add: number } = { mul: 1 / 127.5, add: -1 },
): void {
  const pad = aug.inceptionCrop ? 0 : (aug.randomCrop ?? 0);
  if ((aug.inceptionCrop || pad > 0 || aug.flip) && !rng)
    throw new DataError('augmentImage: augmentation needs an rng');
  let img: ArrayLike<number> = src;
  if (aug.inceptionCrop || evalCrop < 1) {
    const box = aug.inceptionCrop ? inceptionCropBox(rng!, H, W, aug.inceptionAreaMin) : centralCropBox(H, W, evalCrop);
    img = resizeBilinear(src, H, W, C, H, W, box);
  }
  const dy = pad > 0 ? rng!.int(2 * pad + 1) - pad : 0;
  const dx = pad > 0 ? rng!.int(2 * pad + 1) - pad : 0;
  const mirrored = aug.flip ? rng!.uniform() < 0.5 : false;
  for (let i = 0; i < H; i++) {
    const si = i + dy;
    for (let j = 0; j < W; j++) {
      const sj = (mirrored ? W - 1 - j : j) + dx;
      const inside = si >= 0 && si < H && sj >= 0 && sj < W;
      const s = (si * W + sj) * C;
      const o = (i * W + j) * C;
      for (let c = 0; c < C; c++) out[o + c] = (inside ? img[s + c]! : 0) * scale.mul + scale.add;
    }
  }
}

/**
 * Mixup (Zhang et al. 2018, as big_vision's `mixup`): one λ ~ Beta(α, α) per batch, image b mixed with image
 * b−1 (cyclically): x' = λ·x_b + (1−λ)·x_{b−1}, and the one-hot targets likewise. Returns the mixed images and
 * (B, K) soft targets.
 */
export function mixupBatch(
  x: Float32Array,
  y: Int32Array,
  numClasses: number,
  alpha: number,
  rng: Rng,
): { x: Float32Array; targets: Float32Array; lambda: number } {
  const B = y.length;
  const per = x.length / B;
  const lambda = sampleBeta(rng, alpha);
  const out = new Float32Array(x.length);
  const targets = new Float32Array(B * numClasses);
  for (let b = 0; b < B; b++) {
    const p = (b + B - 1) % B;
    for (let k = 0; k < per; k++) out[b * per + k] = lambda * x[b * per + k]! + (1 - lambda) * x[p * per + k]!;
    targets[b * numClasses + y[b]!]! += lambda;
    targets[b * numClasses + y[p]!]! += 1 - lambda;
  }
  return { x: out, targets, lambda };
}

/** Beta(α, α) as G₁/(G₁+G₂) of two Gamma(α) draws (Marsaglia–Tsang, with the α < 1 boost). */
export function sampleBeta(rng: Rng, alpha: number): number {
  if (!(alpha > 0)) throw new DataError(`mixup alpha must be positive, got ${alpha}`);
  const g1 = sampleGamma(rng, alpha);
  const g2 = sampleGamma(rng, alpha);
  return g1 + g2 > 0 ? g1 / (g1 + g2) : 0.5;
}

function sampleGamma(rng: Rng, a: number): number {
  if (a < 1) {
    let u = rng.uniform();
    while (u <= 0) u = rng.uniform();
    return sampleGamma(rng, a + 1) * u ** (1 / a);
  }
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const z = rng.normal();
    const v = (1 + c * z) ** 3;
    if (v <= 0) continue;
    const u = rng.uniform();
    if (Math.log(u) < 0.5 * z * z + d - d * v + d * Math.log(v)) return d * v;
  }
}
