/**
 * `vmoe predict`: a checkpoint's outputs on an array of images (.npy), written as .npy arrays a script (or the
 * reference implementation) can compare with its own.
 *
 * Input (N, H, W, C): float32 is taken as model-ready values (no rescaling); uint8 as raw pixels, scaled as the
 * data pipeline scales them (`data.scale` of the checkpoint's config). Rows are read from disk batch by batch, so
 * an input larger than memory streams.
 *
 * Output:
 *   logits.npy      float32 (N, K); E³: the members' logits (N, M, K)
 *   log_probs.npy   E³ only: (N, K), log of the members' mean probability
 *   pre_logits.npy  float32 (N, D); E³: (N, M, D)
 *   dropped.npy     uint8 (L, N, T); E³: (L, N, T, M) — for each top-k MoE layer (in block order), image, token
 *                   (class token first when the readout has one) and member, how many of the token's k expert
 *                   choices found no room (0 = fully processed, k = passed through on the residual only). Not
 *                   written for expert-choice routing, where no token has choices of its own.
 *   predict.json    what was run: checkpoint, sha256, routing, shapes, the per-layer dropped-token fractions
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { DataError } from '../util/errors.js';
import { checkOutputDir, writeFileWhole } from '../util/output-dir.js';
import { encodeNpy, float32Bytes, openNpy, readNpyRows, toFloat32 } from '../util/npy.js';
import { makeBatch, type ImageDataset } from '../data/index.js';
import { modelMembers, tokensPerImage } from '../vmoe/config.js';
import type { RoutingOverrides } from '../vmoe/model.js';
import { loadModel } from '../checkpoint/load.js';

/** Options of `predict`: routing overrides and batch size. */
export interface PredictOptions {
  routing?: RoutingOverrides;
  /** Images per forward pass (default: the config's eval.batchSize, rounded to whole routing groups). */
  batchSize?: number;
  onBatch?: (done: number, total: number) => void;
}

/** What `predict` wrote. */
export interface PredictSummary {
  files: string[];
  n: number;
  members: number;
  numClasses: number;
  preLogitsDim: number;
  /** Per MoE layer: block and the fraction of token assignments dropped (mean over batches, weighted by size). */
  dropped: { block: number; fraction: number }[];
}

