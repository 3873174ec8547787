/** Blur corruptions. Spatial constants are in pixels of a 28-pixel image (scaled by pixelScale). */
import type { Rng } from '../util/rng.js';
import {
  centreZoom,
  clip01InPlace,
  convolve2d,
  convolveSeparable,
  gaussianBlurPlane,
  gaussianKernel1d,
  mapPlanes,
  motionBlurPlane,
  pixelScale,
  uniformIn,
} from './image-ops.js';

/**
 * Anti-aliased disk kernel: each cell weighs the fraction of its area inside the
 * circle (8×8 supersampling), then a Gaussian of σ = alias softens the rim.
 * Area coverage (rather than the reference's centre test) makes the kernel grow
 * continuously with the radius, which matters for sub-pixel radii.
 * Returns the (k, k) kernel, k odd, summing to 1.
 */
export function diskKernel(radius: number, alias: number): { kernel: Float32Array; size: number } {
  const r = Math.ceil(radius + 0.5) + (alias > 0 ? Math.ceil(3 * alias) : 0);
  const size = 2 * r + 1;
  const sub = 8;
  let disk: Float32Array = new Float32Array(size * size); // (size, size)
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      let inside = 0;
      for (let a = 0; a < sub; a++) {
        for (let b = 0; b < sub; b++) {
          const y = i - r + (a + 0.5) / sub - 0.5;
          const x = j - r + (b + 0.5) / sub - 0.5;
          if (y * y + x * x <= radius * radius) inside++;
        }
      }
      disk[i * size + j] = inside;
    }
  }
  if (disk.every((v) => v === 0)) disk[r * size + r] = 1; // radius smaller than the subsample spacing
  if (alias > 0) disk = convolveSeparable(disk, size, size, gaussianKernel1d(alias, 3), 'constant');
  let sum = 0;
  for (const v of disk) sum += v;
  for (let i = 0; i < disk.length; i++) disk[i]! /= sum;
  return { kernel: disk, size };
}

/** Convolve with an anti-aliased disk: a camera out of focus. */
export function defocusBlur(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  k: { radius: number; alias: number },
): Float32Array {
  const s = pixelScale(h, w);
  const { kernel, size } = diskKernel(k.radius * s, k.alias * s);
  return clip01InPlace(mapPlanes(img, h, w, c, (p) => convolve2d(p, h, w, kernel, size, size, 'reflect')));
}

export function gaussianBlur(img: Float32Array, h: number, w: number, c: number, sigma: number): Float32Array {
  const s = pixelScale(h, w);
  return clip01InPlace(mapPlanes(img, h, w, c, (p) => gaussianBlurPlane(p, h, w, sigma * s, 'nearest')));
}

export interface GlassConstant {
  sigma: number;
  /** Largest pixel displacement of a swap (integer pixels at 28×28). */
  delta: number;
  iterations: number;
  /** Chance that a pixel is swapped at all (1 in ImageNet-C, 0.5 in MNIST-C). */
  swapProbability?: number;
}

/**
 * Frosted glass: blur, swap each pixel with a random neighbour within ±δ
 * (scanning from the bottom-right, so a pixel can travel several steps), blur again.
 * The offset is symmetric in [−δ, δ]; the reference draws from [−δ, δ) (a drift to
 * the top-left we do not reproduce).
 */
export function glassBlur(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  k: GlassConstant,
  rng: Rng,
): Float32Array {
  const s = pixelScale(h, w);
  const sigma = k.sigma * s;
  const delta = Math.max(1, Math.round(k.delta * s));
  const pSwap = k.swapProbability ?? 1;
  const x = mapPlanes(img, h, w, c, (p) => gaussianBlurPlane(p, h, w, sigma, 'nearest')); // (H, W, C)
  for (let it = 0; it < k.iterations; it++) {
    for (let yy = h - 1 - delta; yy >= delta; yy--) {
      for (let xx = w - 1 - delta; xx >= delta; xx--) {
        const doSwap = pSwap >= 1 || rng.uniform() < pSwap;
        if (!doSwap) continue;
        const dy = rng.int(2 * delta + 1) - delta;
        const dx = rng.int(2 * delta + 1) - delta;
        const a = (yy * w + xx) * c;
        const b = ((yy + dy) * w + xx + dx) * c;
        for (let ch = 0; ch < c; ch++) {
          const t = x[a + ch]!;
          x[a + ch] = x[b + ch]!;
          x[b + ch] = t;
        }
      }
    }
  }
  return clip01InPlace(mapPlanes(x, h, w, c, (p) => gaussianBlurPlane(p, h, w, sigma, 'nearest')));
}

export interface MotionConstant {
  /** Kernel length is 2·ceil(radius) + 1 taps. */
  radius: number;
  sigma: number;
}

/** Camera shake: a one-sided line kernel at a random angle in ±45°. */
export function motionBlur(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  k: MotionConstant,
  rng: Rng,
): Float32Array {
  const s = pixelScale(h, w);
  const angle = uniformIn(rng, -45, 45);
  return clip01InPlace(mapPlanes(img, h, w, c, (p) => motionBlurPlane(p, h, w, k.radius * s, k.sigma * s, angle)));
}

export interface ZoomConstant {
  maxZoom: number;
  step: number;
}

/** The zoom factors 1, 1 + step, …, maxZoom (inclusive). */
export function zoomFactors(k: ZoomConstant): number[] {
  const n = Math.round((k.maxZoom - 1) / k.step);
  return Array.from({ length: n + 1 }, (_, i) => 1 + i * k.step);
}

/** Mean of the image and its centre zooms: moving towards the object while the shutter is open. */
export function zoomBlur(img: Float32Array, h: number, w: number, c: number, k: ZoomConstant): Float32Array {
  const factors = zoomFactors(k);
  return clip01InPlace(
    mapPlanes(img, h, w, c, (p) => {
      const acc = p.slice(); // the unzoomed image counts once more, as in the reference
      for (const z of factors) {
        const zoomed = centreZoom(p, h, w, z);
        for (let i = 0; i < acc.length; i++) acc[i]! += zoomed[i]!;
      }
      for (let i = 0; i < acc.length; i++) acc[i]! /= factors.length + 1;
      return acc;
    }),
  );
}
