/**
 * The ImageNet-C / CIFAR-10-C corruptions (15 + 4 held out) with severity
 * constants for 28×28 images.
 *
 * How the 28×28 constants follow from the CIFAR-10-C (32×32) ones
 * (hendrycks/robustness, make_cifar_c.py), r = 28/32 = 0.875:
 *
 * | corruption       | CIFAR-10-C, severity 1..5                 | here (28×28)                       | why |
 * |------------------|-------------------------------------------|------------------------------------|-----|
 * | gaussian_noise   | σ .04 .06 .08 .09 .10                     | same                               | per-value amplitude: no size in it |
 * | shot_noise       | photons 500 250 100 75 50                 | same                               | per-value |
 * | impulse_noise    | amount .01 .02 .03 .05 .07                | same                               | a fraction of values |
 * | speckle_noise    | σ .06 .10 .12 .16 .20                     | same                               | per-value |
 * | defocus_blur     | (radius, alias σ) (.3,.4) (.4,.5) (.5,.6) (1,.2) (1.5,.1) | both ×r             | lengths in pixels |
 * | glass_blur       | (σ, δ, rounds) (.05,1,1) (.25,1,1) (.4,1,1) (.25,1,2) (.4,1,2) | σ ×r; δ stays 1 (0.875 rounds to 1, the smallest swap); rounds same | |
 * | motion_blur      | (radius, σ) (6,1) (6,1.5) (6,2) (8,2) (9,2.5) | both ×r                        | lengths in pixels |
 * | zoom_blur        | zooms 1..1.05 … 1..1.25, step .01         | same                               | zoom factors are relative |
 * | snow             | 7-tuples                                  | flake blur radius, σ ×r; rest same | field stats, zoom, threshold, blend are size-free |
 * | frost            | (image, frost) (1,.2) (1,.3) (.9,.4) (.85,.4) (.75,.45) | same             | blend weights |
 * | fog              | (amount, decay) (.2,3) (.5,3) (.75,2.5) (1,2) (1.5,1.75) | same            | fractal on the next power of two (32 for both sizes) |
 * | brightness       | +V .05 .10 .15 .20 .30                    | same                               | intensities |
 * | contrast         | ×.75 .5 .4 .3 .15                         | same                               | intensities |
 * | elastic_transform| IMSIZE·(α, σ, affine), IMSIZE = 32        | IMSIZE = 28 (i.e. ×r)              | the reference already states them as fractions of the size |
 * | pixelate         | ×.95 .9 .85 .75 .65 of the side           | same (26 25 23 21 18 pixels)       | fractions of the side |
 * | jpeg_compression | quality 80 65 58 50 40                    | same                               | quality is per 8×8 block, not per image |
 * | gaussian_blur    | σ .4 .6 .7 .8 1                           | ×r                                 | lengths in pixels |
 * | spatter          | 6-tuples (water 1–3, mud 4–5)             | liquid σ and mud σ ×r; rest same   | lengths in pixels |
 * | saturate         | (×S, +S) (.3,0) (.1,0) (1.5,0) (2,.1) (2.5,.2) | same                          | intensities |
 *
 * Lengths here are pixels of a 28-pixel image; other sizes scale them by
 * min(h, w)/28 (see pixelScale), so the same table serves any resolution.
 *
 * Kept as published although not ordered by pixel distance from the clean image
 * (checked in tests/robustness/corruptions.test.ts):
 * - glass_blur 1–3 differ only in a σ below the pixel grid (1 ≈ 2); 4–5 swap twice.
 * - motion_blur 3 and 4 differ only in a kernel length whose extra taps weigh < 1e-6: identical.
 * - frost 3 → 4 lowers the image weight at equal frost weight (the frost/image ratio still grows).
 * - elastic_transform: the affine jitter shrinks while the local displacement grows.
 * - pixelate 26 → 25 pixels realigns the blocks.
 * - spatter 1–3 is water, 4–5 mud; saturate 1–2 desaturate, 3–5 oversaturate.
 *
 * Our own choices where the reference relies on ImageMagick/OpenCV/PIL: disk
 * kernels by area coverage, symmetric glass-blur swaps, bilinear line-kernel taps,
 * a procedural ice texture for frost, emboss shading for water spatter, one
 * resampling for elastic, jpeg-js (no chroma subsampling) for JPEG. Grey-image
 * analogues of brightness and saturate are documented in digital.ts.
 */
