/**
 * Auxiliary router losses for one routing group (docs/spec/aux-losses.md §2–§4), as plain-array reference
 * implementations. The trainer averages them over groups and sums over MoE layers.
 */
import { checkMatrix, topKIndices, type TopExpertsResult } from './routing.js';
import { DataError, UsageError } from '../util/errors.js';

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
  if (values.length === 0) throw new DataError(`${name} is empty`);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (!(mean > 0)) {
    throw new DataError(`${name} has mean ${mean}; the coefficient of variation needs a positive mean`);
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
    throw new DataError(
      `noisyLogits shape (${noisyTokens}, ${noisyExperts}) must match logitsClean (${numTokens}, ${numExperts})`,
    );
  }
  if (!Number.isInteger(k) || k < 1 || k > numExperts) {
    throw new UsageError(`k must be an integer in [1, ${numExperts}] (numExperts), got ${k}`);
  }
  if (!Number.isFinite(sigma) || sigma <= 0) throw new UsageError(`sigma must be a finite number > 0, got ${sigma}`);
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

/** Load statistics of one routing result: kept assignments and load share per expert, dropped and fully dropped fractions. */
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
    throw new UsageError(`numExperts must be an integer ≥ 1, got ${numExperts}`);
  }
  const keptPerExpert = new Array<number>(numExperts).fill(0);
  let kept = 0;
  let total = 0;
  let fullyDropped = 0;
  result.expert.forEach((choices, s) => {
    let anyKept = false;
    choices.forEach((e, j) => {
      if (e < 0 || e >= numExperts)
        throw new DataError(`routing result uses expert ${e}, but numExperts is ${numExperts}`);
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

/** Mean and population variance. */
function moments(v: ArrayLike<number>): { mean: number; variance: number } {
  const n = v.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += v[i]!;
  mean /= n;
  let variance = 0;
  for (let i = 0; i < n; i++) variance += (v[i]! - mean) ** 2;
  return { mean, variance: variance / n };
}

/** Population CV² = var/mean² (the auxiliary-loss form, docs/spec/aux-losses.md §5). */
export function cv2(v: ArrayLike<number>): number {
  const { mean, variance } = moments(v);
  return variance / (mean * mean + 1e-20);
}

/**
 * Importance loss of one group (rows [start, start+size)): CV² of the per-expert
 * sums of clean gates. With E³ members (rows member-fastest) it is taken per
 * member over the member's own E/M experts, then averaged, as in training.
 */
export function importanceLossOfGroup(
  gates: ArrayLike<number>,
  start: number,
  size: number,
  numExperts: number,
  members = 1,
): number {
  const Em = numExperts / members;
  let total = 0;
  for (let m = 0; m < members; m++) {
    const imp = new Float64Array(Em);
    for (let t = start + m; t < start + size; t += members)
      for (let e = 0; e < Em; e++) imp[e]! += gates[t * numExperts + m * Em + e]!;
    total += cv2(imp);
  }
  return total / members;
}

/**
 * erfc(x) to ~1.2e-7 relative error everywhere, one exp per call: the Chebyshev-fitted
 * form of Press et al., Numerical Recipes §6.2 ("erfcc"). Float32-level accuracy, for the
 * load loss over every (token, expert) of a batch, where the series-based erfc is too slow.
 */
export function erfcFast(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const poly =
    -z * z -
    1.26551223 +
    t *
      (1.00002368 +
        t *
          (0.37409196 +
            t *
              (0.09678418 +
                t *
                  (-0.18628806 +
                    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const r = t * Math.exp(poly);
  return x >= 0 ? r : 2 - r;
}

/**
 * ∂cv2(v)/∂v_e, cv2 = V/(μ² + 1e-20) with the population variance V (as `cv2`):
 * (2/n)(v_e − μ)/(μ² + ε) − V (2μ/n)/(μ² + ε)², written into `out` scaled by `scale`.
 */
function cv2Grad(v: Float64Array, scale: number, out: Float64Array): void {
  const n = v.length;
  const { mean, variance } = moments(v);
  const den = mean * mean + 1e-20;
  for (let i = 0; i < n; i++)
    out[i] = scale * (((2 / n) * (v[i]! - mean)) / den - (variance * 2 * mean) / n / (den * den));
}

export interface RouterAuxInput {
  numTokens: number;
  numExperts: number;
  /** (N, E) clean router logits (E³: with the partition mask added). */
  logits: ArrayLike<number>;
  /** (N, E) softmax(logits), the clean gates. */
  gates: ArrayLike<number>;
  /** (N, E) noisy logits (logits + σ·noise); null when no noise was drawn: no load loss. */
  noisy: ArrayLike<number> | null;
  /** (N) each token's K-th chosen expert; its noisy logit is the token's threshold. */
  kthExpert: ArrayLike<number> | null;
  sigma: number;
  groupSizes: readonly number[];
  /** E³ members M: member m owns the rows ≡ m (mod M) of each group and experts [m·E/M, (m+1)·E/M). */
  members: number;
  weights: { importance: number; load: number };
}

export interface RouterAuxResult {
  /** Mean over (group, member) of CV²(importance). */
  importance: number;
  /** Mean over (group, member) of CV²(load); NaN without noise. */
  load: number;
  /** weights.importance · importance + weights.load · load (the load term only with noise). */
  weighted: number;
  /** (N, E) ∂weighted/∂logits, through the softmax (importance) and through both the logits and each token's threshold (load). */
  dLogits: Float32Array;
}

/**
 * The importance and load losses of a whole batch with their gradient, on host arrays: one
 * pass instead of ~60 tensor ops forward and backward. Same definitions as the per-group
 * references above (importanceLoss, loadLoss), averaged over groups and E³ members; the load
 * loss's P(e stays in the top k) = ½ erfc((thr − logit_e)/(σ√2)) with thr the token's K-th
 * noisy logit, which depends on the logits too (the noise is a constant).
 */
/**
 * Zeroed float64 work arrays reused across calls: a fresh 200 KB typed array per call
 * costs more than the arithmetic (above glibc's mmap threshold, every one is new zeroed pages).
 */
const scratchArrays: Float64Array[] = [];
function scratch(slot: number, n: number): Float64Array {
  let a = scratchArrays[slot];
  if (!a || a.length < n) a = scratchArrays[slot] = new Float64Array(Math.max(n, 2 * (a?.length ?? 0)));
  const view = a.subarray(0, n);
  view.fill(0);
  return view;
}

export function routerAuxLosses(a: RouterAuxInput): RouterAuxResult {
  const N = a.numTokens,
    E = a.numExperts,
    M = a.members;
  const Em = E / M;
  const { logits, gates, noisy, kthExpert } = a;
  const withLoad = noisy !== null && kthExpert !== null;
  if (!Number.isInteger(Em) || Em < 1) throw new Error(`routerAuxLosses: ${E} experts do not split into ${M} members`);
  if (logits.length !== N * E || gates.length !== N * E || (noisy && noisy.length !== N * E)) {
    throw new Error(`routerAuxLosses: logits, gates and noisy logits must each hold ${N}×${E} values`);
  }
  if (withLoad && !(a.sigma > 0)) throw new Error(`routerAuxLosses: sigma must be > 0 with noise, got ${a.sigma}`);
  let parts = 0;
  for (const S of a.groupSizes) {
    if (S % M !== 0) throw new Error(`routerAuxLosses: routing group of ${S} tokens does not split into ${M} members`);
    parts += M;
  }
  const wImp = a.weights.importance,
    wLoad = withLoad ? a.weights.load : 0;
  const dGates = scratch(0, N * E);
  const dDirect = scratch(1, N * E);
  // per (token, own expert): ∂P/∂z = −e^{−z²}/√π, kept from the forward pass for the gradient
  const dPdz = wLoad > 0 ? scratch(2, N * E) : null;
  const imp = new Float64Array(Em),
    load = new Float64Array(Em),
    dv = new Float64Array(Em);
  const c = 1 / (a.sigma * Math.SQRT2);
  let impSum = 0,
    loadSum = 0;
  let start = 0;
  for (const S of a.groupSizes) {
    const rows = S / M;
    const end = start + S;
    for (let m = 0; m < M; m++) {
      const col0 = m * Em;
      imp.fill(0);
      for (let t = start + m; t < end; t += M) {
        const base = t * E + col0;
        for (let e = 0; e < Em; e++) imp[e]! += gates[base + e]!;
      }
      impSum += cv2(imp);
      if (wImp > 0) {
        cv2Grad(imp, wImp / parts, dv);
        for (let t = start + m; t < end; t += M) {
          const base = t * E + col0;
          for (let e = 0; e < Em; e++) dGates[base + e] = dv[e]!;
        }
      }
      if (!withLoad) continue;
      load.fill(0);
      for (let t = start + m; t < end; t += M) {
        const thr = noisy[t * E + kthExpert[t]!]!;
        const base = t * E + col0;
        for (let e = 0; e < Em; e++) {
          const z = (thr - logits[base + e]!) * c;
          load[e]! += 0.5 * erfcFast(z);
          if (dPdz) dPdz[base + e] = -ONE_OVER_SQRT_PI * Math.exp(-z * z);
        }
      }
      for (let e = 0; e < Em; e++) load[e]! /= rows;
      loadSum += cv2(load);
      if (dPdz) {
        cv2Grad(load, wLoad / parts / rows, dv);
        for (let t = start + m; t < end; t += M) {
          const base = t * E + col0;
          let dThr = 0;
          for (let e = 0; e < Em; e++) {
            const dz = dv[e]! * dPdz[base + e]! * c; // ∂/∂thr of this term; ∂/∂logit is its negative
            dDirect[base + e]! -= dz;
            dThr += dz;
          }
          dDirect[t * E + kthExpert[t]!]! += dThr;
        }
      }
    }
    start = end;
  }
  const dLogits = new Float32Array(N * E);
  for (let t = 0; t < N; t++) {
    const base = t * E;
    let s = 0;
    for (let e = 0; e < E; e++) s += gates[base + e]! * dGates[base + e]!;
    for (let e = 0; e < E; e++) dLogits[base + e] = gates[base + e]! * (dGates[base + e]! - s) + dDirect[base + e]!;
  }
  const importance = impSum / parts;
  const loadMean = withLoad ? loadSum / parts : NaN;
  return {
    importance,
    load: loadMean,
    dLogits,
    weighted: wImp * importance + (withLoad ? a.weights.load * loadMean : 0),
  };
}
