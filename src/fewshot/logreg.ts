/**
 * Multinomial logistic-regression probe: the probabilistic counterpart of the LSR probe, so a
 * probe's NLL and ECE can be reported (docs/spec/evaluation.md §8).
 *
 * Convention (as scikit-learn's LogisticRegression with C = 1/λ, whose objective is
 * C·Σ NLL + ½‖W‖², divided by C):
 *   f(W, b) = Σ_n −log softmax(x̃_n W + b)[y_n] + (λ/2)·‖W‖²_F
 * with the NLL SUMMED over the N train examples (not averaged) and the intercept b unpenalised.
 * x̃ are the features standardised exactly as for the LSR probe (train mean, population std
 * + 1e-5), without the bias-100 column since b is explicit. Fitted by L-BFGS.
 *
 * Parameter vector layout: θ = [W row-major (D, K), b (K)], length D·K + K.
 */
import {
  argmaxRows,
  checkFeatures,
  checkLabels,
  fitStandardiser,
  standardise,
  type Features,
  type Standardiser,
} from './features.js';
import { minimiseLbfgs, type LbfgsResult } from './lbfgs.js';
import { DataError, UsageError } from '../util/errors.js';

/** Options of `fitLogreg`: gradient tolerance, iteration limit, warm start. */
export interface LogregOptions {
  /** Stop when max |∇f| ≤ gradientTolerance · N (i.e. on the per-example mean). Default 1e-6. */
  gradientTolerance?: number;
  /** Default 1000. */
  maxIterations?: number;
  /** Warm start θ (length D·K + K), e.g. the solution at a neighbouring λ. Default zeros. */
  initialParams?: Float64Array;
}

/** A fitted logistic-regression probe: the standardiser, weights (D, K), biases (K) and the L-BFGS result. */
export interface LogregModel {
  numClasses: number;
  dim: number;
  l2: number;
  standardiser: Standardiser;
  /** (D, K) */
  weights: Float64Array;
  /** (K,) */
  bias: Float64Array;
  /** θ = [W, b], reusable as `initialParams`. */
  params: Float64Array;
  /** Objective f at the start and after each L-BFGS step (strictly decreasing). */
  objectiveHistory: number[];
  iterations: number;
  converged: boolean;
  stopReason: LbfgsResult['stopReason'];
  /** (M, K) */
  logits(testX: Features): Float64Array;
  /** Softmax of the logits, (M, K). */
  probabilities(testX: Features): Float64Array;
  /** Predicted classes (N) of test features (N, D). */
  predict(testX: Features): Int32Array;
}

/** x̃ θ: logits (N, K) from standardised x (N, D). */
function logitsOf(params: Float64Array, x: Float64Array, n: number, d: number, k: number): Float64Array {
  const z = new Float64Array(n * k);
  const biasOffset = d * k;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) z[i * k + c] = params[biasOffset + c]!;
    for (let j = 0; j < d; j++) {
      const v = x[i * d + j]!;
      if (v === 0) continue;
      for (let c = 0; c < k; c++) z[i * k + c]! += v * params[j * k + c]!;
    }
  }
  return z;
}

/** Row-wise softmax of (N, K) logits, in place; returns the row log-sum-exps (N,). */
function softmaxRowsInPlace(z: Float64Array, n: number, k: number): Float64Array {
  const lse = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let c = 0; c < k; c++) mx = Math.max(mx, z[i * k + c]!);
    let s = 0;
    for (let c = 0; c < k; c++) s += Math.exp(z[i * k + c]! - mx);
    lse[i] = mx + Math.log(s);
    for (let c = 0; c < k; c++) z[i * k + c] = Math.exp(z[i * k + c]! - lse[i]!);
  }
  return lse;
}

/**
 * f(θ) and ∇f(θ) for standardised features `x` (N, D) and labels `y`:
 * ∇_W = x̃ᵀ(P − Y) + λW, ∇_b = Σ_n (p_n − y_n).
 */
