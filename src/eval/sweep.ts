/**
 * Adaptive compute at inference (docs/spec/adaptive-compute.md): evaluate one trained model under a
 * grid of (capacity factor, K, routing mode) overrides. Each setting runs the
 * model once; the rows pair quality (accuracy, NLL, ECE) with compute (share
 * of (token, choice) assignments processed, FLOPs per image, images/s).
 */
import * as tf from '@tensorflow/tfjs-core';
import { makeBatch, type ImageDataset, type PixelScale } from '../data/index.js';
import { loadModel } from '../checkpoint/load.js';
import { runRecord } from '../engine/record.js';
import { modelMembers } from '../vmoe/config.js';
import { FLOPS_CONVENTION, flopsPerImage } from '../vmoe/flops.js';
import type { RoutingOverrides, VisionMoE } from '../vmoe/model.js';
import { classificationMetrics } from './harness.js';
import { computeOutputs, type Outputs, type RouterSummary } from '../vmoe/outputs.js';
import { UsageError } from '../util/errors.js';
import { loadDatasetFor, type DataSelection } from './checkpoint-data.js';

export type BatchPriorityMode = 'both' | 'on' | 'off';

export interface SweepSetting {
  capacityFactor: number;
  k: number;
  batchPriority: boolean;
}

export function parseBatchPriorityMode(s: string): BatchPriorityMode {
  if (s !== 'both' && s !== 'on' && s !== 'off')
    throw new UsageError(`batch priority mode must be both, on or off, got "${s}"`);
  return s;
}

/**
 * The Cartesian product routing mode × K × capacity factor, in that nesting
 * (BPR before vanilla; K and factors in the order given).
 */
export function sweepSettings(opts: {
  capacityFactors: number[];
  ks: number[];
  batchPriority: BatchPriorityMode;
}): SweepSetting[] {
  const { capacityFactors, ks } = opts;
  if (!capacityFactors.length) throw new UsageError('sweep: give at least one capacity factor');
  if (!ks.length) throw new UsageError('sweep: give at least one K');
  for (const c of capacityFactors) {
    if (!Number.isFinite(c) || c <= 0)
      throw new UsageError(`sweep: capacity factor must be a finite number > 0, got ${c}`);
  }
  for (const k of ks) {
    if (!Number.isInteger(k) || k < 1) throw new UsageError(`sweep: K must be an integer ≥ 1, got ${k}`);
  }
  const dupe = (xs: number[]) => xs.find((x, i) => xs.indexOf(x) !== i);
  if (dupe(capacityFactors) !== undefined)
    throw new UsageError(`sweep: capacity factor ${dupe(capacityFactors)} is listed twice`);
  if (dupe(ks) !== undefined) throw new UsageError(`sweep: K ${dupe(ks)} is listed twice`);
  const modes = parseBatchPriorityMode(opts.batchPriority) === 'both' ? [true, false] : [opts.batchPriority === 'on'];
  const out: SweepSetting[] = [];
  for (const batchPriority of modes) {
    for (const k of ks) for (const capacityFactor of capacityFactors) out.push({ capacityFactor, k, batchPriority });
  }
  return out;
}

/** Comma-separated numbers, e.g. "0.1,0.2,1.05". */
export function parseNumberList(s: string, what: string): number[] {
  const parts = s
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  if (!parts.length) throw new UsageError(`${what}: expected a comma-separated list of numbers, got "${s}"`);
  return parts.map((p) => {
    const v = Number(p);
    if (!Number.isFinite(v)) throw new UsageError(`${what}: "${p}" is not a number (in "${s}")`);
    return v;
  });
}

export const routingName = (batchPriority: boolean) => (batchPriority ? 'bpr' : 'vanilla');

export function overridesOf(s: SweepSetting): RoutingOverrides {
  return { capacityFactor: s.capacityFactor, k: s.k, batchPriority: s.batchPriority };
}

