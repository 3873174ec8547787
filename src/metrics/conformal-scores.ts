/**
 * Split conformal prediction, part 1: input checks, the exact conformal rank k = ⌈(n+1)(1−α)⌉,
 * the non-conformity scores LAC, APS and RAPS (plain and randomised) and the prediction-set rule.
 * Calibration, RAPS tuning and the coverage report are in conformal.ts.
 *
 * Probabilities are (N, K) row-major (softmax of the logits, or for an ensemble the mean of the
 * members' probabilities: an (M, N, K) input is averaged with `averageMembers`). Every score is
 * "lower = more conforming"; the set of an example is C(x) = {y : s(x, y) ≤ q̂}.
 */
import { DataError, UsageError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';
import { averageMembers } from './softmax.js';
import { type Labels, type Probs, checkLabels, checkScores } from './types.js';

/** A conformal score: `lac` (1 − p_y), `aps` (adaptive prediction sets) or `raps` (regularised APS). */
export type ConformalMethod = 'lac' | 'aps' | 'raps';
/** Every `ConformalMethod`. */
export const CONFORMAL_METHODS: readonly ConformalMethod[] = ['lac', 'aps', 'raps'];

/** |Σ_k p_k − 1| allowed per probability row (the predictions CSV's default tolerance). */
export const CONFORMAL_PROB_SUM_TOLERANCE = 1e-3;

/** Probabilities and their integer labels: p (N, K) or member probabilities (M, N, K), labels (N). */
export interface LabelledProbs {
  probs: Probs;
  labels: Labels;
}

/** A dense (N, K) matrix of scores s(x_i, y), entry (i, y) at i·k + y. */
export interface ScoreMatrix {
  data: Float64Array;
  n: number;
  k: number;
}

/**
 * Checks a probability input and returns it as one (N, K) distribution (members averaged).
 * Throws `DataError` naming the entry for: bad dimensions, a non-finite entry, an entry outside
 * [0, 1], a row whose sum is more than 1e-3 from 1 (logits passed by mistake), and for labels
 * that are not integers in [0, K).
 */
export function checkConformalInput(probs: Probs, labels: Labels | null, name: string): Probs {
  asDataError(() => checkScores(probs, `${name} probabilities`));
  const { n, k } = probs;
  const m = probs.m ?? 1;
  const raw = probs.data;
  for (let e = 0; e < raw.length; e++) {
    const v = raw[e]!;
    if (!Number.isFinite(v) || v < 0 || v > 1 + 1e-6) {
      const i = Math.floor(e / k) % n;
      const member = m > 1 ? `member ${Math.floor(e / (n * k))}, ` : '';
      throw new DataError(
        `${name} probabilities: ${member}row ${i}, class ${e % k} is ${v}; probabilities must be finite and in [0, 1]`,
        { hint: 'pass softmax probabilities (probsFromLogits / meanProbs), not logits' },
      );
    }
  }
  const p = averageMembers(probs);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < k; c++) s += p.data[i * k + c]!;
    if (Math.abs(s - 1) > CONFORMAL_PROB_SUM_TOLERANCE) {
      throw new DataError(
        `${name} probabilities: row ${i} sums to ${s}, not 1 (tolerance ${CONFORMAL_PROB_SUM_TOLERANCE})`,
        {
          hint: 'pass softmax probabilities (probsFromLogits / meanProbs), not logits',
        },
      );
    }
  }
  if (labels !== null) asDataError(() => checkLabels(labels, n, k, `${name} labels`));
  return p;
}

function asDataError(check: () => void): void {
  try {
    check();
  } catch (e) {
    throw new DataError((e as Error).message);
  }
}

/** Throws `UsageError` unless 0 < α < 1. */
export function checkAlpha(alpha: number): void {
  if (typeof alpha !== 'number' || !(alpha > 0 && alpha < 1)) {
    throw new UsageError(`alpha must be a number in (0, 1), got ${alpha}`, {
      hint: 'e.g. --alpha 0.1 for 90% coverage',
    });
  }
}

/**
 * α as an exact decimal fraction digits / 10^scale: the shortest decimal that reads back as the same
 * double (`String(α)`: 0.1 → 1/10, 0.29 → 29/100, 1e-7 → 1/10^7), i.e. the number the user typed.
 */
function decimalOf(x: number): { digits: bigint; scale: bigint } {
  const m = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(x));
  if (!m) throw new UsageError(`${x} is not a finite decimal number ≥ 0`);
  const frac = m[2] ?? '';
  const exp = Number(m[3] ?? 0) - frac.length; // α = digits · 10^exp
  const digits = BigInt(m[1]! + frac);
  return exp >= 0 ? { digits: digits * 10n ** BigInt(exp), scale: 0n } : { digits, scale: BigInt(-exp) };
}

