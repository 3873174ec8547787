/**
 * Split conformal prediction, part 2: the conformal quantile q̂ (marginal and class-conditional /
 * Mondrian), RAPS's tuning of λ and k_reg on a held-out part of the calibration data, calibration
 * and prediction, and the coverage / set-size report (one α, or a list of α: the coverage–size
 * curve). The scores and the set rule are in conformal-scores.ts.
 *
 * Guarantee (exchangeable calibration and test data): P(y ∈ C(x)) ≥ 1 − α, and ≤ 1 − α + 1/(n+1)
 * when the scores have no ties; class-conditional: the same per class, with n the class's count.
 */
import { DataError, UsageError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import {
  type ConformalMethod,
  type LabelledProbs,
  type ScoreMatrix,
  checkAlpha,
  checkConformalInput,
  checkMethod,
  checkRapsParams,
  classRanks,
  conformalRank,
  conformalScoreMatrix,
  floorTimesDecimal,
  minCalibrationSize,
  predictionSets,
  setsToLists,
  trueLabelScores,
  uniformDraws,
} from './conformal-scores.js';
import type { Labels, Probs } from './types.js';

/** How the conformal quantile q̂ is taken from the calibration scores, in words; reported with conformal results. */
export const QUANTILE_RULE =
  'qhat = the ceil((n+1)(1-alpha))-th smallest of the n calibration scores (+Infinity when that rank exceeds n); ' +
  'ceil((n+1)(1-alpha)) computed exactly as (n+1) - floor((n+1)*alpha) on alpha as written in decimal';

/**
 * q̂ = the k-th smallest calibration score, k = ⌈(n+1)(1−α)⌉ (exact, see `conformalRank`);
 * +Infinity when k > n, i.e. n < ⌈1/α⌉ − 1 (then every label enters every set).   // (n) → scalar
 */
export function conformalQuantile(scores: ArrayLike<number>, alpha: number): number {
  const n = scores.length;
  const k = conformalRank(n, alpha);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(scores[i]!)) throw new DataError(`calibration score ${i} is NaN`);
  }
  if (k > n) return Infinity;
  return Float64Array.from(scores).sort()[k - 1]!;
}

/**
 * Class-conditional (Mondrian) quantiles: q̂_y = conformalQuantile of the scores of the calibration
 * examples with label y, for y = 0..K−1 (+Infinity for a class with fewer than ⌈1/α⌉ − 1).
 * scores (n), labels (n) → (K)
 */
export function classConditionalQuantiles(
  scores: ArrayLike<number>,
  labels: Labels,
  k: number,
  alpha: number,
): Float64Array {
  if (scores.length !== labels.length) {
    throw new DataError(`calibration scores have length ${scores.length} but labels have length ${labels.length}`);
  }
  const byClass: number[][] = Array.from({ length: k }, () => []);
  for (let i = 0; i < scores.length; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= k)
      throw new DataError(`calibration label ${i} = ${y} is not a class index in [0, ${k})`);
    byClass[y]!.push(scores[i]!);
  }
  return Float64Array.from(byClass, (s) => conformalQuantile(s, alpha));
}

/** RAPS tuning defaults, those of Angelopoulos et al.'s reference code (`pct_paramtune`, `lamda` grid). */
export const RAPS_TUNE_FRACTION = 0.3;
/** The λ grid RAPS tuning searches when λ is not given (the reference code's grid). */
export const RAPS_LAMBDA_GRID: readonly number[] = [0.001, 0.01, 0.1, 0.2, 0.5];

/** One λ of the RAPS tuning grid: the coverage and mean set size it gave on the tuning part. */
export interface RapsGridPoint {
  lambda: number;
  /** coverage on the tuning part, with q̂ calibrated on the tuning part */
  coverage: number;
  mean_set_size: number;
}

/** The RAPS parameters chosen (λ, k_reg) and the grid searched. */
export interface RapsTuning {
  lambda: number;
  kReg: number;
  /** one row per grid λ (empty when λ was given) */
  grid: RapsGridPoint[];
}

