/**
 * Shift evaluation: every model on clean data once, then on each corruption ×
 * severity, corrupting the test images on the fly batch by batch (so no
 * corrupted copy of the set is ever held), with accuracy, NLL, ECE and — for
 * ensembles — diversity per set, and cA / cNLL / cECE summaries.
 */
import * as tf from '@tensorflow/tfjs-core';
import { makeBatch, type ImageDataset } from '../data/index.js';
import { CORRUPTIONS, MNIST_C, corruptBatch, type Suite } from '../robustness/index.js';
import type { LoadedModel } from '../train/load.js';
import { classificationMetrics, type ClassificationMetrics } from './classification.js';
import type { Outputs } from './outputs.js';
import { modelMembers } from '../vmoe/config.js';

/** One model as the user named it: a checkpoint, or several joined into a deep ensemble. */
export interface ModelEntry {
  label: string;
  members: LoadedModel[];
}

export interface ShiftRow {
  model: string;
  corruption: string;
  severity: number;
  metrics: ClassificationMetrics;
}

export interface RobustnessResult {
  clean: Map<string, ClassificationMetrics>;
  rows: ShiftRow[];
  summary: { model: string; clean_accuracy: number; cA: number; cNLL: number; cECE: number; accuracy_drop: number; relative_accuracy_drop: number }[];
}

/** Logits of every member of every model for one batch of images: (M, b, K) per model, flattened. */
function batchLogits(entry: ModelEntry, x: Float32Array, shape: [number, number, number, number]): { logits: Float32Array; members: number } {
  const parts: Float32Array[] = [];
  for (const l of entry.members) {
    tf.tidy(() => {
      const r = l.model.forward(tf.tensor4d(x, shape), { train: false });
      parts.push((r.memberLogits ?? r.logits).dataSync() as Float32Array);
    });
  }
  const members = entry.members.reduce((a, l) => a + modelMembers(l.config.model), 0);
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return { logits: out, members };
}

/** Runs every model over `ds`, with images passed through `transform` (a corruption) batch by batch. */
export function shiftedOutputs(
  models: ModelEntry[], ds: ImageDataset, batchSize: number,
  transform: ((images: Uint8Array, n: number, start: number) => Uint8Array) | null,
): Map<string, Outputs> {
  const K = models[0]!.members[0]!.config.model.numClasses;
  const scale = models[0]!.members[0]!.config.data.scale;
  const px = ds.height * ds.width * ds.channels;
  const acc = new Map<string, { logits: Float32Array; members: number }>();
  const t0 = performance.now();
  for (let start = 0; start < ds.n; start += batchSize) {
    const b = Math.min(batchSize, ds.n - start);
    let images = ds.images.subarray(start * px, (start + b) * px);
    if (transform) images = transform(images, b, start);
    const view: ImageDataset = { ...ds, n: b, images, labels: ds.labels.subarray(start, start + b) };
    const batch = makeBatch(view, Int32Array.from({ length: b }, (_, i) => i), { scale });
    for (const m of models) {
      const r = batchLogits(m, batch.x, batch.shape);
      let a = acc.get(m.label);
      if (!a) {
        a = { logits: new Float32Array(r.members * ds.n * K), members: r.members };
        acc.set(m.label, a);
      }
      // (M, b, K) → rows start..start+b of each member's (N, K) block
      for (let j = 0; j < r.members; j++) a.logits.set(r.logits.subarray(j * b * K, (j + 1) * b * K), (j * ds.n + start) * K);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const out = new Map<string, Outputs>();
  for (const [label, a] of acc) {
    out.set(label, { n: ds.n, numClasses: K, members: a.members, logits: a.logits, preLogits: new Float32Array(0), preLogitsDim: 0, labels: ds.labels, router: [], seconds });
  }
  return out;
}

export function suiteCorruptions(suite: Suite): { name: string; severities: number[] }[] {
  if (suite === 'mnist-c') return Object.keys(MNIST_C).map((name) => ({ name, severities: [1] }));
  return Object.keys(CORRUPTIONS).map((name) => ({ name, severities: [1, 2, 3, 4, 5] }));
}

export function evaluateRobustness(
  models: ModelEntry[], ds: ImageDataset,
  opts: { suite: Suite; corruptions: { name: string; severities: number[] }[]; batchSize: number; seed: number; bins: number; onSet?: (name: string, severity: number, i: number, total: number) => void },
): RobustnessResult {
  const shape = { h: ds.height, w: ds.width, c: ds.channels };
  const clean = new Map<string, ClassificationMetrics>();
  for (const [label, o] of shiftedOutputs(models, ds, opts.batchSize, null)) clean.set(label, classificationMetrics(o, opts.bins));
  const rows: ShiftRow[] = [];
  const total = opts.corruptions.reduce((a, c) => a + c.severities.length, 0);
  let i = 0;
  for (const { name, severities } of opts.corruptions) {
    for (const severity of severities) {
      opts.onSet?.(name, severity, i++, total);
      const transform = (images: Uint8Array, n: number, start: number) =>
        corruptBatch(images, { n, ...shape }, name, severity, opts.seed, { suite: opts.suite, startIndex: start });
      for (const [label, o] of shiftedOutputs(models, ds, opts.batchSize, transform)) {
        rows.push({ model: label, corruption: name, severity, metrics: classificationMetrics(o, opts.bins) });
      }
    }
  }
  const summary = models.map((m) => {
    const mine = rows.filter((r) => r.model === m.label);
    const mean = (f: (x: ClassificationMetrics) => number) => mine.reduce((a, r) => a + f(r.metrics), 0) / Math.max(1, mine.length);
    const c = clean.get(m.label)!;
    const cA = mean((x) => x.accuracy);
    return {
      model: m.label, clean_accuracy: c.accuracy, cA, cNLL: mean((x) => x.nll), cECE: mean((x) => x.ece),
      accuracy_drop: c.accuracy - cA, relative_accuracy_drop: (c.accuracy - cA) / c.accuracy,
    };
  });
  return { clean, rows, summary };
}
