/**
 * One image through the model, as the page shows it: class probabilities, uncertainty (max probability, entropy;
 * for E³ the members' predictions, their disagreement and the mutual information) and, per MoE layer, the expert
 * each patch went to (top-1 … top-K, per member) and whether it was processed or dropped. The image is scaled as
 * the data pipeline scales it (makeBatch) and runs alone, so it is its own routing group.
 */
import * as tf from '@tensorflow/tfjs-core';
import { makeBatch, type PixelScale } from '../../src/data/batches.js';
import type { ImageDataset } from '../../src/data/registry.js';
import { modelMembers, tokensPerImage } from '../../src/vmoe/config.js';
import type { RoutingOverrides, VisionMoE } from '../../src/vmoe/model.js';
import { logitsFromProbs, softmax } from '../../src/metrics/softmax.js';
import { disagreement, mutualInformationPerExample, predictiveEntropy } from '../../src/metrics/diversity.js';

/** What one MoE layer did with the image's patches (class token left out). */
export interface LayerRouting {
  block: number;
  numExperts: number;
  k: number;
  members: number;
  /** Patches per side of the grid. */
  grid: number;
  /** (patches, members, k): the expert chosen by each patch's j-th choice for each member. */
  expert: Int32Array;
  /** (patches, members, k): 1 when that assignment was processed, 0 when dropped (over capacity). */
  kept: Uint8Array;
  /** Patches with no processed assignment (for any member): they skip the MoE layer. */
  droppedPatches: number;
  capacity: number;
}

/** The page's reading of one image. */
export interface Classification {
  logits: number[];
  probs: number[];
  top: { cls: number; p: number }[];
  maxProb: number;
  /** Entropy of the (ensemble) predictive distribution, nats. */
  entropy: number;
  /** E³ or a deep ensemble: each member's probabilities. */
  members?: number[][];
  /** Deep ensemble only: each member's name (E³ members are numbered). */
  memberNames?: string[];
  /** E³ or a deep ensemble: fraction of member pairs whose top class differs. */
  disagreement?: number;
  /** E³ or a deep ensemble: H(p̄) − mean_m H(p_m), nats. */
  mutualInformation?: number;
  layers: LayerRouting[];
  /** Fraction of (patch, member, choice) assignments processed, over all MoE layers. */
  processed: number;
  ms: number;
}

/** Classifies one image given as raw pixels (H, W, C) 0..255. */
export function classify(
  model: VisionMoE,
  pixels: Uint8Array,
  scale: PixelScale,
  routing: RoutingOverrides = {},
): Classification {
  const cfg = model.cfg;
  const S = cfg.imageSize;
  const ds: ImageDataset = {
    name: 'page',
    split: 'test',
    n: 1,
    height: S,
    width: S,
    channels: cfg.channels,
    numClasses: cfg.numClasses,
    classNames: [],
    images: pixels,
    labels: new Int32Array(1),
    source: 'page',
  };
  const batch = makeBatch(ds, [0], { scale });
  const M = modelMembers(cfg);
  const T = tokensPerImage(cfg);
  const first = cfg.readout === 'token' ? 1 : 0;
  const grid = S / cfg.patchSize;
  const layers: LayerRouting[] = [];
  const t0 = performance.now();
  let logits: Float32Array = new Float32Array(0);
  let memberLogits: Float32Array | null = null;
  tf.tidy(() => {
    const x = tf.tensor4d(batch.x, batch.shape);
    const r = model.forward(x, {
      train: false,
      auxLosses: false,
      routing,
      onMoeLayer: (block, res) => {
        const K = res.plan.k;
        const P = T - first;
        const expert = new Int32Array(P * M * K);
        const kept = new Uint8Array(P * M * K);
        let dropped = 0;
        for (let p = 0; p < P; p++) {
          let any = 0;
          for (let m = 0; m < M; m++) {
            const row = (p + first) * M + m; // rows are (image, token, member); one image
            for (let j = 0; j < K; j++) {
              expert[(p * M + m) * K + j] = res.plan.expert![row * K + j]!;
              kept[(p * M + m) * K + j] = res.plan.kept![row * K + j]!;
              any |= res.plan.kept![row * K + j]!;
            }
          }
          if (!any) dropped++;
        }
        layers.push({
          block,
          numExperts: res.plan.numExperts,
          k: K,
          members: M,
          grid,
          expert,
          kept,
          droppedPatches: dropped,
          capacity: res.plan.capacities[0] ?? 0,
        });
      },
    });
    logits = r.logits.dataSync() as Float32Array; // (1, classes)
    memberLogits = r.memberLogits ? (r.memberLogits.dataSync() as Float32Array) : null; // (M, 1, classes)
  });
  const ms = performance.now() - t0;
  const C = cfg.numClasses;
  const probs = Array.from(softmax({ data: logits, n: 1, k: C }));
  const order = probs.map((p, c) => ({ cls: c, p })).sort((a, b) => b.p - a.p);
  let kept = 0;
  let asked = 0;
  for (const l of layers) {
    for (const v of l.kept) kept += v;
    asked += l.kept.length;
  }
  const out: Classification = {
    logits: Array.from(logits),
    probs,
    top: order.slice(0, 5),
    maxProb: order[0]!.p,
    entropy: predictiveEntropy({ data: logits, n: 1, k: C })[0]!,
    layers,
    processed: asked ? kept / asked : 1,
    ms,
  };
  const mlData = memberLogits as Float32Array | null; // (M, 1, C)
  if (mlData && M > 1) {
    const ml = { data: mlData, n: 1, k: C, m: M };
    out.members = Array.from({ length: M }, (_, m) =>
      Array.from(softmax({ data: mlData.subarray(m * C, (m + 1) * C), n: 1, k: C })),
    );
    out.disagreement = disagreement(ml);
    out.mutualInformation = mutualInformationPerExample(ml)[0]!;
  }
  return out;
}

/**
 * A deep ensemble of several models' readings of the same image: p̄ = mean of their predictive distributions (an
 * E³ member contributes its own p̄), with the members side by side, their disagreement and mutual information. The
 * routing shown stays the first model's.
 */
export function deepEnsemble(results: Classification[], names: string[]): Classification {
  const first = results[0]!;
  const M = results.length;
  const C = first.probs.length;
  const member = new Float64Array(M * C); // (M, 1, C)
  results.forEach((r, m) => member.set(r.probs, m * C));
  const logits = logitsFromProbs({ data: member, n: 1, k: C, m: M }); // log p_m: softmax(log p) = p
  const probs = Array.from({ length: C }, (_, c) => results.reduce((s, r) => s + r.probs[c]!, 0) / M);
  const order = probs.map((p, c) => ({ cls: c, p })).sort((a, b) => b.p - a.p);
  return {
    ...first,
    logits: probs.map(Math.log),
    probs,
    top: order.slice(0, 5),
    maxProb: order[0]!.p,
    entropy: predictiveEntropy(logits)[0]!,
    members: results.map((r) => r.probs),
    memberNames: names,
    disagreement: disagreement(logits),
    mutualInformation: mutualInformationPerExample(logits)[0]!,
    ms: results.reduce((s, r) => s + r.ms, 0),
  };
}
