/**
 * What the router did, token by token: a forward pass that keeps every MoE
 * layer's dispatch plan and clean gates, and pure statistics over them —
 * expert load and demand, drops, router entropy, auxiliary losses, the
 * expert × class affinity matrix, collapse flags, and which patches were
 * processed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { makeBatch, sequentialBatches, type ImageDataset, type PixelScale } from '../data/index.js';
import { modelMembers, tokensPerImage } from '../vmoe/config.js';
import type { RoutingOverrides, VisionMoE } from '../vmoe/model.js';
import type { MoeLayerStats } from '../vmoe/moe.js';
import { cv2, erfcFast, importanceLossOfGroup } from '../vmoe/aux-losses.js';
import { DataError, UsageError } from '../util/errors.js';

export interface LayerTrace {
  block: number;
  numExperts: number;
  k: number;
  /** E³ members routed side by side (1 for V-MoE); rows are (image, token, member), member fastest. */
  members: number;
  groupSizes: number[];
  capacities: number[];
  /** (N·K) row-major: chosen expert and kept flag of each (row, choice). */
  expert: Int32Array;
  kept: Uint8Array;
  /** (N, E) noise-free softmax of the router logits (E³: zero outside the row's member partition). */
  gatesClean: Float32Array;
  stats: MoeLayerStats;
}

export interface RoutingTrace {
  numImages: number;
  tokensPerImage: number;
  /** (B, classes) */
  logits: Float32Array;
  layers: LayerTrace[];
}

/** Evaluation forward pass that also keeps each MoE layer's per-token plan (via the forward pass's onMoeLayer hook). */
export function traceRouting(model: VisionMoE, images: tf.Tensor4D, routing: RoutingOverrides = {}): RoutingTrace {
  if (model.cfg.type === 'vit')
    throw new UsageError('routing analysis needs a model with MoE layers; this one is a dense ViT (type "vit")');
  if (model.routingFor(routing).router !== 'top-k')
    throw new UsageError('routing analysis traces the top-k router; this model uses expert-choice routing');
  const members = modelMembers(model.cfg);
  const layers: LayerTrace[] = [];
  const logits = tf.tidy(
    () =>
      model.forward(images, {
        train: false,
        routing,
        onMoeLayer: (block, r) => {
          layers.push({
            block,
            numExperts: r.plan.numExperts,
            k: r.plan.k,
            members,
            groupSizes: r.plan.groupSizes,
            capacities: r.plan.capacities,
            expert: r.plan.expert!,
            kept: r.plan.kept!,
            gatesClean: r.gatesClean.dataSync() as Float32Array,
            stats: r.stats,
          });
        },
      }).logits,
  );
  const out = logits.dataSync() as Float32Array;
  logits.dispose();
  return { numImages: images.shape[0], tokensPerImage: tokensPerImage(model.cfg), logits: out, layers };
}

/** Mean over tokens of the entropy (nats) of each token's gate distribution. gates: (N, E). */
export function meanRouterEntropy(gates: ArrayLike<number>, numTokens: number, numExperts: number): number {
  if (gates.length !== numTokens * numExperts)
    throw new DataError(`gates have ${gates.length} values, expected ${numTokens}×${numExperts}`);
  let total = 0;
  for (let t = 0; t < numTokens; t++) {
    let h = 0;
    for (let e = 0; e < numExperts; e++) {
      const p = gates[t * numExperts + e]!;
      if (p > 0) h -= p * Math.log(p);
    }
    total += h;
  }
  return numTokens ? total / numTokens : NaN;
}

/** Standard normal CDF via the Chebyshev-fitted erfc (erfcFast; fractional error < 1.2e-7). */
export function normalCdf(z: number): number {
  return 0.5 * erfcFast(-z / Math.SQRT2);
}

/**
 * Load loss of one group (docs/spec/aux-losses.md §7) evaluated without drawing noise: the
 * threshold is the K-th largest clean logit, and p_e(x) = 1 − Φ((thr − logit_e)/σ)
 * is the chance that noise of scale σ lifts expert e over it. Logit differences
 * come from log gates (the softmax normaliser cancels). E³ members as in
 * importanceLossOfGroup; σ is the caller's (noise_std/(E/M)).
 */
