/**
 * Few-shot evaluation of checkpoints (`vmoe fewshot`): the frozen pre-logits of each data set's train pool and
 * test split (cached, eval/features-cache.ts; E³ and several checkpoints: the members' concatenated), linear
 * probes over shots, seeds and the λ grid (fewshot/protocol.ts), gathered into the typed result with its conventions.
 */
import { loadDataset } from '../data/index.js';
import { loadModel, type LoadedModel } from '../checkpoint/load.js';
import { runRecord } from '../engine/record.js';
import { runFewShot, type FewShotDataset, type FewShotReport, type ProbeKind } from '../fewshot/index.js';
import { extractPreLogits, type CachedFeatures } from './features-cache.js';

/** What `vmoe fewshot` runs: the checkpoints (one representation), the data sets and the probe protocol. */
export interface FewShotEvalOptions {
  checkpoints: string[];
  datasets: string[];
  shots: number[];
  /** Seeds of the example draw: 0…seeds−1. */
  seeds: number;
  probe: ProbeKind;
  selectBy?: 'accuracy' | 'nll';
  /** Few-shot examples are drawn from the first `trainPool` examples of the official train split. */
  trainPool: number;
  testLimit?: number;
  batchSize: number;
  cacheDir: string;
  dataDir?: string;
  /** Called before each data set's pre-logits are extracted. */
  onDataset?: (name: string, train: number, test: number) => void;
}

/** The result of `vmoe fewshot` (fewshot.json): the protocol's report, the representation, checkpoints, conventions and run record. */
export interface FewShotResult {
  probe: ProbeKind;
  select_by: FewShotReport['selectBy'];
  shots: number[];
  seeds: number[];
  l2_grid: number[];
  results: FewShotReport['results'];
  selection: FewShotReport['selection'];
  notes: string[];
  representation: string;
  checkpoints: { path: string; sha256: string }[];
  train_pool: string;
  /**
   * Per data set and split: examples, seconds of the model passes that extracted their pre-logits (every
   * checkpoint) and images/s (examples ÷ seconds); null rates where the features came from the cache.
   */
  feature_extraction: FeatureExtractionTiming[];
  conventions: Record<string, string>;
  [record: string]: unknown;
}

/** How long extracting one split's pre-logits took (fewshot.json `feature_extraction`). */
export interface FeatureExtractionTiming {
  dataset: string;
  split: string;
  n: number;
  cached: boolean;
  seconds: number;
  /** Of `seconds`, the time the model waited for images being decoded (image folders). */
  decode_wait_seconds: number;
  images_per_s: number | null;
}

function timing(dataset: string, split: string, f: CachedFeatures): FeatureExtractionTiming {
  return {
    dataset,
    split,
    n: f.n,
    cached: f.cached,
    seconds: f.seconds,
    decode_wait_seconds: f.decodeWaitSeconds ?? 0,
    images_per_s: f.cached || f.seconds <= 0 ? null : f.n / f.seconds,
  };
}

/** A few-shot evaluation: the result and each data set's number of classes (chance accuracy for figures). */
export interface FewShotRun {
  result: FewShotResult;
  numClasses: Record<string, number>;
}

/** Loads the checkpoints, extracts (or reads cached) pre-logits of every data set and runs the few-shot protocol; the models are disposed. */
export function fewShotEvaluation(opts: FewShotEvalOptions): FewShotRun {
  const models: LoadedModel[] = [];
  try {
    for (const c of opts.checkpoints) models.push(loadModel(c));
    // every data set is fitted to the (first) model's input: resized, grey ↔ RGB
    const mc = models[0]!.config.model;
    const fit = { imageSize: mc.imageSize, channels: mc.channels };
    const timings: FeatureExtractionTiming[] = [];
    const datasets: FewShotDataset[] = opts.datasets.map((name) => {
      const train = loadDataset(name, 'train_full', { dataDir: opts.dataDir, limit: opts.trainPool, ...fit });
      const test = loadDataset(name, 'test', { dataDir: opts.dataDir, limit: opts.testLimit, ...fit });
      opts.onDataset?.(name, train.n, test.n);
      const tr = extractPreLogits(models, train, { batchSize: opts.batchSize, cacheDir: opts.cacheDir });
      const te = extractPreLogits(models, test, { batchSize: opts.batchSize, cacheDir: opts.cacheDir });
      timings.push(timing(name, 'train', tr), timing(name, 'test', te));
      return {
        name,
        numClasses: train.numClasses,
        trainX: { rows: tr.n, cols: tr.d, data: tr.data },
        trainY: tr.labels,
        testX: { rows: te.n, cols: te.d, data: te.data },
        testY: te.labels,
      };
    });
    const report = runFewShot(datasets, {
      shots: opts.shots,
      seeds: opts.seeds,
      probe: opts.probe,
      selectBy: opts.selectBy,
    });
    const result: FewShotResult = {
      probe: report.probe,
      select_by: report.selectBy,
      shots: report.shots,
      seeds: report.seeds,
      l2_grid: report.l2s,
      results: report.results,
      selection: report.selection,
      notes: report.notes,
      representation:
        models.length > 1 || models[0]!.config.model.type === 'e3' ? "members' pre-logits concatenated" : 'pre-logits',
      checkpoints: models.map((m) => ({ path: m.path, sha256: m.sha256 })),
      train_pool: `first ${opts.trainPool} examples of the official train split`,
      feature_extraction: timings,
      conventions: {
        accuracy: 'test accuracy, mean ± sample std over seeds of the example draw',
        l2_mean_rank: 'λ chosen by mean rank across the data sets (as the reference; uses test accuracy)',
        l2_leave_self_out: "λ for each data set chosen from the other data sets' ranks (honest)",
      },
      ...runRecord(models[0]!.config),
    };
    return { result, numClasses: Object.fromEntries(datasets.map((d) => [d.name, d.numClasses])) };
  } finally {
    for (const m of models) m.model.dispose();
  }
}
