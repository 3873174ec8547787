/**
 * Ensemble diversity from member logits (M, N, K): disagreement, average pairwise KL,
 * mutual information and ambiguity (the Jensen gap Gibbs NLL − ensemble NLL).
 */
import { accuracy, ensembleNll, gibbsNll } from './likelihood.js';
import { argmaxRows, ensembleLogProbs, entropyFromLogProbs, logSoftmax, meanProbs } from './softmax.js';
import { type Labels, type Logits, checkScores, members } from './types.js';

export const DIVERSITY_CONVENTION = {
  disagreement: 'fraction of (unordered member pair, example) with different argmax',
  normalizedDisagreement: 'disagreement / ensemble error (1 − accuracy of p̄)',
  pairwiseKl: 'mean over ordered member pairs (j ≠ l) and examples of KL(p_j ‖ p_l), nats',
  mutualInformation: 'mean_i [H(p̄_i) − mean_m H(p_m,i)], nats',
  ambiguity: 'Gibbs NLL − ensemble NLL (≥ 0 by Jensen), nats',
} as const;

function needPairs(logits: Logits, what: string): number {
  checkScores(logits, 'logits');
  const m = members(logits);
  if (m < 2) throw new Error(`${what} needs an ensemble with m ≥ 2 members, got m = ${m}`);
  return m;
}

/** Fraction of member pairs (averaged over examples) whose argmax differs. */
export function disagreement(logits: Logits): number {
  const m = needPairs(logits, 'disagreement');
  const pred = argmaxRows(logits); // (M·N,)
  const n = logits.n;
  let differ = 0;
  for (let j = 0; j < m; j++) {
    for (let l = j + 1; l < m; l++) {
      for (let i = 0; i < n; i++) if (pred[j * n + i] !== pred[l * n + i]) differ++;
    }
  }
  return differ / ((n * m * (m - 1)) / 2);
}

/** Disagreement divided by the ensemble's error rate (Infinity if the ensemble makes no error). */
export function normalizedDisagreement(logits: Logits, labels: Labels): number {
  const d = disagreement(logits);
  const error = 1 - accuracy(meanProbs(logits), labels);
  return error === 0 ? (d === 0 ? 0 : Infinity) : d / error;
}

/** Mean over ordered member pairs and examples of KL(p_j ‖ p_l), in nats. */
export function averagePairwiseKl(logits: Logits): number {
  const m = needPairs(logits, 'pairwise KL');
  const logp = logSoftmax(logits); // (M, N, K)
  const { n, k } = logits;
  let total = 0;
  for (let j = 0; j < m; j++) {
    for (let l = 0; l < m; l++) {
      if (l === j) continue;
      for (let i = 0; i < n; i++) {
        const oj = (j * n + i) * k;
        const ol = (l * n + i) * k;
        for (let c = 0; c < k; c++) {
          const a = logp[oj + c]!;
          if (a === -Infinity) continue;
          total += Math.exp(a) * (a - logp[ol + c]!);
        }
      }
    }
  }
  return total / (m * (m - 1) * n);
}

/** Predictive entropy H(p̄_i) per example, nats. */        // (N,)
export function predictiveEntropy(logits: Logits): Float64Array {
  const logpbar = ensembleLogProbs(logits); // (N, K)
  const out = new Float64Array(logits.n);
  for (let i = 0; i < logits.n; i++) out[i] = entropyFromLogProbs(logpbar, i * logits.k, logits.k);
  return out;
}

/** Expected entropy mean_m H(p_m,i) per example, nats (equals predictive entropy for one model). */        // (N,)
export function expectedEntropy(logits: Logits): Float64Array {
  checkScores(logits, 'logits');
  const logp = logSoftmax(logits); // (M, N, K)
  const { n, k } = logits;
  const m = members(logits);
  const out = new Float64Array(n);
  for (let j = 0; j < m; j++) {
    for (let i = 0; i < n; i++) out[i]! += entropyFromLogProbs(logp, (j * n + i) * k, k) / m;
  }
  return out;
}

/** Mutual information H(p̄_i) − mean_m H(p_m,i) per example (≥ 0 up to rounding), nats. */        // (N,)
export function mutualInformationPerExample(logits: Logits): Float64Array {
  const h = predictiveEntropy(logits);
  const eh = expectedEntropy(logits);
  for (let i = 0; i < h.length; i++) h[i] = Math.max(0, h[i]! - eh[i]!);
  return h;
}

/** Mean mutual information over examples, nats. */
export function mutualInformation(logits: Logits): number {
  const mi = mutualInformationPerExample(logits);
  let s = 0;
  for (let i = 0; i < mi.length; i++) s += mi[i]!;
  return s / mi.length;
}

/** Ambiguity = Gibbs NLL − ensemble NLL (the Jensen gap; ≥ 0). */
export function ambiguity(logits: Logits, labels: Labels): number {
  return gibbsNll(logits, labels) - ensembleNll(logits, labels);
}

export interface EnsembleDiversity {
  disagreement: number;
  normalizedDisagreement: number;
  pairwiseKl: number;
  mutualInformation: number;
  ambiguity: number;
  gibbsNll: number;
  ensembleNll: number;
  convention: typeof DIVERSITY_CONVENTION;
}

/** Every diversity number at once for member logits (M ≥ 2, N, K) with labels. */
export function ensembleDiversity(logits: Logits, labels: Labels): EnsembleDiversity {
  const g = gibbsNll(logits, labels);
  const e = ensembleNll(logits, labels);
  return {
    disagreement: disagreement(logits),
    normalizedDisagreement: normalizedDisagreement(logits, labels),
    pairwiseKl: averagePairwiseKl(logits),
    mutualInformation: mutualInformation(logits),
    ambiguity: g - e,
    gibbsNll: g,
    ensembleNll: e,
    convention: DIVERSITY_CONVENTION,
  };
}
