/**
 * The benchmark models, with the shapes of ../shared/bench/torch_peer.py's
 * defaults: 28×28×1 input, patch 4, hidden 64, 4 blocks, 4 heads, MLP 256,
 * 10 classes, class-token readout; MoE in blocks 1 and 3 with E=8, K=2,
 * capacity factor 1.05 (rounded up to a multiple of 4), 8 images per routing
 * group; E³ with M=2 members and K=1.
 */
import { ModelSchema, type ModelConfig } from '../../src/vmoe/config.js';

export const MODEL_NAMES = ['vit-tiny', 'vmoe-tiny', 'e3-tiny'] as const;
export type BenchModelName = (typeof MODEL_NAMES)[number];

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

export function benchModelConfig(name: BenchModelName, moe: Partial<{ capacityFactor: number }> = {}): ModelConfig {
  switch (name) {
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
    name === 'vit-tiny' ? '' : c.moe.layers.list.join(','),
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