import type { Rng } from '../util/rng.js';
import { checkImage } from './image-ops.js';
import { gaussianNoise, impulseNoise, shotNoise, speckleNoise } from './noise.js';
import {
  defocusBlur,
  gaussianBlur,
  glassBlur,
  motionBlur,
  zoomBlur,
  type GlassConstant,
  type MotionConstant,
  type ZoomConstant,
} from './blur.js';
import {
  fog,
  frost,
  snow,
  spatter,
  type FogConstant,
  type FrostConstant,
  type SnowConstant,
  type SpatterConstant,
} from './weather.js';
import {
  brightness,
  contrast,
  elasticTransform,
  jpegCompression,
  pixelate,
  saturate,
  type ElasticConstant,
  type SaturateConstant,
} from './digital.js';
import { checkSeverity, type CorruptionFamily, type CorruptionFn, type CorruptionSpec } from './types.js';
import { CorruptionError } from '../util/errors.js';

const R = 28 / 32;

type Apply<K> = (img: Float32Array, h: number, w: number, c: number, k: K, rng: Rng) => Float32Array;

/** Wraps a constant-taking corruption into a CorruptionFn: checks input, severity 0 → copy. */
export function withSeverities<K>(name: string, constants: readonly K[], apply: Apply<K>): CorruptionFn {
  return (img, h, w, c, severity, rng) => {
    checkImage(img, h, w, c, name);
    checkSeverity(severity, name, constants.length);
    if (severity === 0) return img.slice();
    return apply(img, h, w, c, constants[severity - 1]!, rng);
  };
}

function spec<K>(
  name: string,
  family: CorruptionFamily,
  heldOut: boolean,
  constants: K[],
  apply: Apply<K>,
): CorruptionSpec {
  return { fn: withSeverities(name, constants, apply), family, constants, heldOut };
}

const scaleLen = <T extends Record<string, unknown>>(o: T, keys: (keyof T)[]): T => {
  const out = { ...o };
  for (const k of keys) (out as Record<keyof T, unknown>)[k] = (o[k] as number) * R;
  return out;
};

const DEFOCUS = [
  [0.3, 0.4],
  [0.4, 0.5],
  [0.5, 0.6],
  [1, 0.2],
  [1.5, 0.1],
].map(([radius, alias]) => ({ radius: radius! * R, alias: alias! * R }));
const GLASS: GlassConstant[] = [
  [0.05, 1, 1],
  [0.25, 1, 1],
  [0.4, 1, 1],
  [0.25, 1, 2],
  [0.4, 1, 2],
].map(([sigma, delta, iterations]) => ({ sigma: sigma! * R, delta: delta!, iterations: iterations! }));
const MOTION: MotionConstant[] = [
  [6, 1],
  [6, 1.5],
  [6, 2],
  [8, 2],
  [9, 2.5],
].map(([radius, sigma]) => ({ radius: radius! * R, sigma: sigma! * R }));
const ZOOM: ZoomConstant[] = [1.05, 1.1, 1.15, 1.2, 1.25].map((maxZoom) => ({ maxZoom, step: 0.01 }));
const SNOW: SnowConstant[] = [
  [0.1, 0.2, 1, 0.6, 8, 3, 0.95],
  [0.1, 0.2, 1, 0.5, 10, 4, 0.9],
  [0.15, 0.3, 1.75, 0.55, 10, 4, 0.9],
  [0.25, 0.3, 2.25, 0.6, 12, 6, 0.85],
  [0.3, 0.3, 1.25, 0.65, 14, 12, 0.8],
].map(([loc, scale, zoom, threshold, radius, sigma, blend]) =>
  scaleLen(
    { loc: loc!, scale: scale!, zoom: zoom!, threshold: threshold!, radius: radius!, sigma: sigma!, blend: blend! },
    ['radius', 'sigma'],
  ),
);
const FROST: FrostConstant[] = [
  [1, 0.2],
  [1, 0.3],
  [0.9, 0.4],
  [0.85, 0.4],
  [0.75, 0.45],
].map(([image, f]) => ({ image: image!, frost: f! }));
const FOG: FogConstant[] = [
  [0.2, 3],
  [0.5, 3],
  [0.75, 2.5],
  [1, 2],
  [1.5, 1.75],
].map(([amount, decay]) => ({ amount: amount!, decay: decay! }));
const ELASTIC: ElasticConstant[] = [
  [0, 0, 0.08],
  [0.05, 0.2, 0.07],
  [0.08, 0.06, 0.06],
  [0.1, 0.04, 0.05],
  [0.1, 0.03, 0.03],
].map(([alpha, sigma, affine]) => ({ alpha: 28 * alpha!, sigma: 28 * sigma!, affine: 28 * affine! }));
const SPATTER: SpatterConstant[] = [
  [0.62, 0.1, 0.7, 0.7, 0.5, 0],
  [0.65, 0.1, 0.8, 0.7, 0.5, 0],
  [0.65, 0.3, 1, 0.69, 0.5, 0],
  [0.65, 0.1, 0.7, 0.69, 0.6, 1],
  [0.65, 0.1, 0.5, 0.68, 0.6, 1],
].map(([loc, scale, sigma, threshold, intensity, mud]) => ({
  loc: loc!,
  scale: scale!,
  sigma: sigma! * R,
  threshold: threshold!,
  // mud's 5th number is a blur σ (a length); water's is a brightness
  intensity: mud ? intensity! * R : intensity!,
  mud: mud === 1,
}));
const SATURATE: SaturateConstant[] = [
  [0.3, 0],
  [0.1, 0],
  [1.5, 0],
  [2, 0.1],
  [2.5, 0.2],
].map(([scale, shift]) => ({ scale: scale!, shift: shift! }));

