/**
 * Feature matrices for the few-shot probes and the standardisation they share.
 *
 * A feature matrix is one row-major typed array plus its shape, so pre-logits
 * extracted from a model (Float32Array) can be probed without copying.
 */
import { DataError } from '../util/errors.js';

/** Row-major feature matrix, `data` has shape (rows, cols). */
export interface Features {
  rows: number;
  cols: number;
  data: Float32Array | Float64Array;
}

/** Added to the population std so constant features (common at 1 shot) divide by 1e-5, not 0. */
export const STD_EPSILON = 1e-5;

/** Builds a Features matrix from an array of equal-length rows. */
export function featuresFromRows(rows: ArrayLike<number>[]): Features {
  const n = rows.length;
  const d = n > 0 ? rows[0]!.length : 0;
  const data = new Float64Array(n * d);
  rows.forEach((row, i) => {
    if (row.length !== d) throw new DataError(`featuresFromRows: row ${i} has ${row.length} values, row 0 has ${d}`);
    for (let j = 0; j < d; j++) data[i * d + j] = row[j]!;
  });
  return { rows: n, cols: d, data };
}

/** Throws unless `x` is a consistent (rows, cols) matrix of finite numbers. */
export function checkFeatures(x: Features, what: string): void {
  if (!Number.isInteger(x.rows) || !Number.isInteger(x.cols) || x.rows < 0 || x.cols < 0) {
    throw new DataError(`${what}: shape (${x.rows}, ${x.cols}) is not a pair of non-negative integers`);
  }
  if (x.data.length !== x.rows * x.cols) {
    throw new DataError(
      `${what}: data has ${x.data.length} values, shape (${x.rows}, ${x.cols}) needs ${x.rows * x.cols}`,
    );
  }
  for (let i = 0; i < x.data.length; i++) {
    if (!Number.isFinite(x.data[i]!)) {
      const r = Math.floor(i / x.cols),
        c = i % x.cols;
      throw new DataError(`${what}: value at row ${r}, column ${c} is ${x.data[i]}, not a finite number`);
    }
  }
}

/** Throws unless `y` holds `n` integer labels in [0, numClasses). */
export function checkLabels(y: ArrayLike<number>, n: number, numClasses: number, what: string): void {
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new DataError(`${what}: numClasses must be an integer ≥ 2, got ${numClasses}`);
  }
  if (y.length !== n) throw new DataError(`${what}: ${y.length} labels for ${n} feature rows`);
  for (let i = 0; i < n; i++) {
    const v = y[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= numClasses) {
      throw new DataError(`${what}: label at row ${i} is ${v}, expected an integer in [0, ${numClasses})`);
    }
  }
}

/** Per-feature statistics of the few-shot train set; `std` already includes STD_EPSILON. */
export interface Standardiser {
  mean: Float64Array; // (D,)
  std: Float64Array; // (D,)
}

/** Mean and population std (ddof 0) + STD_EPSILON of each column. */
export function fitStandardiser(x: Features): Standardiser {
  const { rows: n, cols: d, data } = x;
  if (n === 0) throw new DataError('fitStandardiser: the train set has no rows');
  const mean = new Float64Array(d);
  const std = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += data[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const c = data[i * d + j]! - mean[j]!;
      std[j]! += c * c;
    }
  }
  for (let j = 0; j < d; j++) std[j] = Math.sqrt(std[j]! / n) + STD_EPSILON;
  return { mean, std };
}

/**
 * (x − mean) / std as a new Float64Array; with `biasValue` a constant column is
 * appended, giving shape (N, D+1) instead of (N, D).
 */
export function standardise(x: Features, s: Standardiser, biasValue?: number): Float64Array {
  const { rows: n, cols: d, data } = x;
  if (s.mean.length !== d) {
    throw new DataError(`standardise: features have ${d} columns, the standardiser was fitted on ${s.mean.length}`);
  }
  const out = biasValue === undefined ? d : d + 1;
  const z = new Float64Array(n * out);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) z[i * out + j] = (data[i * d + j]! - s.mean[j]!) / s.std[j]!;
    if (biasValue !== undefined) z[i * out + d] = biasValue;
  }
  return z;
}

/** Index of the largest value in each row of a row-major (N, K) matrix; ties → lowest index. */
export function argmaxRows(scores: Float64Array, n: number, k: number): Int32Array {
  const pred = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestValue = scores[i * k]!;
    for (let c = 1; c < k; c++) {
      const v = scores[i * k + c]!;
      if (v > bestValue) {
        bestValue = v;
        best = c;
      }
    }
    pred[i] = best;
  }
  return pred;
}

/** Fraction of predictions equal to the labels. */
export function accuracyOf(pred: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (pred.length !== labels.length)
    throw new DataError(`accuracy: ${pred.length} predictions, ${labels.length} labels`);
  if (pred.length === 0) return NaN;
  let hits = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) hits++;
  return hits / pred.length;
}
