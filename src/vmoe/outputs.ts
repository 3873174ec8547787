/**
 * The model side of the Outputs contract (docs/architecture.md §2): run a model once over a data set
 * (inference, batch by batch) and hand back plain arrays — logits (M, N, K), pre-logits, labels and
 * router statistics — that the evaluators (src/eval) consume without touching tensors or models.
 */
import * as tf from '@tensorflow/tfjs-core';
import { makeBatch, sequentialBatches, type ImageDataset, type PixelScale } from '../data/index.js';
import type { ForwardOptions, RoutingOverrides, VisionMoE } from './model.js';
import { modelMembers, type ModelConfig } from './config.js';
import type { MoeLayerStats } from './moe.js';
import type { Rng } from '../util/rng.js';
import { CheckpointError, DataError } from '../util/errors.js';

/**
 * One MoE layer's routing over a data set: processed and dropped fraction, per-expert load, capacity and group
 * size.
 */
export interface RouterSummary {
  block: number;
  processedFraction: number;
  dropFraction: number;
  expertLoad: number[];
  capacity: number;
  groupSize: number;
}

/**
 * A model's outputs over a data set, all on the CPU: logits (M, N, K) or (N, K), pre-logits (N, D), labels (N),
 * per-layer router summaries and wall time.
 */
export interface Outputs {
  n: number;
  numClasses: number;
  /** Ensemble members M (E³ members, deep-ensemble checkpoints, MC-dropout samples); 1 for a single model. */
  members: number;
  /** (M, N, K) row-major: entry (j, i, c) at (j·N + i)·K + c; (N, K) when M = 1. */
  logits: Float32Array | Float64Array;
  /** (N, D) row-major. */
  preLogits: Float32Array;
  preLogitsDim: number;
  labels: Int32Array;
  /** Per MoE layer, averaged over batches weighted by batch size. */
  router: RouterSummary[];
  /** Wall time of the whole pass, waits for images included. */
  seconds: number;
  /** Of `seconds`, the time spent waiting for images still being decoded (0 for data held in memory). */
  inputWaitSeconds?: number;
}

/** Options of `computeOutputs`: batch size, pixel scaling, routing overrides, MC dropout, whether to keep pre-logits. */
export interface OutputOptions {
  batchSize: number;
  scale: PixelScale;
  routing?: RoutingOverrides;
  /** MC dropout: keep dropout on (needs rng). */
  mcDropout?: boolean;
  rng?: Rng;
  keepPreLogits?: boolean;
  /** Called after each batch with the examples done and the total. */
  onBatch?: (done: number, total: number) => void;
}

/** Images per forward call that keep an inference step's activations near the cache (see forwardBatchSize). */
export const CACHE_BATCH_IMAGES = 64;

/**
 * Images per forward call when evaluating with batches of `batchSize`: a batch is run in sub-batches of about
 * CACHE_BATCH_IMAGES images (on the bench models 64 images ran ~5–15 % faster per image than 256, whose
 * activations overflow the L2 cache) where that cannot change a result: the sub-batch is a multiple of the routing
 * group (`groupImages`, overrides included), so every routing group — consecutive images from the start of a
 * call — is the same as in the whole batch, and `batchSize` is a multiple of the sub-batch, so the boundaries of
 * later batches stay where they were; never with MC dropout (each call draws its own dropout masks).
 */
export function forwardBatchSize(
  cfg: ModelConfig,
  batchSize: number,
  opts: { routing?: RoutingOverrides; mcDropout?: boolean } = {},
): number {
  if (opts.mcDropout) return batchSize;
  const group = cfg.type === 'vit' ? 1 : (opts.routing?.groupImages ?? cfg.moe.groupImages);
  const chunk = group >= CACHE_BATCH_IMAGES ? group : Math.floor(CACHE_BATCH_IMAGES / group) * group;
  return chunk < batchSize && batchSize % chunk === 0 ? chunk : batchSize;
}

/**
 * Run `model` over `ds` in batches and collect its logits, pre-logits and router statistics as `Outputs` (the
 * input to every evaluator).
 */
