/**
 * The routing analysis of one checkpoint (`vmoe routing`): per-layer statistics over a data set
 * (routing-analysis.ts), the processed patches of a few images at a low capacity with BPR and the processed
 * share of background vs object patches, gathered into the typed report with its conventions. Figures and
 * files are made from it by export/routing-files.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { makeBatch, type ImageDataset, type PixelScale } from '../data/index.js';
import { loadModel } from '../checkpoint/load.js';
import { runRecord } from '../engine/record.js';
import { modelMembers } from '../vmoe/config.js';
import type { VisionMoE } from '../vmoe/model.js';
import { UsageError } from '../util/errors.js';
import { loadDatasetFor, type DataSelection } from './checkpoint-data.js';
import {
  BACKGROUND_PATCH_RULE,
  DEFAULT_COLLAPSE,
  analyseRouting,
  processedPatches,
  processedShareByContent,
  traceRouting,
  type LayerSummary,
  type ShareByContent,
} from './routing-analysis.js';

/** The collapse rule in words, as the report and the summary state it. */
export const COLLAPSE_RULE =
  `an expert is flagged when it receives more than ${DEFAULT_COLLAPSE.high * 100}% ("dominant") or less than ` +
  `${DEFAULT_COLLAPSE.low * 100}% ("starved") of the (token, choice) assignments the router asks for (before capacity), in layers with ≥ ${DEFAULT_COLLAPSE.minExperts} experts`;

/** The processed share of background and object patches in one MoE block. */
export type BlockShareByContent = { block: number; images: number } & ShareByContent;

/** patches.json: the low-capacity BPR routing of the overlay images, per patch. */
export interface PatchOverlayData {
  capacity_factor: number;
  batch_priority: true;
  images_routed_together: number;
  capacity: {
    block: number;
    capacity: number | undefined;
    group_size: number | undefined;
    processed_fraction: number;
  }[];
  processed_share_by_content: BlockShareByContent[];
  background_rule: string;
  images: {
    index: number;
    label: number | undefined;
    layers: { block: number; processed_share_per_patch: number[] }[];
  }[];
}

/** The processed-patch overlay: patches.json and what drawing it needs besides (grey pixels of each overlay image, sizes). */
export interface PatchOverlay {
  json: PatchOverlayData;
  /** (height, width) grey pixels, 0..255, of each image in json.images. */
  pixels: Float64Array[];
  height: number;
  width: number;
  patchSize: number;
}

/** Grey pixels (H·W) of image i, channels averaged. */
function greyPixels(ds: ImageDataset, i: number): Float64Array {
  const P = ds.height * ds.width,
    C = ds.channels;
  const out = new Float64Array(P);
  for (let p = 0; p < P; p++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += ds.images[(i * P + p) * C + c]!;
    out[p] = s / C;
  }
  return out;
}

/**
 * Which patches of the first `count` images each MoE layer processes at a low
 * capacity with BPR. The images are routed together in one batch of whole
 * routing groups, as in evaluation.
 */
export function patchOverlay(
  model: VisionMoE,
  ds: ImageDataset,
  opts: { count: number; shareImages?: number; capacityFactor: number; scale: PixelScale },
): PatchOverlay {
  const groupImages = model.cfg.moe.groupImages;
  const count = Math.min(opts.count, ds.n);
  // the background/object statistic wants more images than a figure can show
  const statN = Math.min(ds.n, Math.max(count, opts.shareImages ?? count));
  const batchN = Math.min(ds.n, Math.ceil(statN / groupImages) * groupImages);
  const batch = makeBatch(
    ds,
    Int32Array.from({ length: batchN }, (_, i) => i),
    { scale: opts.scale },
  );
  const x = tf.tensor4d(batch.x, batch.shape);
  const trace = traceRouting(model, x, { capacityFactor: opts.capacityFactor, batchPriority: true });
  x.dispose();
  const all = processedPatches(trace, model.cfg.readout === 'token').slice(0, statN); // (images, layers, patches)
  const patches = all.slice(0, count);
  const pixelsOf = all.map((_, i) => greyPixels(ds, i));
  const byContent = trace.layers.map((l, li) => ({
    block: l.block,
    images: statN,
    ...processedShareByContent(
      all.map((layers, i) => ({ pixels: pixelsOf[i]!, shares: layers[li]! })),
      ds.width,
      model.cfg.patchSize,
    ),
  }));
  return {
    pixels: pixelsOf.slice(0, count),
    height: ds.height,
    width: ds.width,
    patchSize: model.cfg.patchSize,
    json: {
      capacity_factor: opts.capacityFactor,
      batch_priority: true,
      images_routed_together: batchN,
      capacity: trace.layers.map((l) => ({
        block: l.block,
        capacity: l.capacities[0],
        group_size: l.groupSizes[0],
        processed_fraction: l.stats.processedFraction,
      })),
      processed_share_by_content: byContent,
      background_rule: BACKGROUND_PATCH_RULE,
      images: patches.map((layers, i) => ({
        index: i,
        label: ds.labels[i],
        layers: layers.map((h, l) => ({ block: trace.layers[l]!.block, processed_share_per_patch: h })),
      })),
    },
  };
}