export function loadLossOfGroup(
  gates: ArrayLike<number>,
  start: number,
  size: number,
  numExperts: number,
  k: number,
  sigma: number,
  members = 1,
): number {
  if (!(sigma > 0)) return NaN;
  const Em = numExperts / members;
  let total = 0;
  for (let m = 0; m < members; m++) {
    const load = new Float64Array(Em);
    const logs = new Float64Array(Em);
    let rows = 0;
    for (let t = start + m; t < start + size; t += members) {
      for (let e = 0; e < Em; e++) logs[e] = Math.log(Math.max(gates[t * numExperts + m * Em + e]!, 1e-300));
      const thr = Array.from(logs).sort((x, y) => y - x)[k - 1]!;
      for (let e = 0; e < Em; e++) load[e]! += 1 - normalCdf((thr - logs[e]!) / sigma);
      rows++;
    }
    for (let e = 0; e < Em; e++) load[e]! /= rows;
    total += cv2(load);
  }
  return total / members;
}

/** Running per-layer counts; merge batches with addLayerTrace. */
export interface LayerCounts {
  block: number;
  numExperts: number;
  k: number;
  numClasses: number;
  capacity: number;
  groupSize: number;
  requested: number;
  kept: number;
  /** (E) assignments the router asked for, before capacity. */
  demand: Float64Array;
  /** (E) assignments processed. */
  load: Float64Array;
  /** (classes, E) processed assignments of tokens from images of each class. */
  classExpert: Float64Array;
  entropySum: number;
  tokens: number;
  importanceSum: number;
  loadLossSum: number;
  groups: number;
}

export function emptyLayerCounts(block: number, numExperts: number, k: number, numClasses: number): LayerCounts {
  return {
    block,
    numExperts,
    k,
    numClasses,
    capacity: 0,
    groupSize: 0,
    requested: 0,
    kept: 0,
    demand: new Float64Array(numExperts),
    load: new Float64Array(numExperts),
    classExpert: new Float64Array(numClasses * numExperts),
    entropySum: 0,
    tokens: 0,
    importanceSum: 0,
    loadLossSum: 0,
    groups: 0,
  };
}

/** Adds one traced batch; labels (B) are the batch's classes, sigma the router noise scale noise_std/(E/M). */
export function addLayerTrace(
  c: LayerCounts,
  layer: LayerTrace,
  labels: ArrayLike<number>,
  tokensPerImage: number,
  sigma: number,
): void {
  const E = layer.numExperts,
    K = layer.k,
    M = layer.members;
  const N = layer.gatesClean.length / E;
  const rowsPerImage = tokensPerImage * M;
  if (E !== c.numExperts || K !== c.k)
    throw new Error(
      `addLayerTrace: block ${layer.block}: traced E=${E}, K=${K} but counts hold E=${c.numExperts}, K=${c.k}`,
    );
  if (labels.length * rowsPerImage !== N) {
    throw new Error(
      `addLayerTrace: block ${layer.block}: ${N} routed rows but ${labels.length} labels × ${tokensPerImage} tokens × ${M} members`,
    );
  }
  c.capacity = layer.capacities[0]!;
  c.groupSize = layer.groupSizes[0]!;
  for (let t = 0; t < N; t++) {
    const cls = labels[Math.floor(t / rowsPerImage)]!;
    if (!(cls >= 0 && cls < c.numClasses)) throw new DataError(`label ${cls} outside [0, ${c.numClasses})`);
    for (let j = 0; j < K; j++) {
      const e = layer.expert[t * K + j]!;
      c.requested++;
      c.demand[e]!++;
      if (layer.kept[t * K + j]) {
        c.kept++;
        c.load[e]!++;
        c.classExpert[cls * E + e]!++;
      }
    }
  }
  c.entropySum += meanRouterEntropy(layer.gatesClean, N, E) * N;
  c.tokens += N;
  let start = 0;
  for (const S of layer.groupSizes) {
    c.importanceSum += importanceLossOfGroup(layer.gatesClean, start, S, E, M);
    c.loadLossSum += loadLossOfGroup(layer.gatesClean, start, S, E, K, sigma, M);
    c.groups++;
    start += S;
  }
}

/** Rows normalised to sum to 1; a class with no processed assignment gets a row of NaN. counts: (R, C) row-major. */
export function rowNormalise(counts: ArrayLike<number>, rows: number, cols: number): number[][] {
  const out: number[][] = [];
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += counts[r * cols + c]!;
    out.push(Array.from({ length: cols }, (_, c) => (s > 0 ? counts[r * cols + c]! / s : NaN)));
  }
  return out;
}

