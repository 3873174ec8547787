/**
 * Confidence as a predictor of correctness: risk–coverage curve, AURC, accuracy at coverage,
 * coverage at risk, calibration AUC and oracle-collaborative accuracy.
 *
 * Ties in confidence are resolved by expectation over a random order within the tie, so no result
 * depends on the input order.
 */
import { aurocFromLabels } from './ranking.js';
import { checkSameLength } from './types.js';
import { DataError, UsageError } from '../util/errors.js';

/**
 * How selective-prediction numbers are computed (confidence order and ties, risk, AURC, coverage counts); reported
 * with them.
 */
export const SELECTIVE_CONVENTION = {
  order: 'descending confidence; ties averaged (expected value over random tie-breaking)',
  risk: 'error rate among the i most confident / i, at coverage i/N',
  aurc: 'mean_i risk(i/N), i = 1..N',
  coverageCount: 'round(c·N), at least 1',
} as const;

/**
 * Expected number of errors among the i most confident examples, for i = 0..N.        // (N+1,)
 */
function cumulativeErrors(confidence: ArrayLike<number>, correct: ArrayLike<number | boolean>): Float64Array {
  checkSameLength(confidence, correct, 'confidence', 'correct');
  const n = confidence.length;
  for (let i = 0; i < n; i++) if (Number.isNaN(confidence[i]!)) throw new DataError(`confidence[${i}] is NaN`);
  const order = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => confidence[b]! - confidence[a]! || a - b);
  const cum = new Float64Array(n + 1);
  for (let r = 0; r < n; ) {
    const c = confidence[order[r]!]!;
    let end = r;
    let errors = 0;
    while (end < n && confidence[order[end]!]! === c) {
      if (!correct[order[end]!]) errors++;
      end++;
    }
    const rate = errors / (end - r);
    for (let q = r; q < end; q++) cum[q + 1] = cum[r]! + (q + 1 - r) * rate;
    r = end;
  }
  return cum;
}

/** A risk–coverage curve: coverage i/N and the error rate among the i most confident examples, i = 1..N. */
export interface RiskCoverageCurve {
  /** i/N for i = 1..N */
  coverage: Float64Array;
  /** errors among the i most confident / i */
  risk: Float64Array;
  convention: typeof SELECTIVE_CONVENTION;
}

/**
 * The risk–coverage curve of per-example `confidence` (N) and `correct` (N, 0/1 or boolean); ties in confidence
 * are averaged.
 */
export function riskCoverageCurve(
  confidence: ArrayLike<number>,
  correct: ArrayLike<number | boolean>,
): RiskCoverageCurve {
  return curveOf(cumulativeErrors(confidence, correct));
}

function curveOf(cum: Float64Array): RiskCoverageCurve {
  const n = cum.length - 1;
  const coverage = new Float64Array(n);
  const risk = new Float64Array(n);
  for (let i = 1; i <= n; i++) {
    coverage[i - 1] = i / n;
    risk[i - 1] = cum[i]! / i;
  }
  return { coverage, risk, convention: SELECTIVE_CONVENTION };
}

/** Area under the risk–coverage curve: mean over i of risk(i/N). Lower is better. */
export function aurc(confidence: ArrayLike<number>, correct: ArrayLike<number | boolean>): number {
  return aurcOf(riskCoverageCurve(confidence, correct).risk);
}

function aurcOf(risk: Float64Array): number {
  let s = 0;
  for (let i = 0; i < risk.length; i++) s += risk[i]!;
  return s / risk.length;
}

function countAt(fraction: number, n: number, name: string): number {
  if (!(fraction >= 0 && fraction <= 1)) throw new UsageError(`${name} must be in [0, 1], got ${fraction}`);
  return Math.round(fraction * n);
}

/** Accuracy on the round(c·N) most confident examples (at least one). */
export function accuracyAtCoverage(
  confidence: ArrayLike<number>,
  correct: ArrayLike<number | boolean>,
  coverage: number,
): number {
  return accuracyAt(cumulativeErrors(confidence, correct), coverage);
}

function accuracyAt(cum: Float64Array, coverage: number): number {
  const i = Math.max(1, countAt(coverage, cum.length - 1, 'coverage'));
  return 1 - cum[i]! / i;
}

/** Largest coverage i/N whose risk is ≤ `risk` (0 when even the most confident example exceeds it). */
export function coverageAtRisk(
  confidence: ArrayLike<number>,
  correct: ArrayLike<number | boolean>,
  risk: number,
): number {
  return coverageAt(cumulativeErrors(confidence, correct), risk);
}

function coverageAt(cum: Float64Array, risk: number): number {
  if (!(risk >= 0 && risk <= 1)) throw new UsageError(`risk must be in [0, 1], got ${risk}`);
  const n = cum.length - 1;
  for (let i = n; i >= 1; i--) if (cum[i]! / i <= risk + 1e-12) return i / n;
  return 0;
}