export function logregObjective(
  params: Float64Array,
  x: Float64Array,
  y: ArrayLike<number>,
  dim: number,
  numClasses: number,
  l2: number,
): { value: number; gradient: Float64Array } {
  const n = y.length;
  const d = dim;
  const k = numClasses;
  if (params.length !== d * k + k)
    throw new DataError(`logregObjective: θ has ${params.length} values, expected ${d * k + k}`);
  if (x.length !== n * d) throw new DataError(`logregObjective: x has ${x.length} values, expected N·D = ${n * d}`);
  const p = logitsOf(params, x, n, d, k); // logits, then probabilities (N, K)
  const zTrue = new Float64Array(n);
  for (let i = 0; i < n; i++) zTrue[i] = p[i * k + y[i]!]!;
  const lse = softmaxRowsInPlace(p, n, k);
  let value = 0;
  for (let i = 0; i < n; i++) {
    value += lse[i]! - zTrue[i]!;
    p[i * k + y[i]!]! -= 1; // p becomes P − Y
  }
  const gradient = new Float64Array(params.length);
  const biasOffset = d * k;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < k; c++) gradient[biasOffset + c]! += p[i * k + c]!;
    for (let j = 0; j < d; j++) {
      const v = x[i * d + j]!;
      if (v === 0) continue;
      for (let c = 0; c < k; c++) gradient[j * k + c]! += v * p[i * k + c]!;
    }
  }
  let penalty = 0;
  for (let t = 0; t < biasOffset; t++) {
    penalty += params[t]! * params[t]!;
    gradient[t]! += l2 * params[t]!;
  }
  value += 0.5 * l2 * penalty;
  return { value, gradient };
}

/**
 * Fit an L2-regularised multinomial logistic regression (penalty λ/2·‖W‖², summed NLL, unpenalised bias) to
 * standardised features (N, D) and labels (N) by L-BFGS.
 */
export function fitLogreg(
  trainX: Features,
  trainY: ArrayLike<number>,
  numClasses: number,
  l2: number,
  options: LogregOptions = {},
): LogregModel {
  checkFeatures(trainX, 'fitLogreg trainX');
  checkLabels(trainY, trainX.rows, numClasses, 'fitLogreg trainY');
  if (!(l2 > 0) || !Number.isFinite(l2)) throw new UsageError(`fitLogreg: l2 must be a finite number > 0, got ${l2}`);
  const d = trainX.cols;
  const k = numClasses;
  const n = trainX.rows;
  const standardiser = fitStandardiser(trainX);
  const x = standardise(trainX, standardiser); // (N, D)
  const nParams = d * k + k;
  const x0 = options.initialParams ?? new Float64Array(nParams);
  if (x0.length !== nParams)
    throw new UsageError(`fitLogreg: initialParams has ${x0.length} values, expected ${nParams}`);
  const result = minimiseLbfgs((theta) => logregObjective(theta, x, trainY, d, k, l2), x0, {
    gradientTolerance: (options.gradientTolerance ?? 1e-6) * n,
    maxIterations: options.maxIterations ?? 1000,
  });
  const params = result.x;

  const logits = (testX: Features): Float64Array => {
    checkFeatures(testX, 'logreg testX');
    if (testX.cols !== d)
      throw new DataError(`logreg: test features have ${testX.cols} columns, train features have ${d}`);
    return logitsOf(params, standardise(testX, standardiser), testX.rows, d, k);
  };
  return {
    numClasses: k,
    dim: d,
    l2,
    standardiser,
    weights: params.slice(0, d * k),
    bias: params.slice(d * k),
    params,
    objectiveHistory: result.history,
    iterations: result.iterations,
    converged: result.converged,
    stopReason: result.stopReason,
    logits,
    probabilities: (testX) => {
      const z = logits(testX);
      softmaxRowsInPlace(z, testX.rows, k);
      return z;
    },
    predict: (testX) => argmaxRows(logits(testX), testX.rows, k),
  };
}
