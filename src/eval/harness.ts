/**
 * The evaluation harness: the model(s) run once over every data set
 * (ensembleOutputs in src/ensembles), then the cached Outputs go to evaluators —
 * classification metrics (optionally after temperature scaling fitted on the
 * validation split) and OOD detection.
 */
import { loadDataset, isSyntheticOod, syntheticOodDataset, type ImageDataset, type Split } from '../data/index.js';
import {
  OOD_SCORE_DEFINITIONS, applyTemperature, fitMahalanobis, fitTemperature, mahalanobisScore, oodMetrics, oodScore,
  relativeMahalanobisScore, type OodPositive, type OodScoreName, type TemperatureFit,
} from '../metrics/index.js';
import type { EnsembleRunOptions } from '../ensembles/baselines.js';
import { classificationMetrics, type ClassificationMetrics } from './classification.js';
import type { Outputs } from '../vmoe/outputs.js';

/** How the models run (src/ensembles ensembleOutputs) and how finely calibration is binned. */
export interface HarnessOptions extends EnsembleRunOptions {
  bins: number;
}

export interface TemperatureResult {
  fit: TemperatureFit;
  metrics: ClassificationMetrics;
}

/** Fits T on `fit` outputs (a held-out split) and reports `target` metrics after scaling. */
export function temperatureScaled(fit: Outputs, target: Outputs, bins: number, mode: 'per-member' | 'pooled' = 'pooled'): TemperatureResult {
  const logits = (o: Outputs) => ({ data: o.logits, n: o.n, k: o.numClasses, m: o.members });
  const t = fitTemperature(logits(fit), fit.labels, fit.members > 1 ? { mode } : {});
  const scaled = applyTemperature(logits(target), t.temperatures.length === 1 ? t.temperatures[0]! : t.temperatures);
  const out: Outputs = { ...target, logits: Float32Array.from(scaled.data as ArrayLike<number>) };
  return { fit: t, metrics: classificationMetrics(out, bins) };
}

export type OodScoreChoice = OodScoreName | 'mahalanobis' | 'relative-mahalanobis';

export interface OodEntry {
  dataset: string;
  n: number;
  /** score name → metrics under both conventions */
  scores: Record<string, { ood_positive: { auroc: number; auprc: number; fpr95: number }; in_positive: { auroc: number; auprc: number; fpr95: number } }>;
}

export const OOD_DEFINITIONS: Record<string, string> = {
  ...OOD_SCORE_DEFINITIONS,
  mahalanobis: 'min over classes of the squared Mahalanobis distance of the pre-logits (class means, shared covariance from training pre-logits)',
  'relative-mahalanobis': 'Mahalanobis minus the distance under one class-agnostic Gaussian fitted on training pre-logits',
};

function scoresFor(o: Outputs, names: OodScoreChoice[], maha: ReturnType<typeof fitMahalanobis> | null): Map<string, Float64Array> {
  const logits = { data: o.logits, n: o.n, k: o.numClasses, m: o.members };
  const out = new Map<string, Float64Array>();
  for (const name of names) {
    if (name === 'mahalanobis' || name === 'relative-mahalanobis') {
      if (!maha) continue;
      const f = { data: o.preLogits, n: o.n, d: o.preLogitsDim };
      out.set(name, name === 'mahalanobis' ? mahalanobisScore(maha, f) : relativeMahalanobisScore(maha, f));
    } else {
      if (o.members === 1 && (name === 'expected-entropy' || name === 'mutual-information')) continue;
      out.set(name, oodScore(logits, name));
    }
  }
  return out;
}

export function oodEvaluation(inDist: Outputs, oodSets: { name: string; outputs: Outputs }[], opts: { train?: Outputs | null }): OodEntry[] {
  const names: OodScoreChoice[] = ['msp', 'entropy', 'max-logit', 'energy', 'expected-entropy', 'mutual-information', 'mahalanobis', 'relative-mahalanobis'];
  const maha = opts.train && opts.train.preLogitsDim > 0
    ? fitMahalanobis({ data: opts.train.preLogits, n: opts.train.n, d: opts.train.preLogitsDim }, opts.train.labels)
    : null;
  const inScores = scoresFor(inDist, names, maha);
  return oodSets.map(({ name, outputs }) => {
    const oodScores = scoresFor(outputs, names, maha);
    const scores: OodEntry['scores'] = {};
    for (const [s, inS] of inScores) {
      const o = oodScores.get(s)!;
      const pick = (p: OodPositive) => {
        const m = oodMetrics(inS, o, { positive: p });
        return { auroc: m.auroc, auprc: m.auprc, fpr95: m.fpr95 };
      };
      scores[s] = { ood_positive: pick('ood'), in_positive: pick('in-distribution') };
    }
    return { dataset: name, n: outputs.n, scores };
  });
}

/** Loads an OOD set by name: a registered data set's test split, or a synthetic noise set shaped like `like`. */
export function loadOodDataset(name: string, like: ImageDataset, opts: { dataDir?: string; limit?: number; seed?: number }): ImageDataset {
  const n = opts.limit ?? like.n;
  if (isSyntheticOod(name)) return syntheticOodDataset(name, like, n, opts.seed ?? 0);
  const ds = loadDataset(name, 'test' as Split, { dataDir: opts.dataDir, limit: n });
  if (ds.height !== like.height || ds.width !== like.width || ds.channels !== like.channels) {
    throw new Error(`OOD set ${name} has ${ds.height}×${ds.width}×${ds.channels} images; the model takes ${like.height}×${like.width}×${like.channels}`);
  }
  return ds;
}
