/**
 * The MNIST-C suite (Mu & Gilmer 2019, google-research/mnist-c): 15 corruptions,
 * each at the one severity the released data set uses. Constants are MNIST-C's own
 * (already for 28×28, so no rescaling; lengths scale by min(h, w)/28 for other sizes).
 *
 * | corruption    | MNIST-C level | constant                                   |
 * |---------------|---------------|--------------------------------------------|
 * | shot_noise    | 5             | 3 photons                                  |
 * | impulse_noise | 4             | amount .17                                 |
 * | glass_blur    | 1             | σ .7, δ 1, 2 rounds, each pixel swapped with p = .5 |
 * | motion_blur   | 1             | radius 10, σ 3                             |
 * | shear         | 2             | ±0.4 rad (sign at random)                  |
 * | scale         | 3             | content shrunk to 0.7 (inverse map ×1/0.7) |
 * | rotate        | 2             | ±0.4 rad (sign at random)                  |
 * | translate     | 3             | ±3 px in x and in y (signs at random)      |
 * | brightness    | 5             | +0.5                                       |
 * | fog           | 5             | amount 3, decay 1.4, fractal 256 px        |
 * | spatter       | 4             | mud (.65, .3, σ 1, .65, blob σ 1.5), grey 63/255 |
 * | stripe        | —             | invert the outer quarter columns on both sides |
 * | dotted_line   | —             | one random line across, every other 2-column block removed |
 * | zigzag        | —             | a zigzag (step 2 px, amplitude 2 px) across at a random height and tilt |
 * | canny_edges   | —             | Canny edges (σ 1, thresholds .1/.2)         |
 *
 * Affine ones map the image centre ((h−1)/2, (w−1)/2) to itself; outside is black.
 * Each entry's fn takes severity 0 (identity) or 1 (the MNIST-C corruption).
 */
import type { Rng } from '../util/rng.js';
import { glassBlur, motionBlur } from './blur.js';
import { cannyEdges } from './canny.js';
import { withSeverities } from './corruptions.js';
import { brightness } from './digital.js';
import { affineSource, centredAffine, clip01, clip01InPlace, mapPlanes, pixelScale, warpPlane } from './image-ops.js';
import { impulseNoise, shotNoise } from './noise.js';
import type { CorruptionFamily, CorruptionFn } from './types.js';
import { CorruptionError } from '../util/errors.js';
import { fog, spatter } from './weather.js';

/** A corruption of the MNIST-C suite: its function, family, MNIST-C's level and constant. */
export interface MnistCSpec {
  /** severity 0 → copy, 1 → the corruption. */
  fn: CorruptionFn;
  family: CorruptionFamily;
  /** MNIST-C's severity level (1..5) for this corruption; null where it has no levels. */
  level: number | null;
  constant: unknown;
}

const randomSign = (rng: Rng): number => (rng.uniform() < 0.5 ? -1 : 1);

/** Resamples each channel through a centred linear map A on (y, x) offsets: output p samples c + A·(p − c). */
export function centredWarp(
  img: Float32Array,
  h: number,
  w: number,
  c: number,
  a: [[number, number], [number, number]],
): Float32Array {
  const src = affineSource(centredAffine(a, (h - 1) / 2, (w - 1) / 2));
  return clip01InPlace(mapPlanes(img, h, w, c, (p) => warpPlane(p, h, w, src, 'constant', 0)));
}

/** Rotation by θ radians (inverse map as skimage's AffineTransform(rotation=θ) in (x, y)). */
export function rotate(img: Float32Array, h: number, w: number, c: number, theta: number): Float32Array {
  const cs = Math.cos(theta);
  const sn = Math.sin(theta);
  // skimage: sx = cos·x − sin·y, sy = sin·x + cos·y; rows of A are (sy, sx) over (y, x)
  return centredWarp(img, h, w, c, [
    [cs, sn],
    [-sn, cs],
  ]);
}

/** Shear by angle s (skimage's AffineTransform(shear=s): sx = x − sin(s)·y, sy = cos(s)·y). */
export function shear(img: Float32Array, h: number, w: number, c: number, s: number): Float32Array {
  return centredWarp(img, h, w, c, [
    [Math.cos(s), 0],
    [-Math.sin(s), 1],
  ]);
}

/** Inverse-map scale: output p samples c + f·(p − c), so f > 1 shrinks the content by 1/f. */
export function scale(img: Float32Array, h: number, w: number, c: number, f: number): Float32Array {
  return centredWarp(img, h, w, c, [
    [f, 0],
    [0, f],
  ]);
}

