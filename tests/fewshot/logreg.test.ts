import { describe, expect, it } from 'vitest';
import { fitStandardiser, standardise } from '../../src/fewshot/features.js';
import { minimiseLbfgs } from '../../src/fewshot/lbfgs.js';
import { fitLogreg, logregObjective } from '../../src/fewshot/logreg.js';
import { Rng } from '../../src/util/rng.js';
import { cyclicLabels, randomFeatures } from './helpers.js';

function randomParams(rng: Rng, n: number, scale = 0.5): Float64Array {
  return Float64Array.from({ length: n }, () => scale * rng.normal());
}

describe('logregObjective', () => {
  it('θ = 0 gives N·log K and zero penalty', () => {
    const x = new Float64Array([1, 2, 3, 4, 5, 6]); // (3, 2)
    const { value } = logregObjective(new Float64Array(2 * 4 + 4), x, [0, 3, 1], 2, 4, 10);
    expect(value).toBeCloseTo(3 * Math.log(4), 12);
  });

  it('hand case: one feature, two classes, penalty on W only', () => {
    // x = [2], y = 0, W = [1, −1], b = [0.5, 7]: logits [2.5, 5]; NLL = log(e^2.5 + e^5) − 2.5;
    // penalty λ/2·(1 + 1) = λ with λ = 3; the bias (7) is not penalised.
    const { value } = logregObjective(new Float64Array([1, -1, 0.5, 7]), new Float64Array([2]), [0], 1, 2, 3);
    expect(value).toBeCloseTo(Math.log(Math.exp(2.5) + Math.exp(5)) - 2.5 + 3, 12);
  });

  it.each([
    { n: 9, d: 4, k: 3, l2: 0.7 },
    { n: 5, d: 7, k: 5, l2: 2 ** -10 },
    { n: 20, d: 2, k: 2, l2: 64 },
  ])('gradient matches central finite differences (N=$n D=$d K=$k λ=$l2)', ({ n, d, k, l2 }) => {
    const rng = new Rng(n + d + k);
    const x = randomFeatures(rng, n, d, 0.5).data as Float64Array;
    const y = cyclicLabels(n, k);
    const theta = randomParams(rng, d * k + k);
    const { gradient } = logregObjective(theta, x, y, d, k, l2);
    const h = 1e-5;
    for (let t = 0; t < theta.length; t++) {
      const plus = Float64Array.from(theta);
      const minus = Float64Array.from(theta);
      plus[t]! += h;
      minus[t]! -= h;
      const fd = (logregObjective(plus, x, y, d, k, l2).value - logregObjective(minus, x, y, d, k, l2).value) / (2 * h);
      expect(Math.abs(gradient[t]! - fd)).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
    }
  });
});

