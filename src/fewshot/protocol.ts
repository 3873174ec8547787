/**
 * Few-shot evaluation protocol (docs/spec/evaluation.md §8): for each data set, shot count and seed, draw
 * `shot` train examples per class, fit a probe over a λ grid, score the full test set; then pick
 * λ per shot count (a) by mean rank across data sets, as the reference does (it ranks on test
 * accuracy, so this is optimistic), and (b) leave-self-out: each data set gets the λ that ranks
 * best on the OTHER data sets, which never looks at its own test labels.
 *
 * Seeds: seed s draws the permutation from `new Rng(s)`, so for one seed the 1-shot set is a
 * subset of the 5-shot set, and so on, as in big_vision.
 * Spread over seeds is the sample std (ddof 1); 0 with a single seed.
 */
import { Rng } from '../util/rng.js';
import { accuracyOf, argmaxRows, checkFeatures, checkLabels, type Features } from './features.js';
import { fitLogreg, type LogregOptions } from './logreg.js';
import { fitLsr, lsrAccuracyByL2 } from './lsr.js';
import { meanNllFromLogits, topLabelEce } from './probe-metrics.js';
import { DataError, UsageError } from '../util/errors.js';

/** One data set for the few-shot protocol: train and test features (N, D) with labels, and the class count. */
export interface FewShotDataset {
  name: string;
  trainX: Features;
  trainY: ArrayLike<number>;
  testX: Features;
  testY: ArrayLike<number>;
  numClasses: number;
}

/** The linear probe: `lsr` (regularised least squares, closed form) or `logreg` (multinomial logistic regression). */
export type ProbeKind = 'lsr' | 'logreg';

/** Shots per class evaluated by default. */
export const DEFAULT_SHOTS: readonly number[] = [1, 5, 10, 25];
/** 2^i, i = −10…19. */
export const DEFAULT_L2_GRID: readonly number[] = Array.from({ length: 30 }, (_, i) => 2 ** (i - 10));
/** big_vision's fixed λ; used by leave-self-out when there is no other data set to learn λ from. */
export const DEFAULT_FALLBACK_L2 = 2 ** 10;

/** Options of `runFewShot`: shots, seeds, λ grid, probe, and how λ is selected. */
export interface FewShotOptions {
  shots?: readonly number[];
  /** A count n (seeds 0…n−1) or explicit seeds. Default 3. */
  seeds?: number | readonly number[];
  l2s?: readonly number[];
  probe?: ProbeKind;
  fallbackL2?: number;
  /**
   * Metric whose per-data-set ranks choose λ: 'accuracy' (default; higher is better) or, for the
   * logreg probe, 'nll' (lower is better). Accuracy often saturates over many λ where the
   * probabilities are badly under-confident, so 'nll' suits reporting the probe's NLL/ECE.
   */
  selectBy?: 'accuracy' | 'nll';
  logreg?: Omit<LogregOptions, 'initialParams'>;
}

/** Mean, sample std (ddof 1) and per-seed values of a metric over seeds. */
export interface SeedStats {
  mean: number;
  std: number;
  perSeed: number[];
}

/** The result at one selected λ: accuracy over seeds (and NLL and ECE for the logreg probe). */
export interface SelectedResult {
  l2: number;
  accuracy: SeedStats;
  /** logreg only */
  nll?: SeedStats;
  /** logreg only: 15-bin top-label ECE */
  ece?: SeedStats;
}

/** One data set at one shot count: the metrics for every λ of the grid and at the λ each selection rule picks. */
export interface ShotResult {
  dataset: string;
  shot: number;
  /** Mean test accuracy over seeds for each λ of the grid. */
  accuracyByL2: number[];
  /** logreg only: mean test NLL over seeds for each λ. */
  nllByL2?: number[];
  meanRank: SelectedResult;
  leaveSelfOut: SelectedResult;
}

