/** Evaluator: classification metrics of a model's Outputs (single model or ensemble), with their conventions. */
import {
  ORACLE_FRACTIONS, accuracy, brier, calibrationAuc, confidenceAndCorrect, ece, ensembleDiversity, memberNlls, nll,
  oracleCollaborativeAccuracy, probsFromLogits, selectiveSummary, type Binning, type EceConvention, type EceResult,
  type EnsembleDiversity, type Labels, type Probs, type ReliabilityBin,
} from '../metrics/index.js';
import type { Outputs } from '../vmoe/outputs.js';

/** ECE variants and reliability-diagram data; every variant uses the main ECE's bins (and binning, except ece_equal_mass). */
export interface CalibrationDetails {
  ece_equal_mass: number;
  classwise_ece: number;
  /** L2 norm over bins */
  rmsce: number;
  /** max norm over non-empty bins */
  mce: number;
  /** Σ_b (n_b/N)(conf_b − acc_b): positive = over-confident */
  signed_ece: number;
  /** bins of the main ECE; empty bins have NaN (null in JSON) accuracy and confidence */
  reliability: ReliabilityBin[];
}

export interface SelectiveDetails {
  /** key: coverage as a percentage, e.g. '90%' */
  accuracy_at_coverage: Record<string, number>;
  /** key: risk as a percentage, e.g. '5%' */
  coverage_at_risk: Record<string, number>;
  /** downsampled to at most RISK_COVERAGE_MAX_POINTS points, so results.json stays small */
  risk_coverage: { coverage: number[]; risk: number[] };
}

export interface UncertaintyDetails {
  /** the main ECE (chosen bins and binning, top-label, L1) */
  ece: EceResult;
  /** on the full risk–coverage curve */
  aurc: number;
  confidence: Float64Array;
  correct: Uint8Array;
  calibration: CalibrationDetails;
  selective_prediction: SelectiveDetails;
  conventions: { calibration: Record<string, unknown>; selective_prediction: Record<string, unknown> };
}

/** '0.5' → '50%'; toPrecision drops the binary noise of f·100 (0.07·100 = 7.000000000000001). */
export function percentKey(f: number): string {
  return `${Number((f * 100).toPrecision(12))}%`;
}

/**
 * Calibration and selective-prediction numbers of a predictive distribution p̄ (N, K), shared by
 * `vmoe eval` and `vmoe metrics` so both export the same keys under the same conventions.
 */
export function uncertaintyDetails(pbar: Probs, labels: Labels, opts: { bins: number; binning?: Binning }): UncertaintyDetails {
  const base = { bins: opts.bins, binning: opts.binning ?? 'equal-width' };
  const main = ece(pbar, labels, base);
  const variants = {
    ece_equal_mass: ece(pbar, labels, { ...base, binning: 'equal-mass' }),
    classwise_ece: ece(pbar, labels, { ...base, classwise: true }),
    rmsce: ece(pbar, labels, { ...base, norm: 'l2' }),
    mce: ece(pbar, labels, { ...base, norm: 'max' }),
    signed_ece: ece(pbar, labels, { ...base, signed: true }),
  };
  const { confidence, correct } = confidenceAndCorrect(pbar, labels);
  const sel = selectiveSummary(confidence, correct);
  const value = (k: keyof typeof variants) => variants[k].value;
  const conv: Record<string, EceConvention | Record<string, unknown>> = {};
  for (const [k, v] of Object.entries(variants)) conv[k] = v.convention;
  conv.reliability = {
    bins: base.bins, binning: base.binning, labels: 'top-label', of: 'the main ECE',
    fields: 'lo, hi: bin edges (equal-width) or smallest and largest confidence in the bin (equal-mass); count; '
      + 'confidence: mean max p̄; accuracy: fraction correct; empty bins: confidence and accuracy null',
  };
  return {
    ece: main,
    aurc: sel.aurc,
    confidence,
    correct,
    calibration: {
      ece_equal_mass: value('ece_equal_mass'), classwise_ece: value('classwise_ece'), rmsce: value('rmsce'),
      mce: value('mce'), signed_ece: value('signed_ece'), reliability: main.reliability,
    },
    selective_prediction: {
      accuracy_at_coverage: Object.fromEntries(sel.accuracyAtCoverage.map((a) => [percentKey(a.coverage), a.accuracy])),
      coverage_at_risk: Object.fromEntries(sel.coverageAtRisk.map((a) => [percentKey(a.risk), a.coverage])),
      risk_coverage: { coverage: Array.from(sel.curve.coverage), risk: Array.from(sel.curve.risk) },
    },
    conventions: {
      calibration: conv,
      selective_prediction: {
        ...sel.convention,
        confidence: 'max p̄',
        accuracy_at_coverage: 'accuracy on the round(c·N) most confident examples (at least one); key c in percent',
        coverage_at_risk: 'largest coverage i/N whose risk ≤ r (0 if none); key r in percent',
      },
    },
  };
}

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
  /** ECE variants (equal-mass, classwise, RMSCE, MCE, signed) and reliability-diagram bins. */
  calibration: CalibrationDetails;
  /** Accuracy at coverage, coverage at risk and the (downsampled) risk–coverage curve. */
  selective_prediction: SelectiveDetails;
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
  const u = uncertaintyDetails(probs, out.labels, { bins });
  const { ece: e, confidence, correct } = u;
  const res: ClassificationMetrics = {
    n: out.n,
    members: out.members,
    accuracy: accuracy(probs, out.labels),
    nll: nll(logits, out.labels),
    brier: brier(probs, out.labels),
    ece: e.value,
    aurc: u.aurc,
    calibration_auc: calibrationAuc(confidence, correct),
    oracle_accuracy: Object.fromEntries(ORACLE_FRACTIONS.map((f) => [`${f * 100}%`, oracleCollaborativeAccuracy(confidence, correct, f)])),
    calibration: u.calibration,
    selective_prediction: u.selective_prediction,
    conventions: {
      prediction: out.members > 1 ? 'mean of the members\' probabilities p̄' : 'softmax(logits)',
      nll: out.members > 1 ? 'ensemble NLL −log p̄(y), natural log' : 'mean −log softmax(logits)[label], natural log',
      brier: 'mean over examples of Σ_k (p_k − onehot_k)², not divided by K',
      ece: e.convention,
      selective: 'confidence = max p̄; AURC = mean risk over coverages i/N; oracle accuracy defers the least confident round(f·N) examples',
      ...u.conventions,
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