/**
 * RAPS's parameters picked on tuning data (Angelopoulos et al. 2021, "Uncertainty Sets for Image
 * Classifiers using Conformal Prediction", §2.3 and their reference code):
 *
 * - k_reg (unless given) = the (1−α) quantile of the 1-based ranks of the true labels, numpy's
 *   'higher' interpolation: sorted ranks at 0-based index ⌈(m−1)(1−α)⌉ = (m−1) − ⌊(m−1)α⌋, m rows.
 * - λ (unless given) = the grid value with the smallest mean set size among those whose coverage is
 *   ≥ 1 − α, where for each λ the (marginal) q̂ is calibrated on the tuning rows and the sets are
 *   measured on the same rows (the reference's size criterion). Ties: the earlier grid value.
 *
 * probs (m, K) single distribution, labels (m), u (m) or null as in `conformalScoreMatrix`.
 */
export function tuneRaps(
  tune: LabelledProbs,
  alpha: number,
  opts: { u?: ArrayLike<number> | null; lambda?: number; kReg?: number; lambdaGrid?: readonly number[] } = {},
): RapsTuning {
  checkAlpha(alpha);
  checkRapsParams(opts.lambda, opts.kReg);
  const p = checkConformalInput(tune.probs, tune.labels, 'tuning');
  const { n, k } = p;
  let kReg = opts.kReg;
  if (kReg === undefined) {
    const ranks = classRanks(p);
    const trueRanks = Float64Array.from({ length: n }, (_, i) => ranks[i * k + tune.labels[i]!]!).sort();
    kReg = trueRanks[n - 1 - floorTimesDecimal(n - 1, alpha)]!;
  }
  if (opts.lambda !== undefined) return { lambda: opts.lambda, kReg, grid: [] };
  const lambdaGrid = opts.lambdaGrid ?? RAPS_LAMBDA_GRID;
  if (lambdaGrid.length === 0) throw new UsageError('the RAPS lambda grid is empty');
  const grid: RapsGridPoint[] = [];
  let best: RapsGridPoint | null = null;
  for (const lambda of lambdaGrid) {
    const scores = conformalScoreMatrix(p, { method: 'raps', lambda, kReg, u: opts.u ?? null });
    const mask = predictionSets(scores, conformalQuantile(trueLabelScores(scores, tune.labels), alpha));
    const { covered, sizes } = setStats(mask, k, tune.labels);
    const point = { lambda, coverage: covered / n, mean_set_size: mean(sizes) };
    grid.push(point);
    if (point.coverage >= 1 - alpha && (best === null || point.mean_set_size < best.mean_set_size)) best = point;
  }
  // In-sample coverage with q̂ from the same rows is ≥ k/m ≥ 1 − α, so `best` is set; guard anyway.
  return { lambda: (best ?? grid[0]!).lambda, kReg, grid };
}

/** What to calibrate. */
export interface ConformalOptions {
  method: ConformalMethod;
  /** Mondrian: one q̂ per class from that class's calibration rows (default false: marginal) */
  classConditional?: boolean;
  /** randomised APS / RAPS, one u ~ U(0, 1) per example (default false; not for lac) */
  randomized?: boolean;
  /** seed of the randomisation and of RAPS's tuning split (default 0); see `conformalStreams` */
  seed?: number;
  /** RAPS λ; tuned on the held-out part when absent */
  lambda?: number;
  /** RAPS k_reg; tuned on the held-out part when absent */
  kReg?: number;
  /** RAPS: fraction of the calibration rows held out to tune λ / k_reg (default 0.3), in (0, 1) */
  tuneFraction?: number;
  /** RAPS: the λ grid (default 0.001, 0.01, 0.1, 0.2, 0.5) */
  lambdaGrid?: readonly number[];
}

/** A calibrated conformal predictor. */
export interface ConformalCalibration {
  method: ConformalMethod;
  alpha: number;
  classConditional: boolean;
  randomized: boolean;
  seed: number;
  numClasses: number;
  /** RAPS's parameters (null for lac / aps) */
  lambda: number | null;
  kReg: number | null;
  /** RAPS: how they were picked (null when both were given, or not raps) */
  rapsTuning: (RapsTuning & { nTune: number; tuneFraction: number; lambdaGrid: readonly number[] }) | null;
  /** calibration rows behind q̂ (all rows, less RAPS's tuning part) */
  nCalib: number;
  /** the conformal rank k = ⌈(n+1)(1−α)⌉: one, or per class (Mondrian) */
  rank: number | Int32Array;
  /** q̂, or per class q̂_y (Mondrian); +Infinity where the rank exceeds the count */
  qhat: number | Float64Array;
  /** calibration rows per class (Mondrian), else null */
  nCalibPerClass: Int32Array | null;
  warnings: string[];
}

