import type { ImageDataset } from '../../src/data/index.js';
import { ModelSchema, type ModelConfig } from '../../src/vmoe/config.js';
import { Rng } from '../../src/util/rng.js';

/** 8×8 images, 4×4 patches → 4 patches + class token = 5 tokens; E=4, one MoE layer (block 1). */
export const tinyConfig = (over: Record<string, unknown> = {}, moe: Record<string, unknown> = {}): ModelConfig =>
  ModelSchema.parse({
    imageSize: 8,
    patchSize: 4,
    hidden: 8,
    depth: 2,
    heads: 2,
    mlpDim: 12,
    numClasses: 3,
    moe: {
      numExperts: 4,
      k: 1,
      groupImages: 2,
      expertInit: 'random',
      layers: { placement: 'list', list: [1] },
      ...moe,
    },
    ...over,
  });

/** n seeded random 8×8 grey images with labels i mod classes. */
export function syntheticDataset(n: number, seed = 1, classes = 3): ImageDataset {
  const rng = new Rng(seed);
  const images = new Uint8Array(n * 64);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  return {
    name: 'synthetic',
    split: 'test',
    n,
    height: 8,
    width: 8,
    channels: 1,
    numClasses: classes,
    classNames: Array.from({ length: classes }, (_, c) => `c${c}`),
    images,
    labels: Int32Array.from({ length: n }, (_, i) => i % classes),
    source: 'memory',
  };
}
