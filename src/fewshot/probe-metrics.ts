/**
 * The two probabilistic metrics the probes report, as thin adapters over src/metrics so the
 * probes use exactly the conventions of every other number (NLL through log-softmax; top-label
 * ECE with equal-width bins).
 */
import { ece, nll } from '../metrics/index.js';

/** Mean −log softmax(z_n)[y_n] over rows of (N, K) logits. */
export function meanNllFromLogits(logits: Float64Array, labels: ArrayLike<number>, numClasses: number): number {
  return nll({ data: logits, n: labels.length, k: numClasses }, labels);
}

/** Top-label expected calibration error of (N, K) probabilities, `numBins` equal-width bins. */
export function topLabelEce(probs: Float64Array, labels: ArrayLike<number>, numClasses: number, numBins = 15): number {
  return ece({ data: probs, n: labels.length, k: numClasses }, labels, { bins: numBins }).value;
}
