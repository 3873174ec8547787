/**
 * Expected calibration error and its relatives (top-label / classwise, equal-width / equal-mass bins,
 * L1 / L2 / max norms, signed), reliability-diagram data, and a streaming accumulator whose result
 * equals the one-shot computation bit for bit (same summation order).
 */
import { averageMembers, argmaxRows } from './softmax.js';
import { type Labels, type Probs, checkLabels, checkSameLength, checkScores } from './types.js';
import { DataError, UsageError } from '../util/errors.js';

/**
 * How confidences are binned: `equal-width` bins on [0, 1] or `equal-mass` bins holding the same number of
 * examples.
 */
export type Binning = 'equal-width' | 'equal-mass';
/** How bin gaps are reduced: `l1` (ECE), `l2` (RMS calibration error) or `max` (MCE). */
export type CalibrationNorm = 'l1' | 'l2' | 'max';

/** Options of `ece`: bins, binning, norm, signed, top-label or classwise. */
export interface EceOptions {
  /** number of bins (default 15) */
  bins?: number;
  /** default 'equal-width' */
  binning?: Binning;
  /** 'l1' = ECE (default), 'l2' = RMSCE, 'max' = MCE */
  norm?: CalibrationNorm;
  /** Σ_b (n_b/N)(conf_b − acc_b): positive = over-confident. Only with norm 'l1'. */
  signed?: boolean;
  /** classwise ECE: bin p_ic for every class c, mean over classes (default top-label) */
  classwise?: boolean;
}

/**
 * The exact convention an ECE value was computed under (bins, binning, norm, top-label or classwise …), stored
 * with every reported ECE.
 */
export interface EceConvention {
  name: string;
  bins: number;
  binning: Binning;
  norm: CalibrationNorm;
  signed: boolean;
  labels: 'top-label' | 'classwise';
  edges: string;
  emptyBins: 'skipped';
  weighting: string;
  sign?: 'confidence − accuracy';
  classReduction?: 'mean over classes';
}

/** One reliability-diagram bin: its confidence range, count, mean confidence and accuracy. */
export interface ReliabilityBin {
  /** lower edge (equal-width) or smallest confidence in the bin (equal-mass); NaN if empty */
  lo: number;
  /** upper edge (equal-width) or largest confidence in the bin (equal-mass); NaN if empty */
  hi: number;
  count: number;
  /** fraction correct (top-label) or fraction with label = c (classwise); NaN if empty */
  accuracy: number;
  /** mean confidence; NaN if empty */
  confidence: number;
}

/** What `ece` returns: the value, its convention and the reliability bins (per class when classwise). */
export interface EceResult {
  value: number;
  convention: EceConvention;
  /** top-label bins; empty for classwise (see perClass) */
  reliability: ReliabilityBin[];
  perClass?: { value: number; reliability: ReliabilityBin[] }[];
}

interface ResolvedOptions {
  bins: number;
  binning: Binning;
  norm: CalibrationNorm;
  signed: boolean;
  classwise: boolean;
}

function resolve(opts: EceOptions): ResolvedOptions {
  const r: ResolvedOptions = {
    bins: opts.bins ?? 15,
    binning: opts.binning ?? 'equal-width',
    norm: opts.norm ?? 'l1',
    signed: opts.signed ?? false,
    classwise: opts.classwise ?? false,
  };
  if (!Number.isInteger(r.bins) || r.bins < 1) throw new UsageError(`bins must be a positive integer, got ${r.bins}`);
  if (r.binning !== 'equal-width' && r.binning !== 'equal-mass') {
    throw new UsageError(`binning must be 'equal-width' or 'equal-mass', got '${r.binning}'`);
  }
  if (r.norm !== 'l1' && r.norm !== 'l2' && r.norm !== 'max') {
    throw new UsageError(`norm must be 'l1', 'l2' or 'max', got '${r.norm}'`);
  }
  if (r.signed && r.norm !== 'l1') throw new UsageError(`signed calibration error is defined only for norm 'l1'`);
  return r;
}

function conventionOf(r: ResolvedOptions): EceConvention {
  const base = r.signed ? 'signed-ece' : { l1: 'ece', l2: 'rmsce', max: 'mce' }[r.norm];
  const c: EceConvention = {
    name: r.classwise ? `classwise-${base}` : base,
    bins: r.bins,
    binning: r.binning,
    norm: r.norm,
    signed: r.signed,
    labels: r.classwise ? 'classwise' : 'top-label',
    edges:
      r.binning === 'equal-width'
        ? '[b/B, (b+1)/B); confidence 1.0 in the last bin'
        : 'sorted by confidence (ties by index); bin b holds ranks [floor(bN/B), floor((b+1)N/B))',
    emptyBins: 'skipped',
    weighting:
      r.norm === 'max'
        ? 'max over non-empty bins'
        : r.norm === 'l2'
          ? 'sqrt(Σ_b (n_b/N)·gap_b²)'
          : r.signed
            ? 'Σ_b (n_b/N)·gap_b (no absolute value)'
            : 'Σ_b (n_b/N)·|gap_b|',
  };
  if (r.signed) c.sign = 'confidence − accuracy';
  if (r.classwise) c.classReduction = 'mean over classes';
  return c;
}