/** @internal ⌊m·x⌋ for an integer m ≥ 0 and x ≥ 0, exact in BigInt arithmetic on x read as the decimal it prints as. */
export function floorTimesDecimal(m: number, x: number): number {
  const { digits, scale } = decimalOf(x);
  return Number((BigInt(m) * digits) / 10n ** scale);
}

/**
 * The conformal rank k = ⌈(n+1)(1−α)⌉: q̂ is the k-th smallest of n calibration scores, and
 * q̂ = +Infinity when k > n (which happens exactly when n < ⌈1/α⌉ − 1).
 *
 * Exactness: (n+1)(1−α) in floating point can land just above an integer (n = 9, α = 0.7:
 * 10·(1 − 0.7) = 3.0000000000000004, whose ceiling is 4, not 3). So k is computed as
 * (n+1) − ⌊(n+1)·α⌋ — the same integer, since (n+1) is an integer — with ⌊(n+1)·α⌋ evaluated
 * exactly in BigInt on α read as the decimal it prints as (String(α)). n = 9, α = 0.1 → 10 − 1 = 9.
 */
export function conformalRank(n: number, alpha: number): number {
  checkAlpha(alpha);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`the number of calibration scores must be an integer ≥ 0, got ${n}`);
  return n + 1 - floorTimesDecimal(n + 1, alpha);
}

/** The fewest calibration rows for a finite q̂ at level α: ⌈1/α⌉ − 1, exact on the decimal α. */
export function minCalibrationSize(alpha: number): number {
  checkAlpha(alpha);
  const { digits, scale } = decimalOf(alpha);
  const ten = 10n ** scale; // 1/α = ten / digits
  return Number((ten + digits - 1n) / digits) - 1;
}

/** @internal Per-example U[0, 1) draws for randomised APS / RAPS (N), from the project's seeded generator. */
export function uniformDraws(n: number, rng: Rng): Float64Array {
  const u = new Float64Array(n);
  for (let i = 0; i < n; i++) u[i] = rng.uniform();
  return u;
}

/**
 * Class ranks within each row, 1-based: rank 1 is the most probable class. Order: descending p,
 * ties broken by the lower class index first (it ranks above).                          // (N, K)
 */
export function classRanks(probs: Probs): Int32Array {
  const p = checkConformalInput(probs, null, 'probs');
  const { n, k } = p;
  const ranks = new Int32Array(n * k);
  const order = new Int32Array(k);
  for (let i = 0; i < n; i++) {
    sortRow(p.data, i * k, k, order);
    for (let r = 0; r < k; r++) ranks[i * k + order[r]!] = r + 1;
  }
  return ranks;
}

/** order ← the classes of row i by descending p, ties by lower index first. */
function sortRow(p: ArrayLike<number>, o: number, k: number, order: Int32Array): void {
  for (let c = 0; c < k; c++) order[c] = c;
  order.sort((a, b) => p[o + b]! - p[o + a]! || a - b);
}

/** Which score, and its parameters. */
export interface ScoreParams {
  method: ConformalMethod;
  /** RAPS penalty weight λ ≥ 0 (RAPS only) */
  lambda?: number;
  /** RAPS free rank k_reg ≥ 0: ranks ≤ k_reg are not penalised (RAPS only) */
  kReg?: number;
  /**
   * Randomised APS / RAPS: one draw u_i ~ U(0, 1) per example (N), used for every candidate label
   * of that example, in calibration and in the sets alike. Absent or null: non-randomised (u = 1).
   */
  u?: ArrayLike<number> | null;
}

/** Throws `UsageError` unless `method` is 'lac', 'aps' or 'raps'. */
export function checkMethod(method: string): asserts method is ConformalMethod {
  if (!(CONFORMAL_METHODS as readonly string[]).includes(method)) {
    throw new UsageError(`unknown conformal method '${method}'; expected one of ${CONFORMAL_METHODS.join(', ')}`);
  }
}

/** Throws `UsageError` unless λ (when given) is finite and ≥ 0 and k_reg (when given) an integer ≥ 0. */
export function checkRapsParams(lambda: number | undefined, kReg: number | undefined): void {
  if (lambda !== undefined && !(lambda >= 0 && Number.isFinite(lambda)))
    throw new UsageError(`raps lambda must be a number ≥ 0, got ${lambda}`);
  if (kReg !== undefined && !(Number.isInteger(kReg) && kReg >= 0))
    throw new UsageError(`raps kReg must be an integer ≥ 0, got ${kReg}`);
}