/** Output (y, x) samples input (y + dy, x + dx): content moves by (−dy, −dx). */
export function translate(img: Float32Array, h: number, w: number, c: number, dy: number, dx: number): Float32Array {
  const src = affineSource([1, 0, dy, 0, 1, dx]);
  return clip01InPlace(mapPlanes(img, h, w, c, (p) => warpPlane(p, h, w, src, 'constant', 0)));
}

/** Inverts the left and right quarters of the columns (7 of 28 on each side). */
export function stripe(img: Float32Array, h: number, w: number, c: number): Float32Array {
  const q = Math.round(w / 4);
  const out = img.slice();
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (x >= q && x < w - q) continue;
      for (let ch = 0; ch < c; ch++) out[(y * w + x) * c + ch] = 1 - img[(y * w + x) * c + ch]!;
    }
  }
  return out;
}

/**
 * A soft line through (r0, c0)–(r1, c1) (rows, columns), drawn over columns
 * [floor(c0), ceil(c1)): intensity log(1 − d/2.3) + 1 clipped to [0, 1], d the
 * vertical distance to the line (so about 3 px thick), as MNIST-C draws them.
 */
export function linePlane(h: number, w: number, c0: number, r0: number, c1: number, r1: number): Float32Array {
  const out = new Float32Array(h * w);
  if (c1 < c0) [c0, r0, c1, r1] = [c1, r1, c0, r0];
  if (c1 === c0) return out;
  const slope = (r1 - r0) / (c1 - c0);
  const lo = Math.max(0, Math.floor(c0));
  const hi = Math.min(w, Math.ceil(c1));
  for (let x = lo; x < hi; x++) {
    const rowAtX = slope * (x - c0) + r0;
    for (let y = 0; y < h; y++) {
      const d = Math.min(Math.abs(y - rowAtX), 2.3 - 1e-10);
      out[y * w + x] = clip01(Math.log(1 - d / 2.3) + 1);
    }
  }
  return out;
}

function addPlane(img: Float32Array, h: number, w: number, c: number, plane: Float32Array): Float32Array {
  const out = new Float32Array(img.length);
  for (let p = 0; p < h * w; p++) for (let ch = 0; ch < c; ch++) out[p * c + ch] = clip01(img[p * c + ch]! + plane[p]!);
  return out;
}

/** A line from the left to the right edge between random heights, with every other 2-column block removed. */
export function dottedLine(img: Float32Array, h: number, w: number, c: number, rng: Rng): Float32Array {
  const r0 = rng.int(h - 1);
  const r1 = rng.int(h - 1);
  const line = linePlane(h, w, 0, r0, w - 1, r1);
  for (let x = 0; x < w; x++) {
    if (Math.floor(x / 2) % 2 === 0) for (let y = 0; y < h; y++) line[y * w + x] = 0;
  }
  return addPlane(img, h, w, c, line);
}

/**
 * A zigzag (half-period a = 2 px, amplitude b = 2 px at 28×28) along a line from
 * column 2 to column w − 3, starting at a random row and tilted by up to ±5 rows.
 * Our last vertex lies on the triangle wave at the line's end (MNIST-C's formula
 * for it is ad hoc).
 */
export function zigzag(img: Float32Array, h: number, w: number, c: number, rng: Rng): Float32Array {
  const s = pixelScale(h, w);
  const a = 2 * s;
  const b = 2 * s;
  const c0 = Math.round(2 * s);
  const c1 = w - 1 - c0;
  const r0 = rng.int(h - 1);
  const r1 = r0 + rng.int(10) - 5;
  const theta = Math.atan((r1 - r0) / (c1 - c0));
  const d = (c1 - c0) / Math.cos(theta);
  const wave = (u: number): number => {
    const t = (((u / a) % 4) + 4) % 4; // period 4a: 0 → b at a → 0 at 2a → −b at 3a → 0
    return b * (t <= 1 ? t : t <= 3 ? 2 - t : t - 4);
  };
  const local: Array<[number, number]> = [[0, 0]];
  for (let i = 0; (2 * i + 1) * a < d; i++) local.push([(2 * i + 1) * a, wave((2 * i + 1) * a)]);
  local.push([d, wave(d)]);
  const cs = Math.cos(theta);
  const sn = Math.sin(theta);
  const pts = local.map(([u, v]) => [c0 + u * cs - v * sn, r0 + u * sn + v * cs] as const);
  let out = img;
  for (let i = 1; i < pts.length; i++) {
    const [ca, ra] = pts[i - 1]!;
    const [cb, rb] = pts[i]!;
    out = addPlane(out, h, w, c, linePlane(h, w, ca, ra, cb, rb));
  }
  return out === img ? img.slice() : out;
}

