/**
 * Temperature scaling: p = softmax(z / T), T fitted by minimising NLL on a held-out split.
 * NLL is convex in 1/T, hence unimodal in log T; a golden-section search over log T followed by a
 * comparison with T = 1 guarantees NLL(T*) ≤ NLL(1) on the fit split.
 */
import { ensembleNll } from './likelihood.js';
import { logsumexp } from './softmax.js';
import { type Labels, type Logits, checkLabels, checkScores, members } from './types.js';
import { UsageError } from '../util/errors.js';

/**
 * How temperatures were fitted: `single` (one model), `per-member` (one T per ensemble member) or `pooled` (one T
 * shared by all members).
 */
export type TemperatureMode = 'single' | 'per-member' | 'pooled';

/** Options of `fitTemperature`: the ensemble mode and the search interval and tolerance for log T. */
export interface TemperatureOptions {
  /** Required for ensembles: one T per member (each member's NLL) or one T shared by all (ensemble NLL). */
  mode?: 'per-member' | 'pooled';
  /** search interval for log T (default [−5, 5]) */
  logTRange?: [number, number];
  /** stop when the log-T interval is shorter than this (default 1e-7) */
  tolerance?: number;
}

/**
 * What `fitTemperature` returns: the mode, the temperatures, and the NLL (and ensemble NLL) before and after
 * scaling.
 */
export interface TemperatureFit {
  mode: TemperatureMode;
  /** one per member for 'per-member', else length 1 */
  temperatures: number[];
  /** objective at T = 1 and at the fitted T: single-model NLL, mean member NLL (per-member) or ensemble NLL (pooled) */
  nllBefore: number;
  nllAfter: number;
  /** ensemble NLL −log p̄(y) before and after (equal to nllBefore/After for single and pooled) */
  ensembleNllBefore: number;
  ensembleNllAfter: number;
  convention: {
    scaling: 'softmax(z / T)';
    objective: string;
    search: string;
  };
}

/** z / T for one T, or per member for a list of M temperatures. Same shape as the input. */
export function applyTemperature(logits: Logits, temperature: number | ArrayLike<number>): Logits {
  checkScores(logits, 'logits');
  const m = members(logits);
  const per = logits.n * logits.k;
  const ts = typeof temperature === 'number' ? new Array<number>(m).fill(temperature) : Array.from(temperature);
  if (ts.length !== m) throw new UsageError(`got ${ts.length} temperatures for ${m} members`);
  ts.forEach((t, j) => {
    if (!(t > 0) || !Number.isFinite(t))
      throw new UsageError(`temperature[${j}] = ${t} must be a positive finite number`);
  });
  const data = new Float64Array(m * per);
  for (let j = 0; j < m; j++) {
    const inv = 1 / ts[j]!;
    for (let e = 0; e < per; e++) data[j * per + e] = logits.data[j * per + e]! * inv;
  }
  return { data, n: logits.n, k: logits.k, m: logits.m };
}

/** Mean NLL of member j of `logits` at temperature T, without materialising scaled logits. */
function memberNllAt(logits: Logits, labels: Labels, j: number, t: number): number {
  const { n, k } = logits;
  const row = new Float64Array(k);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const o = (j * n + i) * k;
    for (let c = 0; c < k; c++) row[c] = logits.data[o + c]! / t;
    s += logsumexp(row) - row[labels[i]!]!;
  }
  return s / n;
}

/** Golden-section minimisation of f over [a, b]; returns the best point evaluated. */
function goldenSection(f: (x: number) => number, a: number, b: number, tol: number): { x: number; fx: number } {
  const invPhi = (Math.sqrt(5) - 1) / 2;
  let c = b - invPhi * (b - a);
  let d = a + invPhi * (b - a);
  let fc = f(c);
  let fd = f(d);
  let best = fc <= fd ? { x: c, fx: fc } : { x: d, fx: fd };
  while (b - a > tol) {
    if (fc <= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - invPhi * (b - a);
      fc = f(c);
      if (fc < best.fx) best = { x: c, fx: fc };
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + invPhi * (b - a);
      fd = f(d);
      if (fd < best.fx) best = { x: d, fx: fd };
    }
  }
  // The interval ends are candidates too: the minimum may sit on the boundary.
  for (const x of [a, b]) {
    const fx = f(x);
    if (fx < best.fx) best = { x, fx };
  }
  return best;
}

/** Minimise NLL(T) over log T in the range, never returning worse than T = 1. */
function fitOne(
  nllAt: (t: number) => number,
  range: [number, number],
  tol: number,
): { t: number; before: number; after: number } {
  const before = nllAt(1);
  const best = goldenSection((logT) => nllAt(Math.exp(logT)), range[0], range[1], tol);
  if (!(best.fx < before)) return { t: 1, before, after: before };
  return { t: Math.exp(best.x), before, after: best.fx };
}

/**
 * Fit the temperature on held-out logits (N, K), or member logits (M, N, K) with an explicit `mode`.
 */
export function fitTemperature(logits: Logits, labels: Labels, opts: TemperatureOptions = {}): TemperatureFit {
  checkScores(logits, 'logits');
  checkLabels(labels, logits.n, logits.k);
  const range = opts.logTRange ?? [-5, 5];
  const tol = opts.tolerance ?? 1e-7;
  if (!(range[0] < range[1]) || !(range[0] <= 0 && range[1] >= 0)) {
    throw new UsageError(`logTRange [${range}] must be an increasing interval containing 0 (T = 1)`);
  }
  const m = members(logits);
  const search = `golden section on log T in [${range[0]}, ${range[1]}] (tol ${tol}), then min with T = 1`;
  const scaling = 'softmax(z / T)' as const;

  if (m === 1) {
    const r = fitOne((t) => memberNllAt(logits, labels, 0, t), range, tol);
    return {
      mode: 'single',
      temperatures: [r.t],
      nllBefore: r.before,
      nllAfter: r.after,
      ensembleNllBefore: r.before,
      ensembleNllAfter: r.after,
      convention: { scaling, objective: 'NLL on the fit split', search },
    };
  }
  if (opts.mode !== 'per-member' && opts.mode !== 'pooled') {
    throw new UsageError(
      `logits have m = ${m} members: pass mode 'per-member' (one T per member) or 'pooled' (one T for p̄)`,
    );
  }
  const ensembleBefore = ensembleNll(logits, labels);
  if (opts.mode === 'pooled') {
    const r = fitOne((t) => ensembleNll(applyTemperature(logits, t), labels), range, tol);
    return {
      mode: 'pooled',
      temperatures: [r.t],
      nllBefore: r.before,
      nllAfter: r.after,
      ensembleNllBefore: ensembleBefore,
      ensembleNllAfter: r.after,
      convention: { scaling, objective: 'ensemble NLL −log p̄(y) with one shared T', search },
    };
  }
  const fits = Array.from({ length: m }, (_, j) => fitOne((t) => memberNllAt(logits, labels, j, t), range, tol));
  const temperatures = fits.map((f) => f.t);
  const avg = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  return {
    mode: 'per-member',
    temperatures,
    nllBefore: avg(fits.map((f) => f.before)),
    nllAfter: avg(fits.map((f) => f.after)),
    ensembleNllBefore: ensembleBefore,
    ensembleNllAfter: ensembleNll(applyTemperature(logits, temperatures), labels),
    convention: {
      scaling,
      objective: "each member's own NLL (nllBefore/After are their mean; the ensemble NLL is not guaranteed to fall)",
      search,
    },
  };
}