export interface CollapseThresholds {
  /** Flag an expert with more than this share of assignments. */
  high: number;
  /** Flag an expert with less than this share. */
  low: number;
  /** Only judge layers with at least this many experts (with 2–3, one large share is normal). */
  minExperts: number;
}

export const DEFAULT_COLLAPSE: CollapseThresholds = { high: 0.5, low: 0.01, minExperts: 4 };

export interface CollapseFlag {
  expert: number;
  share: number;
  kind: 'dominant' | 'starved';
}

export function collapseFlags(share: number[], th: CollapseThresholds = DEFAULT_COLLAPSE): CollapseFlag[] {
  if (share.length < th.minExperts) return [];
  const flags: CollapseFlag[] = [];
  share.forEach((s, expert) => {
    if (s > th.high) flags.push({ expert, share: s, kind: 'dominant' });
    else if (s < th.low) flags.push({ expert, share: s, kind: 'starved' });
  });
  return flags;
}

export interface LayerSummary {
  block: number;
  numExperts: number;
  k: number;
  capacity: number;
  groupSize: number;
  processedFraction: number;
  dropFraction: number;
  /** Share of processed assignments per expert. */
  expertLoad: number[];
  /** Share of requested (token, choice) assignments per expert, before capacity. */
  expertDemand: number[];
  maxLoad: number;
  /** Mean per-token gate entropy (nats) and its maximum log E. */
  routerEntropy: number;
  maxEntropy: number;
  importanceLoss: number;
  loadLoss: number;
  /** (classes, E): share of a class's processed assignments going to each expert. */
  affinity: number[][];
  collapse: CollapseFlag[];
}

export function summariseLayer(c: LayerCounts, th: CollapseThresholds = DEFAULT_COLLAPSE): LayerSummary {
  const share = (v: Float64Array, total: number) => Array.from(v, (x) => (total > 0 ? x / total : 0));
  const demand = share(c.demand, c.requested);
  const load = share(c.load, c.kept);
  return {
    block: c.block,
    numExperts: c.numExperts,
    k: c.k,
    capacity: c.capacity,
    groupSize: c.groupSize,
    processedFraction: c.requested ? c.kept / c.requested : 1,
    dropFraction: c.requested ? 1 - c.kept / c.requested : 0,
    expertLoad: load,
    expertDemand: demand,
    maxLoad: Math.max(...load),
    routerEntropy: c.tokens ? c.entropySum / c.tokens : NaN,
    maxEntropy: Math.log(c.numExperts),
    importanceLoss: c.groups ? c.importanceSum / c.groups : NaN,
    loadLoss: c.groups ? c.loadLossSum / c.groups : NaN,
    affinity: rowNormalise(c.classExpert, c.numClasses, c.numExperts),
    collapse: collapseFlags(demand, th),
  };
}

/** Traces a data set batch by batch and summarises every MoE layer. */
export function analyseRouting(
  model: VisionMoE,
  ds: ImageDataset,
  opts: { batchSize: number; scale: PixelScale; routing?: RoutingOverrides; thresholds?: CollapseThresholds },
): LayerSummary[] {
  const E = model.cfg.moe.numExperts;
  const sigma = model.cfg.moe.noiseStd / (E / modelMembers(model.cfg));
  const k = model.routingFor(opts.routing).k;
  let counts: LayerCounts[] | null = null;
  for (const idx of sequentialBatches(ds.n, opts.batchSize)) {
    const batch = makeBatch(ds, idx, { scale: opts.scale });
    const x = tf.tensor4d(batch.x, batch.shape);
    const trace = traceRouting(model, x, opts.routing);
    x.dispose();
    counts ??= trace.layers.map((l) => emptyLayerCounts(l.block, E, k, ds.numClasses));
    trace.layers.forEach((l, i) => addLayerTrace(counts![i]!, l, batch.y, trace.tokensPerImage, sigma));
  }
  return (counts ?? []).map((c) => summariseLayer(c, opts.thresholds));
}

/**
 * Per image and MoE layer: the share of each patch's (member, choice)
 * assignments that were processed, patches in raster order (the class token,
 * if any, is left out).
 */
export function processedPatches(trace: RoutingTrace, hasClassToken: boolean): number[][][] {
  const T = trace.tokensPerImage,
    first = hasClassToken ? 1 : 0;
  return Array.from({ length: trace.numImages }, (_, img) =>
    trace.layers.map((l) => {
      const M = l.members,
        K = l.k;
      const out: number[] = [];
      for (let tok = first; tok < T; tok++) {
        let kept = 0;
        for (let m = 0; m < M; m++) {
          const row = (img * T + tok) * M + m;
          for (let j = 0; j < K; j++) kept += l.kept[row * K + j]!;
        }
        out.push(kept / (M * K));
      }
      return out;
    }),
  );
}

