/**
 * Auxiliary router losses for one routing group (spec §3), as plain-array reference
 * implementations. The trainer averages them over groups and sums over MoE layers.
 */
import { checkMatrix, topKIndices, type TopExpertsResult } from './routing.js';

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const ONE_OVER_SQRT_PI = 1 / Math.sqrt(Math.PI);
/**
 * erf uses the series up to SERIES_LIMIT; erfc uses the continued fraction from CF_FROM
 * (where 120 terms already converge to machine precision) so its relative error stays
 * ~1e-15 instead of the 1e-12 that 1 − erf(x) would leave near x = 2.5.
 */
const SERIES_LIMIT = 2.5;
const CF_FROM = 1.5;
const CF_TERMS = 120;

/**
 * erf(x) for 0 ≤ x ≤ SERIES_LIMIT by the all-positive series (Abramowitz & Stegun 7.1.6)
 *   erf(x) = (2/√π) e^{-x²} Σ_{n≥0} 2ⁿ x^{2n+1} / (1·3·…·(2n+1)),
 * which has no cancellation, so it is accurate to a few ULPs.
 */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/**
 * erfc(x) for x ≥ CF_FROM by Laplace's continued fraction (A&S 7.1.14)
 *   erfc(x) = (e^{-x²}/√π) · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))),
 * evaluated bottom-up with a fixed depth; it keeps full relative accuracy far into the
 * tail, where 1 − erf(x) would be all rounding error.
 */
function erfcContinuedFraction(x: number): number {
  let tail = x;
  for (let n = CF_TERMS; n >= 1; n--) tail = x + n / 2 / tail;
  return (ONE_OVER_SQRT_PI * Math.exp(-x * x)) / tail;
}

/** The error function, accurate to ~1e-15 relative over the whole real line. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  const v = a <= SERIES_LIMIT ? erfSeries(a) : 1 - erfcContinuedFraction(a);
  return x < 0 ? -v : v;
}

/** The complementary error function 1 − erf(x), accurate in the tails too. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  const v = a < CF_FROM ? 1 - erfSeries(a) : erfcContinuedFraction(a);
  return x < 0 ? 2 - v : v;
}

/** Standard normal CDF Φ(z) = 0.5·erfc(−z/√2) (same as 0.5(1+erf(z/√2)), tail-accurate). */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

/** (std/mean)² with the population std; the balance measure of both V-MoE losses. */
export function squaredCoefficientOfVariation(values: number[], name = 'values'): number {
  if (values.length === 0) throw new Error(`${name} is empty`);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (!(mean > 0)) {
    throw new Error(`${name} has mean ${mean}; the coefficient of variation needs a positive mean`);
  }
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
  return variance / (mean * mean);
}

function columnSums(m: number[][], numCols: number): number[] {
  const sums = new Array<number>(numCols).fill(0);
  for (const row of m) for (let e = 0; e < numCols; e++) sums[e]! += row[e]!;
  return sums;
}

/** L_imp = CV²(Imp), Imp_e = Σ_x gates_clean_e(x). gatesClean: (S, E) noise-free softmax. */
export function importanceLoss(gatesClean: number[][]): number {
  const [, numExperts] = checkMatrix(gatesClean, 'gatesClean');
  return squaredCoefficientOfVariation(columnSums(gatesClean, numExperts), 'importance');
}

/**
 * L_load = CV²(Load), Load_e = mean_x P(expert e would still be in the top-k under a fresh
 * draw of its own noise) = mean_x Φ((logit_e(x) − thr(x)) / σ), with thr(x) the k-th largest
 * noisy logit of x. logitsClean, noisyLogits: (S, E); sigma: the noise std used for noisyLogits.
 */
export function loadLoss(logitsClean: number[][], noisyLogits: number[][], k: number, sigma: number): number {
  const [numTokens, numExperts] = checkMatrix(logitsClean, 'logitsClean');
  const [noisyTokens, noisyExperts] = checkMatrix(noisyLogits, 'noisyLogits');
  if (noisyTokens !== numTokens || noisyExperts !== numExperts) {
    throw new Error(
      `noisyLogits shape (${noisyTokens}, ${noisyExperts}) must match logitsClean (${numTokens}, ${numExperts})`,
    );
  }
  if (!Number.isInteger(k) || k < 1 || k > numExperts) {
    throw new Error(`k must be an integer in [1, ${numExperts}] (numExperts), got ${k}`);
  }
  if (!Number.isFinite(sigma) || sigma <= 0) throw new Error(`sigma must be a finite number > 0, got ${sigma}`);
  const load = new Array<number>(numExperts).fill(0);
  for (let s = 0; s < numTokens; s++) {
    const noisy = noisyLogits[s]!;
    const threshold = noisy[topKIndices(noisy, k)[k - 1]!]!;
    const clean = logitsClean[s]!;
    for (let e = 0; e < numExperts; e++) load[e]! += normalCdf((clean[e]! - threshold) / sigma) / numTokens;
  }
  return squaredCoefficientOfVariation(load, 'load');
}

