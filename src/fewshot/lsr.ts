/**
 * Closed-form regularised least-squares probe (docs/spec/evaluation.md §8, after big_vision's fewshot_lsr).
 *
 * Features are standardised with the few-shot train set's mean and population std (+1e-5), a
 * constant bias feature 100 is appended (large, so the ridge penalty barely touches the bias),
 * targets are 2·onehot − 1, and W(λ) = (XᵀX + λI)⁻¹ XᵀY. One symmetric eigendecomposition —
 * of XᵀX when N ≥ D' (primal) or of XXᵀ when N < D' (dual, push-through identity
 * W = Xᵀ(XXᵀ + λI)⁻¹Y) — serves every λ, so a 30-value sweep costs one decomposition.
 * D' = D + 1 counts the bias column, as in the reference.
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import {
  accuracyOf,
  argmaxRows,
  checkFeatures,
  checkLabels,
  fitStandardiser,
  standardise,
  type Features,
  type Standardiser,
} from './features.js';
import { DataError, UsageError } from '../util/errors.js';

export const LSR_BIAS_FEATURE = 100;

/** How the least-squares probe is solved: `primal` (eigendecomposition of XᵀX, when N ≥ D') or `dual` (of XXᵀ). */
export type LsrRoute = 'primal' | 'dual';

/** Options of `fitLsr`. */
export interface LsrOptions {
  /** Force a route (for tests); default: primal when N ≥ D', dual otherwise. */
  route?: LsrRoute;
}

/**
 * A fitted least-squares probe: the standardiser and one eigendecomposition from which the weights for any λ
 * follow.
 */
export interface LsrModel {
  numClasses: number;
  /** Input feature dimension D (without the bias column). */
  dim: number;
  route: LsrRoute;
  standardiser: Standardiser;
  /** Eigenvalues of XᵀX (primal, length D') or XXᵀ (dual, length N), roundoff negatives clamped to 0. */
  eigenvalues: Float64Array;
  /** W(λ) = lhs · diag(1/(eigenvalues+λ)) · rhs; lhs (D', r) is Q or XᵀU, rhs (r, K) is QᵀXᵀY or UᵀY. */
  factors: { lhs: Float64Array; rhs: Float64Array; rank: number };
  /** W(λ), shape (D', K); the last row multiplies the bias feature. */
  weights(l2: number): Float64Array;
  /** Test scores X̃_test W(λ), shape (M, K). */
  scores(testX: Features, l2: number): Float64Array;
  /** Predicted classes (N) of test features (N, D) with penalty λ = `l2`. */
  predict(testX: Features, l2: number): Int32Array;
  /** Accuracy on test features (N, D) and labels (N) with penalty λ = `l2`. */
  accuracy(testX: Features, testY: ArrayLike<number>, l2: number): number;
}

/** Standardised features with the bias column, shape (N, D+1). */
export function lsrDesignMatrix(x: Features, s: Standardiser): Float64Array {
  return standardise(x, s, LSR_BIAS_FEATURE);
}

/** 2·onehot − 1, shape (N, K). */
export function lsrTargets(y: ArrayLike<number>, numClasses: number): Float64Array {
  const t = new Float64Array(y.length * numClasses).fill(-1);
  for (let i = 0; i < y.length; i++) t[i * numClasses + y[i]!] = 1;
  return t;
}

/** Eigenpairs of a symmetric (n, n) row-major matrix; vectors are the columns of `vectors` (n, n). */
function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const evd = new EigenvalueDecomposition(Matrix.from1DArray(n, n, a), { assumeSymmetric: true });
  // XᵀX and XXᵀ are PSD; tiny negative eigenvalues are roundoff and would make Λ+λ ≤ 0 at small λ.
  const values = Float64Array.from(evd.realEigenvalues, (v) => Math.max(v, 0));
  const vectors = Float64Array.from(evd.eigenvectorMatrix.to1DArray());
  return { values, vectors };
}

