/** Accuracy, negative log-likelihood (single, ensemble, Gibbs, per member) and Brier score. */
import { ensembleLogProbs, logSoftmax, averageMembers, argmaxRows } from './softmax.js';
import { type Labels, type Logits, type Probs, checkLabels, checkScores, members } from './types.js';

export const NLL_CONVENTION = {
  base: 'natural log (nats)',
  reduction: 'mean over examples',
  ensemble: '−log p̄(y), p̄ = mean_m softmax(z_m), computed as −(logsumexp_m log p_m(y) − log M)',
  gibbs: 'mean_m −log p_m(y)',
  clipping: 'none (log space)',
} as const;

export const BRIER_CONVENTION = {
  formula: 'mean_i Σ_k (p_ik − y_ik)²',
  sumOverClasses: true,
  dividedByK: false,
  range: '[0, 2]',
} as const;

export const ACCURACY_CONVENTION = {
  prediction: 'argmax of the predictive distribution p̄ (first index on ties)',
} as const;

/** Fraction of examples whose argmax of p̄ equals the label. Member probabilities are averaged first. */
export function accuracy(probs: Probs, labels: Labels): number {
  checkScores(probs, 'probs');
  checkLabels(labels, probs.n, probs.k);
  const pred = argmaxRows(averageMembers(probs));
  let hits = 0;
  for (let i = 0; i < probs.n; i++) if (pred[i] === labels[i]) hits++;
  return hits / probs.n;
}

/** Per-example −log p̄(y) (ensemble NLL; single-model NLL when m is 1). */        // (N,)
export function nllPerExample(logits: Logits, labels: Labels): Float64Array {
  checkScores(logits, 'logits');
  checkLabels(labels, logits.n, logits.k);
  const logp = ensembleLogProbs(logits); // (N, K)
  const out = new Float64Array(logits.n);
  for (let i = 0; i < logits.n; i++) out[i] = -logp[i * logits.k + labels[i]!]!;
  return out;
}

/** Mean NLL of the predictive distribution: single-model NLL, or the ensemble NLL −log p̄(y). */
export function nll(logits: Logits, labels: Labels): number {
  return mean(nllPerExample(logits, labels));
}

/** Alias of `nll` that says what it computes for (M, N, K) input. */
export const ensembleNll = nll;

/** NLL of each member separately (length M). */
export function memberNlls(logits: Logits, labels: Labels): number[] {
  checkScores(logits, 'logits');
  checkLabels(labels, logits.n, logits.k);
  const { n, k } = logits;
  const logp = logSoftmax(logits); // (M, N, K)
  const out: number[] = [];
  for (let j = 0; j < members(logits); j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s -= logp[(j * n + i) * k + labels[i]!]!;
    out.push(s / n);
  }
  return out;
}

/** Gibbs NLL mean_m(−log p_m(y)): the expected NLL of one randomly drawn member. */
export function gibbsNll(logits: Logits, labels: Labels): number {
  return mean(memberNlls(logits, labels));
}

/** Brier score mean_i Σ_k (p̄_ik − 1[k = y_i])² (not divided by K). Member probabilities are averaged first. */
export function brier(probs: Probs, labels: Labels): number {
  checkScores(probs, 'probs');
  checkLabels(labels, probs.n, probs.k);
  const p = averageMembers(probs);
  const { n, k } = probs;
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) {
      const d = p.data[i * k + c]! - (c === labels[i] ? 1 : 0);
      total += d * d;
    }
  }
  return total / n;
}

function mean(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s / x.length;
}