/** What `runFewShot` returns: the settings, one `ShotResult` per data set and shot count, and the λ selection. */
export interface FewShotReport {
  probe: ProbeKind;
  selectBy: 'accuracy' | 'nll';
  shots: number[];
  seeds: number[];
  l2s: number[];
  results: ShotResult[];
  /** Per shot count: the mean rank of each λ across data sets, and the λ it selects. */
  selection: { shot: number; meanRanks: number[]; l2: number }[];
  notes: string[];
}

/**
 * Indices of a balanced few-shot sample: walk a seeded permutation of all examples and keep the
 * first `shot` of each class; grouped by class (class 0's picks first), each group in permutation order.
 */
export function sampleFewShot(labels: ArrayLike<number>, numClasses: number, shot: number, rng: Rng): Int32Array {
  if (!Number.isInteger(shot) || shot < 1)
    throw new UsageError(`sampleFewShot: shot must be a positive integer, got ${shot}`);
  const perm = rng.permutation(labels.length);
  const picked: number[][] = Array.from({ length: numClasses }, () => []);
  for (const i of perm) {
    const c = labels[i]!;
    if (c < 0 || c >= numClasses || !Number.isInteger(c)) {
      throw new DataError(`sampleFewShot: label ${c} at index ${i} is outside [0, ${numClasses})`);
    }
    if (picked[c]!.length < shot) picked[c]!.push(i);
  }
  picked.forEach((p, c) => {
    if (p.length < shot)
      throw new DataError(`sampleFewShot: class ${c} has ${p.length} examples, ${shot}-shot needs ${shot}`);
  });
  return Int32Array.from(picked.flat());
}

/** Rows `idx` of x, as a new matrix. */
export function selectRows(x: Features, idx: ArrayLike<number>): Features {
  const d = x.cols;
  const data = new Float64Array(idx.length * d);
  for (let r = 0; r < idx.length; r++) {
    const i = idx[r]!;
    for (let j = 0; j < d; j++) data[r * d + j] = x.data[i * d + j]!;
  }
  return { rows: idx.length, cols: d, data };
}

/** Ranks with 1 = largest value; tied values share the average of their ranks. */
export function rankDescending(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[b]! - values[a]!);
  const ranks = new Float64Array(n);
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && values[order[end]!] === values[order[start]!]) end++;
    const shared = (start + 1 + end) / 2; // mean of ranks start+1 … end
    for (let t = start; t < end; t++) ranks[order[t]!] = shared;
    start = end;
  }
  return ranks;
}

/**
 * Mean over data sets of each λ's rank (rank 1 = highest score, e.g. accuracy), skipping data
 * set `exclude` if given;
 * the selected index is the lowest mean rank, ties → first in grid order.
 */
export function selectByMeanRank(
  scoreByDataset: ArrayLike<number>[],
  exclude?: number,
): { index: number; meanRanks: number[] } {
  const used = scoreByDataset.filter((_, i) => i !== exclude);
  if (used.length === 0) throw new DataError('selectByMeanRank: no data set left to rank on');
  const m = used[0]!.length;
  const meanRanks = new Array<number>(m).fill(0);
  for (const acc of used) {
    if (acc.length !== m) throw new DataError(`selectByMeanRank: λ grids differ in length (${acc.length} vs ${m})`);
    const r = rankDescending(acc);
    for (let j = 0; j < m; j++) meanRanks[j]! += r[j]!;
  }
  // Divide once at the end: rank sums are exact (half-integers), so equal sums stay exact ties.
  for (let j = 0; j < m; j++) meanRanks[j]! /= used.length;
  let index = 0;
  for (let j = 1; j < m; j++) if (meanRanks[j]! < meanRanks[index]!) index = j;
  return { index, meanRanks };
}

export function seedStats(perSeed: number[]): SeedStats {
  const n = perSeed.length;
  const mean = perSeed.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(perSeed.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, perSeed };
}

/** Per-λ test metrics for one few-shot draw; nll/ece only for logreg. Arrays indexed by λ. */
interface DrawMetrics {
  accuracy: number[];
  nll?: number[];
  ece?: number[];
}

