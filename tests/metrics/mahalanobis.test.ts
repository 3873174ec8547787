import { describe, expect, it } from 'vitest';
import { Matrix, inverse } from 'ml-matrix';
import {
  classMahalanobisDistances,
  fitMahalanobis,
  mahalanobisScore,
  relativeMahalanobisScore,
} from '../../src/metrics/mahalanobis.js';
import { Rng } from '../../src/util/rng.js';

// Class 0 around (0, 0), class 1 around (10, 0), offsets (±1, 0), (0, ±1):
// shared covariance diag(1/2, 1/2); global mean (5, 0), global covariance diag(204/8, 1/2).
const offsets = [
  [1, 0],
  [-1, 0],
  [0, 1],
  [0, -1],
];
const train = {
  data: [...offsets.flat(), ...offsets.flatMap(([a, b]) => [a! + 10, b!])],
  n: 8,
  d: 2,
};
const trainLabels = [0, 0, 0, 0, 1, 1, 1, 1];

describe('Mahalanobis hand case', () => {
  const model = fitMahalanobis(train, trainLabels, { ridge: 0 });

  it.each([
    { x: [0, 2], md: [4 / 0.5, (100 + 4) / 0.5], md0: 25 / 25.5 + 4 / 0.5 },
    { x: [10, 0], md: [100 / 0.5, 0], md0: 25 / 25.5 },
    { x: [5, -1], md: [(25 + 1) / 0.5, (25 + 1) / 0.5], md0: 1 / 0.5 },
  ])('x = $x', ({ x, md, md0 }) => {
    const feats = { data: x, n: 1, d: 2 };
    const dist = classMahalanobisDistances(model, feats);
    expect(dist[0]).toBeCloseTo(md[0]!, 12);
    expect(dist[1]).toBeCloseTo(md[1]!, 12);
    expect(mahalanobisScore(model, feats)[0]).toBeCloseTo(Math.min(...md), 12);
    expect(relativeMahalanobisScore(model, feats)[0]).toBeCloseTo(Math.min(...md) - md0, 12);
  });

  it('the default ridge changes the hand values only at the 1e-6 level', () => {
    const ridged = fitMahalanobis(train, trainLabels);
    expect(ridged.convention.ridge).toBe(1e-6);
    expect(mahalanobisScore(ridged, { data: [0, 2], n: 1, d: 2 })[0]).toBeCloseTo(8, 4);
  });
});

describe('Mahalanobis on random correlated features', () => {
  it('equals (x − μ_c)ᵀ Σ⁻¹ (x − μ_c) with Σ inverted directly', () => {
    const rng = new Rng(1);
    const d = 6;
    const k = 3;
    const n = 300;
    const mix = Array.from({ length: d * d }, () => rng.normal());
    const data = new Float64Array(n * d);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % k;
      const z = Array.from({ length: d }, () => rng.normal());
      for (let a = 0; a < d; a++) {
        let s = 3 * labels[i]! * (a === 0 ? 1 : 0);
        for (let b = 0; b < d; b++) s += mix[a * d + b]! * z[b]!;
        data[i * d + a] = s;
      }
    }
    const model = fitMahalanobis({ data, n, d }, labels, { ridge: 0 });
    // reference: means and covariance written out, inverted by ml-matrix
    const means = Array.from({ length: k }, (_, c) => {
      const rows = [...Array(n).keys()].filter((i) => labels[i] === c);
      return Array.from({ length: d }, (_, a) => rows.reduce((s, i) => s + data[i * d + a]!, 0) / rows.length);
    });
    const cov = Matrix.zeros(d, d);
    for (let i = 0; i < n; i++) {
      const v = Matrix.columnVector(Array.from({ length: d }, (_, a) => data[i * d + a]! - means[labels[i]!]![a]!));
      cov.add(v.mmul(v.transpose()));
    }
    const prec = inverse(cov.div(n));
    const test = Array.from({ length: 5 * d }, () => 2 * rng.normal());
    const dist = classMahalanobisDistances(model, { data: test, n: 5, d });
    for (let i = 0; i < 5; i++) {
      for (let c = 0; c < k; c++) {
        const v = Matrix.columnVector(Array.from({ length: d }, (_, a) => test[i * d + a]! - means[c]![a]!));
        expect(dist[i * k + c]).toBeCloseTo(v.transpose().mmul(prec).mmul(v).get(0, 0), 8);
      }
    }
  });

  it('points far from the training data score higher', () => {
    const model = fitMahalanobis(train, trainLabels);
    const s = mahalanobisScore(model, { data: [0.1, 0.1, 50, 50], n: 2, d: 2 });
    expect(s[1]).toBeGreaterThan(s[0]!);
  });
});

describe('Mahalanobis validation', () => {
  it.each([
    {
      name: 'empty class',
      fit: () => fitMahalanobis(train, trainLabels, { numClasses: 3 }),
      msg: /class 2 has no training examples/,
    },
    {
      name: 'bad shape',
      fit: () => fitMahalanobis({ data: [1, 2, 3], n: 2, d: 2 }, [0, 1]),
      msg: /length 3, expected n·d/,
    },
    {
      name: 'collinear features without ridge',
      fit: () => fitMahalanobis({ data: [1, 2, 2, 4, 3, 6, 4, 8], n: 4, d: 2 }, [0, 0, 1, 1], { ridge: 0 }),
      msg: /not positive definite.*ridge/,
    },
  ])('$name', ({ fit, msg }) => {
    expect(fit).toThrow(msg);
  });

  it('rejects test features of another width', () => {
    const model = fitMahalanobis(train, trainLabels);
    expect(() => mahalanobisScore(model, { data: [1, 2, 3], n: 1, d: 3 })).toThrow(/d = 3.*d = 2/);
  });
});
