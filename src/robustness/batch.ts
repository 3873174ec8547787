/** Corrupting whole uint8 image sets, reproducibly and independently of batching. */
import { Rng } from '../util/rng.js';
import { CORRUPTIONS, getCorruption } from './corruptions.js';
import { getMnistC, MNIST_C } from './mnist-c.js';
import type { CorruptionFn } from './types.js';
import { CorruptionError, UsageError } from '../util/errors.js';

/** A corruption suite: `c` (Fashion-MNIST-C, severities 1–5) or `mnist-c` (MNIST-C, severity 0 or 1). */
export type Suite = 'c' | 'mnist-c';
/** Every `Suite`. */
export const SUITES: readonly Suite[] = ['c', 'mnist-c'];

/** Shape of a batch of images (n, h, w, c). */
export interface ImageShape {
  n: number;
  h: number;
  w: number;
  c: number;
}

/** The corruption function called `name` in `suite`; throws a `CorruptionError` for an unknown name. */
export function corruptionFn(suite: Suite, name: string): CorruptionFn {
  if (suite === 'c') return getCorruption(name).fn;
  if (suite === 'mnist-c') return getMnistC(name).fn;
  throw new CorruptionError(`unknown corruption suite '${suite as string}': use c or mnist-c`);
}

/** The corruption names of `suite`. */
export function corruptionNames(suite: Suite): string[] {
  return Object.keys(suite === 'c' ? CORRUPTIONS : MNIST_C);
}

/** murmur3's 32-bit finaliser: a bijection on uint32 with full avalanche. */
function fmix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x = (x ^ (x >>> 13)) >>> 0;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The generator for image `index` of a set corrupted with `seed`. It depends only
 * on (seed, index) — not on the corruption, the severity or how the set is split
 * into batches — so a batch starting at image 500 gives exactly what a single pass
 * gives for images 500…, and every severity of a corruption draws the same random
 * numbers (the severity changes only the constants: smoother severity curves).
 * The first two state words are bijections of seed and index, so distinct pairs
 * give distinct streams.
 */
export function imageRng(seed: number, index: number): Rng {
  if (!Number.isInteger(seed) || !Number.isInteger(index) || index < 0) {
    throw new UsageError(`imageRng: seed and index must be integers (index ≥ 0), got ${seed}, ${index}`);
  }
  const s = seed >>> 0;
  const i = index >>> 0;
  const rng = new Rng([
    fmix32(s ^ 0x2545f491),
    fmix32(i ^ 0x9e3779b9),
    fmix32((s + Math.imul(i, 0x6c8e9cf5)) >>> 0),
    fmix32(s ^ i ^ 0x1b873593),
  ]);
  for (let k = 0; k < 8; k++) rng.nextUint32(); // let the words mix before use
  return rng;
}

/**
 * Options of `corruptBatch`: the suite, and the index of the batch's first image in the whole set (which seeds
 * each image's draws).
 */
export interface CorruptBatchOptions {
  suite?: Suite;
  /** Index of the first image of `images` in the whole set (default 0); see imageRng. */
  startIndex?: number;
}

/**
 * Corrupts (n, H, W, C) uint8 images: each image → [0, 1] floats, corruption with
 * imageRng(seed, startIndex + i), back to uint8 by rounding.
 */
export function corruptBatch(
  images: Uint8Array,
  shape: ImageShape,
  name: string,
  severity: number,
  seed: number,
  opts: CorruptBatchOptions = {},
): Uint8Array {
  const { n, h, w, c } = shape;
  const px = h * w * c;
  if (images.length !== n * px) {
    throw new CorruptionError(
      `corruptBatch: images hold ${images.length} values but shape (${n}, ${h}, ${w}, ${c}) needs ${n * px}`,
    );
  }
  const fn = corruptionFn(opts.suite ?? 'c', name);
  const start = opts.startIndex ?? 0;
  const out = new Uint8Array(images.length);
  const img = new Float32Array(px);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < px; j++) img[j] = images[i * px + j]! / 255;
    const res = fn(img, h, w, c, severity, imageRng(seed, start + i));
    for (let j = 0; j < px; j++) out[i * px + j] = Math.round(Math.min(1, Math.max(0, res[j]!)) * 255);
  }
  return out;
}