/** What `vmoe routing` analyses for a checkpoint: the data, the batch size, and the low-capacity overlay settings. */
export interface RoutingOptions {
  checkpoint: string;
  /** The data (default: the checkpoint's data set). */
  data: DataSelection;
  batchSize: number;
  /** Low capacity factor of the processed-patch overlay (BPR). */
  lowCapacity: number;
  /** Images drawn in the overlay. */
  images: number;
  /** Images over which the background vs object processed share is taken. */
  shareImages: number;
}

/** routing.json: the per-layer statistics with their conventions and the run record; `files` is filled by whoever writes them. */
export interface RoutingReport {
  dataset: string;
  split: string;
  n: number;
  checkpoint: { path: string; sha256: string; step: number };
  routing: {
    k: number;
    capacity_factor: number | null;
    capacity: number | null;
    batch_priority: boolean;
    group_size: number;
    members: number;
  };
  collapsed: boolean;
  collapse_rule: string;
  low_capacity: {
    capacity_factor: number;
    batch_priority: true;
    images: number;
    processed_share_by_content: BlockShareByContent[];
    background_rule: string;
  };
  layers: LayerSummary[];
  conventions: Record<string, string>;
  files: string[];
  [record: string]: unknown;
}

/** A checkpoint's routing analysis: the report, the overlay to draw and the data set's class names (for the affinity tables). */
export interface RoutingAnalysis {
  report: RoutingReport;
  overlay: PatchOverlay;
  classNames: string[];
}

/** Loads the checkpoint (a top-k V-MoE or E³) and its data and analyses its routing; the model is disposed. */
export function analyseCheckpointRouting(opts: RoutingOptions): RoutingAnalysis {
  const { model, config, path: ckPath, sha256, step } = loadModel(opts.checkpoint);
  try {
    if (config.model.type === 'vit') throw new UsageError(`${ckPath} is a dense ViT: it has no router to analyse`);
    if (config.model.moe.router !== 'top-k')
      throw new UsageError(`${ckPath} uses expert-choice routing; vmoe routing analyses top-k routers`);
    const ds = loadDatasetFor(config, opts.data);
    const layers = analyseRouting(model, ds, { batchSize: opts.batchSize, scale: config.data.scale });
    const settings = model.routingFor({});
    const overlay = patchOverlay(model, ds, {
      count: opts.images,
      shareImages: opts.shareImages,
      capacityFactor: opts.lowCapacity,
      scale: config.data.scale,
    });
    const report: RoutingReport = {
      dataset: ds.name,
      split: ds.split,
      n: ds.n,
      checkpoint: { path: ckPath, sha256, step },
      routing: {
        k: settings.k,
        capacity_factor: settings.capacity === null ? settings.capacityFactor : null,
        capacity: layers[0]?.capacity ?? null,
        batch_priority: settings.batchPriority,
        group_size: settings.groupSize,
        members: modelMembers(config.model),
      },
      collapsed: layers.some((l) => l.collapse.length > 0),
      collapse_rule: COLLAPSE_RULE,
      low_capacity: {
        capacity_factor: opts.lowCapacity,
        batch_priority: true,
        images: Math.min(ds.n, Math.max(opts.images, opts.shareImages)),
        processed_share_by_content: overlay.json.processed_share_by_content,
        background_rule: BACKGROUND_PATCH_RULE,
      },
      layers,
      conventions: {
        expert_load: 'share of processed (token, choice) assignments per expert',
        expert_demand: 'share of requested (token, choice) assignments per expert, before capacity drops',
        router_entropy:
          'mean over tokens of the entropy (nats) of the noise-free gate softmax; max_entropy = log(experts a token can reach)',
        importance_loss: 'CV² of per-expert summed clean gates, per routing group (and E³ member), averaged',
        load_loss:
          'docs/spec/aux-losses.md §7 load loss without sampling noise: threshold = K-th largest clean logit, σ = noise_std/(E/M), averaged over groups',
        affinity:
          "(classes, experts): share of a class's processed assignments going to each expert; rows sum to 1 (null: class absent)",
      },
      files: [],
      ...runRecord(config),
    };
    return { report, overlay, classNames: ds.classNames };
  } finally {
    model.dispose();
  }
}