/**
 * The three independent random streams of a seed, forked in this order from `new Rng(seed)`:
 * `split` (RAPS's tuning/calibration permutation), `calib` (one u per calibration row, drawn for all
 * rows before the split), `test` (one u per test row, when `conformalPredict` is not given u).
 */
export function conformalStreams(seed: number): { split: Rng; calib: Rng; test: Rng } {
  const rng = new Rng(seed);
  const split = rng.fork();
  const calib = rng.fork();
  return { split, calib, test: rng.fork() };
}

function rowsOf(p: Probs, labels: Labels, u: Float64Array | null, idx: ArrayLike<number>) {
  const { k } = p;
  const data = new Float64Array(idx.length * k);
  const y = new Int32Array(idx.length);
  for (let j = 0; j < idx.length; j++) {
    const i = idx[j]!;
    for (let c = 0; c < k; c++) data[j * k + c] = p.data[i * k + c]!;
    y[j] = labels[i]!;
  }
  return { probs: { data, n: idx.length, k }, labels: y, u: u === null ? null : Float64Array.from(idx, (i) => u[i]!) };
}

function checkOptions(
  opts: ConformalOptions,
): Required<Pick<ConformalOptions, 'classConditional' | 'randomized' | 'seed'>> {
  checkMethod(opts.method);
  const randomized = opts.randomized ?? false;
  if (randomized && opts.method === 'lac') throw new UsageError('randomized applies to aps and raps, not lac');
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new UsageError(`seed must be an integer, got ${seed}`);
  if (
    opts.method !== 'raps' &&
    (opts.lambda !== undefined ||
      opts.kReg !== undefined ||
      opts.lambdaGrid !== undefined ||
      opts.tuneFraction !== undefined)
  ) {
    throw new UsageError(`lambda, kReg, lambdaGrid and tuneFraction apply to raps, not ${opts.method}`);
  }
  checkRapsParams(opts.lambda, opts.kReg);
  if (opts.tuneFraction !== undefined && !(opts.tuneFraction > 0 && opts.tuneFraction < 1)) {
    throw new UsageError(`tuneFraction must be in (0, 1), got ${opts.tuneFraction}`);
  }
  for (const l of opts.lambdaGrid ?? []) checkRapsParams(l, undefined);
  return { classConditional: opts.classConditional ?? false, randomized, seed };
}

/**
 * Calibrates a split conformal predictor on (probs (N, K) or (M, N, K), labels (N)) at level α.
 *
 * RAPS with λ or k_reg missing: a seeded random ⌊N·tuneFraction⌋ of the rows (default 30%) tunes
 * them (`tuneRaps`), and q̂ comes from the other rows only, so the guarantee holds. With both given,
 * every row calibrates. Randomised scores draw one u per calibration row from the `calib` stream.
 */
