/**
 * Out-of-distribution scores (higher = more OOD) and detection metrics.
 * For ensembles, MSP and the entropies use p̄; max-logit and energy are averaged over members'
 * own scores (logits of different members are not on a common scale).
 */
import { expectedEntropy, mutualInformationPerExample, predictiveEntropy } from './diversity.js';
import { auroc, averagePrecision, fprAtTpr } from './ranking.js';
import { ensembleLogProbs, logsumexp } from './softmax.js';
import { type Logits, checkScores, members } from './types.js';
import { UsageError } from '../util/errors.js';

/** An OOD score computed from logits; every score is "higher = more OOD" (see `OOD_SCORE_DEFINITIONS`). */
export type OodScoreName = 'msp' | 'max-logit' | 'energy' | 'entropy' | 'expected-entropy' | 'mutual-information';

/** Every `OodScoreName`. */
export const OOD_SCORE_NAMES: readonly OodScoreName[] = [
  'msp',
  'max-logit',
  'energy',
  'entropy',
  'expected-entropy',
  'mutual-information',
];

/** Each OOD score's formula in words; reported with the scores. */
export const OOD_SCORE_DEFINITIONS: Record<OodScoreName, string> = {
  msp: '1 − max_k p̄_k',
  'max-logit': '−max_k z_k (mean over members)',
  energy: '−logsumexp_k z_k (mean over members)',
  entropy: 'predictive entropy H(p̄), nats',
  'expected-entropy': 'expected entropy mean_m H(p_m), nats',
  'mutual-information': 'H(p̄) − mean_m H(p_m), nats',
};

/** 1 − max_k p̄_ik. */ // (N,)
export function mspScore(logits: Logits): Float64Array {
  const logpbar = ensembleLogProbs(logits); // (N, K)
  const { n, k } = logits;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let best = -Infinity;
    for (let c = 0; c < k; c++) best = Math.max(best, logpbar[i * k + c]!);
    out[i] = 1 - Math.exp(best);
  }
  return out;
}

function memberMean(logits: Logits, rowScore: (offset: number) => number): Float64Array {
  checkScores(logits, 'logits');
  const { n, k } = logits;
  const m = members(logits);
  const out = new Float64Array(n);
  for (let j = 0; j < m; j++) for (let i = 0; i < n; i++) out[i]! += rowScore((j * n + i) * k) / m;
  return out;
}

/** −max_k z_ik (averaged over members). */ // (N,)
export function maxLogitScore(logits: Logits): Float64Array {
  return memberMean(logits, (o) => {
    let best = -Infinity;
    for (let c = 0; c < logits.k; c++) best = Math.max(best, logits.data[o + c]!);
    return -best;
  });
}

/** Energy −logsumexp_k z_ik (T = 1; averaged over members). */ // (N,)
export function energyScore(logits: Logits): Float64Array {
  return memberMean(logits, (o) => -logsumexp(logits.data, o, logits.k));
}

/** Any named score; all are "higher = more OOD". */ // (N,)
export function oodScore(logits: Logits, name: OodScoreName): Float64Array {
  switch (name) {
    case 'msp':
      return mspScore(logits);
    case 'max-logit':
      return maxLogitScore(logits);
    case 'energy':
      return energyScore(logits);
    case 'entropy':
      return predictiveEntropy(logits);
    case 'expected-entropy':
      return expectedEntropy(logits);
    case 'mutual-information':
      return mutualInformationPerExample(logits);
    default:
      throw new UsageError(`unknown OOD score '${name as string}'; choose one of ${OOD_SCORE_NAMES.join(', ')}`);
  }
}

/** Which examples `oodMetrics` treats as the positive class. */
export type OodPositive = 'ood' | 'in-distribution';

/** What `oodMetrics` returns: AUROC, AUPRC and FPR at 95% TPR, the example counts and the convention. */
export interface OodMetrics {
  auroc: number;
  auprc: number;
  fpr95: number;
  nIn: number;
  nOod: number;
  convention: {
    positive: OodPositive;
    scoreDirection: string;
    auprc: 'step-wise average precision (no interpolation)';
    fpr95: 'FPR at the highest threshold with TPR ≥ 0.95';
    auroc: 'exact, ties count ½';
  };
}

/**
 * AUROC, AUPRC and FPR@95%TPR for OOD scores (higher = more OOD) of in-distribution and OOD examples.
 * Default: OOD is the positive class. With `positive: 'in-distribution'`, in-distribution examples are
 * the positives and ranked by the negated score (AUROC is unchanged; AUPRC and FPR95 change).
 */
export function oodMetrics(
  inScores: ArrayLike<number>,
  oodScores: ArrayLike<number>,
  opts: { positive?: OodPositive } = {},
): OodMetrics {
  const positive = opts.positive ?? 'ood';
  if (positive !== 'ood' && positive !== 'in-distribution') {
    throw new UsageError(`positive must be 'ood' or 'in-distribution', got '${positive as string}'`);
  }
  let pos: ArrayLike<number> = oodScores;
  let neg: ArrayLike<number> = inScores;
  if (positive === 'in-distribution') {
    pos = Float64Array.from(inScores, (s) => -s);
    neg = Float64Array.from(oodScores, (s) => -s);
  }
  return {
    auroc: auroc(pos, neg),
    auprc: averagePrecision(pos, neg),
    fpr95: fprAtTpr(pos, neg, 0.95),
    nIn: inScores.length,
    nOod: oodScores.length,
    convention: {
      positive,
      scoreDirection: positive === 'ood' ? 'higher score = more OOD' : 'negated score: higher = more in-distribution',
      auprc: 'step-wise average precision (no interpolation)',
      fpr95: 'FPR at the highest threshold with TPR ≥ 0.95',
      auroc: 'exact, ties count ½',
    },
  };
}
