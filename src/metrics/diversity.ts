/**
 * Ensemble diversity from member logits (M, N, K): disagreement, average pairwise KL,
 * mutual information and ambiguity (the Jensen gap Gibbs NLL − ensemble NLL), one-shot and
 * streaming (`DiversityAccumulator`).
 */
import { BatchAccumulator, addAll } from './batch.js';
import { NllAccumulator, countHits, ensembleNll, gibbsNll } from './likelihood.js';
import { argmaxRows, ensembleLogProbs, entropyFromLogProbs, logSoftmax, meanProbs } from './softmax.js';
import { type Labels, type Logits, checkScores, members } from './types.js';
import { DataError } from '../util/errors.js';

/** How each ensemble-diversity number is defined (pairs, reductions, units); reported with them. */
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
  if (m < 2) throw new DataError(`${what} needs an ensemble with m ≥ 2 members, got m = ${m}`);
  return m;
}

/** Fraction of member pairs (averaged over examples) whose argmax differs. */
export function disagreement(logits: Logits): number {
  const m = needPairs(logits, 'disagreement');
  return disagreeingPairs(logits) / ((logits.n * m * (m - 1)) / 2);
}

/** Number of (unordered member pair, example) whose argmax differs. */
function disagreeingPairs(logits: Logits): number {
  const m = members(logits);
  const pred = argmaxRows(logits); // (M·N,)
  const n = logits.n;
  let differ = 0;
  for (let j = 0; j < m; j++) {
    for (let l = j + 1; l < m; l++) {
      for (let i = 0; i < n; i++) if (pred[j * n + i] !== pred[l * n + i]) differ++;
    }
  }
  return differ;
}

/** Disagreement divided by the ensemble's error rate (Infinity if the ensemble makes no error). */
export function normalizedDisagreement(logits: Logits, labels: Labels): number {
  return divideByError(disagreement(logits), 1 - countHits(meanProbs(logits), labels) / logits.n);
}

function divideByError(d: number, error: number): number {
  return error === 0 ? (d === 0 ? 0 : Infinity) : d / error;
}

/** Mean over ordered member pairs and examples of KL(p_j ‖ p_l), in nats. */
export function averagePairwiseKl(logits: Logits): number {
  const m = needPairs(logits, 'pairwise KL');
  return addPairwiseKl(0, logits) / (m * (m - 1) * logits.n);
}

/** `total` plus Σ_i Σ_{j≠l} KL(p_j,i ‖ p_l,i), example by example (so batches add up exactly). */
function addPairwiseKl(total: number, logits: Logits): number {
  const m = members(logits);
  const logp = logSoftmax(logits); // (M, N, K)
  const { n, k } = logits;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      for (let l = 0; l < m; l++) {
        if (l === j) continue;
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
  return total;
}

/** Predictive entropy H(p̄_i) per example, nats. */ // (N,)
export function predictiveEntropy(logits: Logits): Float64Array {
  const logpbar = ensembleLogProbs(logits); // (N, K)
  const out = new Float64Array(logits.n);
  for (let i = 0; i < logits.n; i++) out[i] = entropyFromLogProbs(logpbar, i * logits.k, logits.k);
  return out;
}

/** Expected entropy mean_m H(p_m,i) per example, nats (equals predictive entropy for one model). */ // (N,)
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

/** Mutual information H(p̄_i) − mean_m H(p_m,i) per example (≥ 0 up to rounding), nats. */ // (N,)
export function mutualInformationPerExample(logits: Logits): Float64Array {
  const h = predictiveEntropy(logits);
  const eh = expectedEntropy(logits);
  for (let i = 0; i < h.length; i++) h[i] = Math.max(0, h[i]! - eh[i]!);
  return h;
}

/** Mean mutual information over examples, nats. */
export function mutualInformation(logits: Logits): number {
  return addAll(0, mutualInformationPerExample(logits)) / logits.n;
}

/** Ambiguity = Gibbs NLL − ensemble NLL (the Jensen gap; ≥ 0). */
export function ambiguity(logits: Logits, labels: Labels): number {
  return gibbsNll(logits, labels) - ensembleNll(logits, labels);
}

/**
 * What `ensembleDiversity` returns: disagreement, normalised disagreement, pairwise KL, mutual information,
 * ambiguity, Gibbs and ensemble NLL, and their convention.
 */
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

/**
 * Streaming ensemble diversity: `update` with member-logit batches (M ≥ 2, N, K) and labels, then
 * `result`, which equals `ensembleDiversity` on all examples at once. Each sum is added example by
 * example in the one-shot order; counts (disagreeing pairs, hits) are exact integers.
 */
export class DiversityAccumulator extends BatchAccumulator {
  private differ = 0;
  private hits = 0;
  private klTotal = 0;
  private miTotal = 0;
  private m = 0;
  private readonly nll = new NllAccumulator();

  constructor() {
    super('DiversityAccumulator', 'logits');
  }

  /** Add a batch of member logits (M, N, K) with labels (N). */
  update(logits: Logits, labels: Labels): this {
    const m = needPairs(logits, 'ensemble diversity');
    this.shape.check(logits);
    // NLL first: it validates the labels before anything is added.
    this.nll.update(logits, labels);
    this.m = m;
    this.differ += disagreeingPairs(logits);
    this.hits += countHits(meanProbs(logits), labels);
    this.klTotal = addPairwiseKl(this.klTotal, logits);
    this.miTotal = addAll(this.miTotal, mutualInformationPerExample(logits));
    this.n += logits.n;
    return this;
  }

  /** Every diversity number over the examples added so far, as `ensembleDiversity` computes them. */
  result(): EnsembleDiversity {
    const n = this.seen();
    const m = this.m;
    const d = this.differ / ((n * m * (m - 1)) / 2);
    const { nll: e, gibbsNll: g } = this.nll.result();
    return {
      disagreement: d,
      normalizedDisagreement: divideByError(d, 1 - this.hits / n),
      pairwiseKl: this.klTotal / (m * (m - 1) * n),
      mutualInformation: this.miTotal / n,
      ambiguity: g - e,
      gibbsNll: g,
      ensembleNll: e,
      convention: DIVERSITY_CONVENTION,
    };
  }
}