export function calibrateConformal(calib: LabelledProbs, alpha: number, opts: ConformalOptions): ConformalCalibration {
  checkAlpha(alpha);
  const { classConditional, randomized, seed } = checkOptions(opts);
  const { method } = opts;
  const p = checkConformalInput(calib.probs, calib.labels, 'calibration');
  const { n, k } = p;
  const streams = conformalStreams(seed);
  const uAll = randomized ? uniformDraws(n, streams.calib) : null;
  const warnings: string[] = [];

  let rows = { probs: p as Probs, labels: calib.labels, u: uAll };
  let lambda: number | null = null;
  let kReg: number | null = null;
  let rapsTuning: ConformalCalibration['rapsTuning'] = null;
  if (method === 'raps') {
    if (opts.lambda !== undefined && opts.kReg !== undefined) {
      lambda = opts.lambda;
      kReg = opts.kReg;
    } else {
      const tuneFraction = opts.tuneFraction ?? RAPS_TUNE_FRACTION;
      const lambdaGrid = opts.lambdaGrid ?? RAPS_LAMBDA_GRID;
      const nTune = floorTimesDecimal(n, tuneFraction);
      if (nTune < 1 || nTune >= n) {
        throw new DataError(
          `raps: ${n} calibration rows leave ${nTune} to tune lambda / kReg (tuneFraction ${tuneFraction}) and ${n - nTune} to calibrate; need at least 1 of each`,
          { hint: 'give more calibration rows, or both lambda and kReg' },
        );
      }
      const perm = streams.split.permutation(n);
      const tune = rowsOf(p, calib.labels, uAll, perm.subarray(0, nTune));
      rows = rowsOf(p, calib.labels, uAll, perm.subarray(nTune));
      const t = tuneRaps(tune, alpha, { u: tune.u, lambda: opts.lambda, kReg: opts.kReg, lambdaGrid });
      lambda = t.lambda;
      kReg = t.kReg;
      rapsTuning = { ...t, nTune, tuneFraction, lambdaGrid };
    }
  }

  const scoreParams = { method, u: rows.u, ...(method === 'raps' ? { lambda: lambda!, kReg: kReg! } : {}) };
  const scores = trueLabelScores(conformalScoreMatrix(rows.probs, scoreParams), rows.labels);
  const nCalib = scores.length;
  const need = minCalibrationSize(alpha);
  let rank: number | Int32Array;
  let qhat: number | Float64Array;
  let nCalibPerClass: Int32Array | null = null;
  if (classConditional) {
    nCalibPerClass = new Int32Array(k);
    for (let i = 0; i < nCalib; i++) nCalibPerClass[rows.labels[i]!]!++;
    rank = Int32Array.from(nCalibPerClass, (c) => conformalRank(c, alpha));
    qhat = classConditionalQuantiles(scores, rows.labels, k, alpha);
    const short = Array.from(nCalibPerClass.keys()).filter((y) => nCalibPerClass![y]! < need);
    if (short.length > 0) {
      warnings.push(
        `class-conditional: ${short.length} of ${k} classes (${short.slice(0, 20).join(', ')}${short.length > 20 ? ', …' : ''}) ` +
          `have fewer than ceil(1/alpha) - 1 = ${need} calibration rows at alpha = ${alpha}: their qhat is +Infinity, so they are in every set`,
      );
    }
  } else {
    rank = conformalRank(nCalib, alpha);
    qhat = conformalQuantile(scores, alpha);
    if (rank > nCalib) {
      warnings.push(
        `n_calib = ${nCalib} is below ceil(1/alpha) - 1 = ${need} at alpha = ${alpha}: the rank ceil((n+1)(1-alpha)) = ${rank} exceeds n, ` +
          `so qhat = +Infinity and every prediction set holds all ${k} classes`,
      );
    }
  }
  return {
    method,
    alpha,
    classConditional,
    randomized,
    seed,
    numClasses: k,
    lambda,
    kReg,
    rapsTuning,
    nCalib,
    rank,
    qhat,
    nCalibPerClass,
    warnings,
  };
}

/**
 * Prediction sets of a calibrated predictor for probs (N, K) or (M, N, K): membership mask (N, K).
 * Randomised: C(x) = {y : Σ_{above y} p_j + u_x·p_y (+ RAPS penalty) ≤ q̂} with one u_x per test
 * example shared by all its labels — the calibration convention (one u_i per calibration row, on
 * its true label); equivalent, up to ties, to Romano et al.'s rule of keeping the last label of
 * the top-L prefix with probability V. `u` (N) defaults to draws from the seed's `test` stream.
 */
export function conformalPredict(cal: ConformalCalibration, probs: Probs, u?: ArrayLike<number> | null): Uint8Array {
  const p = checkConformalInput(probs, null, 'test');
  if (p.k !== cal.numClasses) {
    throw new DataError(`test probabilities have K = ${p.k} classes but the calibration had K = ${cal.numClasses}`);
  }
  let draws: ArrayLike<number> | null = null;
  if (cal.randomized) draws = u ?? uniformDraws(p.n, conformalStreams(cal.seed).test);
  else if (u !== undefined && u !== null) throw new UsageError('u was given, but the calibration is not randomised');
  const scores: ScoreMatrix = conformalScoreMatrix(p, {
    method: cal.method,
    u: draws,
    ...(cal.method === 'raps' ? { lambda: cal.lambda!, kReg: cal.kReg! } : {}),
  });
  return predictionSets(scores, cal.qhat);
}

