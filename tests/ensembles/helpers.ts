import * as tf from '@tensorflow/tfjs-core';
import { ModelSchema, type ModelConfig } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { Rng } from '../../src/util/rng.js';

/** 8×8 images, 4×4 patches + class token = 5 tokens; E=4; MoE blocks 1 and 3 of 4. */
export const base = {
  imageSize: 8,
  patchSize: 4,
  hidden: 8,
  depth: 4,
  heads: 2,
  mlpDim: 12,
  numClasses: 3,
  moe: {
    numExperts: 4,
    k: 1,
    groupImages: 2,
    capacityFactor: 1.5,
    expertInit: 'random',
    layers: { placement: 'last-n', n: 2 },
  },
};
export const cfgOf = (over: Record<string, unknown>): ModelConfig => ModelSchema.parse({ ...base, ...over });

export function randomImages(rng: Rng, B: number): tf.Tensor4D {
  return tf.tensor4d(
    Float32Array.from({ length: B * 64 }, () => rng.normal()),
    [B, 8, 8, 1],
  );
}

/** A model whose head is random (zero heads make every prediction uniform). */
export function initModel(cfg: ModelConfig, seed: number): VisionMoE {
  const m = VisionMoE.init(cfg, seed);
  const rng = new Rng(seed + 100);
  const head = m.p<tf.Variable>('head/kernel');
  head.assign(
    tf.tensor(
      Float32Array.from({ length: head.size }, () => rng.normal()),
      head.shape,
    ),
  );
  return m;
}