export function computeOutputs(model: VisionMoE, ds: ImageDataset, opts: OutputOptions): Outputs {
  const c = model.cfg;
  if (ds.height !== c.imageSize || ds.width !== c.imageSize || ds.channels !== c.channels) {
    throw new DataError(
      `data set ${ds.name}${ds.name.endsWith(ds.source) ? '' : ` (${ds.source})`} has ${ds.height}×${ds.width}×${ds.channels} images; the model takes ${c.imageSize}×${c.imageSize}×${c.channels}`,
      { hint: 'evaluate on a data set of the image size the model was trained on (--dataset)' },
    );
  }
  const K = model.cfg.numClasses;
  const M = modelMembers(model.cfg);
  const logits = new Float32Array(M * ds.n * K);
  let preLogits = new Float32Array(0);
  let D = 0;
  const acc = new Map<number, { w: number; s: RouterSummary }>();
  const t0 = performance.now();
  let done = 0;
  const callSize = forwardBatchSize(model.cfg, opts.batchSize, opts);
  const waited0 = ds.decodeWaitSeconds?.() ?? 0;
  for (const idx of sequentialBatches(ds.n, callSize)) {
    // A data set still decoding (an image folder) hands out the images it has: the rest decode meanwhile.
    const pixels = ds.imagesUpTo?.(Math.max(...idx) + 1);
    const batch = makeBatch(ds, idx, { scale: opts.scale, pixels });
    const fwd: ForwardOptions = {
      train: false,
      routing: opts.routing,
      mcDropout: opts.mcDropout,
      rng: opts.rng,
      auxLosses: false,
    };
    let lg: Float32Array = new Float32Array(0);
    let pl: Float32Array | null = null;
    let stats: (MoeLayerStats & { block: number })[] = [];
    tf.tidy(() => {
      const x = tf.tensor4d(batch.x, batch.shape);
      const r = model.forward(x, fwd);
      lg = (r.memberLogits ?? r.logits).dataSync() as Float32Array; // (M, b, K) or (b, K)
      if (opts.keepPreLogits) pl = r.preLogits.dataSync() as Float32Array;
      stats = r.moe;
    });
    const b = idx.length;
    const bad = lg.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new CheckpointError(
        `the model gives non-finite logits (${lg[bad]}) for example ${idx[Math.floor((bad % (b * K)) / K)]} of ${ds.name} ${ds.split}: ` +
          'its weights are finite but so large that they overflow, as after a training that diverged',
        { hint: 'use an earlier checkpoint of that run, or retrain with a lower optim.lr' },
      );
    }
    for (let j = 0; j < M; j++) logits.set(lg.subarray(j * b * K, (j + 1) * b * K), (j * ds.n + done) * K);
    if (pl !== null) {
      const plv: Float32Array = pl;
      if (D === 0) {
        D = plv.length / idx.length;
        preLogits = new Float32Array(ds.n * D);
      }
      preLogits.set(plv, done * D);
    }
    accumulateRouter(acc, stats, idx.length);
    done += idx.length;
    opts.onBatch?.(done, ds.n);
  }
  const router = [...acc.values()].map(({ w, s }) => ({
    ...s,
    processedFraction: s.processedFraction / w,
    dropFraction: s.dropFraction / w,
    expertLoad: s.expertLoad.map((x) => x / w),
  }));
  return {
    n: ds.n,
    numClasses: K,
    members: M,
    logits,
    preLogits,
    preLogitsDim: D,
    labels: ds.labels,
    router,
    seconds: (performance.now() - t0) / 1000,
    inputWaitSeconds: (ds.decodeWaitSeconds?.() ?? 0) - waited0,
  };
}

function accumulateRouter(
  acc: Map<number, { w: number; s: RouterSummary }>,
  stats: (MoeLayerStats & { block: number })[],
  weight: number,
): void {
  for (const st of stats) {
    const cur = acc.get(st.block);
    if (!cur) {
      acc.set(st.block, {
        w: weight,
        s: {
          block: st.block,
          capacity: st.capacity,
          groupSize: st.groupSize,
          processedFraction: st.processedFraction * weight,
          dropFraction: st.dropFraction * weight,
          expertLoad: st.expertLoad.map((x) => x * weight),
        },
      });
    } else {
      cur.w += weight;
      cur.s.processedFraction += st.processedFraction * weight;
      cur.s.dropFraction += st.dropFraction * weight;
      st.expertLoad.forEach((x, i) => (cur.s.expertLoad[i]! += x * weight));
    }
  }
}