/** RAPS's parameters as the report states them. */
export interface RapsReport {
  lambda: number;
  k_reg: number;
  /** false when both were given */
  tuned: boolean;
  /** rows held out to tune (not used for q̂); 0 when not tuned */
  n_tune: number;
  tune_fraction: number | null;
  lambda_grid: number[] | null;
  /** per grid λ, on the tuning rows; null when λ was given */
  grid: RapsGridPoint[] | null;
}

/**
 * Coverage and set-size report of split conformal prediction on a test set. Keys are snake_case.
 * JSON note: JSON.stringify writes a q̂ of +Infinity as null.
 */
export interface ConformalReport {
  method: ConformalMethod;
  alpha: number;
  class_conditional: boolean;
  randomized: boolean;
  /** seed of the randomisation / RAPS split; null when nothing was random */
  seed: number | null;
  num_classes: number;
  /** calibration rows behind q̂ (RAPS's tuning rows excluded) */
  n_calib: number;
  /** Mondrian: calibration rows per class; else null */
  n_calib_per_class: number[] | null;
  n_test: number;
  quantile_rule: string;
  /** ⌈(n+1)(1−α)⌉: one, or per class (Mondrian) */
  quantile_rank: number | number[];
  /** q̂, or per class q̂_y (Mondrian); +Infinity: every label */
  qhat: number | number[];
  raps: RapsReport | null;
  /** fraction of test rows whose label is in their set */
  coverage: number;
  mean_set_size: number;
  /** middle set size; mean of the two middle ones for an even count */
  median_set_size: number;
  /** counts of set sizes 0..K (length K+1) */
  set_size_histogram: number[];
  /** coverage among the rows with set size s, s = 0..K; null where no row has that size */
  size_stratified_coverage: (number | null)[];
  /**
   * Size-stratified coverage violation (Angelopoulos et al. 2021, §4): max over set sizes s with at
   * least one test row of |coverage_s − (1 − α)|, each size its own stratum. 0 is ideal; empty sets
   * (coverage 0) make it ≥ 1 − α.
   */
  sscv: number;
  /** coverage among the test rows of each class (K); null for a class absent from the test set */
  class_conditional_coverage: (number | null)[];
  /** min of class_conditional_coverage over the classes present */
  worst_class_coverage: number;
  empty_fraction: number;
  singleton_fraction: number;
  /** coverage among singleton sets (= accuracy of those predictions); null when there are none */
  singleton_accuracy: number | null;
  /** per test row, the classes in its set, ascending (only when asked) */
  prediction_sets?: number[][];
  /** e.g. q̂ = +Infinity because the calibration set is too small */
  warnings: string[];
}

/** Options of `conformalReport`: those of `calibrateConformal`, and whether to return the prediction sets. */
export interface ConformalReportOptions extends ConformalOptions {
  /** include `prediction_sets` (default false) */
  returnSets?: boolean;
}

/** Set sizes and coverage of a mask (N, K) against labels (N). */
function setStats(
  mask: Uint8Array,
  k: number,
  labels: Labels,
): { sizes: Int32Array; hit: Uint8Array; covered: number } {
  const n = labels.length;
  const sizes = new Int32Array(n);
  const hit = new Uint8Array(n);
  let covered = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let y = 0; y < k; y++) s += mask[i * k + y]!;
    sizes[i] = s;
    hit[i] = mask[i * k + labels[i]!]!;
    covered += hit[i]!;
  }
  return { sizes, hit, covered };
}

function mean(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s / x.length;
}

