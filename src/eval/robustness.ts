/**
 * Shift evaluation: every model on clean data once, then on each corruption ×
 * severity, corrupting the test images on the fly batch by batch (so no
 * corrupted copy of the set is ever held), with accuracy, NLL, ECE and — for
 * ensembles — diversity per set, and cA / cNLL / cECE summaries.
 */
import * as tf from '@tensorflow/tfjs-core';
import { makeBatch, type ImageDataset } from '../data/index.js';
import path from 'node:path';
import {
  CORRUPTIONS,
  MNIST_C,
  CorruptionPrefetcher,
  corruptBatch,
  corruptionWorkerAvailable,
  type CorruptionJob,
  type Suite,
} from '../robustness/index.js';
import { loadModel, type LoadedModel } from '../checkpoint/load.js';
import { runRecord } from '../engine/record.js';
import { UsageError } from '../util/errors.js';
import { loadDatasetFor, type DataSelection } from './checkpoint-data.js';
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
  throughput: RobustnessThroughput;
}

/**
 * Where a robustness run spent its time (robustness.json `throughput`): the model passes (forward and logit
 * read-back, every model), generating the corruptions (with batch assembly), and the metrics. The corruptions are
 * made on a worker thread while the model runs where that is available (`corruption_worker`); the rest runs in
 * turn. `model_images_per_s` is the speed of the model pass alone, comparable with the benchmark's inference
 * images/s; `images_per_s` is the end-to-end rate over all sets.
 */
export interface RobustnessThroughput {
  /** Images through each model: (1 clean + corrupted sets) × examples. */
  images: number;
  model_seconds: number;
  corruption_seconds: number;
  metric_seconds: number;
  seconds: number;
  /** images × models ÷ model_seconds. */
  model_images_per_s: number;
  /** images ÷ seconds. */
  images_per_s: number;
  /**
   * Whether the corruptions were made on a worker thread ahead of the model pass; then `corruption_seconds` is the
   * time the model loop waited for them (and built the batches), not the time spent corrupting.
   */
  corruption_worker?: boolean;
}

/**
 * The throughput of several robustness runs taken together (the queue's jobs, each one model on the clean set and
 * one corrupted set): their times summed (worker time, not wall time) and the rates recomputed; the clean set each
 * job repeats counts as the images it cost. Runs without a throughput (older workers) are left out.
 */
export function mergeThroughput(parts: (RobustnessThroughput | undefined)[], models: number): RobustnessThroughput {
  const have = parts.filter((p): p is RobustnessThroughput => p !== undefined);
  const sum = (f: (p: RobustnessThroughput) => number) => have.reduce((a, p) => a + f(p), 0);
  const images = sum((p) => p.images) / Math.max(1, models);
  const model = sum((p) => p.model_seconds),
    seconds = sum((p) => p.seconds);
  return {
    images,
    model_seconds: model,
    corruption_seconds: sum((p) => p.corruption_seconds),
    metric_seconds: sum((p) => p.metric_seconds),
    seconds,
    model_images_per_s: model > 0 ? (images * models) / model : Number.NaN,
    images_per_s: seconds > 0 ? images / seconds : Number.NaN,
    corruption_worker: have.length > 0 && have.every((p) => p.corruption_worker === true),
  };
}

