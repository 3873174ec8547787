import type { Matrix } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { fitLsr, lsrAccuracyByL2, lsrSweep } from '../../src/fewshot/lsr.js';
import { Rng } from '../../src/util/rng.js';
import {
  cyclicLabels,
  dualSolve,
  primalSolve,
  randomFeatures,
  referenceDesign,
  referenceTargets,
  relativeMaxError,
} from './helpers.js';

function argmax(row: number[]): number {
  return row.indexOf(Math.max(...row));
}

// N ≥ D' = D+1 takes the eigh(XᵀX) route, N < D' the eigh(XXᵀ) route.
const cases = [
  { n: 40, d: 6, k: 3, route: 'primal' },
  { n: 7, d: 6, k: 3, route: 'primal' }, // N = D': the boundary belongs to the primal route
  { n: 12, d: 30, k: 4, route: 'dual' },
  { n: 6, d: 6, k: 2, route: 'dual' },
] as const;
const l2s = [2 ** -10, 1, 2 ** 10, 2 ** 19];
const DEFAULT_GRID = Array.from({ length: 30 }, (_, i) => 2 ** (i - 10));

describe('fitLsr against a direct solve of the regularised normal equations', () => {
  describe.each(cases)('N=$n D=$d K=$k', ({ n, d, k, route }) => {
    const rng = new Rng(n * 100 + d);
    const train = randomFeatures(rng, n, d);
    const trainY = cyclicLabels(n, k);
    const test = randomFeatures(rng, 25, d);
    const model = fitLsr(train, trainY, k);
    const { x, xt } = referenceDesign(train, test);
    const y = referenceTargets(trainY, k);

    it(`takes the ${route} route`, () => {
      expect(model.route).toBe(route);
      expect(model.eigenvalues.length).toBe(route === 'primal' ? d + 1 : n);
    });

    it.each(l2s)('λ=%d: weights, scores and predictions match the direct solve to 1e-8', (l2) => {
      // The dual solve is the well-conditioned direct route when N < D' (XᵀX is singular there).
      const wRef = route === 'primal' ? primalSolve(x, y, l2) : dualSolve(x, y, l2);
      expect(relativeMaxError(model.weights(l2), wRef.to1DArray())).toBeLessThan(1e-8);
      const sRef = xt.mmul(wRef);
      expect(relativeMaxError(model.scores(test, l2), sRef.to1DArray())).toBeLessThan(1e-8);
      expect(Array.from(model.predict(test, l2))).toEqual(sRef.to2DArray().map(argmax));
    });

    it('primal and dual eigendecomposition routes give the same weights (push-through identity)', () => {
      const other = fitLsr(train, trainY, k, { route: route === 'primal' ? 'dual' : 'primal' });
      for (const l2 of [1, 2 ** 10]) {
        expect(relativeMaxError(other.weights(l2), model.weights(l2))).toBeLessThan(1e-8);
      }
    });
  });

  it('N < D: the primal direct solve agrees with the dual one at moderate λ', () => {
    const rng = new Rng(5);
    const train = randomFeatures(rng, 10, 20);
    const trainY = cyclicLabels(10, 3);
    const { x } = referenceDesign(train, train);
    const y = referenceTargets(trainY, 3);
    const w = fitLsr(train, trainY, 3).weights(4);
    expect(relativeMaxError(w, primalSolve(x, y, 4).to1DArray())).toBeLessThan(1e-8);
  });
});

describe('lsrAccuracyByL2 (both evaluation orders) against reference predictions', () => {
  // Few train rows (r = N = 6) and a long grid take the project-test-set-first path; many rows
  // (r = D' = 4) and a short grid take the W-first path.
  it.each([
    { n: 6, d: 20, grid: DEFAULT_GRID },
    { n: 60, d: 3, grid: [2 ** -10, 1] },
  ])('N=$n D=$d, $grid.length λ values', ({ n, d, grid }) => {
    const rng = new Rng(n + d);
    const k = 3;
    const train = randomFeatures(rng, n, d);
    const trainY = cyclicLabels(n, k);
    const test = randomFeatures(rng, 300, d);
    const testY = Int32Array.from({ length: 300 }, () => rng.int(k));
    const { x, xt } = referenceDesign(train, test);
    const y = referenceTargets(trainY, k);
    const expected = grid.map((l2) => {
      const pred = xt
        .mmul(n >= d + 1 ? primalSolve(x, y, l2) : dualSolve(x, y, l2))
        .to2DArray()
        .map(argmax);
      return pred.filter((p, i) => p === testY[i]).length / 300;
    });
    expect(Array.from(lsrAccuracyByL2(fitLsr(train, trainY, k), test, testY, grid))).toEqual(expected);
  });
});

