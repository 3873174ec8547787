/**
 * Model configuration: one typed default per setting (zod), so a config file
 * only states what differs from the defaults, and every override is checked.
 */
import { z } from 'zod';
import { ConfigError } from '../util/errors.js';

export const MoeLayersSchema = z.strictObject({
  /** every-n: blocks n-1, 2n-1, …; last-n: the last n odd blocks; list: explicit 0-indexed blocks. */
  placement: z.enum(['every-n', 'last-n', 'list']).default('last-n'),
  n: z.number().int().min(1).default(2),
  list: z.array(z.number().int().min(0)).default([]),
});

export const AuxLossSchema = z.strictObject({
  importance: z.number().min(0).default(0.005),
  load: z.number().min(0).default(0.005),
  gshard: z.number().min(0).default(0),
  zloss: z.number().min(0).default(0),
});

/**
 * Zod schema of the `model.moe` section: MoE layers, experts, k, capacity, router, noise, groups and aux-loss
 * weights.
 */
export const MoeSchema = z.strictObject({
  layers: MoeLayersSchema.prefault({}),
  numExperts: z.number().int().min(1).default(8),
  k: z.number().int().min(1).default(2),
  /** Exactly one of capacityFactor / capacity is used; capacity (absolute) wins when set. */
  capacityFactor: z.number().positive().default(1.05),
  capacity: z.number().int().min(1).nullable().default(null),
  capacityRounding: z.enum(['multiple-of-4', 'round', 'none']).default('multiple-of-4'),
  /** Images per routing group (the reference routes 8 whole images together). */
  groupImages: z.number().int().min(1).default(8),
  batchPriority: z.boolean().default(false),
  noiseStd: z.number().min(0).default(1.0),
  router: z.enum(['top-k', 'expert-choice']).default('top-k'),
  /** Move tokens to and from the experts in bfloat16, as the reference's `dispatcher.bfloat16` (default off). */
  dispatchBfloat16: z.boolean().default(false),
  /** identical: every expert starts from the same weights (the reference); random: independent init. */
  expertInit: z.enum(['identical', 'random']).default('identical'),
  auxLoss: AuxLossSchema.prefault({}),
});

export const EnsembleSchema = z.strictObject({
  /** E³ members M: each routes only to its own E/M experts. */
  members: z.number().int().min(1).default(2),
  /** Row order after the batch is repeated: repeat = img0·m0, img0·m1, …; tile = all images for m0, then m1. */
  layout: z.enum(['repeat', 'tile']).default('repeat'),
});

/**
 * Zod schema of the model config: `ModelSchema.parse(raw)` fills defaults and validates types; `checkModelConfig`
 * then checks the cross-field rules.
 */
export const ModelSchema = z.strictObject({
  /** vit: dense; vmoe: sparse MoE layers; e3: partitioned batch ensemble of a V-MoE (docs/spec/e3.md). */
  type: z.enum(['vit', 'vmoe', 'e3']).default('vmoe'),
  imageSize: z.number().int().min(1).default(28),
  channels: z.number().int().min(1).default(1),
  patchSize: z.number().int().min(1).default(4),
  hidden: z.number().int().min(1).default(64),
  depth: z.number().int().min(1).default(4),
  heads: z.number().int().min(1).default(4),
  mlpDim: z.number().int().min(1).default(256),
  numClasses: z.number().int().min(2).default(10),
  dropout: z.number().min(0).max(0.95).default(0),
  readout: z.enum(['token', 'gap']).default('token'),
  /** Width of the Dense+tanh pre-logits layer; null = none (the representation is the readout). */
  preLogits: z.number().int().min(1).nullable().default(null),
  headBiasInit: z.number().default(0),
  moe: MoeSchema.prefault({}),
  ensemble: EnsembleSchema.prefault({}),
});

/** The `model.moe` section: experts, k, capacity, router, groups, aux-loss weights. */
export type MoeConfig = z.infer<typeof MoeSchema>;
/** A parsed model config (`ModelSchema.parse`). */
export type ModelConfig = z.infer<typeof ModelSchema>;

/** Ensemble members the model itself produces (E³: M; others: 1). */
export function modelMembers(cfg: ModelConfig): number {
  return cfg.type === 'e3' ? cfg.ensemble.members : 1;
}

/** Which blocks hold a MoE layer (0-indexed), per docs/spec/model.md §5. */
export function moeBlocks(cfg: ModelConfig): number[] {
  if (cfg.type === 'vit') return [];
  const { placement, n, list } = cfg.moe.layers;
  const d = cfg.depth;
  let blocks: number[];
  if (placement === 'every-n') {
    blocks = [];
    for (let b = n - 1; b < d; b += n) blocks.push(b);
  } else if (placement === 'last-n') {
    const odd: number[] = [];
    for (let b = d - 1; b >= 0 && odd.length < n; b--) if (b % 2 === 1) odd.unshift(b);
    blocks = odd;
  } else {
    blocks = [...new Set(list)].sort((a, b) => a - b);
  }
  return blocks;
}

/** Cross-field checks zod cannot express per field; messages name the fields. */
export function checkModelConfig(cfg: ModelConfig, prefix = 'model'): void {
  const errs: string[] = [];
  if (cfg.imageSize % cfg.patchSize !== 0) {
    errs.push(`${prefix}.patchSize: ${cfg.patchSize} must divide ${prefix}.imageSize (${cfg.imageSize})`);
  }
  if (cfg.hidden % cfg.heads !== 0) {
    errs.push(`${prefix}.heads: ${cfg.heads} must divide ${prefix}.hidden (${cfg.hidden})`);
  }
  if (cfg.type !== 'vit') {
    const m = cfg.moe;
    if (m.k > m.numExperts) errs.push(`${prefix}.moe.k: ${m.k} exceeds ${prefix}.moe.numExperts (${m.numExperts})`);
    if (cfg.type === 'e3') {
      const M = cfg.ensemble.members;
      if (m.numExperts % M !== 0)
        errs.push(`${prefix}.ensemble.members: ${M} must divide ${prefix}.moe.numExperts (${m.numExperts})`);
      else if (m.k > m.numExperts / M)
        errs.push(`${prefix}.moe.k: ${m.k} exceeds the experts per member (numExperts/members = ${m.numExperts / M})`);
      if (m.router !== 'top-k') errs.push(`${prefix}.moe.router: E³ supports only top-k routing`);
    }
    const blocks = moeBlocks(cfg);
    if (blocks.length === 0) errs.push(`${prefix}.moe.layers: selects no block of a ${cfg.depth}-block model`);
    const bad = blocks.filter((b) => b >= cfg.depth);
    if (bad.length) errs.push(`${prefix}.moe.layers.list: blocks ${bad.join(',')} do not exist (depth ${cfg.depth})`);
  }
  if (errs.length) throw new ConfigError(errs);
}

export function tokensPerImage(cfg: ModelConfig): number {
  const g = cfg.imageSize / cfg.patchSize;
  return g * g + (cfg.readout === 'token' ? 1 : 0);
}
