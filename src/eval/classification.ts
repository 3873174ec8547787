/**
 * The calibration and selective-prediction details of a predictive distribution p̄ (N, K): ECE variants and
 * reliability bins, accuracy at coverage, coverage at risk and the risk–coverage curve, with their conventions.
 * Pure; the calibration and selective evaluators (evaluators.ts) report them.
 */
import {
  ece,
  selectiveSummary,
  type Binning,
  type EceConvention,
  type EceResult,
  type Labels,
  type Probs,
  type ReliabilityBin,
} from '../metrics/index.js';

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

/**
 * Selective-prediction details of a report: accuracy at coverages and coverage at risks (keyed by percentage), and
 * the downsampled risk–coverage curve.
 */
export interface SelectiveDetails {
  /** key: coverage as a percentage, e.g. '90%' */
  accuracy_at_coverage: Record<string, number>;
  /** key: risk as a percentage, e.g. '5%' */
  coverage_at_risk: Record<string, number>;
  /** downsampled to at most RISK_COVERAGE_MAX_POINTS points, so results.json stays small */
  risk_coverage: { coverage: number[]; risk: number[] };
}

/** '0.5' → '50%'; toPrecision drops the binary noise of f·100 (0.07·100 = 7.000000000000001). */
export function percentKey(f: number): string {
  return `${Number((f * 100).toPrecision(12))}%`;
}

/**
 * ECE with the chosen bins and binning (top-label, L1) and its variants on the same bins: equal-mass,
 * classwise, RMSCE (L2), MCE (max), signed; plus the reliability-diagram bins of the main ECE.
 * p̄: (N, K) probabilities; labels: (N,).
 */
export function calibrationDetails(
  pbar: Probs,
  labels: Labels,
  opts: { bins: number; binning?: Binning },
): {
  ece: EceResult;
  details: CalibrationDetails;
  conventions: Record<string, EceConvention | Record<string, unknown>>;
} {
  const base = { bins: opts.bins, binning: opts.binning ?? 'equal-width' };
  const main = ece(pbar, labels, base);
  const variants = {
    ece_equal_mass: ece(pbar, labels, { ...base, binning: 'equal-mass' }),
    classwise_ece: ece(pbar, labels, { ...base, classwise: true }),
    rmsce: ece(pbar, labels, { ...base, norm: 'l2' }),
    mce: ece(pbar, labels, { ...base, norm: 'max' }),
    signed_ece: ece(pbar, labels, { ...base, signed: true }),
  };
  const conventions: Record<string, EceConvention | Record<string, unknown>> = {};
  for (const [k, v] of Object.entries(variants)) conventions[k] = v.convention;
  conventions.reliability = {
    bins: base.bins,
    binning: base.binning,
    labels: 'top-label',
    of: 'the main ECE',
    fields:
      'lo, hi: bin edges (equal-width) or smallest and largest confidence in the bin (equal-mass); count; ' +
      'confidence: mean max p̄; accuracy: fraction correct; empty bins: confidence and accuracy null',
  };
  return {
    ece: main,
    details: {
      ece_equal_mass: variants.ece_equal_mass.value,
      classwise_ece: variants.classwise_ece.value,
      rmsce: variants.rmsce.value,
      mce: variants.mce.value,
      signed_ece: variants.signed_ece.value,
      reliability: main.reliability,
    },
    conventions,
  };
}

/** AURC and the selective-prediction details from per-example confidence (N,) and correctness (N,). */
export function selectiveDetails(
  confidence: Float64Array,
  correct: Uint8Array,
): {
  aurc: number;
  details: SelectiveDetails;
  conventions: Record<string, unknown>;
} {
  const sel = selectiveSummary(confidence, correct);
  return {
    aurc: sel.aurc,
    details: {
      accuracy_at_coverage: Object.fromEntries(sel.accuracyAtCoverage.map((a) => [percentKey(a.coverage), a.accuracy])),
      coverage_at_risk: Object.fromEntries(sel.coverageAtRisk.map((a) => [percentKey(a.risk), a.coverage])),
      risk_coverage: { coverage: Array.from(sel.curve.coverage), risk: Array.from(sel.curve.risk) },
    },
    conventions: {
      ...sel.convention,
      confidence: 'max p̄',
      accuracy_at_coverage: 'accuracy on the round(c·N) most confident examples (at least one); key c in percent',
      coverage_at_risk: 'largest coverage i/N whose risk ≤ r (0 if none); key r in percent',
    },
  };
}
