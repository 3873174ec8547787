/**
 * Limited-memory BFGS with a backtracking Armijo line search, for smooth unconstrained
 * objectives of a few thousand parameters (the logistic probe). The Armijo condition makes every
 * accepted step lower the objective, so the recorded history is strictly decreasing.
 */

export interface LbfgsOptions {
  /** Stop when max |gradient| ≤ this. */
  gradientTolerance: number;
  /** Stop when an accepted step lowers f by ≤ this · max(1, |f|). Default 1e-13. */
  relativeDecreaseTolerance?: number;
  /** Default 500. */
  maxIterations?: number;
  /** Stored curvature pairs. Default 10. */
  memory?: number;
}

export interface LbfgsResult {
  x: Float64Array;
  value: number;
  gradient: Float64Array;
  /** Objective at the start and after every accepted step. */
  history: number[];
  iterations: number;
  converged: boolean;
  stopReason: 'gradient' | 'no-decrease' | 'line-search' | 'max-iterations';
}

export type ObjectiveFn = (x: Float64Array) => { value: number; gradient: Float64Array };

const ARMIJO_C1 = 1e-4;
const MAX_BACKTRACKS = 60;

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function minimiseLbfgs(objective: ObjectiveFn, x0: Float64Array, options: LbfgsOptions): LbfgsResult {
  const maxIterations = options.maxIterations ?? 500;
  const memory = options.memory ?? 10;
  const ftol = options.relativeDecreaseTolerance ?? 1e-13;
  const n = x0.length;
  let x = Float64Array.from(x0);
  let { value: f, gradient: g } = objective(x);
  if (!Number.isFinite(f)) throw new Error(`minimiseLbfgs: objective at the starting point is ${f}`);
  const history = [f];
  const sList: Float64Array[] = [];
  const yList: Float64Array[] = [];
  const rhoList: number[] = [];
  const d = new Float64Array(n);
  const alpha = new Float64Array(memory);

  for (let iter = 0; iter < maxIterations; iter++) {
    if (maxAbs(g) <= options.gradientTolerance) {
      return { x, value: f, gradient: g, history, iterations: iter, converged: true, stopReason: 'gradient' };
    }
    // Two-loop recursion: d = −H g.
    for (let i = 0; i < n; i++) d[i] = -g[i]!;
    const m = sList.length;
    for (let j = m - 1; j >= 0; j--) {
      alpha[j] = rhoList[j]! * dot(sList[j]!, d);
      const yj = yList[j]!;
      for (let i = 0; i < n; i++) d[i]! -= alpha[j]! * yj[i]!;
    }
    const gamma =
      m > 0 ? dot(sList[m - 1]!, yList[m - 1]!) / dot(yList[m - 1]!, yList[m - 1]!) : 1 / Math.sqrt(dot(g, g));
    for (let i = 0; i < n; i++) d[i]! *= gamma;
    for (let j = 0; j < m; j++) {
      const beta = rhoList[j]! * dot(yList[j]!, d);
      const sj = sList[j]!;
      for (let i = 0; i < n; i++) d[i]! += (alpha[j]! - beta) * sj[i]!;
    }
    let slope = dot(g, d);
    if (!(slope < 0)) {
      // Curvature memory went bad: restart from steepest descent.
      sList.length = yList.length = rhoList.length = 0;
      const scale = 1 / Math.sqrt(dot(g, g));
      for (let i = 0; i < n; i++) d[i] = -g[i]! * scale;
      slope = dot(g, d);
    }

    let t = 1;
    let accepted = false;
    let xNew = x;
    let fNew = f;
    let gNew = g;
    for (let bt = 0; bt < MAX_BACKTRACKS; bt++) {
      xNew = new Float64Array(n);
      for (let i = 0; i < n; i++) xNew[i] = x[i]! + t * d[i]!;
      const r = objective(xNew);
      if (Number.isFinite(r.value) && r.value <= f + ARMIJO_C1 * t * slope && r.value < f) {
        fNew = r.value;
        gNew = r.gradient;
        accepted = true;
        break;
      }
      t *= 0.5;
    }
    if (!accepted) {
      return { x, value: f, gradient: g, history, iterations: iter, converged: false, stopReason: 'line-search' };
    }

    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = xNew[i]! - x[i]!;
      y[i] = gNew[i]! - g[i]!;
    }
    const sy = dot(s, y);
    // Armijo alone does not guarantee sᵀy > 0; skipping such pairs keeps H positive definite.
    if (sy > 1e-12 * Math.sqrt(dot(s, s) * dot(y, y))) {
      if (sList.length === memory) {
        sList.shift();
        yList.shift();
        rhoList.shift();
      }
      sList.push(s);
      yList.push(y);
      rhoList.push(1 / sy);
    }
    const decrease = f - fNew;
    x = xNew;
    f = fNew;
    g = gNew;
    history.push(f);
    if (decrease <= ftol * Math.max(1, Math.abs(f))) {
      const converged = maxAbs(g) <= options.gradientTolerance;
      return {
        x,
        value: f,
        gradient: g,
        history,
        iterations: iter + 1,
        converged,
        stopReason: converged ? 'gradient' : 'no-decrease',
      };
    }
  }
  const converged = maxAbs(g) <= options.gradientTolerance;
  return {
    x,
    value: f,
    gradient: g,
    history,
    iterations: maxIterations,
    converged,
    stopReason: converged ? 'gradient' : 'max-iterations',
  };
}
