/**
 * Plain-array inputs shared by every metric. Metrics never see tensors: a model's outputs arrive as
 * row-major typed arrays with explicit dimensions (see docs/architecture.md §2, "The Outputs contract").
 */
import { DataError } from '../util/errors.js';

/**
 * Row-major class scores — logits or probabilities.
 *
 * - single model: `m` absent (or 1), `data.length = n·k`, entry (i, c) at `i·k + c`        // (N, K)
 * - ensemble:     `data.length = m·n·k`, entry (member j, example i, class c) at `(j·n + i)·k + c` // (M, N, K)
 *
 * Probabilities can be fed to the log-space functions as logits via `logitsFromProbs` (log p is a
 * valid logit vector: softmax(log p) = p when p sums to 1; zero probabilities become −Infinity).
 */
export interface ClassScores {
  data: ArrayLike<number>;
  /** examples */
  n: number;
  /** classes */
  k: number;
  /** ensemble members; absent means a single model */
  m?: number;
}

/** Logits (N, K), or member logits (M, N, K) when `m` is set; see `ClassScores` for the layout. */
export type Logits = ClassScores;
/** Probabilities (N, K), or member probabilities (M, N, K) when `m` is set; see `ClassScores` for the layout. */
export type Probs = ClassScores;

/** Integer class labels in [0, k), length n. */
export type Labels = ArrayLike<number>;

/** Row-major feature matrix (e.g. pre-logits). Entry (i, j) at `i·d + j`. */ // (N, D)
export interface Features {
  data: ArrayLike<number>;
  n: number;
  d: number;
}

/** @internal Members M of scores (1 when `m` is absent). */
export function members(x: ClassScores): number {
  return x.m ?? 1;
}

/** @internal Throws unless n, k, m are positive integers and `data` holds M·N·K entries. */
export function checkScores(x: ClassScores, name = 'scores'): void {
  const m = members(x);
  for (const [field, v] of [
    ['n', x.n],
    ['k', x.k],
    ['m', m],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new DataError(`${name}.${field} must be a positive integer, got ${v}`);
    }
  }
  if (x.data.length !== m * x.n * x.k) {
    throw new DataError(
      `${name}.data has length ${x.data.length}, expected m·n·k = ${m}·${x.n}·${x.k} = ${m * x.n * x.k}`,
    );
  }
}

/** @internal `checkScores`, and throws unless there is a single member (M = 1). */
export function checkSingle(x: ClassScores, name = 'scores'): void {
  checkScores(x, name);
  if (members(x) !== 1) {
    throw new DataError(
      `${name} has m = ${x.m} members; this function takes one predictive distribution (N, K) — ` +
        `average the members first (meanProbs)`,
    );
  }
}

/** @internal Throws unless `labels` has length n and every label is an integer in [0, k). */
export function checkLabels(labels: Labels, n: number, k: number, name = 'labels'): void {
  if (labels.length !== n) {
    throw new DataError(`${name} has length ${labels.length}, expected n = ${n}`);
  }
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= k) {
      throw new DataError(`${name}[${i}] = ${y} is not a class index in [0, ${k})`);
    }
  }
}

/** @internal Throws unless two arrays have the same, non-zero length. */
export function checkSameLength(a: ArrayLike<unknown>, b: ArrayLike<unknown>, nameA: string, nameB: string): void {
  if (a.length !== b.length) {
    throw new DataError(`${nameA} has length ${a.length} but ${nameB} has length ${b.length}`);
  }
  if (a.length === 0) throw new DataError(`${nameA} is empty`);
}