/** GShard loss E² · mean_e(f_e · P_e); f_e = share of tokens whose argmax (lowest index on ties) is e. */
export function gshardLoss(gates: number[][]): number {
  const [numTokens, numExperts] = checkMatrix(gates, 'gates');
  const meanGate = columnSums(gates, numExperts).map((v) => v / numTokens); // P_e
  const argmaxShare = new Array<number>(numExperts).fill(0); // f_e
  for (const row of gates) argmaxShare[topKIndices(row, 1)[0]!]! += 1 / numTokens;
  let sum = 0;
  for (let e = 0; e < numExperts; e++) sum += argmaxShare[e]! * meanGate[e]!;
  return numExperts * numExperts * (sum / numExperts);
}

/** Router z-loss mean_x (logsumexp_e logits_e(x))². logits: (S, E). */
export function zLoss(logits: number[][]): number {
  checkMatrix(logits, 'logits');
  let sum = 0;
  for (const row of logits) {
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
    sum += lse * lse;
  }
  return sum / logits.length;
}

export interface RouterStats {
  /** (E,) kept assignments per expert. */
  keptPerExpert: number[];
  /** (E,) each expert's share of all kept assignments (all 0 when nothing was kept). */
  load: number[];
  /** Dropped (token, choice) assignments / (S·K). */
  dropFraction: number;
  /** Tokens whose every choice was dropped / S (they pass through on the residual). */
  fullyDroppedTokenFraction: number;
}

/** Per-layer router metrics from one group's routing result. */
export function routerStats(result: TopExpertsResult, numExperts: number): RouterStats {
  if (!Number.isInteger(numExperts) || numExperts < 1) {
    throw new Error(`numExperts must be an integer ≥ 1, got ${numExperts}`);
  }
  const keptPerExpert = new Array<number>(numExperts).fill(0);
  let kept = 0;
  let total = 0;
  let fullyDropped = 0;
  result.expert.forEach((choices, s) => {
    let anyKept = false;
    choices.forEach((e, j) => {
      if (e < 0 || e >= numExperts) throw new Error(`routing result uses expert ${e}, but numExperts is ${numExperts}`);
      total++;
      if (result.kept[s]![j]) {
        keptPerExpert[e]!++;
        kept++;
        anyKept = true;
      }
    });
    if (!anyKept) fullyDropped++;
  });
  return {
    keptPerExpert,
    load: keptPerExpert.map((n) => (kept === 0 ? 0 : n / kept)),
    dropFraction: total === 0 ? 0 : (total - kept) / total,
    fullyDroppedTokenFraction: result.expert.length === 0 ? 0 : fullyDropped / result.expert.length,
  };
}

/** Population CV² = var/mean² (the auxiliary-loss form, spec §3). */
export function cv2(v: ArrayLike<number>): number {
  const n = v.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += v[i]!;
  mean /= n;
  let variance = 0;
  for (let i = 0; i < n; i++) variance += (v[i]! - mean) ** 2;
  variance /= n;
  return variance / (mean * mean + 1e-20);
}

/**
 * Importance loss of one group (rows [start, start+size)): CV² of the per-expert
 * sums of clean gates. With E³ members (rows member-fastest) it is taken per
 * member over the member's own E/M experts, then averaged, as in training.
 */
export function importanceLossOfGroup(gates: ArrayLike<number>, start: number, size: number, numExperts: number, members = 1): number {
  const Em = numExperts / members;
  let total = 0;
  for (let m = 0; m < members; m++) {
    const imp = new Float64Array(Em);
    for (let t = start + m; t < start + size; t += members) for (let e = 0; e < Em; e++) imp[e]! += gates[t * numExperts + m * Em + e]!;
    total += cv2(imp);
  }
  return total / members;
}
