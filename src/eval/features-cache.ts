/**
 * Pre-logit extraction with an on-disk cache keyed by checkpoint hash, data
 * set, split and limit, so repeated few-shot / OOD runs do not re-run the model.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ImageDataset } from '../data/index.js';
import type { LoadedModel } from '../checkpoint/load.js';
import { computeOutputs } from '../vmoe/outputs.js';

export interface CachedFeatures {
  n: number;
  d: number;
  data: Float32Array; // (n, d)
  labels: Int32Array;
  /** Seconds of the model passes that produced the features (every model); 0 when they came from the cache. */
  seconds: number;
  /** Of `seconds`, the time spent waiting for images still being decoded (image folders). */
  decodeWaitSeconds?: number;
  cached: boolean;
}

export function featuresCacheKey(models: LoadedModel[], ds: ImageDataset): string {
  const h = crypto.createHash('sha256');
  for (const m of models) h.update(m.sha256);
  h.update(`${ds.name}|${ds.split}|${ds.n}|${ds.source}`);
  return h.digest('hex').slice(0, 24);
}

/** Members' pre-logits concatenated per example (E³ members and deep-ensemble checkpoints alike). */
export function extractPreLogits(
  models: LoadedModel[],
  ds: ImageDataset,
  opts: { batchSize: number; cacheDir?: string | null },
): CachedFeatures {
  const file = opts.cacheDir ? path.join(opts.cacheDir, `prelogits-${featuresCacheKey(models, ds)}.f32`) : null;
  if (file && fs.existsSync(file)) {
    const buf = fs.readFileSync(file);
    const d = buf.readUInt32LE(0),
      n = buf.readUInt32LE(4);
    if (buf.length === 8 + n * d * 4 && n === ds.n) {
      const data = new Float32Array(buf.buffer.slice(buf.byteOffset + 8, buf.byteOffset + 8 + n * d * 4));
      return { n, d, data, labels: ds.labels, seconds: 0, cached: true };
    }
  }
  const parts = models.map((m) =>
    computeOutputs(m.model, ds, { batchSize: opts.batchSize, scale: m.config.data.scale, keepPreLogits: true }),
  );
  const d = parts.reduce((a, p) => a + p.preLogitsDim, 0);
  const data = new Float32Array(ds.n * d);
  for (let i = 0; i < ds.n; i++) {
    let o = i * d;
    for (const p of parts) {
      data.set(p.preLogits.subarray(i * p.preLogitsDim, (i + 1) * p.preLogitsDim), o);
      o += p.preLogitsDim;
    }
  }
  if (file) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const header = Buffer.alloc(8);
    header.writeUInt32LE(d, 0);
    header.writeUInt32LE(ds.n, 4);
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
    fs.renameSync(tmp, file);
  }
  return {
    n: ds.n,
    d,
    data,
    labels: ds.labels,
    seconds: parts.reduce((a, p) => a + p.seconds, 0),
    decodeWaitSeconds: parts.reduce((a, p) => a + (p.inputWaitSeconds ?? 0), 0),
    cached: false,
  };
}