/** Equal-width bin of a confidence in [0, 1]: [b/B, (b+1)/B), with 1.0 in the last bin. */
export function equalWidthBin(confidence: number, bins: number): number {
  if (Number.isNaN(confidence)) throw new DataError('confidence is NaN');
  let b = Math.floor(confidence * bins);
  if (b >= bins) b = bins - 1;
  if (b < 0) b = 0;
  // floor(x·B) can round across an edge; the edges b/B are the definition.
  if (b > 0 && confidence < b / bins) b--;
  else if (b < bins - 1 && confidence >= (b + 1) / bins) b++;
  return b;
}

/** One calibration group's per-bin sums. */
interface BinSums {
  count: Float64Array;
  sumConf: Float64Array;
  sumHit: Float64Array;
  lo: Float64Array;
  hi: Float64Array;
}

function newBinSums(bins: number): BinSums {
  return {
    count: new Float64Array(bins),
    sumConf: new Float64Array(bins),
    sumHit: new Float64Array(bins),
    lo: new Float64Array(bins).fill(NaN),
    hi: new Float64Array(bins).fill(NaN),
  };
}

function equalWidthEdges(s: BinSums): void {
  const bins = s.count.length;
  for (let b = 0; b < bins; b++) {
    s.lo[b] = b / bins;
    s.hi[b] = (b + 1) / bins;
  }
}

function summarise(
  s: BinSums,
  norm: CalibrationNorm,
  signed: boolean,
): { value: number; reliability: ReliabilityBin[] } {
  let total = 0;
  for (let b = 0; b < s.count.length; b++) total += s.count[b]!;
  let acc = 0;
  const reliability: ReliabilityBin[] = [];
  for (let b = 0; b < s.count.length; b++) {
    const count = s.count[b]!;
    const accuracy = count > 0 ? s.sumHit[b]! / count : NaN;
    const confidence = count > 0 ? s.sumConf[b]! / count : NaN;
    reliability.push({ lo: s.lo[b]!, hi: s.hi[b]!, count, accuracy, confidence });
    if (count === 0) continue;
    const gap = confidence - accuracy;
    const w = count / total;
    if (norm === 'max') acc = Math.max(acc, Math.abs(gap));
    else if (norm === 'l2') acc += w * gap * gap;
    else acc += w * (signed ? gap : Math.abs(gap));
  }
  return { value: norm === 'l2' ? Math.sqrt(acc) : acc, reliability };
}

/** Confidence max_k p̄_ik and correctness 1[argmax p̄_i = y_i] for top-label metrics. */
export function confidenceAndCorrect(probs: Probs, labels: Labels): { confidence: Float64Array; correct: Uint8Array } {
  checkScores(probs, 'probs');
  checkLabels(labels, probs.n, probs.k);
  const p = averageMembers(probs); // (N, K)
  const pred = argmaxRows(p);
  const confidence = new Float64Array(probs.n);
  const correct = new Uint8Array(probs.n);
  for (let i = 0; i < probs.n; i++) {
    confidence[i] = p.data[i * probs.k + pred[i]!]!;
    correct[i] = pred[i] === labels[i] ? 1 : 0;
  }
  return { confidence, correct };
}

/**
 * Streaming equal-width calibration: feed batches with `update`, read `result` at any time.
 * Equal-mass bins need every confidence at once, so they are one-shot only (`ece`).
 */
export class CalibrationAccumulator {
  readonly bins: number;
  readonly classwise: boolean;
  private groups: BinSums[] = [];
  private k = 0;

  constructor(opts: { bins?: number; classwise?: boolean } = {}) {
    const r = resolve({ bins: opts.bins, classwise: opts.classwise });
    this.bins = r.bins;
    this.classwise = r.classwise;
    if (!this.classwise) this.groups = [newBinSums(this.bins)];
  }

  /** Add a batch of probabilities (N, K) or member probabilities (M, N, K, averaged) with labels. */
  update(probs: Probs, labels: Labels): this {
    checkScores(probs, 'probs');
    checkLabels(labels, probs.n, probs.k);
    if (!this.classwise) {
      const { confidence, correct } = confidenceAndCorrect(probs, labels);
      return this.updateTopLabel(confidence, correct);
    }
    if (this.k === 0) {
      this.k = probs.k;
      for (let c = 0; c < this.k; c++) this.groups.push(newBinSums(this.bins));
    } else if (probs.k !== this.k) {
      throw new DataError(`probs.k = ${probs.k} differs from k = ${this.k} of earlier updates`);
    }
    const p = averageMembers(probs);
    for (let i = 0; i < probs.n; i++) {
      for (let c = 0; c < this.k; c++) {
        const conf = p.data[i * this.k + c]!;
        add(this.groups[c]!, equalWidthBin(conf, this.bins), conf, labels[i] === c ? 1 : 0);
      }
    }
    return this;
  }