describe('λ → ∞', () => {
  // W(λ) = (XᵀX + λI)⁻¹XᵀY = λ⁻¹(I + XᵀX/λ)⁻¹XᵀY, so λ·W(λ) → XᵀY. Columns of X̃ are centred, so
  // row j of XᵀY is Σ_n x̃_nj(2·[y_n=c] − 1) = 2 n_c m̃_cj (m̃_c: class-c mean of standardised
  // features) and the bias row is 100·Σ_n(2·[y_n=c] − 1) = 100(2n_c − N). Hence
  //   λ·score_c(x) → 100²(2n_c − N) + 2 n_c x̃·m̃_c.
  // The bias part is 10⁴ per unit of class count: with unequal counts the majority class wins for
  // any test point with |x̃·m̃_c| ≪ 10⁴; with equal counts it cancels and the rule is argmax_c x̃·m̃_c.
  const huge = 1e12;

  function limitScores(train: { x: Matrix }, testDesign: Matrix, trainY: Int32Array, k: number): number[][] {
    const n = trainY.length;
    const d = train.x.columns - 1;
    const counts = Array.from({ length: k }, (_, c) => trainY.filter((v) => v === c).length);
    const classMean = Array.from({ length: k }, (_, c) => {
      const m = new Array<number>(d).fill(0);
      for (let i = 0; i < n; i++)
        if (trainY[i] === c) for (let j = 0; j < d; j++) m[j]! += train.x.get(i, j) / counts[c]!;
      return m;
    });
    return testDesign
      .to2DArray()
      .map((row) =>
        classMean.map(
          (m, c) => 1e4 * (2 * counts[c]! - n) + 2 * counts[c]! * m.reduce((s, v, j) => s + v * row[j]!, 0),
        ),
      );
  }

  it.each([
    { name: 'imbalanced, N ≥ D', counts: [6, 3, 2], d: 3 },
    { name: 'imbalanced, N < D', counts: [2, 4, 1], d: 12 },
    { name: 'balanced', counts: [4, 4, 4], d: 3 },
  ])('$name: λ·scores approach the closed-form limit', ({ counts, d }) => {
    const rng = new Rng(counts.join('').length * 7 + d);
    const trainY = Int32Array.from(counts.flatMap((c, cls) => new Array<number>(c).fill(cls)));
    const train = randomFeatures(rng, trainY.length, d);
    const test = randomFeatures(rng, 10, d);
    const { x, xt } = referenceDesign(train, test);
    const expected = limitScores({ x }, xt, trainY, counts.length);
    const scaled = Array.from(fitLsr(train, trainY, counts.length).scores(test, huge), (s) => s * huge);
    expect(relativeMaxError(scaled, expected.flat())).toBeLessThan(1e-5);
  });

  it('imbalanced classes: every test point goes to the majority class, even minority train points', () => {
    // Well-separated clusters so small λ classifies the minority points correctly first.
    const rng = new Rng(11);
    const counts = [2, 7, 3];
    const d = 4;
    const trainY = Int32Array.from(counts.flatMap((c, cls) => new Array<number>(c).fill(cls)));
    const data = new Float64Array(trainY.length * d);
    trainY.forEach((c, i) => {
      for (let j = 0; j < d; j++) data[i * d + j] = (j === c ? 5 : 0) + 0.3 * rng.normal();
    });
    const train = { rows: trainY.length, cols: d, data };
    const model = fitLsr(train, trainY, 3);
    expect(Array.from(model.predict(train, 2 ** -10))).toEqual(Array.from(trainY));
    expect(Array.from(model.predict(train, huge))).toEqual(new Array(trainY.length).fill(1));
  });

  it('balanced classes: the limit rule is argmax_c x̃·m̃_c', () => {
    const rng = new Rng(12);
    const trainY = cyclicLabels(12, 3);
    const train = randomFeatures(rng, 12, 5);
    const test = randomFeatures(rng, 30, 5);
    const { x, xt } = referenceDesign(train, test);
    const expected = limitScores({ x }, xt, trainY, 3).map(argmax);
    expect(Array.from(fitLsr(train, trainY, 3).predict(test, huge))).toEqual(expected);
  });
});

describe('small λ', () => {
  it('N < D′: interpolates, so any labelling of the train set is reproduced exactly', () => {
    const rng = new Rng(21);
    const train = randomFeatures(rng, 15, 40);
    const trainY = Int32Array.from({ length: 15 }, () => rng.int(4));
    trainY[0] = 0;
    trainY[1] = 1;
    trainY[2] = 2;
    trainY[3] = 3;
    expect(Array.from(fitLsr(train, trainY, 4).predict(train, 2 ** -10))).toEqual(Array.from(trainY));
  });

  it('linearly separable clusters (N ≥ D′) are classified perfectly, train and fresh test points', () => {
    const rng = new Rng(22);
    const k = 4;
    const d = 6;
    const make = (n: number) => {
      const y = cyclicLabels(n, k);
      const data = new Float64Array(n * d);
      y.forEach((c, i) => {
        for (let j = 0; j < d; j++) data[i * d + j] = (j === c ? 4 : 0) + (rng.uniform() - 0.5);
      });
      return { x: { rows: n, cols: d, data }, y };
    };
    const train = make(40);
    const test = make(200);
    const acc = lsrSweep(train.x, train.y, test.x, test.y, k, [2 ** -10, 2 ** -5, 1]);
    expect(Array.from(acc)).toEqual([1, 1, 1]);
    expect(fitLsr(train.x, train.y, k).accuracy(train.x, train.y, 2 ** -10)).toBe(1);
  });
});

describe('input checks', () => {
  const train = { rows: 4, cols: 2, data: new Float64Array([0, 1, 2, 3, 4, 5, 6, 7]) };
  it.each([
    ['label out of range', () => fitLsr(train, [0, 1, 2, 0], 2), /label at row 2 is 2/],
    ['label count', () => fitLsr(train, [0, 1, 0], 2), /3 labels for 4 feature rows/],
    [
      'non-finite feature',
      () => fitLsr({ ...train, data: new Float64Array([0, 1, NaN, 3, 4, 5, 6, 7]) }, [0, 1, 0, 1], 2),
      /row 1, column 0 is NaN/,
    ],
    ['one class', () => fitLsr(train, [0, 0, 0, 0], 1), /numClasses must be an integer ≥ 2/],
    ['λ ≤ 0', () => fitLsr(train, [0, 1, 0, 1], 2).weights(0), /l2 must be a finite number > 0/],
    [
      'test width',
      () => fitLsr(train, [0, 1, 0, 1], 2).predict({ rows: 1, cols: 3, data: new Float64Array(3) }, 1),
      /3 columns, train features have 2/,
    ],
  ])('%s', (_name, fn, message) => {
    expect(fn).toThrow(message);
  });
});