function resolveScore(
  params: ScoreParams,
  n: number,
): { method: ConformalMethod; lambda: number; kReg: number; u: ArrayLike<number> | null } {
  const { method } = params;
  checkMethod(method);
  const u = params.u ?? null;
  if (method === 'lac' && u !== null) throw new UsageError(`randomisation (u) applies to aps and raps, not lac`);
  if (u !== null) {
    if (u.length !== n) throw new UsageError(`u has length ${u.length}, expected one draw per example (n = ${n})`);
    for (let i = 0; i < n; i++) {
      if (!(u[i]! >= 0 && u[i]! <= 1)) throw new UsageError(`u[${i}] = ${u[i]} is not in [0, 1]`);
    }
  }
  if (method !== 'raps') {
    if (params.lambda !== undefined || params.kReg !== undefined)
      throw new UsageError(`lambda and kReg apply to raps, not ${method}`);
    return { method, lambda: 0, kReg: 0, u };
  }
  const { lambda, kReg } = params;
  if (lambda === undefined || kReg === undefined)
    throw new UsageError(`raps scores need both lambda and kReg, got ${lambda} and ${kReg}`);
  checkRapsParams(lambda, kReg);
  return { method, lambda, kReg, u };
}

/**
 * Non-conformity score of every label of every example, s(x_i, y).               // (N, K) → (N, K)
 *
 * - LAC (THR):  s(x, y) = 1 − p_y.
 * - APS:        s(x, y) = Σ_{j ranked above y} p_j + u·p_y, with u = 1 (non-randomised) or the
 *               example's draw u_i (randomised). Ranks: descending p, ties → lower index first.
 *               The sum runs in rank order, so s(x, y) of the label ranked r is the running sum
 *               after r − 1 classes plus u·p_y, the same floating-point value whether it is a
 *               calibration score or a candidate in a set.
 * - RAPS:       the APS score + λ·max(0, rank(y) − k_reg), rank 1-based.
 *
 * APS and RAPS scores do not decrease down the ranking (p_(r) ≥ u·p_(r) and the penalty grows), so
 * every set {y : s ≤ q̂} is a top-r prefix of the ranking (r = 0 possible: an empty set).
 */
export function conformalScoreMatrix(probs: Probs, params: ScoreParams): ScoreMatrix {
  const p = checkConformalInput(probs, null, 'probs');
  const { n, k } = p;
  const { method, lambda, kReg, u } = resolveScore(params, n);
  const out = new Float64Array(n * k);
  if (method === 'lac') {
    for (let e = 0; e < n * k; e++) out[e] = 1 - p.data[e]!;
    return { data: out, n, k };
  }
  const order = new Int32Array(k);
  for (let i = 0; i < n; i++) {
    const o = i * k;
    sortRow(p.data, o, k, order);
    const ui = u === null ? 1 : u[i]!;
    let above = 0;
    for (let r = 0; r < k; r++) {
      const c = order[r]!;
      const py = p.data[o + c]!;
      let s = above + ui * py;
      if (lambda > 0 && r + 1 > kReg) s += lambda * (r + 1 - kReg);
      out[o + c] = s;
      above += py;
    }
  }
  return { data: out, n, k };
}

/** Score of each example's true label, s(x_i, y_i) (N), as in `conformalScoreMatrix`. */
export function conformalScores(probs: Probs, labels: Labels, params: ScoreParams): Float64Array {
  checkConformalInput(probs, labels, 'probs');
  return trueLabelScores(conformalScoreMatrix(probs, params), labels);
}

/** Pick s(x_i, y_i) out of a score matrix (N, K) → (N). */
export function trueLabelScores(scores: ScoreMatrix, labels: Labels): Float64Array {
  const out = new Float64Array(scores.n);
  for (let i = 0; i < scores.n; i++) out[i] = scores.data[i * scores.k + labels[i]!]!;
  return out;
}

/**
 * The prediction sets C(x_i) = {y : s(x_i, y) ≤ q̂} as a 0/1 membership mask (N, K). `qhat` is one
 * threshold for every label (marginal), or one per class, q̂_y (K), for the class-conditional
 * (Mondrian) rule C(x) = {y : s(x, y) ≤ q̂_y}. q̂ = +Infinity admits every label.
 */
export function predictionSets(scores: ScoreMatrix, qhat: number | ArrayLike<number>): Uint8Array {
  const { n, k } = scores;
  const perClass = typeof qhat !== 'number';
  if (perClass && qhat.length !== k)
    throw new UsageError(`per-class qhat has length ${qhat.length}, expected K = ${k}`);
  const mask = new Uint8Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < k; y++) {
      const t = perClass ? qhat[y]! : qhat;
      mask[i * k + y] = scores.data[i * k + y]! <= t ? 1 : 0;
    }
  }
  return mask;
}

/** The sets of a membership mask (N, K) as lists of class indices, ascending. */
export function setsToLists(mask: Uint8Array, k: number): number[][] {
  const n = mask.length / k;
  const sets: number[][] = [];
  for (let i = 0; i < n; i++) {
    const s: number[] = [];
    for (let y = 0; y < k; y++) if (mask[i * k + y]) s.push(y);
    sets.push(s);
  }
  return sets;
}
