/**
 * Mahalanobis and relative Mahalanobis OOD scores on pre-logits (Lee et al. 2018; Ren et al. 2021).
 * Fit on training features: class means + one shared covariance, and one class-agnostic Gaussian
 * for the relative score. Distances are squared: (x − μ)ᵀ Σ⁻¹ (x − μ), computed as |L⁻¹(x − μ)|²
 * with the Cholesky factor Σ = L Lᵀ (no explicit inverse).
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import type { Features, Labels } from './types.js';
import { DataError, UsageError } from '../util/errors.js';

/** Options of `fitMahalanobis`: the number of classes and the covariance ridge. */
export interface MahalanobisOptions {
  /** number of classes (default max label + 1); every class needs at least one example */
  numClasses?: number;
  /** λ added to the covariance diagonal as λ·trace(Σ)/D (default 1e-6); 0 for none */
  ridge?: number;
}

/**
 * A fitted Mahalanobis model: class means and the Cholesky factors of the shared class covariance and of the
 * global (background) covariance.
 */
export interface MahalanobisModel {
  d: number;
  numClasses: number;
  classMeans: Float64Array; // (C, D)
  globalMean: Float64Array; // (D,)
  /** Cholesky factor of the shared class-conditional covariance, row-major lower triangle */
  cholShared: Float64Array; // (D, D)
  /** Cholesky factor of the class-agnostic covariance */
  cholGlobal: Float64Array; // (D, D)
  whitenedClassMeans: Float64Array; // (C, D) = L⁻¹ μ_c
  whitenedGlobalMean: Float64Array; // (D,) = L0⁻¹ μ_0
  convention: {
    covariance: 'shared across classes, maximum likelihood (divide by N)';
    distance: 'squared Mahalanobis, min over classes';
    relative: 'min_c MD_c(x) − MD_0(x), MD_0 under one class-agnostic Gaussian';
    ridge: number;
    scoreDirection: 'higher = more OOD';
  };
}

function checkFeatures(x: Features, name: string): void {
  if (!Number.isInteger(x.n) || x.n < 1 || !Number.isInteger(x.d) || x.d < 1) {
    throw new DataError(`${name} needs positive integer n and d, got n = ${x.n}, d = ${x.d}`);
  }
  if (x.data.length !== x.n * x.d) {
    throw new DataError(`${name}.data has length ${x.data.length}, expected n·d = ${x.n}·${x.d} = ${x.n * x.d}`);
  }
}

/** Covariance (1/N) Σ_i (x_i − c_i)(x_i − c_i)ᵀ, where c_i is row `centreOf(i)` of `centres`. */ // (D, D)
function covariance(x: Features, centres: Float64Array, centreOf: (i: number) => number): Float64Array {
  const { n, d } = x;
  const cov = new Float64Array(d * d);
  const diff = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const c = centreOf(i) * d;
    for (let a = 0; a < d; a++) diff[a] = x.data[i * d + a]! - centres[c + a]!;
    for (let a = 0; a < d; a++) {
      const da = diff[a]!;
      for (let b = 0; b <= a; b++) cov[a * d + b]! += da * diff[b]!;
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++) {
      cov[a * d + b]! /= n;
      cov[b * d + a] = cov[a * d + b]!;
    }
  }
  return cov;
}

function cholesky(cov: Float64Array, d: number, ridge: number, what: string): { chol: Float64Array; lambda: number } {
  let trace = 0;
  for (let a = 0; a < d; a++) trace += cov[a * d + a]!;
  const lambda = (ridge * trace) / d;
  const m = new Matrix(d, d);
  for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) m.set(a, b, cov[a * d + b]! + (a === b ? lambda : 0));
  const dec = new CholeskyDecomposition(m);
  if (!dec.isPositiveDefinite()) {
    throw new DataError(
      `${what} covariance (${d}×${d}) is not positive definite (features are collinear or too few); ` +
        `pass a larger ridge (now ${ridge}, relative to trace/D)`,
    );
  }
  const l = dec.lowerTriangularMatrix;
  const chol = new Float64Array(d * d);
  for (let a = 0; a < d; a++) for (let b = 0; b <= a; b++) chol[a * d + b] = l.get(a, b);
  return { chol, lambda };
}

/** Solve L y = v (forward substitution) for v at `src[offset..offset+d)`, writing y into `out`. */
function forwardSolve(chol: Float64Array, d: number, src: ArrayLike<number>, offset: number, out: Float64Array): void {
  for (let a = 0; a < d; a++) {
    let s = src[offset + a]!;
    for (let b = 0; b < a; b++) s -= chol[a * d + b]! * out[b]!;
    out[a] = s / chol[a * d + a]!;
  }
}

/**
 * Fit class means and a shared covariance to training features (N, D) with labels (N), for Mahalanobis OOD scores.
 */