function evaluateLsrDraw(train: Features, trainY: Int32Array, d: FewShotDataset, l2s: readonly number[]): DrawMetrics {
  return { accuracy: Array.from(lsrAccuracyByL2(fitLsr(train, trainY, d.numClasses), d.testX, d.testY, l2s)) };
}

function evaluateLogregDraw(
  train: Features,
  trainY: Int32Array,
  d: FewShotDataset,
  l2s: readonly number[],
  options: FewShotOptions['logreg'],
): DrawMetrics {
  const k = d.numClasses;
  const m = d.testX.rows;
  const out = {
    accuracy: new Array<number>(l2s.length),
    nll: new Array<number>(l2s.length),
    ece: new Array<number>(l2s.length),
  };
  // Warm-start along the path from the largest λ (nearly W = 0) downwards.
  const order = l2s.map((_, i) => i).sort((a, b) => l2s[b]! - l2s[a]!);
  let warm: Float64Array | undefined;
  for (const j of order) {
    const model = fitLogreg(train, trainY, k, l2s[j]!, { ...options, initialParams: warm });
    warm = model.params;
    const logits = model.logits(d.testX); // (M, K)
    out.accuracy[j] = accuracyOf(argmaxRows(logits, m, k), d.testY);
    out.nll[j] = meanNllFromLogits(logits, d.testY, k);
    out.ece[j] = topLabelEce(model.probabilities(d.testX), d.testY, k);
  }
  return out;
}

function resolveSeeds(seeds: FewShotOptions['seeds']): number[] {
  if (seeds === undefined) return [0, 1, 2];
  if (typeof seeds === 'number') {
    if (!Number.isInteger(seeds) || seeds < 1)
      throw new UsageError(`few-shot: seeds must be a positive integer count, got ${seeds}`);
    return Array.from({ length: seeds }, (_, i) => i);
  }
  if (seeds.length === 0) throw new UsageError('few-shot: the seed list is empty');
  return [...seeds];
}

function checkDataset(d: FewShotDataset): void {
  const what = `few-shot data set '${d.name}'`;
  checkFeatures(d.trainX, `${what} trainX`);
  checkFeatures(d.testX, `${what} testX`);
  checkLabels(d.trainY, d.trainX.rows, d.numClasses, `${what} trainY`);
  checkLabels(d.testY, d.testX.rows, d.numClasses, `${what} testY`);
  if (d.trainX.cols !== d.testX.cols) {
    throw new DataError(`${what}: train features have ${d.trainX.cols} columns, test features have ${d.testX.cols}`);
  }
}

/**
 * Run the few-shot protocol: for each data set, shot count and seed, fit the probe on `shot` examples per class
 * over the λ grid, score the test set, then select λ by mean rank across data sets and by leave-self-out.
 */