/** Runs the checkpoint `ckpt` on the images in `inputFile` and writes the .npy outputs into `outDir`. */
export function predict(ckpt: string, inputFile: string, outDir: string, opts: PredictOptions = {}): PredictSummary {
  const out = checkOutputDir(outDir, '--out', { create: true });
  const input = openNpy(inputFile);
  const loaded = loadModel(ckpt);
  const { model, config } = loaded;
  const c = model.cfg;
  const want = [c.imageSize, c.imageSize, c.channels];
  if (input.shape.length !== 4 || input.shape.slice(1).join(',') !== want.join(',')) {
    throw new DataError(
      `${inputFile}: images must be (N, ${want.join(', ')}) for this model, got (${input.shape.join(', ')})`,
    );
  }
  if (input.dtype !== 'float32' && input.dtype !== 'uint8') {
    throw new DataError(`${inputFile}: dtype ${input.dtype}: give float32 (model-ready values) or uint8 (raw pixels)`);
  }
  const N = input.shape[0]!;
  const K = c.numClasses;
  const M = modelMembers(c);
  const group = c.type === 'vit' ? 1 : (opts.routing?.groupImages ?? c.moe.groupImages);
  const B = Math.max(group, Math.floor((opts.batchSize ?? config.eval.batchSize) / group) * group);
  const pixels = want[0]! * want[1]! * want[2]!;
  const logits = new Float32Array(N * M * K);
  const logProbs = M > 1 ? new Float32Array(N * K) : null;
  let pre: Float32Array | null = null;
  let D = 0;
  const dropAcc = new Map<number, number>();
  // Per MoE layer (block order), per image: the token choices dropped, in routing order (image, token, member).
  const T = tokensPerImage(c);
  const perImage = T * M;
  const tokenDrops = new Map<number, Uint8Array>();
  let topK = true;
  for (let start = 0; start < N; start += B) {
    const n = Math.min(B, N - start);
    const raw = readNpyRows(input, start, n);
    let x: Float32Array;
    if (input.dtype === 'float32') x = toFloat32('float32', raw);
    else {
      const ds: ImageDataset = {
        name: inputFile,
        split: 'test',
        n,
        height: want[0]!,
        width: want[1]!,
        channels: want[2]!,
        numClasses: K,
        classNames: [],
        images: raw,
        labels: new Int32Array(n),
        source: inputFile,
      };
      x = makeBatch(
        ds,
        Array.from({ length: n }, (_, i) => i),
        { scale: config.data.scale },
      ).x;
    }
    if (!x.every(Number.isFinite))
      throw new DataError(`${inputFile}: rows ${start}..${start + n - 1} hold NaN or infinite values`);
    // A last partial batch is padded with zero images to whole routing groups; their rows are dropped. Padding
    // shares groups only with other padding when the batch is cut at a group boundary, which B is a multiple of.
    const padded = Math.ceil(n / group) * group;
    const xb = new Float32Array(padded * pixels);
    xb.set(x);
    tf.tidy(() => {
      const r = model.forward(tf.tensor4d(xb, [padded, ...want] as [number, number, number, number]), {
        train: false,
        routing: opts.routing,
        auxLosses: false,
        onMoeLayer: (block, layer) => {
          const { kept, k } = layer.plan;
          if (!kept) {
            topK = false;
            return;
          }
          let d = tokenDrops.get(block);
          if (!d) tokenDrops.set(block, (d = new Uint8Array(N * perImage)));
          const rows = n * perImage; // the padding images' rows come last in the batch and are not kept
          for (let t = 0; t < rows; t++) {
            let dropped = k;
            for (let j = 0; j < k; j++) dropped -= kept[t * k + j]!;
            d[start * perImage + t] = dropped;
          }
        },
      });
      if (M > 1) {
        const ml = r.memberLogits!.dataSync() as Float32Array; // (M, padded, K)
        const lp = r.logits.dataSync() as Float32Array; // (padded, K)
        for (let i = 0; i < n; i++) {
          for (let m = 0; m < M; m++)
            logits.set(ml.subarray((m * padded + i) * K, (m * padded + i + 1) * K), ((start + i) * M + m) * K);
          logProbs!.set(lp.subarray(i * K, (i + 1) * K), (start + i) * K);
        }
      } else {
        logits.set((r.logits.dataSync() as Float32Array).subarray(0, n * K), start * K);
      }
      const p = r.preLogits.dataSync() as Float32Array; // (padded, M·D), members concatenated
      if (pre === null) {
        D = r.preLogits.shape[1] / M;
        pre = new Float32Array(N * M * D);
      }
      pre.set(p.subarray(0, n * M * D), start * M * D);
      for (const s of r.moe) dropAcc.set(s.block, (dropAcc.get(s.block) ?? 0) + s.dropFraction * n);
    });
    opts.onBatch?.(start + n, N);
  }
  const files: string[] = [];
  const write = (name: string, shape: number[], data: Float32Array) => {
    const file = path.join(out, name);
    writeFileWhole(file, encodeNpy('float32', shape, float32Bytes(data)));
    files.push(file);
  };
  write('logits.npy', M > 1 ? [N, M, K] : [N, K], logits);
  if (logProbs) write('log_probs.npy', [N, K], logProbs);
  write('pre_logits.npy', M > 1 ? [N, M, D] : [N, D], pre ?? new Float32Array(0));
  if (topK && tokenDrops.size) {
    const blocks = [...tokenDrops.keys()].sort((a, b) => a - b);
    const all = new Uint8Array(blocks.length * N * perImage);
    blocks.forEach((b, l) => all.set(tokenDrops.get(b)!, l * N * perImage));
    const file = path.join(out, 'dropped.npy');
    writeFileWhole(file, encodeNpy('uint8', M > 1 ? [blocks.length, N, T, M] : [blocks.length, N, T], all));
    files.push(file);
  }
  const dropped = [...dropAcc].map(([block, s]) => ({ block, fraction: N ? s / N : 0 }));
  const summary = {
    checkpoint: loaded.path,
    sha256: loaded.sha256,
    input: path.resolve(inputFile),
    n: N,
    members: M,
    classes: K,
    routing: opts.routing ?? {},
    batch_size: B,
    dropped,
  };
  const json = path.join(out, 'predict.json');
  writeFileWhole(json, `${JSON.stringify(summary, null, 2)}\n`);
  files.push(json);
  return { files, n: N, members: M, numClasses: K, preLogitsDim: D, dropped };
}
