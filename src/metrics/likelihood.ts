/**
 * Accuracy, negative log-likelihood (single, ensemble, Gibbs, per member) and Brier score, one-shot
 * and streaming. The accumulators add example by example in the same order as the one-shot
 * functions, so feeding the data in any batches gives the one-shot result bit for bit.
 */
import { ensembleLogProbs, logSoftmax, logsumexp, averageMembers, argmaxRows } from './softmax.js';
import { BatchAccumulator, MeanAccumulator, addAll } from './batch.js';
import { type Labels, type Logits, type Probs, checkLabels, checkScores, members } from './types.js';

/** How NLL values are computed (nats, mean over examples, the ensemble and Gibbs forms); reported with them. */
export const NLL_CONVENTION = {
  base: 'natural log (nats)',
  reduction: 'mean over examples',
  ensemble: '−log p̄(y), p̄ = mean_m softmax(z_m), computed as −(logsumexp_m log p_m(y) − log M)',
  gibbs: 'mean_m −log p_m(y)',
  clipping: 'none (log space)',
} as const;

/** How Brier scores are computed (sum over classes, not divided by K, range [0, 2]); reported with them. */
export const BRIER_CONVENTION = {
  formula: 'mean_i Σ_k (p_ik − y_ik)²',
  sumOverClasses: true,
  dividedByK: false,
  range: '[0, 2]',
} as const;

/** How accuracy picks a prediction (argmax of p̄, first index on ties); reported with it. */
export const ACCURACY_CONVENTION = {
  prediction: 'argmax of the predictive distribution p̄ (first index on ties)',
} as const;

/** Fraction of examples whose argmax of p̄ equals the label. Member probabilities are averaged first. */
export function accuracy(probs: Probs, labels: Labels): number {
  return countHits(probs, labels) / probs.n;
}

/** Number of examples whose argmax of p̄ equals the label. */
export function countHits(probs: Probs, labels: Labels): number {
  checkScores(probs, 'probs');
  checkLabels(labels, probs.n, probs.k);
  const pred = argmaxRows(averageMembers(probs));
  let hits = 0;
  for (let i = 0; i < probs.n; i++) if (pred[i] === labels[i]) hits++;
  return hits;
}

/** Per-example −log p̄(y) (ensemble NLL; single-model NLL when m is 1). */ // (N,)
export function nllPerExample(logits: Logits, labels: Labels): Float64Array {
  checkScores(logits, 'logits');
  checkLabels(labels, logits.n, logits.k);
  const out = new Float64Array(logits.n);
  const { n, k } = logits;
  if (members(logits) === 1) {
    // −log softmax(z)_y = logsumexp(z) − z_y, row by row: no (N, K) array for a predictions file of any size
    for (let i = 0; i < n; i++) out[i] = logsumexp(logits.data, i * k, k) - logits.data[i * k + labels[i]!]!;
    return out;
  }
  const logp = ensembleLogProbs(logits); // (N, K)
  for (let i = 0; i < n; i++) out[i] = -logp[i * k + labels[i]!]!;
  return out;
}

/** Mean NLL of the predictive distribution: single-model NLL, or the ensemble NLL −log p̄(y). */
export function nll(logits: Logits, labels: Labels): number {
  return addAll(0, nllPerExample(logits, labels)) / logits.n;
}

/** Alias of `nll` that says what it computes for (M, N, K) input. */
export const ensembleNll = nll;

/** NLL of each member separately (length M). */
export function memberNlls(logits: Logits, labels: Labels): number[] {
  const sums = addMemberNllSums(logits, labels, new Float64Array(members(logits)));
  return Array.from(sums, (s) => s / logits.n);
}

/** Adds Σ_i −log p_m(y_i) of this batch to `sums[m]`, example by example; returns `sums`. */ // (M,)
function addMemberNllSums(logits: Logits, labels: Labels, sums: Float64Array): Float64Array {
  checkScores(logits, 'logits');
  checkLabels(labels, logits.n, logits.k);
  const { n, k } = logits;
  const logp = logSoftmax(logits); // (M, N, K)
  for (let j = 0; j < members(logits); j++) {
    for (let i = 0; i < n; i++) sums[j]! -= logp[(j * n + i) * k + labels[i]!]!;
  }
  return sums;
}

/** Gibbs NLL mean_m(−log p_m(y)): the expected NLL of one randomly drawn member. */
export function gibbsNll(logits: Logits, labels: Labels): number {
  const per = memberNlls(logits, labels);
  return addAll(0, per) / per.length;
}

/** Brier score mean_i Σ_k (p̄_ik − 1[k = y_i])² (not divided by K). Member probabilities are averaged first. */
export function brier(probs: Probs, labels: Labels): number {
  return addBrierSum(0, probs, labels) / probs.n;
}

/** `total` plus Σ_i Σ_k (p̄_ik − y_ik)² of this batch, added in example order. */
function addBrierSum(total: number, probs: Probs, labels: Labels): number {
  checkScores(probs, 'probs');
  checkLabels(labels, probs.n, probs.k);
  const p = averageMembers(probs);
  const { n, k } = probs;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) {
      const d = p.data[i * k + c]! - (c === labels[i] ? 1 : 0);
      total += d * d;
    }
  }
  return total;
}

/** Streaming accuracy: `update(probs, labels)` with batches (N, K) or (M, N, K), then `result()`. */
export class AccuracyAccumulator extends MeanAccumulator {
  constructor() {
    super('AccuracyAccumulator', 'probs', (hits, probs, labels) => hits + countHits(probs, labels));
  }
}

/** Streaming Brier score (same convention as `brier`): `update(probs, labels)`, then `result()`. */
export class BrierAccumulator extends MeanAccumulator {
  constructor() {
    super('BrierAccumulator', 'probs', addBrierSum);
  }
}

/** NLLs of (member) logits: the ensemble NLL, the Gibbs NLL (mean member NLL) and each member's NLL. */
export interface NllResult {
  /** −log p̄(y): single-model NLL, or the ensemble NLL */
  nll: number;
  /** mean_m(−log p_m(y)); equals `nll` for one member */
  gibbsNll: number;
  /** per member, length M */
  memberNlls: number[];
}

/**
 * Streaming NLL from logit batches (N, K) or member logits (M, N, K): ensemble, Gibbs and member
 * NLLs as `nll`, `gibbsNll` and `memberNlls` compute them. Every batch must have the same M and K.
 */
export class NllAccumulator extends BatchAccumulator {
  private total = 0;
  private memberSums = new Float64Array(0);

  constructor() {
    super('NllAccumulator', 'logits');
  }

  /** Add a batch of logits (N, K) or member logits (M, N, K) with labels (N). */
  update(logits: Logits, labels: Labels): this {
    if (this.shape.check(logits)) this.memberSums = new Float64Array(members(logits));
    this.total = addAll(this.total, nllPerExample(logits, labels));
    addMemberNllSums(logits, labels, this.memberSums);
    this.n += logits.n;
    return this;
  }

  /** Ensemble, Gibbs and member NLLs over every example added so far. */
  result(): NllResult {
    const n = this.seen();
    const memberNlls = Array.from(this.memberSums, (s) => s / n);
    return { nll: this.total / n, gibbsNll: addAll(0, memberNlls) / memberNlls.length, memberNlls };
  }
}
