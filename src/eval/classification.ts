/** Evaluator: classification metrics of a single model's Outputs, with their conventions. */
import { accuracy, brier, ece, nll, probsFromLogits } from '../metrics/index.js';
import type { Outputs } from './outputs.js';

export interface ClassificationMetrics {
  n: number;
  accuracy: number;
  nll: number;
  brier: number;
  ece: number;
  conventions: Record<string, unknown>;
}

export function classificationMetrics(out: Outputs, bins = 15): ClassificationMetrics {
  const logits = { data: out.logits, n: out.n, k: out.numClasses };
  const probs = probsFromLogits(logits);
  const e = ece(probs, out.labels, { bins });
  return {
    n: out.n,
    accuracy: accuracy(probs, out.labels),
    nll: nll(logits, out.labels),
    brier: brier(probs, out.labels),
    ece: e.value,
    conventions: {
      nll: 'mean −log softmax(logits)[label], natural log',
      brier: 'mean over examples of Σ_k (p_k − onehot_k)², not divided by K',
      ece: e.convention,
    },
  };
}
