/**
 * Exact binary ranking metrics on scores where higher means "more positive": AUROC (ties count
 * one half, via midranks), step-wise average precision, and FPR at a fixed TPR.
 */
import { checkSameLength } from './types.js';
import { DataError, UsageError } from '../util/errors.js';

function checkScoresFinite(x: ArrayLike<number>, name: string): void {
  if (x.length === 0) throw new DataError(`${name} is empty`);
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i]!)) throw new DataError(`${name}[${i}] is NaN`);
  }
}

interface Pooled {
  scores: Float64Array;
  positive: Uint8Array;
  /** indices sorted by score, descending (ties adjacent) */
  order: Int32Array;
}

function pool(pos: ArrayLike<number>, neg: ArrayLike<number>): Pooled {
  checkScoresFinite(pos, 'positive scores');
  checkScoresFinite(neg, 'negative scores');
  const n = pos.length + neg.length;
  const scores = new Float64Array(n);
  const positive = new Uint8Array(n);
  for (let i = 0; i < pos.length; i++) {
    scores[i] = pos[i]!;
    positive[i] = 1;
  }
  for (let i = 0; i < neg.length; i++) scores[pos.length + i] = neg[i]!;
  const order = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  return { scores, positive, order };
}

/** Visit groups of tied scores from the highest down, with their positive and negative counts. */
function forEachTieGroup(p: Pooled, visit: (tp: number, fp: number, groupPos: number, groupNeg: number) => void): void {
  const { scores, positive, order } = p;
  let tp = 0;
  let fp = 0;
  for (let r = 0; r < order.length; ) {
    const s = scores[order[r]!]!;
    let gp = 0;
    let gn = 0;
    while (r < order.length && scores[order[r]!]! === s) {
      if (positive[order[r]!]) gp++;
      else gn++;
      r++;
    }
    tp += gp;
    fp += gn;
    visit(tp, fp, gp, gn);
  }
}

/** AUROC = P(s_pos > s_neg) + ½ P(s_pos = s_neg), exact (the Mann–Whitney U / (n_pos·n_neg)). */
export function auroc(positiveScores: ArrayLike<number>, negativeScores: ArrayLike<number>): number {
  const p = pool(positiveScores, negativeScores);
  const nPos = positiveScores.length;
  const nNeg = negativeScores.length;
  // Each positive beats the negatives in lower groups, ties half with its own group's negatives.
  let wins = 0;
  let negSeen = 0;
  forEachTieGroup(p, (_tp, _fp, gp, gn) => {
    wins += gp * (nNeg - negSeen - gn) + 0.5 * gp * gn;
    negSeen += gn;
  });
  return wins / (nPos * nNeg);
}

/**
 * Average precision Σ_t (R_t − R_{t−1})·P_t over thresholds t at each distinct score (descending),
 * i.e. the step-wise area under the precision–recall curve, with no interpolation.
 */
export function averagePrecision(positiveScores: ArrayLike<number>, negativeScores: ArrayLike<number>): number {
  const p = pool(positiveScores, negativeScores);
  const nPos = positiveScores.length;
  let ap = 0;
  forEachTieGroup(p, (tp, fp, gp) => {
    if (gp > 0) ap += (gp / nPos) * (tp / (tp + fp));
  });
  return ap;
}

/**
 * False-positive rate at the highest threshold whose true-positive rate reaches `tpr`
 * (predict positive when score ≥ threshold; thresholds at the distinct scores).
 */
export function fprAtTpr(positiveScores: ArrayLike<number>, negativeScores: ArrayLike<number>, tpr = 0.95): number {
  if (!(tpr > 0 && tpr <= 1)) throw new UsageError(`tpr must be in (0, 1], got ${tpr}`);
  const p = pool(positiveScores, negativeScores);
  const nPos = positiveScores.length;
  const nNeg = negativeScores.length;
  let result = NaN;
  forEachTieGroup(p, (tp, fp) => {
    // The tiny slack keeps 0.95·N exact when it is an integer count computed in floating point.
    if (Number.isNaN(result) && tp / nPos >= tpr - 1e-12) result = fp / nNeg;
  });
  return result;
}

/** AUROC from 0/1 labels and scores (label 1 = positive). */
export function aurocFromLabels(scores: ArrayLike<number>, isPositive: ArrayLike<number | boolean>): number {
  checkSameLength(scores, isPositive, 'scores', 'labels');
  const pos: number[] = [];
  const neg: number[] = [];
  for (let i = 0; i < scores.length; i++) (isPositive[i] ? pos : neg).push(scores[i]!);
  if (pos.length === 0 || neg.length === 0) {
    throw new DataError(`AUROC needs both classes; got ${pos.length} positives and ${neg.length} negatives`);
  }
  return auroc(pos, neg);
}
