/**
 * Synthetic out-of-distribution sets shaped like a reference data set: every
 * pixel uniform on [0, 255], or Gaussian around the reference set's mean pixel
 * with its pixel std (clipped to [0, 255]). Seeded; labels are −1 (no class).
 */
import { Rng } from '../util/rng.js';
import type { ImageDataset } from './registry.js';

/** Names of the synthetic out-of-distribution sets accepted wherever an OOD data set is named. */
export const SYNTHETIC_OOD = ['uniform-noise', 'gaussian-noise'] as const;
/** A synthetic OOD set: `uniform-noise` (uniform pixels) or `gaussian-noise`. */
export type SyntheticOod = (typeof SYNTHETIC_OOD)[number];

export function isSyntheticOod(name: string): name is SyntheticOod {
  return (SYNTHETIC_OOD as readonly string[]).includes(name);
}

/**
 * A synthetic OOD data set of `n` images shaped like `like` (same H, W, C and classes), seeded by `seed`; labels
 * are all −1 (no class).
 */
export function syntheticOodDataset(kind: SyntheticOod, like: ImageDataset, n: number, seed = 0): ImageDataset {
  const size = like.height * like.width * like.channels;
  const rng = new Rng(seed);
  const images = new Uint8Array(n * size);
  if (kind === 'uniform-noise') {
    for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  } else {
    let s = 0,
      s2 = 0;
    for (const v of like.images) {
      s += v;
      s2 += v * v;
    }
    const mean = s / like.images.length;
    const std = Math.sqrt(Math.max(0, s2 / like.images.length - mean * mean));
    for (let i = 0; i < images.length; i++)
      images[i] = Math.max(0, Math.min(255, Math.round(mean + std * rng.normal())));
  }
  return {
    name: kind,
    split: 'test',
    n,
    height: like.height,
    width: like.width,
    channels: like.channels,
    numClasses: like.numClasses,
    classNames: like.classNames,
    images,
    labels: new Int32Array(n).fill(-1),
    source: `synthetic (${kind}, seed ${seed}, shaped like ${like.name})`,
  };
}