export function runFewShot(datasets: readonly FewShotDataset[], options: FewShotOptions = {}): FewShotReport {
  if (datasets.length === 0) throw new UsageError('few-shot: no data sets given');
  const shots = [...(options.shots ?? DEFAULT_SHOTS)];
  const seeds = resolveSeeds(options.seeds);
  const l2s = [...(options.l2s ?? DEFAULT_L2_GRID)];
  const probe = options.probe ?? 'lsr';
  const fallbackL2 = options.fallbackL2 ?? DEFAULT_FALLBACK_L2;
  const selectBy = options.selectBy ?? 'accuracy';
  if (selectBy === 'nll' && probe !== 'logreg')
    throw new UsageError("few-shot: selectBy 'nll' needs probe 'logreg' (LSR has no probabilities)");
  if (l2s.length === 0 || l2s.some((v) => !(v > 0) || !Number.isFinite(v))) {
    throw new UsageError(`few-shot: every λ must be a finite number > 0, got [${l2s.join(', ')}]`);
  }
  datasets.forEach(checkDataset);
  const notes: string[] = [];

  const evaluateDraw = (d: FewShotDataset, shot: number, seed: number, grid: readonly number[]): DrawMetrics => {
    const idx = sampleFewShot(d.trainY, d.numClasses, shot, new Rng(seed));
    const train = selectRows(d.trainX, idx);
    const trainY = Int32Array.from(idx, (i) => d.trainY[i]!);
    return probe === 'lsr'
      ? evaluateLsrDraw(train, trainY, d, grid)
      : evaluateLogregDraw(train, trainY, d, grid, options.logreg);
  };
  // metrics[dataset][shot][seed]
  const metrics: DrawMetrics[][][] = datasets.map((d) =>
    shots.map((shot) => seeds.map((seed) => evaluateDraw(d, shot, seed, l2s))),
  );

  const summarise = (draws: DrawMetrics[], j: number, l2: number): SelectedResult => {
    const r: SelectedResult = { l2, accuracy: seedStats(draws.map((m) => m.accuracy[j]!)) };
    if (probe === 'logreg') {
      r.nll = seedStats(draws.map((m) => m.nll![j]!));
      r.ece = seedStats(draws.map((m) => m.ece![j]!));
    }
    return r;
  };

  // With one data set there is nothing to learn λ from but its own test set, so leave-self-out
  // uses the fixed fallback λ (refitted when it lies off the grid).
  const fallbackIndex = l2s.indexOf(fallbackL2);
  const fallbackDraws = (di: number, si: number): { draws: DrawMetrics[]; j: number } =>
    fallbackIndex >= 0
      ? { draws: metrics[di]![si]!, j: fallbackIndex }
      : { draws: seeds.map((seed) => evaluateDraw(datasets[di]!, shots[si]!, seed, [fallbackL2])), j: 0 };

  const results: ShotResult[] = [];
  const selection: FewShotReport['selection'] = [];
  shots.forEach((shot, si) => {
    const meanOverSeeds = (di: number, pick: (m: DrawMetrics, j: number) => number): number[] =>
      l2s.map((_, j) => metrics[di]![si]!.reduce((a, m) => a + pick(m, j), 0) / seeds.length);
    const meanAcc = datasets.map((_, di) => meanOverSeeds(di, (m, j) => m.accuracy[j]!));
    const meanNll = probe === 'logreg' ? datasets.map((_, di) => meanOverSeeds(di, (m, j) => m.nll![j]!)) : undefined;
    // Ranks are taken of higher-is-better scores.
    const rankScore = selectBy === 'nll' ? meanNll!.map((row) => row.map((v) => -v)) : meanAcc;
    const overall = selectByMeanRank(rankScore);
    selection.push({ shot, meanRanks: overall.meanRanks, l2: l2s[overall.index]! });
    datasets.forEach((d, di) => {
      const draws = metrics[di]![si]!;
      let leaveSelfOut: SelectedResult;
      if (datasets.length > 1) {
        const j = selectByMeanRank(rankScore, di).index;
        leaveSelfOut = summarise(draws, j, l2s[j]!);
      } else {
        const fb = fallbackDraws(di, si);
        leaveSelfOut = summarise(fb.draws, fb.j, fallbackL2);
      }
      results.push({
        dataset: d.name,
        shot,
        accuracyByL2: meanAcc[di]!,
        ...(meanNll ? { nllByL2: meanNll[di]! } : {}),
        meanRank: summarise(draws, overall.index, l2s[overall.index]!),
        leaveSelfOut,
      });
    });
  });

  if (datasets.length === 1) {
    notes.push(
      `leave-self-out needs at least two data sets; with only '${datasets[0]!.name}' it uses the fixed ` +
        `λ = ${fallbackL2} (big_vision's default) instead of a λ chosen on other data sets`,
    );
  }
  notes.push(
    'the mean-rank λ is chosen on the same test sets it is reported on (as the reference does), so it is optimistic',
  );
  return { probe, selectBy, shots, seeds, l2s, results, selection, notes };
}