/** Fits the probe's λ-independent part: standardiser, eigendecomposition and the two factors of W. */
export function fitLsr(
  trainX: Features,
  trainY: ArrayLike<number>,
  numClasses: number,
  options: LsrOptions = {},
): LsrModel {
  checkFeatures(trainX, 'fitLsr trainX');
  checkLabels(trainY, trainX.rows, numClasses, 'fitLsr trainY');
  const standardiser = fitStandardiser(trainX);
  const n = trainX.rows;
  const dp = trainX.cols + 1;
  const k = numClasses;
  const x = lsrDesignMatrix(trainX, standardiser); // (N, D')
  const y = lsrTargets(trainY, k); // (N, K)
  const route: LsrRoute = options.route ?? (n >= dp ? 'primal' : 'dual');

  // W(λ) = lhs · diag(1/(Λ+λ)) · rhs, lhs (D', r), rhs (r, K), r = D' (primal) or N (dual).
  let r: number;
  let lhs: Float64Array;
  let rhs: Float64Array;
  let eigenvalues: Float64Array;
  if (route === 'primal') {
    const xtx = new Float64Array(dp * dp); // (D', D')
    for (let i = 0; i < n; i++) {
      const row = i * dp;
      for (let a = 0; a < dp; a++) {
        const xa = x[row + a]!;
        if (xa === 0) continue;
        for (let b = a; b < dp; b++) xtx[a * dp + b]! += xa * x[row + b]!;
      }
    }
    for (let a = 0; a < dp; a++) for (let b = 0; b < a; b++) xtx[a * dp + b] = xtx[b * dp + a]!;
    const { values, vectors: q } = symmetricEigen(xtx, dp); // q (D', D')
    const xty = new Float64Array(dp * k); // (D', K)
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < dp; a++) {
        const xa = x[i * dp + a]!;
        for (let c = 0; c < k; c++) xty[a * k + c]! += xa * y[i * k + c]!;
      }
    }
    r = dp;
    lhs = q;
    rhs = new Float64Array(r * k); // Qᵀ XᵀY
    for (let a = 0; a < dp; a++) {
      for (let e = 0; e < r; e++) {
        const qae = q[a * r + e]!;
        for (let c = 0; c < k; c++) rhs[e * k + c]! += qae * xty[a * k + c]!;
      }
    }
    eigenvalues = values;
  } else {
    const xxt = new Float64Array(n * n); // (N, N)
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        let s = 0;
        for (let a = 0; a < dp; a++) s += x[i * dp + a]! * x[j * dp + a]!;
        xxt[i * n + j] = s;
        xxt[j * n + i] = s;
      }
    }
    const { values, vectors: u } = symmetricEigen(xxt, n); // u (N, N)
    r = n;
    lhs = new Float64Array(dp * r); // Xᵀ U
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < dp; a++) {
        const xia = x[i * dp + a]!;
        for (let e = 0; e < r; e++) lhs[a * r + e]! += xia * u[i * r + e]!;
      }
    }
    rhs = new Float64Array(r * k); // Uᵀ Y
    for (let i = 0; i < n; i++) {
      for (let e = 0; e < r; e++) {
        const uie = u[i * r + e]!;
        for (let c = 0; c < k; c++) rhs[e * k + c]! += uie * y[i * k + c]!;
      }
    }
    eigenvalues = values;
  }

  const weights = (l2: number): Float64Array => {
    if (!(l2 > 0) || !Number.isFinite(l2)) throw new UsageError(`LSR: l2 must be a finite number > 0, got ${l2}`);
    return matmul(lhs, dp, r, scaleRows(rhs, eigenvalues, l2, k), k); // (D', K)
  };

  const scores = (testX: Features, l2: number): Float64Array => {
    checkFeatures(testX, 'LSR testX');
    if (testX.cols !== trainX.cols) {
      throw new DataError(`LSR: test features have ${testX.cols} columns, train features have ${trainX.cols}`);
    }
    return matmul(lsrDesignMatrix(testX, standardiser), testX.rows, dp, weights(l2), k);
  };

  return {
    numClasses: k,
    dim: trainX.cols,
    route,
    standardiser,
    eigenvalues,
    factors: { lhs, rhs, rank: r },
    weights,
    scores,
    predict: (testX, l2) => argmaxRows(scores(testX, l2), testX.rows, k),
    accuracy: (testX, testY, l2) => accuracyOf(argmaxRows(scores(testX, l2), testX.rows, k), testY),
  };
}

/** Row-major (m, inner) · (inner, cols) → (m, cols). */
function matmul(a: Float64Array, m: number, inner: number, b: Float64Array, cols: number): Float64Array {
  const out = new Float64Array(m * cols);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < inner; t++) {
      const v = a[i * inner + t]!;
      if (v === 0) continue;
      for (let c = 0; c < cols; c++) out[i * cols + c]! += v * b[t * cols + c]!;
    }
  }
  return out;
}

/** diag(1/(Λ+λ)) · rhs, rhs (r, K). */
function scaleRows(rhs: Float64Array, eigenvalues: Float64Array, l2: number, k: number): Float64Array {
  const out = new Float64Array(rhs.length);
  for (let e = 0; e < eigenvalues.length; e++) {
    const s = 1 / (eigenvalues[e]! + l2);
    for (let c = 0; c < k; c++) out[e * k + c] = s * rhs[e * k + c]!;
  }
  return out;
}

/**
 * Test accuracy of a fitted probe for each λ in `l2s`. The test design matrix is built once;
 * each λ costs one W(λ) and one (M, D')·(D', K) product.
 */
export function lsrAccuracyByL2(
  model: LsrModel,
  testX: Features,
  testY: ArrayLike<number>,
  l2s: readonly number[],
): Float64Array {
  checkFeatures(testX, 'LSR testX');
  checkLabels(testY, testX.rows, model.numClasses, 'LSR testY');
  if (testX.cols !== model.dim) {
    throw new DataError(`LSR: test features have ${testX.cols} columns, train features have ${model.dim}`);
  }
  const dp = model.dim + 1;
  const k = model.numClasses;
  const m = testX.rows;
  const { lhs, rhs, rank: r } = model.factors;
  const xt = lsrDesignMatrix(testX, model.standardiser); // (M, D')
  // Few shots make r = N small: then project the test set onto lhs once, (M, r), and each λ
  // costs M·r·K instead of M·D'·K.
  const projectFirst = m * dp * r + l2s.length * m * r * k < l2s.length * m * dp * k;
  const projected = projectFirst ? matmul(xt, m, dp, lhs, r) : undefined; // (M, r)
  return Float64Array.from(l2s, (l2) => {
    if (!(l2 > 0) || !Number.isFinite(l2)) throw new UsageError(`LSR: l2 must be a finite number > 0, got ${l2}`);
    const s = projected
      ? matmul(projected, m, r, scaleRows(rhs, model.eigenvalues, l2, k), k)
      : matmul(xt, m, dp, model.weights(l2), k);
    return accuracyOf(argmaxRows(s, m, k), testY);
  });
}

/** Fit on (trainX, trainY) once, then test accuracy for each λ in `l2s`. */
export function lsrSweep(
  trainX: Features,
  trainY: ArrayLike<number>,
  testX: Features,
  testY: ArrayLike<number>,
  numClasses: number,
  l2s: readonly number[],
): Float64Array {
  return lsrAccuracyByL2(fitLsr(trainX, trainY, numClasses), testX, testY, l2s);
}