export function fitMahalanobis(train: Features, labels: Labels, opts: MahalanobisOptions = {}): MahalanobisModel {
  checkFeatures(train, 'train features');
  const { n, d } = train;
  if (labels.length !== n) throw new DataError(`labels has length ${labels.length}, expected n = ${n}`);
  let maxLabel = -1;
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0) throw new DataError(`labels[${i}] = ${y} is not a class index`);
    maxLabel = Math.max(maxLabel, y);
  }
  const numClasses = opts.numClasses ?? maxLabel + 1;
  if (maxLabel >= numClasses) throw new DataError(`label ${maxLabel} is ≥ numClasses = ${numClasses}`);
  const ridge = opts.ridge ?? 1e-6;
  if (!(ridge >= 0)) throw new UsageError(`ridge must be ≥ 0, got ${ridge}`);

  const classMeans = new Float64Array(numClasses * d);
  const counts = new Float64Array(numClasses);
  const globalMean = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    counts[y]! += 1;
    for (let a = 0; a < d; a++) {
      classMeans[y * d + a]! += train.data[i * d + a]!;
      globalMean[a]! += train.data[i * d + a]!;
    }
  }
  for (let c = 0; c < numClasses; c++) {
    if (counts[c] === 0) throw new DataError(`class ${c} has no training examples; Mahalanobis needs a mean per class`);
    for (let a = 0; a < d; a++) classMeans[c * d + a]! /= counts[c]!;
  }
  for (let a = 0; a < d; a++) globalMean[a]! /= n;

  const shared = cholesky(
    covariance(train, classMeans, (i) => labels[i]!),
    d,
    ridge,
    'shared class-conditional',
  );
  const global = cholesky(
    covariance(train, globalMean, () => 0),
    d,
    ridge,
    'class-agnostic',
  );

  const whitenedClassMeans = new Float64Array(numClasses * d);
  const tmp = new Float64Array(d);
  for (let c = 0; c < numClasses; c++) {
    forwardSolve(shared.chol, d, classMeans, c * d, tmp);
    whitenedClassMeans.set(tmp, c * d);
  }
  const whitenedGlobalMean = new Float64Array(d);
  forwardSolve(global.chol, d, globalMean, 0, whitenedGlobalMean);

  return {
    d,
    numClasses,
    classMeans,
    globalMean,
    cholShared: shared.chol,
    cholGlobal: global.chol,
    whitenedClassMeans,
    whitenedGlobalMean,
    convention: {
      covariance: 'shared across classes, maximum likelihood (divide by N)',
      distance: 'squared Mahalanobis, min over classes',
      relative: 'min_c MD_c(x) − MD_0(x), MD_0 under one class-agnostic Gaussian',
      ridge,
      scoreDirection: 'higher = more OOD',
    },
  };
}

function checkDims(model: MahalanobisModel, x: Features): void {
  checkFeatures(x, 'features');
  if (x.d !== model.d)
    throw new DataError(`features have d = ${x.d}, the Mahalanobis model was fitted with d = ${model.d}`);
}

/** Squared distance to each class mean under the shared covariance. */ // (N, C)
export function classMahalanobisDistances(model: MahalanobisModel, x: Features): Float64Array {
  checkDims(model, x);
  const { d, numClasses } = model;
  const out = new Float64Array(x.n * numClasses);
  const y = new Float64Array(d);
  for (let i = 0; i < x.n; i++) {
    forwardSolve(model.cholShared, d, x.data, i * d, y);
    for (let c = 0; c < numClasses; c++) {
      let s = 0;
      for (let a = 0; a < d; a++) {
        const t = y[a]! - model.whitenedClassMeans[c * d + a]!;
        s += t * t;
      }
      out[i * numClasses + c] = s;
    }
  }
  return out;
}

/** min_c MD_c(x): squared Mahalanobis distance to the closest class mean. */ // (N,)
export function mahalanobisScore(model: MahalanobisModel, x: Features): Float64Array {
  const dist = classMahalanobisDistances(model, x);
  const c = model.numClasses;
  const out = new Float64Array(x.n);
  for (let i = 0; i < x.n; i++) {
    let best = Infinity;
    for (let k = 0; k < c; k++) best = Math.min(best, dist[i * c + k]!);
    out[i] = best;
  }
  return out;
}

/** Relative Mahalanobis: min_c MD_c(x) − MD_0(x). */ // (N,)
export function relativeMahalanobisScore(model: MahalanobisModel, x: Features): Float64Array {
  const out = mahalanobisScore(model, x);
  const { d } = model;
  const y = new Float64Array(d);
  for (let i = 0; i < x.n; i++) {
    forwardSolve(model.cholGlobal, d, x.data, i * d, y);
    let s = 0;
    for (let a = 0; a < d; a++) {
      const t = y[a]! - model.whitenedGlobalMean[a]!;
      s += t * t;
    }
    out[i]! -= s;
  }
  return out;
}
