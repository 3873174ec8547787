import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFORMAL_OPTIONS, evaluate, PREDICTION_EVALUATORS } from '../../src/eval/evaluators.js';
import { conformalCurve, probsFromLogits } from '../../src/metrics/index.js';
import { DataError } from '../../src/util/errors.js';
import type { Outputs } from '../../src/vmoe/outputs.js';

/** Outputs whose softmax is exactly the given probability rows (logits = log p), M members stacked. */
function outputsOf(members: number[][][], labels: number[]): Outputs {
  const n = labels.length,
    k = members[0]![0]!.length;
  return {
    n,
    numClasses: k,
    members: members.length,
    logits: Float64Array.from(members.flat(2), Math.log),
    preLogits: new Float32Array(0),
    preLogitsDim: 0,
    labels: Int32Array.from(labels),
    router: [],
    seconds: 0,
  };
}

// Calibration: true-label probabilities 0.9, 0.8, 0.6, 0.3 → LAC scores 1 − p_y = 0.1, 0.2, 0.4, 0.7.
const calib = outputsOf(
  [
    [
      [0.9, 0.1],
      [0.2, 0.8],
      [0.6, 0.4],
      [0.7, 0.3],
    ],
  ],
  [0, 1, 0, 1],
);
// Test: three examples of class 0.
const test = outputsOf(
  [
    [
      [0.75, 0.25],
      [0.45, 0.55],
      [0.2, 0.8],
    ],
  ],
  [0, 0, 0],
);

describe('conformal evaluator', () => {
  it('LAC on a hand case: q̂ is the ceil((n+1)(1-α))-th smallest score; coverage and set sizes by hand', () => {
    const r = evaluate({ outputs: test, calib, calibSource: 'hand' }, ['conformal'], {
      conformal: { methods: ['lac'], alphas: [0.4, 0.2] },
    });
    const [a4, a2] = r.conformal!.lac!;
    // α = 0.4: rank ceil(5 · 0.6) = 3 → q̂ = 0.4; sets {y : p_y ≥ 0.6}: {0}, {}, {1} → coverage 1/3, mean size 2/3
    expect(a4!.alpha).toBe(0.4);
    expect(a4!.quantile_rank).toBe(3);
    expect(a4!.qhat as number).toBeCloseTo(0.4, 12);
    expect(a4!.coverage).toBeCloseTo(1 / 3, 12);
    expect(a4!.mean_set_size).toBeCloseTo(2 / 3, 12);
    // α = 0.2: rank ceil(5 · 0.8) = 4 → q̂ = 0.7; sets {y : p_y ≥ 0.3}: {0}, {0, 1}, {1} → coverage 2/3, mean size 4/3
    expect(a2!.quantile_rank).toBe(4);
    expect(a2!.qhat as number).toBeCloseTo(0.7, 12);
    expect(a2!.coverage).toBeCloseTo(2 / 3, 12);
    expect(a2!.mean_set_size).toBeCloseTo(4 / 3, 12);
    expect(r.conventions.conformal).toMatchObject({ calibration: 'hand', class_conditional: false, randomized: false });
    expect(Object.keys(r.conformal!)).toEqual(['lac']);
  });

  it('equals conformalCurve called directly on the softmax probabilities, for every method', () => {
    const methods = ['lac', 'aps', 'raps'] as const;
    const c = outputsOf(
      [Array.from({ length: 40 }, (_, i) => [0.2 + (i % 7) / 10, 0.1, 0.7 - (i % 7) / 10])],
      Array.from({ length: 40 }, (_, i) => i % 3),
    );
    const t = outputsOf(
      [Array.from({ length: 15 }, (_, i) => [0.5 - (i % 4) / 10, 0.3, 0.2 + (i % 4) / 10])],
      Array.from({ length: 15 }, (_, i) => (i * 2) % 3),
    );
    const r = evaluate({ outputs: t, calib: c }, ['conformal'], {
      conformal: { methods: [...methods], alphas: [0.1, 0.3], seed: 5, randomized: true },
    });
    const probs = (o: Outputs) => probsFromLogits({ data: o.logits, n: o.n, k: o.numClasses });
    for (const method of methods) {
      const direct = conformalCurve(
        { probs: probs(c), labels: c.labels },
        { probs: probs(t), labels: t.labels },
        {
          method,
          alphas: [0.1, 0.3],
          seed: 5,
          randomized: method !== 'lac',
        },
      );
      expect(r.conformal![method]).toEqual(direct);
    }
  });

  it("ensembles: the mean of the members' probabilities", () => {
    const c = outputsOf(
      [
        [
          [0.9, 0.1],
          [0.3, 0.7],
          [0.5, 0.5],
          [0.8, 0.2],
        ],
        [
          [0.7, 0.3],
          [0.1, 0.9],
          [0.3, 0.7],
          [0.4, 0.6],
        ],
      ],
      [0, 1, 0, 1],
    );
    const t = outputsOf(
      [
        [
          [0.6, 0.4],
          [0.5, 0.5],
        ],
        [
          [0.8, 0.2],
          [0.3, 0.7],
        ],
      ],
      [0, 1],
    );
    const r = evaluate({ outputs: t, calib: c }, ['conformal'], { conformal: { methods: ['lac'], alphas: [0.25] } });
    const mean = (o: Outputs) => {
      const p = probsFromLogits({ data: o.logits, n: o.n, k: o.numClasses, m: o.members }).data;
      const size = o.n * o.numClasses;
      return {
        data: Float64Array.from({ length: size }, (_, e) => (p[e]! + p[size + e]!) / 2),
        n: o.n,
        k: o.numClasses,
      };
    };
    const direct = conformalCurve(
      { probs: mean(c), labels: c.labels },
      { probs: mean(t), labels: t.labels },
      { method: 'lac', alphas: [0.25] },
    );
    expect(r.conformal!.lac![0]!.coverage).toBe(direct[0]!.coverage);
    expect(r.conformal!.lac![0]!.qhat as number).toBeCloseTo(direct[0]!.qhat as number, 12);
    // calibration p̄_y: 0.8, 0.8, 0.4, 0.4 → scores 0.2, 0.2, 0.6, 0.6; rank ceil(5 · 0.75) = 4 → q̂ = 0.6
    expect(r.conformal!.lac![0]!.qhat as number).toBeCloseTo(0.6, 12);
    expect(r.conventions.conformal).toMatchObject({ probabilities: expect.stringMatching(/mean of the members/) });
  });

  it('null without calibration data, absent when not asked for; other class counts are a DataError', () => {
    expect(evaluate({ outputs: test }, [...PREDICTION_EVALUATORS, 'conformal']).conformal).toBeNull();
    expect(evaluate({ outputs: test, calib }, PREDICTION_EVALUATORS).conformal).toBeUndefined();
    const three = outputsOf([[[0.5, 0.25, 0.25]]], [0]);
    expect(() => evaluate({ outputs: test, calib: three }, ['conformal'])).toThrow(DataError);
    expect(DEFAULT_CONFORMAL_OPTIONS).toEqual({ methods: ['lac', 'aps', 'raps'], alphas: [0.1] });
  });
});
