/**
 * FLOPs per image, counted from the architecture: 2 per multiply-add of every
 * matMul (patch embedding, attention projections and products, MLPs, router,
 * experts, head). Elementwise ops, softmax and norms are not counted. Experts
 * are charged for the buffer rows they actually run: E·C rows per routing group,
 * whether or not every slot is filled — that is what capacity buys or saves.
 * E³ runs every block from the first MoE block on, and the head, M times.
 */
import { modelMembers, moeBlocks, tokensPerImage, type ModelConfig } from './config.js';
import { expertCapacity, expertChoiceCapacity } from './capacity.js';
import type { RoutingOverrides } from './model.js';

/**
 * FLOPs per image by part (embedding, attention, MLP, router, experts, head) and per MoE block, under
 * `convention`.
 */
export interface FlopsBreakdown {
  total: number;
  embed: number;
  attention: number;
  mlp: number;
  router: number;
  experts: number;
  head: number;
  /** Per MoE block: capacity per group and expert-buffer rows per image. */
  moe: { block: number; capacity: number; groupSize: number; rowsPerImage: number }[];
  convention: string;
}

/** How `flopsPerImage` counts: matMul FLOPs only, experts charged for their whole capacity buffer. */
export const FLOPS_CONVENTION = 'matMul FLOPs only (2 per multiply-add); experts charged for E·C buffer rows per group';

/**
 * FLOPs to classify one image with the given config and routing overrides (expert buffers counted at capacity, so
 * the capacity factor changes the cost).
 */
export function flopsPerImage(cfg: ModelConfig, over: RoutingOverrides = {}): FlopsBreakdown {
  const H = cfg.hidden,
    T = tokensPerImage(cfg);
  const g = cfg.imageSize / cfg.patchSize;
  const P = cfg.patchSize * cfg.patchSize * cfg.channels;
  const embed = 2 * g * g * P * H;
  const attnPerBlock = 2 * T * H * 3 * H + 2 * 2 * T * T * H + 2 * T * H * H;
  const mlpDense = 2 * T * 2 * H * cfg.mlpDim;
  const moeSet = new Set(moeBlocks(cfg));
  const E = cfg.moe.numExperts;
  const k = over.k ?? cfg.moe.k;
  const groupImages = over.groupImages ?? cfg.moe.groupImages;
  const M = modelMembers(cfg);
  const firstMoe = moeSet.size ? Math.min(...moeSet) : cfg.depth;
  const S = groupImages * T * M;
  let capacity: number;
  if (cfg.moe.router === 'expert-choice') {
    capacity = Math.min(
      S,
      over.capacity ??
        cfg.moe.capacity ??
        expertChoiceCapacity({
          groupSize: S,
          numExperts: E,
          capacityFactor: over.capacityFactor ?? cfg.moe.capacityFactor,
        }),
    );
  } else {
    const abs =
      over.capacity !== undefined ? over.capacity : over.capacityFactor !== undefined ? null : cfg.moe.capacity;
    capacity =
      abs !== null && abs !== undefined
        ? abs
        : expertCapacity({
            groupSize: S,
            numExperts: E,
            k,
            capacityFactor: over.capacityFactor ?? cfg.moe.capacityFactor,
            rounding: cfg.moe.capacityRounding,
          });
  }
  const rowsPerImage = (E * capacity) / groupImages;
  let mlp = 0,
    router = 0,
    experts = 0;
  const moe: FlopsBreakdown['moe'] = [];
  let attention = 0;
  for (let b = 0; b < cfg.depth; b++) {
    const copies = b >= firstMoe ? M : 1;
    attention += copies * attnPerBlock;
    if (moeSet.has(b)) {
      router += copies * 2 * T * H * E;
      experts += 2 * rowsPerImage * 2 * H * cfg.mlpDim;
      moe.push({ block: b, capacity, groupSize: S, rowsPerImage });
    } else {
      mlp += copies * mlpDense;
    }
  }
  const repr = cfg.preLogits ?? H;
  const head = M * ((cfg.preLogits !== null ? 2 * H * cfg.preLogits : 0) + 2 * repr * cfg.numClasses);
  return {
    total: embed + attention + mlp + router + experts + head,
    embed,
    attention,
    mlp,
    router,
    experts,
    head,
    moe,
    convention: FLOPS_CONVENTION,
  };
}
