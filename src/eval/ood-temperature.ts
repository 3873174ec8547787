/**
 * The two evaluators that need data beyond the predictions under test: temperature scaling (fitted on
 * held-out predictions, reported on the test predictions) and OOD detection (scores on in-distribution
 * vs OOD predictions; Mahalanobis scores fitted on training pre-logits).
 */
import {
  OOD_SCORE_DEFINITIONS,
  accuracy,
  applyTemperature,
  brier,
  ece,
  fitMahalanobis,
  fitTemperature,
  mahalanobisScore,
  nll,
  oodMetrics,
  oodScore,
  probsFromLogits,
  relativeMahalanobisScore,
  type OodPositive,
  type OodScoreName,
  type TemperatureFit,
} from '../metrics/index.js';
import type { Outputs } from '../vmoe/outputs.js';
import type { OodEntry } from './report.js';

/** An OOD data set's predictions, named. */
export interface OodSet {
  name: string;
  outputs: Outputs;
}

export interface TemperatureResult {
  fit: TemperatureFit;
  /** the target's headline metrics after scaling (ECE: top-label, `bins` equal-width bins) */
  metrics: { accuracy: number; nll: number; brier: number; ece: number };
}

const logitsOf = (o: Outputs) => ({
  data: o.logits,
  n: o.n,
  k: o.numClasses,
  ...(o.members > 1 ? { m: o.members } : {}),
});

/** Fits T on `fit` (a held-out split's predictions) and reports `target`'s metrics after scaling. */
export function temperatureScaled(
  fit: Outputs,
  target: Outputs,
  bins: number,
  mode: 'per-member' | 'pooled' = 'pooled',
): TemperatureResult {
  const t = fitTemperature(logitsOf(fit), fit.labels, fit.members > 1 ? { mode } : {});
  const scaled = applyTemperature(logitsOf(target), t.temperatures.length === 1 ? t.temperatures[0]! : t.temperatures);
  const logits = { ...logitsOf(target), data: Float32Array.from(scaled.data as ArrayLike<number>) };
  const probs = probsFromLogits(logits);
  return {
    fit: t,
    metrics: {
      accuracy: accuracy(probs, target.labels),
      nll: nll(logits, target.labels),
      brier: brier(probs, target.labels),
      ece: ece(probs, target.labels, { bins }).value,
    },
  };
}

export type OodScoreChoice = OodScoreName | 'mahalanobis' | 'relative-mahalanobis';

/** What each OOD score means (higher = more OOD). */
export const OOD_DEFINITIONS: Record<OodScoreChoice, string> = {
  ...OOD_SCORE_DEFINITIONS,
  mahalanobis:
    'min over classes of the squared Mahalanobis distance of the pre-logits (class means, shared covariance from training pre-logits)',
  'relative-mahalanobis':
    'Mahalanobis minus the distance under one class-agnostic Gaussian fitted on training pre-logits',
};

const ALL_SCORES: OodScoreChoice[] = [
  'msp',
  'entropy',
  'max-logit',
  'energy',
  'expected-entropy',
  'mutual-information',
  'mahalanobis',
  'relative-mahalanobis',
];

/**
 * Scores that apply: Mahalanobis only with a fit; the ensemble scores only for ensembles; max-logit and
 * energy only on raw logits (a predictions CSV of probabilities has none).
 */
function scoresFor(
  o: Outputs,
  maha: ReturnType<typeof fitMahalanobis> | null,
  scoreKind: 'logits' | 'log-probs',
): Map<OodScoreChoice, Float64Array> {
  const out = new Map<OodScoreChoice, Float64Array>();
  for (const name of ALL_SCORES) {
    if (name === 'mahalanobis' || name === 'relative-mahalanobis') {
      if (!maha || o.preLogitsDim === 0) continue;
      const f = { data: o.preLogits, n: o.n, d: o.preLogitsDim };
      out.set(name, name === 'mahalanobis' ? mahalanobisScore(maha, f) : relativeMahalanobisScore(maha, f));
    } else {
      if (o.members === 1 && (name === 'expected-entropy' || name === 'mutual-information')) continue;
      if (scoreKind === 'log-probs' && (name === 'max-logit' || name === 'energy')) continue;
      out.set(name, oodScore(logitsOf(o), name));
    }
  }
  return out;
}

/** OOD metrics of every applicable score, in-distribution predictions against each OOD set, under both positive-class conventions. */
export function oodEvaluation(
  inDist: Outputs,
  oodSets: OodSet[],
  opts: { train?: Outputs | null; scoreKind?: 'logits' | 'log-probs' } = {},
): { entries: OodEntry[]; conventions: Record<string, unknown> } {
  const kind = opts.scoreKind ?? 'logits';
  const maha =
    opts.train && opts.train.preLogitsDim > 0
      ? fitMahalanobis({ data: opts.train.preLogits, n: opts.train.n, d: opts.train.preLogitsDim }, opts.train.labels)
      : null;
  const inScores = scoresFor(inDist, maha, kind);
  const entries = oodSets.map(({ name, outputs }) => {
    const oodScores = scoresFor(outputs, maha, kind);
    const scores: OodEntry['scores'] = {};
    for (const [s, inS] of inScores) {
      const o = oodScores.get(s);
      if (!o) continue;
      const pick = (p: OodPositive) => {
        const m = oodMetrics(inS, o, { positive: p });
        return { auroc: m.auroc, auprc: m.auprc, fpr95: m.fpr95 };
      };
      scores[s] = { ood_positive: pick('ood'), in_positive: pick('in-distribution') };
    }
    return { dataset: name, n: outputs.n, scores };
  });
  const used = Object.fromEntries([...inScores.keys()].map((s) => [s, OOD_DEFINITIONS[s]]));
  return {
    entries,
    conventions: {
      scores: used,
      positive: 'both conventions reported: ood_positive (OOD = positive class) and in_positive',
      fpr95: 'false-positive rate at 95% true-positive rate',
      auprc: 'step-wise average precision',
    },
  };
}
