/**
 * The benchmark models, with the shapes of ../shared/bench/torch_peer.py's
 * defaults: 28×28×1 input, patch 4, hidden 64, 4 blocks, 4 heads, MLP 256,
 * 10 classes, class-token readout; MoE in blocks 1 and 3 with E=8, K=2,
 * capacity factor 1.05 (rounded up to a multiple of 4), 8 images per routing
 * group; E³ with M=2 members and K=1. The S/32 models (issue 17) have the
 * papers' size: 224×224×3, patch 32, hidden 512, 8 blocks, 8 heads, MLP 2048,
 * MoE in blocks 5 and 7 (configs/s32-vmoe.json's layout, at the peer's
 * capacity factor 1.05).
 */
import { ModelSchema, type ModelConfig } from '../../src/vmoe/config.js';

export const MODEL_NAMES = ['vit-tiny', 'vmoe-tiny', 'e3-tiny'] as const;
/** The S/32 models, measured in their own suite (`s32`): one step takes seconds, so fewer timed steps. */
export const S32_NAMES = ['vit-s32', 'vmoe-s32'] as const;
export type BenchModelName = (typeof MODEL_NAMES)[number] | (typeof S32_NAMES)[number];

const SHARED = {
  imageSize: 28,
  channels: 1,
  patchSize: 4,
  hidden: 64,
  depth: 4,
  heads: 4,
  mlpDim: 256,
  numClasses: 10,
  dropout: 0,
  readout: 'token' as const,
};
const MOE = {
  layers: { placement: 'list' as const, list: [1, 3] },
  numExperts: 8,
  capacityFactor: 1.05,
  capacityRounding: 'multiple-of-4' as const,
  groupImages: 8,
  noiseStd: 1.0,
};

const S32 = {
  imageSize: 224,
  channels: 3,
  patchSize: 32,
  hidden: 512,
  depth: 8,
  heads: 8,
  mlpDim: 2048,
  numClasses: 10,
  dropout: 0,
  readout: 'token' as const,
};

export function benchModelConfig(name: BenchModelName, moe: Partial<{ capacityFactor: number }> = {}): ModelConfig {
  switch (name) {
    case 'vit-s32':
      return ModelSchema.parse({ ...S32, type: 'vit' });
    case 'vmoe-s32':
      return ModelSchema.parse({
        ...S32,
        type: 'vmoe',
        moe: { ...MOE, layers: { placement: 'list', list: [5, 7] }, k: 2, ...moe },
      });
    case 'vit-tiny':
      return ModelSchema.parse({ ...SHARED, type: 'vit' });
    case 'vmoe-tiny':
      return ModelSchema.parse({ ...SHARED, type: 'vmoe', moe: { ...MOE, k: 2, ...moe } });
    case 'e3-tiny':
      return ModelSchema.parse({ ...SHARED, type: 'e3', moe: { ...MOE, k: 1, ...moe }, ensemble: { members: 2 } });
  }
}

/** torch_peer.py arguments for the same model, or null when the peer has no counterpart (E³). */
export function peerArgs(name: BenchModelName, batch: number, threads: number, steps: number): string[] | null {
  if (name === 'e3-tiny') return null;
  const c = benchModelConfig(name);
  return [
    '--image',
    String(c.imageSize),
    '--channels',
    String(c.channels),
    '--patch',
    String(c.patchSize),
    '--hidden',
    String(c.hidden),
    '--depth',
    String(c.depth),
    '--heads',
    String(c.heads),
    '--mlp',
    String(c.mlpDim),
    '--classes',
    String(c.numClasses),
    '--experts',
    String(c.moe.numExperts),
    '--k',
    String(c.moe.k),
    '--moe-layers',
    c.type === 'vit' ? '' : c.moe.layers.list.join(','),
    '--capacity-factor',
    String(c.moe.capacityFactor),
    '--group-images',
    String(c.moe.groupImages),
    '--batch',
    String(batch),
    '--threads',
    String(threads),
    '--steps',
    String(steps),
  ];
}