/** Defaults of `selectiveSummary`: curve points kept, coverages and risks reported. */
export const RISK_COVERAGE_MAX_POINTS = 200;
/** Coverages at which `selectiveSummary` reports accuracy by default. */
export const SELECTIVE_COVERAGES = [0.5, 0.8, 0.9, 0.95, 0.99] as const;
/** Risks at which `selectiveSummary` reports the largest coverage by default. */
export const SELECTIVE_RISKS = [0.01, 0.02, 0.05, 0.1] as const;

/**
 * At most `maxPoints` points of a risk–coverage curve, at ranks i_j = round(j·N/P), j = 1..P,
 * P = min(N, maxPoints): evenly spaced in coverage, always ending at coverage 1, and the full
 * curve when N ≤ maxPoints. The points are exact points of the curve (no interpolation).
 */
export function downsampleRiskCoverage(
  curve: RiskCoverageCurve,
  maxPoints = RISK_COVERAGE_MAX_POINTS,
): RiskCoverageCurve {
  if (!Number.isInteger(maxPoints) || maxPoints < 1)
    throw new UsageError(`maxPoints must be a positive integer, got ${maxPoints}`);
  const n = curve.coverage.length;
  const p = Math.min(n, maxPoints);
  const coverage = new Float64Array(p);
  const risk = new Float64Array(p);
  for (let j = 1; j <= p; j++) {
    // N/P ≥ 1, so the ranks are distinct.
    const i = Math.round((j * n) / p);
    coverage[j - 1] = curve.coverage[i - 1]!;
    risk[j - 1] = curve.risk[i - 1]!;
  }
  return { coverage, risk, convention: curve.convention };
}

/**
 * What `selectiveSummary` returns: AURC, accuracy at each coverage, coverage at each risk, and the downsampled
 * risk–coverage curve.
 */
export interface SelectiveSummary {
  aurc: number;
  /** accuracy on the round(c·N) most confident examples, per requested coverage c */
  accuracyAtCoverage: { coverage: number; accuracy: number }[];
  /** largest coverage whose risk ≤ r, per requested risk r */
  coverageAtRisk: { risk: number; coverage: number }[];
  /** the risk–coverage curve, downsampled to at most `maxPoints` points (full curve for AURC) */
  curve: RiskCoverageCurve;
  convention: typeof SELECTIVE_CONVENTION & { curvePoints: string };
}

/**
 * Every selective-prediction number from one sort: AURC (on the full curve), accuracy at each
 * coverage, coverage at each risk, and the downsampled risk–coverage curve.
 */
export function selectiveSummary(
  confidence: ArrayLike<number>,
  correct: ArrayLike<number | boolean>,
  opts: { coverages?: readonly number[]; risks?: readonly number[]; maxPoints?: number } = {},
): SelectiveSummary {
  const cum = cumulativeErrors(confidence, correct);
  const full = curveOf(cum);
  const maxPoints = opts.maxPoints ?? RISK_COVERAGE_MAX_POINTS;
  return {
    aurc: aurcOf(full.risk),
    accuracyAtCoverage: (opts.coverages ?? SELECTIVE_COVERAGES).map((c) => ({
      coverage: c,
      accuracy: accuracyAt(cum, c),
    })),
    coverageAtRisk: (opts.risks ?? SELECTIVE_RISKS).map((r) => ({ risk: r, coverage: coverageAt(cum, r) })),
    curve: downsampleRiskCoverage(full, maxPoints),
    convention: {
      ...SELECTIVE_CONVENTION,
      curvePoints: `at most ${maxPoints}: ranks i = round(j·N/P), j = 1..P, P = min(N, ${maxPoints}); exact curve points, last at coverage 1`,
    },
  };
}

/**
 * Calibration AUC: AUROC of confidence as a score for "prediction is correct" (correct = positive),
 * exact with ties counted ½.
 */
export function calibrationAuc(confidence: ArrayLike<number>, correct: ArrayLike<number | boolean>): number {
  return aurocFromLabels(confidence, correct);
}

/** Fractions handed to the oracle by default in `oracleCollaborativeAccuracy`. */
export const ORACLE_FRACTIONS = [0.005, 0.01, 0.02, 0.05] as const;

/**
 * Accuracy when the round(f·N) least confident examples are handed to an oracle that is always
 * right: (correct among the rest + f·N handed over) / N.
 */
export function oracleCollaborativeAccuracy(
  confidence: ArrayLike<number>,
  correct: ArrayLike<number | boolean>,
  fraction: number,
): number {
  const n = confidence.length;
  const handed = countAt(fraction, n, 'oracle fraction');
  const cum = cumulativeErrors(confidence, correct);
  // Errors left are those among the N − handed most confident.
  return 1 - cum[n - handed]! / n;
}