/** Seconds spent in each phase of shiftedOutputs (added into by each call). */
export interface PhaseSeconds {
  model: number;
  corruption: number;
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
export function summariseShift(
  model: string,
  clean: ClassificationMetrics,
  rows: ShiftRow[],
  suite: Suite,
): RobustnessSummary {
  const mean = (rs: ShiftRow[], f: (x: ClassificationMetrics) => number) =>
    rs.reduce((a, r) => a + f(r.metrics), 0) / rs.length;
  const mine = rows.filter((r) => r.model === model);
  const bench = mine.filter((r) => !isHeldOut(suite, r.corruption));
  const held = mine.filter((r) => isHeldOut(suite, r.corruption));
  // With only held-out sets selected, the "benchmark" means fall back to those sets rather than NaN.
  const main = bench.length ? bench : held;
  const cA = main.length ? mean(main, (x) => x.accuracy) : NaN;
  const cNLL = main.length ? mean(main, (x) => x.nll) : NaN;
  const cECE = main.length ? mean(main, (x) => x.ece) : NaN;
  const out: RobustnessSummary = {
    model,
    clean_accuracy: clean.accuracy,
    cA,
    cNLL,
    cECE,
    accuracy_drop: clean.accuracy - cA,
    relative_accuracy_drop: (clean.accuracy - cA) / clean.accuracy,
    nll_increase: cNLL - clean.nll,
    ece_increase: cECE - clean.ece,
    benchmark_sets: main.length,
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
function batchLogits(
  entry: ModelEntry,
  x: Float32Array,
  shape: [number, number, number, number],
): { logits: Float32Array; members: number } {
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
  models: ModelEntry[],
  ds: ImageDataset,
  batchSize: number,
  transform: ((images: Uint8Array, n: number, start: number) => Uint8Array) | null,
  phases?: PhaseSeconds,
): Map<string, Outputs> {
  const K = models[0]!.members[0]!.config.model.numClasses;
  const scale = models[0]!.members[0]!.config.data.scale;
  const px = ds.height * ds.width * ds.channels;
  const acc = new Map<string, { logits: Float32Array; members: number }>();
  const t0 = performance.now();
  for (let start = 0; start < ds.n; start += batchSize) {
    const b = Math.min(batchSize, ds.n - start);
    const tc = performance.now();
    let images = ds.images.subarray(start * px, (start + b) * px);
    if (transform) images = transform(images, b, start);
    const view: ImageDataset = { ...ds, n: b, images, labels: ds.labels.subarray(start, start + b) };
    const batch = makeBatch(
      view,
      Int32Array.from({ length: b }, (_, i) => i),
      { scale },
    );
    const tm = performance.now();
    if (phases) phases.corruption += (tm - tc) / 1000;
    for (const m of models) {
      const r = batchLogits(m, batch.x, batch.shape);
      let a = acc.get(m.label);
      if (!a) {
        a = { logits: new Float32Array(r.members * ds.n * K), members: r.members };
        acc.set(m.label, a);
      }
      // (M, b, K) → rows start..start+b of each member's (N, K) block
      for (let j = 0; j < r.members; j++)
        a.logits.set(r.logits.subarray(j * b * K, (j + 1) * b * K), (j * ds.n + start) * K);
    }
    if (phases) phases.model += (performance.now() - tm) / 1000;
  }
  const seconds = (performance.now() - t0) / 1000;
  const out = new Map<string, Outputs>();
  for (const [label, a] of acc) {
    out.set(label, {
      n: ds.n,
      numClasses: K,
      members: a.members,
      logits: a.logits,
      preLogits: new Float32Array(0),
      preLogitsDim: 0,
      labels: ds.labels,
      router: [],
      seconds,
    });
  }
  return out;
}

/** Every corruption of a suite with its default severities (1…5 for C, the one fixed level for MNIST-C). */
export function suiteCorruptions(suite: Suite): { name: string; severities: number[] }[] {
  if (suite === 'mnist-c') return Object.keys(MNIST_C).map((name) => ({ name, severities: [1] }));
  return Object.keys(CORRUPTIONS).map((name) => ({ name, severities: [1, 2, 3, 4, 5] }));
}

/** Every model on clean data, then on each corruption × severity (corrupted on the fly); per-set metrics and summaries. */
export function evaluateRobustness(
  models: ModelEntry[],
  ds: ImageDataset,
  opts: {
    suite: Suite;
    corruptions: { name: string; severities: number[] }[];
    batchSize: number;
    seed: number;
    bins: number;
    onSet?: (name: string, severity: number, i: number, total: number) => void;
  },
): RobustnessResult {
  const shape = { h: ds.height, w: ds.width, c: ds.channels };
  const t0 = performance.now();
  const phases: PhaseSeconds = { model: 0, corruption: 0 };
  let metricSeconds = 0;
  const timedMetrics = (o: Outputs) => {
    const tm = performance.now();
    const m = classificationMetrics(o, opts.bins);
    metricSeconds += (performance.now() - tm) / 1000;
    return m;
  };
  const clean = new Map<string, ClassificationMetrics>();
  for (const [label, o] of shiftedOutputs(models, ds, opts.batchSize, null, phases)) clean.set(label, timedMetrics(o));
  const rows: ShiftRow[] = [];
  const total = opts.corruptions.reduce((a, c) => a + c.severities.length, 0);
  // Every corrupted batch, in the order the loop below asks for them: a worker thread makes them ahead of the
  // model pass (same bytes as corrupting here; without the compiled worker or with VMOE_CORRUPTION_WORKER=0, here).
  const jobs: CorruptionJob[] = [];
  for (const { name, severities } of opts.corruptions)
    for (const severity of severities)
      for (let start = 0; start < ds.n; start += opts.batchSize)
        jobs.push({ name, severity, start, n: Math.min(opts.batchSize, ds.n - start) });
  // The worker reads a shared copy of the clean set: for sets past 512 MiB the copy would cost more memory than
  // the overlap is worth, so those are corrupted here.
  const prefetcher =
    jobs.length > 0 && ds.images.byteLength <= 512 * 2 ** 20 && corruptionWorkerAvailable()
      ? new CorruptionPrefetcher(ds.images, shape, jobs, opts.seed, opts.suite)
      : null;
  try {
    let i = 0;
    for (const { name, severities } of opts.corruptions) {
      for (const severity of severities) {
        opts.onSet?.(name, severity, i++, total);
        const transform = (images: Uint8Array, n: number, start: number) =>
          prefetcher
            ? prefetcher.next({ name, severity, start, n })
            : corruptBatch(images, { n, ...shape }, name, severity, opts.seed, {
                suite: opts.suite,
                startIndex: start,
              });
        for (const [label, o] of shiftedOutputs(models, ds, opts.batchSize, transform, phases)) {
          rows.push({ model: label, corruption: name, severity, metrics: timedMetrics(o) });
        }
      }
    }
  } finally {
    prefetcher?.close();
  }
  const summary = models.map((m) => summariseShift(m.label, clean.get(m.label)!, rows, opts.suite));
  const seconds = (performance.now() - t0) / 1000;
  const images = (1 + total) * ds.n;
  const throughput: RobustnessThroughput = {
    images,
    model_seconds: phases.model,
    corruption_seconds: phases.corruption,
    metric_seconds: metricSeconds,
    seconds,
    model_images_per_s: phases.model > 0 ? (images * models.length) / phases.model : Number.NaN,
    images_per_s: seconds > 0 ? images / seconds : Number.NaN,
    corruption_worker: prefetcher !== null,
  };
  return { clean, rows, summary, throughput };
}

/** One corruption and the severities to run it at. */
export interface CorruptionSelection {
  name: string;
  severities: number[];
}

/** The suite's corruptions, all or the named ones (in suite order), at their default severities; unknown names are a UsageError. */
export function selectCorruptions(suite: Suite, names: string[] | 'all'): CorruptionSelection[] {
  const all = suiteCorruptions(suite);
  if (names === 'all') return all;
  const known = suite === 'c' ? Object.keys(CORRUPTIONS) : Object.keys(MNIST_C);
  const unknown = names.filter((w) => !known.includes(w));
  if (unknown.length)
    throw new UsageError(`unknown corruption(s) ${unknown.join(', ')} for suite ${suite}; known: ${known.join(', ')}`);
  return all.filter((c) => names.includes(c.name));
}

/** What `vmoe robustness` runs: models, data, suite and corruptions, and the evaluation settings. */
export interface RobustnessOptions {
  /** One entry per model: a checkpoint, or several joined with + (a deep ensemble). */
  checkpoints: string[];
  /** Label of the matching checkpoint entry; default: the entry's folder or file names joined with +. */
  labels: string[];
  /** The data (default: the first checkpoint's data set). */
  data: DataSelection;
  suite: Suite;
  corruptions: CorruptionSelection[];
  batchSize: number;
  seed: number;
  bins: number;
  onSet?: (name: string, severity: number, i: number, total: number) => void;
}

/** One model on one corrupted set: a row of robustness.csv (diversity columns for ensembles only). */
export type RobustnessSetRow = {
  model: string;
  corruption: string;
  severity: number;
  accuracy: number;
  nll: number;
  ece: number;
  disagreement?: number | null;
  mutual_information?: number | null;
  ambiguity?: number | null;
};

/** The result of `vmoe robustness` (robustness.json): numbers with their conventions and the run record. */
export interface RobustnessReport {
  dataset: string;
  split: string;
  n: number;
  suite: Suite;
  /** the seed that generated the corruptions (`--seed`) */
  corruption_seed: number;
  /** the training seed of the first model's config (from the run record, as in every report) */
  seed: number | undefined;
  models: { label: string; checkpoints: { path: string; sha256: string }[] }[];
  clean: Record<string, { accuracy: number; nll: number; ece: number }>;
  summary: RobustnessSummary[];
  per_set: RobustnessSetRow[];
  corruptions: { name: string; severities: number[]; held_out: boolean }[];
  /** Per corruption: its severity constants (C: one per severity; MNIST-C: the one constant). */
  severity_constants: Record<string, unknown[]>;
  conventions: Record<string, string>;
  /** Time per phase and images/s of the model pass and end to end. */
  throughput: RobustnessThroughput;
  [record: string]: unknown;
}

/** The label of a model entry the user did not label: its checkpoints' base names joined with +. */
export function defaultModelLabel(spec: string): string {
  return spec
    .split('+')
    .map((p) => path.basename(path.resolve(p)))
    .join('+');
}

/** The conventions of the robustness summaries: which sets cA averages, how the drops are taken, where the corruptions come from. */
export function robustnessConventions(suite: Suite, bins: number, seed: number): Record<string, string> {
  return {
    cA:
      suite === 'c'
        ? 'mean accuracy over the benchmark sets (the 15 ImageNet-C corruptions × severities run); the 4 held-out corruptions are averaged separately in *_held_out'
        : 'mean accuracy over every corrupted set (corruption × severity)',
    cNLL: 'mean NLL over the same sets as cA',
    cECE: `mean ECE (${bins} equal-width bins, top-label) over the same sets as cA`,
    accuracy_drop: 'clean accuracy − cA; relative_accuracy_drop divides by clean accuracy',
    nll_increase: 'cNLL − clean NLL',
    ece_increase: 'cECE − clean ECE',
    corruptions: `procedural-${suite === 'c' ? 'C' : 'MNIST-C'}, generated by vmoe-ts with seed ${seed}; not identical to the released data sets`,
  };
}

/** Loads the models, evaluates them under the corruptions (evaluateRobustness) and returns the typed report; the models are disposed. */
export function robustnessReport(opts: RobustnessOptions): RobustnessReport {
  if (!opts.checkpoints.length)
    throw new UsageError('robustness: give at least one model (join checkpoints with + for a deep ensemble)');
  const models: ModelEntry[] = [];
  try {
    for (const [i, spec] of opts.checkpoints.entries()) {
      models.push({
        label: opts.labels[i] ?? defaultModelLabel(spec),
        members: spec.split('+').map((p) => loadModel(p)),
      });
    }
    const first = models[0]!.members[0]!;
    const ds = loadDatasetFor(first.config, opts.data);
    const { suite, corruptions, seed } = opts;
    const res = evaluateRobustness(models, ds, {
      suite,
      corruptions,
      batchSize: opts.batchSize,
      seed,
      bins: opts.bins,
      onSet: opts.onSet,
    });
    const rows: RobustnessSetRow[] = res.rows.map((r) => ({
      model: r.model,
      corruption: r.corruption,
      severity: r.severity,
      accuracy: r.metrics.accuracy,
      nll: r.metrics.nll,
      ece: r.metrics.ece,
      ...(r.metrics.members > 1
        ? {
            disagreement: r.metrics.disagreement ?? null,
            mutual_information: r.metrics.mutual_information ?? null,
            ambiguity: r.metrics.ambiguity ?? null,
          }
        : {}),
    }));
    const constants = Object.fromEntries(
      corruptions.map((c) => [c.name, suite === 'c' ? CORRUPTIONS[c.name]!.constants : [MNIST_C[c.name]!.constant]]),
    );
    return {
      dataset: ds.name,
      split: ds.split,
      n: ds.n,
      suite,
      corruption_seed: seed,
      seed: first.config.seed,
      models: models.map((m) => ({
        label: m.label,
        checkpoints: m.members.map((l) => ({ path: l.path, sha256: l.sha256 })),
      })),
      clean: Object.fromEntries([...res.clean].map(([k, v]) => [k, { accuracy: v.accuracy, nll: v.nll, ece: v.ece }])),
      summary: res.summary,
      per_set: rows,
      corruptions: corruptions.map((c) => ({
        name: c.name,
        severities: c.severities,
        held_out: isHeldOut(suite, c.name),
      })),
      severity_constants: constants,
      conventions: robustnessConventions(suite, opts.bins, seed),
      throughput: res.throughput,
      ...runRecord(first.config),
    };
  } finally {
    for (const m of models) for (const l of m.members) l.model.dispose();
  }
}
