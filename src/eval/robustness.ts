/**
 * Shift evaluation: every model on clean data once, then on each corruption ×
 * severity, corrupting the test images on the fly batch by batch (so no
 * corrupted copy of the set is ever held), with accuracy, NLL, ECE and — for
 * ensembles — diversity per set, and cA / cNLL / cECE summaries.
 */
import * as tf from '@tensorflow/tfjs-core';
import { makeBatch, type ImageDataset } from '../data/index.js';
import { CORRUPTIONS, MNIST_C, corruptBatch, type Suite } from '../robustness/index.js';
import type { LoadedModel } from '../checkpoint/load.js';
import { classificationMetrics, type ClassificationMetrics } from './harness.js';
import type { Outputs } from '../vmoe/outputs.js';
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
  summary: RobustnessSummary[];
}

/**
 * One model's shift summary. cA / cNLL / cECE average the benchmark sets only (ImageNet-C keeps its
 * 4 held-out corruptions out of the average); the held-out sets get their own means when they were run.
 */
export interface RobustnessSummary {
  model: string;
  clean_accuracy: number;
  cA: number;
  cNLL: number;
  cECE: number;
  accuracy_drop: number;
  relative_accuracy_drop: number;
  nll_increase: number;
  ece_increase: number;
  benchmark_sets: number;
  cA_held_out?: number;
  cNLL_held_out?: number;
  cECE_held_out?: number;
  held_out_sets?: number;
}

/** Whether a corruption of the suite is one of the held-out ones (only the C suite has them). */
export function isHeldOut(suite: Suite, name: string): boolean {
  return suite === 'c' && CORRUPTIONS[name]?.heldOut === true;
}

/** Summary of one model's rows against its clean metrics (pure: rows in, numbers out). */
export function summariseShift(model: string, clean: ClassificationMetrics, rows: ShiftRow[], suite: Suite): RobustnessSummary {
  const mean = (rs: ShiftRow[], f: (x: ClassificationMetrics) => number) => rs.reduce((a, r) => a + f(r.metrics), 0) / rs.length;
  const mine = rows.filter((r) => r.model === model);
  const bench = mine.filter((r) => !isHeldOut(suite, r.corruption));
  const held = mine.filter((r) => isHeldOut(suite, r.corruption));
  // With only held-out sets selected, the "benchmark" means fall back to those sets rather than NaN.
  const main = bench.length ? bench : held;
  const cA = main.length ? mean(main, (x) => x.accuracy) : NaN;
  const cNLL = main.length ? mean(main, (x) => x.nll) : NaN;
  const cECE = main.length ? mean(main, (x) => x.ece) : NaN;
  const out: RobustnessSummary = {
    model, clean_accuracy: clean.accuracy, cA, cNLL, cECE,
    accuracy_drop: clean.accuracy - cA, relative_accuracy_drop: (clean.accuracy - cA) / clean.accuracy,
    nll_increase: cNLL - clean.nll, ece_increase: cECE - clean.ece, benchmark_sets: main.length,
  };
  if (bench.length && held.length) {
    out.cA_held_out = mean(held, (x) => x.accuracy);
    out.cNLL_held_out = mean(held, (x) => x.nll);
    out.cECE_held_out = mean(held, (x) => x.ece);
    out.held_out_sets = held.length;
  }
  return out;
}

/** Logits of every member of every model for one batch of images: (M, b, K) per model, flattened. */
function batchLogits(entry: ModelEntry, x: Float32Array, shape: [number, number, number, number]): { logits: Float32Array; members: number } {
  const parts: Float32Array[] = [];
  for (const l of entry.members) {
    tf.tidy(() => {
      const r = l.model.forward(tf.tensor4d(x, shape), { train: false, auxLosses: false });
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
  const summary = models.map((m) => summariseShift(m.label, clean.get(m.label)!, rows, opts.suite));
  return { clean, rows, summary };
}
