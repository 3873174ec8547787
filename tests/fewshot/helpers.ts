import { Matrix, solve } from 'ml-matrix';
import type { Features } from '../../src/fewshot/features.js';
import type { Rng } from '../../src/util/rng.js';

/** (rows, cols) standard-normal matrix scaled by `scale` plus a per-column offset, so standardisation matters. */
export function randomFeatures(rng: Rng, rows: number, cols: number, scale = 1): Features {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) data[i * cols + j] = scale * (j + 1) * rng.normal() + 3 * j;
  return { rows, cols, data };
}

/** Labels 0..K−1 cycling, so every class is present. */
export function cyclicLabels(n: number, k: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i % k);
}

/**
 * The LSR design of docs/spec/evaluation.md §8 written out independently of src/: standardise with the train mean and
 * population std + 1e-5, append the bias feature 100. Returns the design matrices as ml-matrix.
 */
export function referenceDesign(train: Features, test: Features): { x: Matrix; xt: Matrix } {
  const d = train.cols;
  const mean = new Array<number>(d).fill(0);
  const std = new Array<number>(d).fill(0);
  for (let i = 0; i < train.rows; i++) for (let j = 0; j < d; j++) mean[j]! += train.data[i * d + j]! / train.rows;
  for (let i = 0; i < train.rows; i++)
    for (let j = 0; j < d; j++) std[j]! += (train.data[i * d + j]! - mean[j]!) ** 2 / train.rows;
  const sd = std.map((v) => Math.sqrt(v) + 1e-5);
  const build = (f: Features) =>
    new Matrix(
      Array.from({ length: f.rows }, (_, i) => [
        ...Array.from({ length: d }, (_, j) => (f.data[i * d + j]! - mean[j]!) / sd[j]!),
        100,
      ]),
    );
  return { x: build(train), xt: build(test) };
}

export function referenceTargets(y: ArrayLike<number>, k: number): Matrix {
  return new Matrix(
    Array.from({ length: y.length }, (_, i) => Array.from({ length: k }, (_, c) => (c === y[i] ? 1 : -1))),
  );
}

/** W from the primal normal equations (XᵀX + λI) W = XᵀY, by LU. */
export function primalSolve(x: Matrix, y: Matrix, l2: number): Matrix {
  const a = x.transpose().mmul(x).add(Matrix.eye(x.columns).mul(l2));
  return solve(a, x.transpose().mmul(y));
}

/** W = Xᵀ A with (XXᵀ + λI) A = Y, by LU. */
export function dualSolve(x: Matrix, y: Matrix, l2: number): Matrix {
  const a = x.mmul(x.transpose()).add(Matrix.eye(x.rows).mul(l2));
  return x.transpose().mmul(solve(a, y));
}

/** max |a − b| / max |b| */
export function relativeMaxError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}