function median(x: Int32Array): number {
  const s = Int32Array.from(x).sort();
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/** Coverage of each group: covered[g] / count[g], null where count[g] = 0. */
function groupCoverage(count: Int32Array, covered: Int32Array): (number | null)[] {
  return Array.from(count, (c, g) => (c > 0 ? covered[g]! / c : null));
}

/**
 * Calibrates on `calib` and reports coverage and set sizes on `test` at one α. probs (N, K) or
 * (M, N, K) for both (same K), labels (N). Throws `UsageError` for α outside (0, 1) or a bad option,
 * `DataError` for bad probabilities / labels or different class counts.
 */
export function conformalReport(
  calib: LabelledProbs,
  test: LabelledProbs,
  opts: ConformalReportOptions & { alpha: number },
): ConformalReport {
  checkAlpha(opts.alpha);
  const pTest = checkConformalInput(test.probs, test.labels, 'test');
  if (pTest.k !== calib.probs.k) {
    throw new DataError(
      `calibration probabilities have K = ${calib.probs.k} classes but test probabilities have K = ${pTest.k}`,
    );
  }
  const cal = calibrateConformal(calib, opts.alpha, opts);
  const mask = conformalPredict(cal, pTest);
  return reportOf(cal, mask, test.labels, opts.returnSets ?? false);
}

/**
 * The coverage–set-size curve: one `conformalReport` per α (same seed, so the same u draws and
 * RAPS split for every α; RAPS re-tunes λ / k_reg per α).
 */
export function conformalCurve(
  calib: LabelledProbs,
  test: LabelledProbs,
  opts: ConformalReportOptions & { alphas: readonly number[] },
): ConformalReport[] {
  if (opts.alphas.length === 0) throw new UsageError('no alpha given; expected e.g. 0.1,0.05');
  const { alphas, ...rest } = opts;
  return alphas.map((alpha) => conformalReport(calib, test, { ...rest, alpha }));
}

function reportOf(cal: ConformalCalibration, mask: Uint8Array, labels: Labels, returnSets: boolean): ConformalReport {
  const k = cal.numClasses;
  const n = labels.length;
  const { sizes, hit, covered } = setStats(mask, k, labels);
  const histogram = new Int32Array(k + 1);
  const coveredBySize = new Int32Array(k + 1);
  const perClass = new Int32Array(k);
  const coveredByClass = new Int32Array(k);
  for (let i = 0; i < n; i++) {
    histogram[sizes[i]!]!++;
    coveredBySize[sizes[i]!]! += hit[i]!;
    perClass[labels[i]!]!++;
    coveredByClass[labels[i]!]! += hit[i]!;
  }
  const sizeCoverage = groupCoverage(histogram, coveredBySize);
  const classCoverage = groupCoverage(perClass, coveredByClass);
  let sscv = 0;
  for (const c of sizeCoverage) if (c !== null) sscv = Math.max(sscv, Math.abs(c - (1 - cal.alpha)));
  let worst = Infinity;
  for (const c of classCoverage) if (c !== null) worst = Math.min(worst, c);
  const t = cal.rapsTuning;
  const report: ConformalReport = {
    method: cal.method,
    alpha: cal.alpha,
    class_conditional: cal.classConditional,
    randomized: cal.randomized,
    seed: cal.randomized || t !== null ? cal.seed : null,
    num_classes: k,
    n_calib: cal.nCalib,
    n_calib_per_class: cal.nCalibPerClass === null ? null : Array.from(cal.nCalibPerClass),
    n_test: n,
    quantile_rule: QUANTILE_RULE,
    quantile_rank: typeof cal.rank === 'number' ? cal.rank : Array.from(cal.rank),
    qhat: typeof cal.qhat === 'number' ? cal.qhat : Array.from(cal.qhat),
    raps:
      cal.method !== 'raps'
        ? null
        : {
            lambda: cal.lambda!,
            k_reg: cal.kReg!,
            tuned: t !== null,
            n_tune: t?.nTune ?? 0,
            tune_fraction: t?.tuneFraction ?? null,
            lambda_grid: t === null ? null : [...t.lambdaGrid],
            grid: t === null || t.grid.length === 0 ? null : t.grid,
          },
    coverage: covered / n,
    mean_set_size: mean(sizes),
    median_set_size: median(sizes),
    set_size_histogram: Array.from(histogram),
    size_stratified_coverage: sizeCoverage,
    sscv,
    class_conditional_coverage: classCoverage,
    worst_class_coverage: worst,
    empty_fraction: histogram[0]! / n,
    singleton_fraction: histogram[1]! / n,
    singleton_accuracy: sizeCoverage[1] ?? null,
    warnings: [...cal.warnings],
  };
  if (returnSets) report.prediction_sets = setsToLists(mask, k);
  return report;
}