  /** Add top-label confidences and 0/1 correctness directly. */
  updateTopLabel(confidence: ArrayLike<number>, correct: ArrayLike<number | boolean>): this {
    if (this.classwise) throw new UsageError('updateTopLabel is for top-label accumulators; this one is classwise');
    checkSameLength(confidence, correct, 'confidence', 'correct');
    const g = this.groups[0]!;
    for (let i = 0; i < confidence.length; i++) {
      const conf = confidence[i]!;
      add(g, equalWidthBin(conf, this.bins), conf, correct[i] ? 1 : 0);
    }
    return this;
  }

  /** Number of examples seen. */
  get count(): number {
    const g = this.groups[0];
    if (!g) return 0;
    let s = 0;
    for (let b = 0; b < g.count.length; b++) s += g.count[b]!;
    return s;
  }

  /** The ECE (and reliability bins) over every example added so far, with the given norm and sign. */
  result(opts: { norm?: CalibrationNorm; signed?: boolean } = {}): EceResult {
    const r = resolve({ bins: this.bins, classwise: this.classwise, norm: opts.norm, signed: opts.signed });
    if (this.count === 0) throw new DataError('CalibrationAccumulator has no examples yet');
    for (const g of this.groups) equalWidthEdges(g);
    return finish(this.groups, r);
  }
}

function add(g: BinSums, b: number, conf: number, hit: number): void {
  g.count[b]! += 1;
  g.sumConf[b]! += conf;
  g.sumHit[b]! += hit;
}

function finish(groups: BinSums[], r: ResolvedOptions): EceResult {
  const convention = conventionOf(r);
  const parts = groups.map((g) => summarise(g, r.norm, r.signed));
  if (!r.classwise) return { value: parts[0]!.value, convention, reliability: parts[0]!.reliability };
  let s = 0;
  for (const p of parts) s += p.value;
  return { value: s / parts.length, convention, reliability: [], perClass: parts };
}

function equalMassSums(values: ArrayLike<number>, hits: ArrayLike<number>, bins: number): BinSums {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => values[a]! - values[b]! || a - b);
  const s = newBinSums(bins);
  for (let b = 0; b < bins; b++) {
    const start = Math.floor((b * n) / bins);
    const end = Math.floor(((b + 1) * n) / bins);
    for (let r = start; r < end; r++) {
      const i = order[r]!;
      if (Number.isNaN(values[i]!)) throw new DataError(`confidence at row ${i} is NaN`);
      add(s, b, values[i]!, hits[i]!);
    }
    if (end > start) {
      s.lo[b] = values[order[start]!]!;
      s.hi[b] = values[order[end - 1]!]!;
    }
  }
  return s;
}

/**
 * Calibration error of the predictive distribution (members averaged first).
 * Default: top-label ECE, 15 equal-width bins, L1. The result carries its convention.
 */
export function ece(probs: Probs, labels: Labels, opts: EceOptions = {}): EceResult {
  const r = resolve(opts);
  if (r.binning === 'equal-width') {
    return new CalibrationAccumulator({ bins: r.bins, classwise: r.classwise })
      .update(probs, labels)
      .result({ norm: r.norm, signed: r.signed });
  }
  checkScores(probs, 'probs');
  checkLabels(labels, probs.n, probs.k);
  if (!r.classwise) {
    const { confidence, correct } = confidenceAndCorrect(probs, labels);
    return finish([equalMassSums(confidence, correct, r.bins)], r);
  }
  const p = averageMembers(probs);
  const { n, k } = probs;
  const groups: BinSums[] = [];
  const col = new Float64Array(n);
  const hit = new Uint8Array(n);
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < n; i++) {
      col[i] = p.data[i * k + c]!;
      hit[i] = labels[i] === c ? 1 : 0;
    }
    groups.push(equalMassSums(col, hit, r.bins));
  }
  return finish(groups, r);
}

/** Top-label calibration error from confidences and 0/1 correctness (no probabilities needed). */
export function topLabelEce(
  confidence: ArrayLike<number>,
  correct: ArrayLike<number | boolean>,
  opts: Omit<EceOptions, 'classwise'> = {},
): EceResult {
  const r = resolve({ ...opts, classwise: false });
  checkSameLength(confidence, correct, 'confidence', 'correct');
  if (r.binning === 'equal-width') {
    return new CalibrationAccumulator({ bins: r.bins })
      .updateTopLabel(confidence, correct)
      .result({ norm: r.norm, signed: r.signed });
  }
  const hits = Array.from({ length: correct.length }, (_, i) => (correct[i] ? 1 : 0));
  return finish([equalMassSums(confidence, hits, r.bins)], r);
}

/** Reliability-diagram data: per bin count, accuracy and mean confidence (top-label). */
export function reliabilityDiagram(
  probs: Probs,
  labels: Labels,
  opts: { bins?: number; binning?: Binning } = {},
): ReliabilityBin[] {
  return ece(probs, labels, opts).reliability;
}