export function canny(img: Float32Array, h: number, w: number, c: number): Float32Array {
  return mapPlanes(img, h, w, c, (p) => cannyEdges(p, h, w));
}

type Apply = (img: Float32Array, h: number, w: number, c: number, rng: Rng) => Float32Array;

function entry(
  name: string,
  family: CorruptionFamily,
  level: number | null,
  constant: unknown,
  apply: Apply,
): MnistCSpec {
  return {
    fn: withSeverities(name, [constant], (img, h, w, c, _k, rng) => apply(img, h, w, c, rng)),
    family,
    level,
    constant,
  };
}

/** The MNIST-C suite (Mu & Gilmer, 2019) by name, each at MNIST-C's own fixed level. */
export const MNIST_C: Record<string, MnistCSpec> = {
  shot_noise: entry('shot_noise', 'noise', 5, 3, (img, _h, _w, _c, rng) => shotNoise(img, 3, rng)),
  impulse_noise: entry('impulse_noise', 'noise', 4, 0.17, (img, _h, _w, _c, rng) => impulseNoise(img, 0.17, rng)),
  glass_blur: entry(
    'glass_blur',
    'blur',
    1,
    { sigma: 0.7, delta: 1, iterations: 2, swapProbability: 0.5 },
    (img, h, w, c, rng) => glassBlur(img, h, w, c, { sigma: 0.7, delta: 1, iterations: 2, swapProbability: 0.5 }, rng),
  ),
  motion_blur: entry('motion_blur', 'blur', 1, { radius: 10, sigma: 3 }, (img, h, w, c, rng) =>
    motionBlur(img, h, w, c, { radius: 10, sigma: 3 }, rng),
  ),
  shear: entry('shear', 'geometric', 2, 0.4, (img, h, w, c, rng) => shear(img, h, w, c, 0.4 * randomSign(rng))),
  scale: entry('scale', 'geometric', 3, 1 / 0.7, (img, h, w, c) => scale(img, h, w, c, 1 / 0.7)),
  rotate: entry('rotate', 'geometric', 2, 0.4, (img, h, w, c, rng) => rotate(img, h, w, c, 0.4 * randomSign(rng))),
  translate: entry('translate', 'geometric', 3, 3, (img, h, w, c, rng) => {
    const t = 3 * pixelScale(h, w);
    const dx = t * randomSign(rng);
    const dy = t * randomSign(rng);
    return translate(img, h, w, c, dy, dx);
  }),
  brightness: entry('brightness', 'digital', 5, 0.5, (img, h, w, c) => brightness(img, h, w, c, 0.5)),
  fog: entry('fog', 'weather', 5, { amount: 3, decay: 1.4, mapSize: 256 }, (img, h, w, c, rng) =>
    fog(img, h, w, c, { amount: 3, decay: 1.4, mapSize: 256 }, rng),
  ),
  spatter: entry(
    'spatter',
    'weather',
    4,
    { loc: 0.65, scale: 0.3, sigma: 1, threshold: 0.65, intensity: 1.5, mud: true, mudGray: 63 / 255 },
    (img, h, w, c, rng) =>
      spatter(
        img,
        h,
        w,
        c,
        { loc: 0.65, scale: 0.3, sigma: 1, threshold: 0.65, intensity: 1.5, mud: true, mudGray: 63 / 255 },
        rng,
      ),
  ),
  stripe: entry('stripe', 'overlay', null, null, (img, h, w, c) => stripe(img, h, w, c)),
  dotted_line: entry('dotted_line', 'overlay', null, null, dottedLine),
  zigzag: entry('zigzag', 'overlay', null, null, zigzag),
  canny_edges: entry('canny_edges', 'digital', null, null, (img, h, w, c) => canny(img, h, w, c)),
};

/** The MNIST-C corruption called `name`; throws a `CorruptionError` listing the names otherwise. */
export function getMnistC(name: string): MnistCSpec {
  const s = MNIST_C[name];
  if (!s)
    throw new CorruptionError(`unknown MNIST-C corruption '${name}': use one of ${Object.keys(MNIST_C).join(', ')}`);
  return s;
}
