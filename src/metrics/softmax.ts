/** Numerically stable log-space helpers. All work row-wise over the class axis. */
import { type ClassScores, type Logits, type Probs, checkScores, members } from './types.js';

/** log Σ exp(x[offset .. offset+length)), exact for ±Infinity entries. */
export function logsumexp(x: ArrayLike<number>, offset = 0, length = x.length - offset): number {
  let max = -Infinity;
  for (let c = 0; c < length; c++) {
    const v = x[offset + c]!;
    if (v > max) max = v;
  }
  if (max === -Infinity || max === Infinity) return max;
  let sum = 0;
  for (let c = 0; c < length; c++) sum += Math.exp(x[offset + c]! - max);
  return max + Math.log(sum);
}

/** Row-wise log-softmax, same shape as the input ((N, K) or (M, N, K)). */
export function logSoftmax(logits: Logits): Float64Array {
  checkScores(logits, 'logits');
  const { k } = logits;
  const rows = members(logits) * logits.n;
  const out = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const o = r * k;
    const lse = logsumexp(logits.data, o, k);
    for (let c = 0; c < k; c++) out[o + c] = logits.data[o + c]! - lse;
  }
  return out;
}

/** Row-wise softmax, same shape as the input. */
export function softmax(logits: Logits): Float64Array {
  const out = logSoftmax(logits);
  for (let i = 0; i < out.length; i++) out[i] = Math.exp(out[i]!);
  return out;
}

/** Softmax as a `Probs` with the same dimensions (members kept). */
export function probsFromLogits(logits: Logits): Probs {
  return { data: softmax(logits), n: logits.n, k: logits.k, m: logits.m };
}

/** Elementwise log, so probabilities can enter the log-space functions as logits. */
export function logitsFromProbs(probs: Probs): Logits {
  checkScores(probs, 'probs');
  const data = new Float64Array(probs.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.log(probs.data[i]!);
  return { data, n: probs.n, k: probs.k, m: probs.m };
}

/**
 * log p̄ for the ensemble mean p̄ = mean_m softmax(z_m), computed as logsumexp_m log p_m − log M. // (N, K)
 * For a single model this is log-softmax.
 */
export function ensembleLogProbs(logits: Logits): Float64Array {
  const logp = logSoftmax(logits); // (M, N, K)
  const { n, k } = logits;
  const m = members(logits);
  if (m === 1) return logp;
  const out = new Float64Array(n * k);
  const column = new Float64Array(m);
  const logM = Math.log(m);
  for (let e = 0; e < n * k; e++) {
    for (let j = 0; j < m; j++) column[j] = logp[j * n * k + e]!;
    out[e] = logsumexp(column) - logM;
  }
  return out;
}

/** Predictive distribution p̄ (N, K) from logits (N, K) or member logits (M, N, K). */
export function meanProbs(logits: Logits): Probs {
  const data = ensembleLogProbs(logits);
  for (let i = 0; i < data.length; i++) data[i] = Math.exp(data[i]!);
  return { data, n: logits.n, k: logits.k };
}

/** Mean over members of probabilities already given as probabilities ((M, N, K) → (N, K)). */
export function averageMembers(probs: Probs): Probs {
  checkScores(probs, 'probs');
  const m = members(probs);
  if (m === 1) return { data: probs.data, n: probs.n, k: probs.k };
  const nk = probs.n * probs.k;
  const data = new Float64Array(nk);
  for (let j = 0; j < m; j++) for (let e = 0; e < nk; e++) data[e]! += probs.data[j * nk + e]!;
  for (let e = 0; e < nk; e++) data[e]! /= m;
  return { data, n: probs.n, k: probs.k };
}

/** Index of the largest entry in each row (first index on ties). */ // (rows,)
export function argmaxRows(x: ClassScores): Int32Array {
  checkScores(x);
  const { k } = x;
  const rows = members(x) * x.n;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * k;
    let best = 0;
    for (let c = 1; c < k; c++) if (x.data[o + c]! > x.data[o + best]!) best = c;
    out[r] = best;
  }
  return out;
}

/** Shannon entropy (nats) of a probability row given as log-probabilities; 0·log 0 = 0. */
export function entropyFromLogProbs(logp: ArrayLike<number>, offset: number, k: number): number {
  let h = 0;
  for (let c = 0; c < k; c++) {
    const l = logp[offset + c]!;
    if (l > -Infinity) h -= Math.exp(l) * l;
  }
  return h;
}