export const BACKGROUND_PATCH_RULE =
  'a patch is background when under 10% of its pixels are brighter than 10% of full scale (grey level > 25.5 of 255)';

/** Whether patch p (raster order) of an (H, W) grey image in 0..255 is plain background, by BACKGROUND_PATCH_RULE. */
export function isBackgroundPatch(pixels: ArrayLike<number>, width: number, patchSize: number, p: number): boolean {
  const perRow = width / patchSize;
  const r0 = Math.floor(p / perRow) * patchSize,
    c0 = (p % perRow) * patchSize;
  let lit = 0;
  for (let r = r0; r < r0 + patchSize; r++)
    for (let c = c0; c < c0 + patchSize; c++) if (pixels[r * width + c]! > 25.5) lit++;
  return lit < 0.1 * patchSize * patchSize;
}

export interface ShareByContent {
  background: number | null;
  object: number | null;
  background_patches: number;
  object_patches: number;
}

/**
 * Mean processed share of background and of object patches, over images:
 * does capacity go to the object or to the background? `shares[i]` is image
 * i's per-patch processed share (processedPatches for one layer).
 */
export function processedShareByContent(
  images: { pixels: ArrayLike<number>; shares: number[] }[],
  width: number,
  patchSize: number,
): ShareByContent {
  let bg = 0,
    nBg = 0,
    obj = 0,
    nObj = 0;
  for (const im of images) {
    im.shares.forEach((v, p) => {
      if (isBackgroundPatch(im.pixels, width, patchSize, p)) {
        bg += v;
        nBg++;
      } else {
        obj += v;
        nObj++;
      }
    });
  }
  return {
    background: nBg ? bg / nBg : null,
    object: nObj ? obj / nObj : null,
    background_patches: nBg,
    object_patches: nObj,
  };
}

export interface TrainingLogRecord {
  step: number;
  moe: { block: number; drop: number; load: number[] }[];
}

/** Training steps of a metrics.jsonl that carry MoE statistics; evaluation lines (with "split") are skipped. */
export function parseTrainingLog(text: string, source: string): TrainingLogRecord[] {
  const out: TrainingLogRecord[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      // a last line without its newline is a record cut by a crash mid-write (metrics.jsonl is written whole-line): skip it
      if (i === lines.length - 1) return;
      throw new DataError(`${source}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    const r = rec as { step?: unknown; split?: unknown; moe?: unknown };
    if (r.split !== undefined || !Array.isArray(r.moe) || r.moe.length === 0) return;
    if (typeof r.step !== 'number') throw new DataError(`${source}:${i + 1}: a training line needs a numeric "step"`);
    const moe = (r.moe as { block?: unknown; drop?: unknown; load?: unknown }[]).map((m, j) => {
      if (typeof m.block !== 'number' || typeof m.drop !== 'number' || !Array.isArray(m.load)) {
        throw new DataError(`${source}:${i + 1}: moe[${j}] needs numeric "block", "drop" and an array "load"`);
      }
      return { block: m.block, drop: m.drop, load: m.load as number[] };
    });
    out.push({ step: r.step, moe });
  });
  return out;
}

/** Per MoE block: (step, drop fraction) and (step, max expert load) series. */
export function trainingLogSeries(
  records: TrainingLogRecord[],
): { block: number; drop: [number, number][]; maxLoad: [number, number][]; expertLoad: [number, number][][] }[] {
  const byBlock = new Map<
    number,
    { drop: [number, number][]; maxLoad: [number, number][]; expertLoad: [number, number][][] }
  >();
  for (const r of records) {
    for (const m of r.moe) {
      const s = byBlock.get(m.block) ?? { drop: [], maxLoad: [], expertLoad: [] };
      s.drop.push([r.step, m.drop]);
      s.maxLoad.push([r.step, m.load.length ? Math.max(...m.load) : NaN]);
      m.load.forEach((v, e) => (s.expertLoad[e] ??= []).push([r.step, v]));
      byBlock.set(m.block, s);
    }
  }
  return [...byBlock].sort((a, b) => a[0] - b[0]).map(([block, s]) => ({ block, ...s }));
}
