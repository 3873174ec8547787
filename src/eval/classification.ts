/** Evaluator: classification metrics of a model's Outputs (single model or ensemble), with their conventions. */
import {
  ORACLE_FRACTIONS, accuracy, aurc, brier, calibrationAuc, confidenceAndCorrect, ece, ensembleDiversity, memberNlls, nll,
  oracleCollaborativeAccuracy, probsFromLogits, type EnsembleDiversity,
} from '../metrics/index.js';
import type { Outputs } from './outputs.js';

export interface ClassificationMetrics {
  n: number;
  members: number;
  accuracy: number;
  /** Ensemble NLL −log p̄(y) when members > 1. */
  nll: number;
  brier: number;
  ece: number;
  /** Selective prediction by confidence (max p̄): area under the risk–coverage curve. */
  aurc: number;
  /** AUROC of confidence as a predictor of correctness. */
  calibration_auc: number;
  /** Accuracy when the least confident fraction is deferred to an oracle, by fraction. */
  oracle_accuracy: Record<string, number>;
  /** Ensembles only. */
  gibbs_nll?: number;
  member_nll?: number[];
  member_accuracy?: number[];
  diversity?: Omit<EnsembleDiversity, 'convention' | 'gibbsNll' | 'ensembleNll'>;
  conventions: Record<string, unknown>;
}

function memberSlice(out: Outputs, j: number) {
  const size = out.n * out.numClasses;
  return { data: out.logits.subarray(j * size, (j + 1) * size), n: out.n, k: out.numClasses };
}

export function classificationMetrics(out: Outputs, bins = 15): ClassificationMetrics {
  const logits = { data: out.logits, n: out.n, k: out.numClasses, m: out.members };
  const probs = probsFromLogits(logits);
  const e = ece(probs, out.labels, { bins });
  const { confidence, correct } = confidenceAndCorrect(probs, out.labels);
  const res: ClassificationMetrics = {
    n: out.n,
    members: out.members,
    accuracy: accuracy(probs, out.labels),
    nll: nll(logits, out.labels),
    brier: brier(probs, out.labels),
    ece: e.value,
    aurc: aurc(confidence, correct),
    calibration_auc: calibrationAuc(confidence, correct),
    oracle_accuracy: Object.fromEntries(ORACLE_FRACTIONS.map((f) => [`${f * 100}%`, oracleCollaborativeAccuracy(confidence, correct, f)])),
    conventions: {
      prediction: out.members > 1 ? 'mean of the members\' probabilities p̄' : 'softmax(logits)',
      nll: out.members > 1 ? 'ensemble NLL −log p̄(y), natural log' : 'mean −log softmax(logits)[label], natural log',
      brier: 'mean over examples of Σ_k (p_k − onehot_k)², not divided by K',
      ece: e.convention,
      selective: 'confidence = max p̄; AURC = mean risk over coverages i/N; oracle accuracy defers the least confident round(f·N) examples',
    },
  };
  if (out.members > 1) {
    const d = ensembleDiversity(logits, out.labels);
    res.gibbs_nll = d.gibbsNll;
    res.member_nll = memberNlls(logits, out.labels);
    res.member_accuracy = Array.from({ length: out.members }, (_, j) => accuracy(probsFromLogits(memberSlice(out, j)), out.labels));
    res.diversity = {
      disagreement: d.disagreement, normalizedDisagreement: d.normalizedDisagreement, pairwiseKl: d.pairwiseKl,
      mutualInformation: d.mutualInformation, ambiguity: d.ambiguity,
    };
    res.conventions.diversity = d.convention;
  }
  return res;
}