/**
 * The Fashion-MNIST-C suite (ImageNet-C's corruptions adapted to 28×28 images) by name, e.g. `gaussian_noise`,
 * `defocus_blur`, `fog`, `jpeg_compression`.
 */
export const CORRUPTIONS: Record<string, CorruptionSpec> = {
  gaussian_noise: spec('gaussian_noise', 'noise', false, [0.04, 0.06, 0.08, 0.09, 0.1], (img, _h, _w, _c, k, rng) =>
    gaussianNoise(img, k, rng),
  ),
  shot_noise: spec('shot_noise', 'noise', false, [500, 250, 100, 75, 50], (img, _h, _w, _c, k, rng) =>
    shotNoise(img, k, rng),
  ),
  impulse_noise: spec('impulse_noise', 'noise', false, [0.01, 0.02, 0.03, 0.05, 0.07], (img, _h, _w, _c, k, rng) =>
    impulseNoise(img, k, rng),
  ),
  defocus_blur: spec('defocus_blur', 'blur', false, DEFOCUS, (img, h, w, c, k) => defocusBlur(img, h, w, c, k)),
  glass_blur: spec('glass_blur', 'blur', false, GLASS, glassBlur),
  motion_blur: spec('motion_blur', 'blur', false, MOTION, motionBlur),
  zoom_blur: spec('zoom_blur', 'blur', false, ZOOM, (img, h, w, c, k) => zoomBlur(img, h, w, c, k)),
  snow: spec('snow', 'weather', false, SNOW, snow),
  frost: spec('frost', 'weather', false, FROST, frost),
  fog: spec('fog', 'weather', false, FOG, fog),
  brightness: spec('brightness', 'digital', false, [0.05, 0.1, 0.15, 0.2, 0.3], (img, h, w, c, k) =>
    brightness(img, h, w, c, k),
  ),
  contrast: spec('contrast', 'digital', false, [0.75, 0.5, 0.4, 0.3, 0.15], (img, h, w, c, k) =>
    contrast(img, h, w, c, k),
  ),
  elastic_transform: spec('elastic_transform', 'digital', false, ELASTIC, elasticTransform),
  pixelate: spec('pixelate', 'digital', false, [0.95, 0.9, 0.85, 0.75, 0.65], (img, h, w, c, k) =>
    pixelate(img, h, w, c, k),
  ),
  jpeg_compression: spec('jpeg_compression', 'digital', false, [80, 65, 58, 50, 40], (img, h, w, c, k) =>
    jpegCompression(img, h, w, c, k),
  ),
  speckle_noise: spec('speckle_noise', 'noise', true, [0.06, 0.1, 0.12, 0.16, 0.2], (img, _h, _w, _c, k, rng) =>
    speckleNoise(img, k, rng),
  ),
  gaussian_blur: spec(
    'gaussian_blur',
    'blur',
    true,
    [0.4, 0.6, 0.7, 0.8, 1].map((s) => s * R),
    (img, h, w, c, k) => gaussianBlur(img, h, w, c, k),
  ),
  spatter: spec('spatter', 'weather', true, SPATTER, spatter),
  saturate: spec('saturate', 'digital', true, SATURATE, (img, h, w, c, k) => saturate(img, h, w, c, k)),
};

/** The 15 benchmark corruptions, in ImageNet-C order. */
export const BENCHMARK_CORRUPTIONS = Object.keys(CORRUPTIONS).filter((n) => !CORRUPTIONS[n]!.heldOut);
/** The four corruptions ImageNet-C keeps out of the benchmark average. */
export const HELD_OUT_CORRUPTIONS = Object.keys(CORRUPTIONS).filter((n) => CORRUPTIONS[n]!.heldOut);

/** The Fashion-MNIST-C corruption called `name`; throws a `CorruptionError` listing the names otherwise. */
export function getCorruption(name: string): CorruptionSpec {
  const s = CORRUPTIONS[name];
  if (!s) throw new CorruptionError(`unknown corruption '${name}': use one of ${Object.keys(CORRUPTIONS).join(', ')}`);
  return s;
}