/**
 * Processed share of all (token, choice) assignments over the MoE layers. Every
 * layer is asked for the same N·K assignments, so the pooled share is the mean
 * of the per-layer shares.
 */
export function processedFractionOf(router: RouterSummary[]): number {
  if (!router.length) return 1;
  return router.reduce((a, r) => a + r.processedFraction, 0) / router.length;
}

export type SweepRow = {
  routing: string;
  k: number;
  capacity_factor: number;
  /** Expert capacity per group in the first MoE layer (all layers share it). */
  capacity: number | null;
  group_size: number | null;
  n: number;
  accuracy: number;
  nll: number;
  ece: number;
  processed_fraction: number;
  flops_per_image: number;
  /** n ÷ (seconds − decode_wait_seconds): the model's speed under this setting. */
  images_per_s: number;
  seconds: number;
  /** Of `seconds`, the wait for images still being decoded (an image folder, first setting only). */
  decode_wait_seconds: number;
  /** processed_block{b}: the processed fraction of MoE block b. */
  [perBlock: `processed_block${number}`]: number;
};

/** How to evaluate one setting: the model-specific part of a sweep (V-MoE, E³, …). */
export interface SweepEvaluator {
  evaluate(routing: RoutingOverrides): Outputs;
  flops(routing: RoutingOverrides): number;
}

export interface SweepResult {
  rows: SweepRow[];
  /** Per setting (same order as rows): each MoE layer's processed fraction. */
  perLayer: { block: number; processedFraction: number; expertLoad: number[] }[][];
  conventions: Record<string, unknown>;
}

export function runSweep(
  settings: SweepSetting[],
  evaluator: SweepEvaluator,
  opts: { bins?: number; onRow?: (row: SweepRow, i: number) => void } = {},
): SweepResult {
  const rows: SweepRow[] = [];
  const perLayer: SweepResult['perLayer'] = [];
  let conventions: Record<string, unknown> = {};
  settings.forEach((s, i) => {
    const routing = overridesOf(s);
    const out = evaluator.evaluate(routing);
    const m = classificationMetrics(out, opts.bins ?? 15);
    conventions = m.conventions;
    const row: SweepRow = {
      routing: routingName(s.batchPriority),
      k: s.k,
      capacity_factor: s.capacityFactor,
      capacity: out.router[0]?.capacity ?? null,
      group_size: out.router[0]?.groupSize ?? null,
      n: out.n,
      accuracy: m.accuracy,
      nll: m.nll,
      ece: m.ece,
      processed_fraction: processedFractionOf(out.router),
      flops_per_image: evaluator.flops(routing),
      images_per_s: modelSeconds(out) > 0 ? out.n / modelSeconds(out) : NaN,
      seconds: out.seconds,
      decode_wait_seconds: out.inputWaitSeconds ?? 0,
    };
    for (const r of out.router) row[`processed_block${r.block}`] = r.processedFraction;
    rows.push(row);
    perLayer.push(
      out.router.map((r) => ({ block: r.block, processedFraction: r.processedFraction, expertLoad: r.expertLoad })),
    );
    opts.onRow?.(row, i);
  });
  return {
    rows,
    perLayer,
    conventions: {
      ...conventions,
      processed_fraction: 'kept (token, choice) assignments / N·K, averaged over MoE layers (each layer asks for N·K)',
      images_per_s:
        'measured wall-clock throughput of the whole forward pass for this setting, batch size as given; waits for images still being decoded (decode_wait_seconds) left out',
    },
  };
}

/** The pass's wall time less its waits for images being decoded: what the setting itself took. */
function modelSeconds(out: Outputs): number {
  return out.seconds - (out.inputWaitSeconds ?? 0);
}