describe('fitLogreg', () => {
  const rng = new Rng(31);
  const n = 30;
  const d = 5;
  const k = 3;
  const train = randomFeatures(rng, n, d);
  const trainY = Int32Array.from({ length: n }, (_, i) => (i < 15 ? 0 : i < 25 ? 1 : 2));

  it.each([2 ** -6, 1, 2 ** 6])(
    'λ=%d: the objective decreases strictly at every step and ends at a stationary point',
    (l2) => {
      const model = fitLogreg(train, trainY, k, l2);
      const h = model.objectiveHistory;
      expect(h.length).toBeGreaterThan(2);
      for (let i = 1; i < h.length; i++) expect(h[i]!).toBeLessThan(h[i - 1]!);
      expect(h[0]).toBeCloseTo(n * Math.log(k), 10); // starts from θ = 0
      expect(model.converged).toBe(true);
    },
  );

  it('first-order conditions of Σ NLL + λ/2‖W‖² (C = 1/λ) hold, computed outside the fitter', () => {
    const l2 = 0.5;
    const model = fitLogreg(train, trainY, k, l2);
    const xs = standardise(train, fitStandardiser(train)); // (N, D)
    // Standardisation is affine with the train statistics, so refitting them here is the same map.
    const p = model.probabilities(train); // (N, K)
    const gradW = new Float64Array(d * k);
    const gradB = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < k; c++) {
        const r = p[i * k + c]! - (trainY[i] === c ? 1 : 0);
        gradB[c]! += r;
        for (let j = 0; j < d; j++) gradW[j * k + c]! += xs[i * d + j]! * r;
      }
    }
    for (let t = 0; t < d * k; t++) expect(Math.abs(gradW[t]! + l2 * model.weights[t]!)).toBeLessThan(1e-4);
    // ∇_b = 0 ⇒ predicted class totals on the train set equal the class counts.
    expect(Array.from(gradB, Math.abs).every((v) => v < 1e-4)).toBe(true);
    // Σ_c (p − y) = 0 per row, so λ Σ_c W_jc = 0: every row of W sums to zero.
    for (let j = 0; j < d; j++) {
      const rowSum = [0, 1, 2].reduce((s, c) => s + model.weights[j * k + c]!, 0);
      expect(Math.abs(rowSum)).toBeLessThan(1e-5);
    }
  });

  it('huge λ: W → 0 and the probabilities → the train class frequencies (unpenalised bias)', () => {
    const model = fitLogreg(train, trainY, k, 1e9);
    const p = model.probabilities(randomFeatures(rng, 4, d));
    for (let i = 0; i < 4; i++) {
      expect(p[i * k]).toBeCloseTo(15 / 30, 5);
      expect(p[i * k + 1]).toBeCloseTo(10 / 30, 5);
      expect(p[i * k + 2]).toBeCloseTo(5 / 30, 5);
    }
  });

  it('separable clusters are classified perfectly at small λ, with confident probabilities', () => {
    const r = new Rng(32);
    const make = (m: number) => {
      const y = cyclicLabels(m, 3);
      const data = new Float64Array(m * 4);
      y.forEach((c, i) => {
        for (let j = 0; j < 4; j++) data[i * 4 + j] = (j === c ? 4 : 0) + (r.uniform() - 0.5);
      });
      return { x: { rows: m, cols: 4, data }, y };
    };
    const tr = make(30);
    const te = make(90);
    const model = fitLogreg(tr.x, tr.y, 3, 2 ** -6);
    expect(Array.from(model.predict(te.x))).toEqual(Array.from(te.y));
    const p = model.probabilities(te.x);
    for (let i = 0; i < te.x.rows; i++) expect(p[i * 3 + te.y[i]!]!).toBeGreaterThan(0.9);
  });

  it('probabilities are a softmax of the logits', () => {
    const model = fitLogreg(train, trainY, k, 1);
    const z = model.logits(train);
    const p = model.probabilities(train);
    for (let i = 0; i < n; i++) {
      const e = [0, 1, 2].map((c) => Math.exp(z[i * k + c]!));
      const s = e[0]! + e[1]! + e[2]!;
      for (let c = 0; c < k; c++) expect(p[i * k + c]).toBeCloseTo(e[c]! / s, 12);
    }
  });

  it('rejects λ ≤ 0 and a wrong warm start', () => {
    expect(() => fitLogreg(train, trainY, k, 0)).toThrow(/l2 must be a finite number > 0/);
    expect(() => fitLogreg(train, trainY, k, 1, { initialParams: new Float64Array(3) })).toThrow(
      /initialParams has 3 values, expected 18/,
    );
  });
});

describe('minimiseLbfgs', () => {
  it('finds the minimiser A⁻¹b of a convex quadratic ½xᵀAx − bᵀx', () => {
    // A = [[4, 1, 0], [1, 3, 1], [0, 1, 2]], b = [1, 2, 3]; by hand (eliminate x and z via rows 1 and 3, then 9y = 1): x = [2/9, 1/9, 13/9]
    const A = [
      [4, 1, 0],
      [1, 3, 1],
      [0, 1, 2],
    ];
    const b = [1, 2, 3];
    const objective = (x: Float64Array) => {
      const ax = A.map((row) => row.reduce((s, v, j) => s + v * x[j]!, 0));
      return {
        value: 0.5 * ax.reduce((s, v, i) => s + v * x[i]!, 0) - b.reduce((s, v, i) => s + v * x[i]!, 0),
        gradient: Float64Array.from(ax, (v, i) => v - b[i]!),
      };
    };
    const r = minimiseLbfgs(objective, new Float64Array(3), { gradientTolerance: 1e-8 });
    expect(r.converged).toBe(true);
    const expected = [2 / 9, 1 / 9, 13 / 9];
    expected.forEach((v, i) => expect(r.x[i]).toBeCloseTo(v, 8));
  });

  it('minimises the Rosenbrock function to (1, 1)', () => {
    const objective = (x: Float64Array) => {
      const [a, b] = [x[0]!, x[1]!];
      return {
        value: (1 - a) ** 2 + 100 * (b - a * a) ** 2,
        gradient: new Float64Array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)]),
      };
    };
    const r = minimiseLbfgs(objective, new Float64Array([-1.2, 1]), { gradientTolerance: 1e-9, maxIterations: 500 });
    expect(r.x[0]).toBeCloseTo(1, 6);
    expect(r.x[1]).toBeCloseTo(1, 6);
  });
});