/** The V-MoE evaluator: computeOutputs over a data set, FLOPs from the architecture. */
export function modelSweepEvaluator(
  model: VisionMoE,
  ds: ImageDataset,
  opts: { batchSize: number; scale: PixelScale },
): SweepEvaluator {
  if (model.cfg.type === 'vit')
    throw new UsageError('sweep: the model has no MoE layer (type "vit"); capacity, K and BPR do not apply');
  if (model.cfg.moe.router !== 'top-k') {
    throw new UsageError(
      'sweep: K and Batch Prioritized Routing apply to the top-k router; this model uses the expert-choice router',
    );
  }
  return {
    evaluate: (routing) => computeOutputs(model, ds, { batchSize: opts.batchSize, scale: opts.scale, routing }),
    flops: (routing) => flopsPerImage(model.cfg, routing).total,
  };
}

/** What `vmoe sweep` runs: one checkpoint, its data, and the grid of routing settings. */
export interface SweepOptions {
  checkpoint: string;
  /** The data (default: the checkpoint's data set). */
  data: DataSelection;
  batchSize: number;
  bins: number;
  capacityFactors: number[];
  /** Experts per token to sweep; default: the model's K. */
  ks?: number[];
  batchPriority: BatchPriorityMode;
  /** Called after each setting, e.g. for a progress line. */
  onRow?: (row: SweepRow, i: number, total: number) => void;
}

/** The result of `vmoe sweep` (sweep.json): rows, per-layer statistics, conventions, the run record; `files` is filled by whoever writes them. */
export interface SweepReport {
  dataset: string;
  split: string;
  n: number;
  batch_size: number;
  checkpoint: { path: string; sha256: string; step: number };
  model: { type: string; experts: number; k: number; group_images: number; capacity_rounding: string };
  rows: SweepRow[];
  /** Per setting (same order as rows): each MoE layer's processed fraction and expert load. */
  per_layer: { block: number; processed_fraction: number; expert_load: number[] }[][];
  conventions: Record<string, unknown>;
  files: string[];
  [record: string]: unknown;
}

/** Loads the checkpoint and its data, warms the backend up on one untimed batch, runs every setting (runSweep); the model is disposed. */
export function sweepCheckpoint(opts: SweepOptions): SweepReport {
  const { model, config, path: ckPath, sha256, step } = loadModel(opts.checkpoint);
  try {
    const ks = opts.ks ?? [config.model.moe.k];
    const settings = sweepSettings({ capacityFactors: opts.capacityFactors, ks, batchPriority: opts.batchPriority });
    const maxK = config.model.moe.numExperts / modelMembers(config.model);
    const tooBig = ks.find((k) => k > maxK);
    if (tooBig !== undefined)
      throw new UsageError(`--k ${tooBig} exceeds the ${maxK} experts a token can reach in this model`);
    const ds = loadDatasetFor(config, opts.data);
    const evaluator = modelSweepEvaluator(model, ds, { batchSize: opts.batchSize, scale: config.data.scale });
    // One untimed batch first, so the first setting's images/s does not include backend warm-up.
    tf.tidy(() => {
      const b = makeBatch(
        ds,
        Int32Array.from({ length: Math.min(opts.batchSize, ds.n) }, (_, i) => i),
        { scale: config.data.scale },
      );
      model.forward(tf.tensor4d(b.x, b.shape), { train: false });
    });
    const result = runSweep(settings, evaluator, {
      bins: opts.bins,
      onRow: (r, i) => opts.onRow?.(r, i, settings.length),
    });
    return {
      dataset: ds.name,
      split: ds.split,
      n: ds.n,
      batch_size: opts.batchSize,
      checkpoint: { path: ckPath, sha256, step },
      model: {
        type: config.model.type,
        experts: config.model.moe.numExperts,
        k: config.model.moe.k,
        group_images: config.model.moe.groupImages,
        capacity_rounding: config.model.moe.capacityRounding,
      },
      rows: result.rows,
      per_layer: result.perLayer.map((layers) =>
        layers.map((l) => ({ block: l.block, processed_fraction: l.processedFraction, expert_load: l.expertLoad })),
      ),
      conventions: { ...result.conventions, flops: FLOPS_CONVENTION },
      files: [],
      ...runRecord(config),
    };
  } finally {
    model.dispose();
  }
}
