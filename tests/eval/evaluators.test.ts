/** The evaluators chosen by name and the one report they merge into (src/eval/evaluators.ts). */
import { describe, expect, it } from 'vitest';
import { EVALUATOR_NAMES, PREDICTION_EVALUATORS, evaluate, evaluatorNames } from '../../src/eval/evaluators.js';
import { reportJson } from '../../src/eval/report.js';
import { UsageError } from '../../src/util/errors.js';
import type { Outputs } from '../../src/vmoe/outputs.js';

function outputs(logits: number[][][], labels: number[], router: Outputs['router'] = []): Outputs {
  const M = logits.length,
    N = logits[0]!.length,
    K = logits[0]![0]!.length;
  return {
    n: N,
    numClasses: K,
    members: M,
    logits: Float32Array.from(logits.flat(2)),
    preLogits: new Float32Array(0),
    preLogitsDim: 0,
    labels: Int32Array.from(labels),
    router,
    seconds: 0,
  };
}

describe('evaluate', () => {
  // two examples, two classes: softmax([ln 3, 0]) = (0.75, 0.25), softmax([0, ln 3]) = (0.25, 0.75)
  const single = outputs(
    [
      [
        [Math.log(3), 0],
        [0, Math.log(3)],
      ],
    ],
    [0, 0],
  );

  it('classification numbers by hand', () => {
    const r = evaluate({ outputs: single }, ['classification']);
    expect(r.accuracy).toBe(0.5); // first right, second wrong
    expect(r.nll).toBeCloseTo((-Math.log(0.75) - Math.log(0.25)) / 2, 6);
    // Brier summed over classes: (0.25² + 0.25²) and (0.75² + 0.75²)
    expect(r.brier).toBeCloseTo((2 * 0.0625 + 2 * 0.5625) / 2, 6);
    expect(Object.keys(r)).toEqual(['n', 'k', 'members', 'accuracy', 'nll', 'brier', 'conventions']);
  });

  it('runs only the evaluators asked for and those that apply', () => {
    const r = evaluate({ outputs: single }, EVALUATOR_NAMES);
    expect(r.gibbs_nll).toBeUndefined(); // diversity needs an ensemble
    expect(r.router).toBeUndefined(); // routing needs MoE layers
    expect(r.temperature_scaled).toBeNull(); // asked for, no held-out data given
    expect(r.ood).toBeNull();
    expect(r.ece).toBeTypeOf('number');
  });

  it('calibration AUC is NaN (null in JSON) when every prediction is right', () => {
    const allRight = outputs(
      [
        [
          [2, 0],
          [0, 2],
        ],
      ],
      [0, 1],
    );
    const r = evaluate({ outputs: allRight }, PREDICTION_EVALUATORS);
    expect(r.accuracy).toBe(1);
    expect(r.calibration_auc).toBeNaN();
    expect(JSON.parse(reportJson(r)).calibration_auc).toBeNull();
  });

  it('ensemble: diversity keys, snake_case, with p̄ the mean of member probabilities', () => {
    // members agree on example 0, disagree on example 1
    const ens = outputs(
      [
        [
          [2, 0],
          [2, 0],
        ],
        [
          [2, 0],
          [0, 2],
        ],
      ],
      [0, 1],
    );
    const r = evaluate({ outputs: ens }, PREDICTION_EVALUATORS);
    expect(r.members).toBe(2);
    expect(r.disagreement).toBeCloseTo(0.5, 12); // one pair, differs on 1 of 2 examples
    expect(r.member_accuracy).toEqual([0.5, 1]);
    expect(r.member_nlls).toHaveLength(2);
    for (const k of ['gibbs_nll', 'normalized_disagreement', 'pairwise_kl', 'mutual_information', 'ambiguity'])
      expect(r).toHaveProperty(k);
    expect(r.ambiguity!).toBeGreaterThanOrEqual(0); // Jensen
  });

  it('routing statistics in snake_case', () => {
    const o = outputs(
      [[[1, 0]]],
      [0],
      [{ block: 1, processedFraction: 0.75, dropFraction: 0.25, expertLoad: [0.5, 0.5], capacity: 4, groupSize: 8 }],
    );
    const r = evaluate({ outputs: o }, ['routing']);
    expect(r.router).toEqual([
      { block: 1, processed_fraction: 0.75, drop_fraction: 0.25, expert_load: [0.5, 0.5], capacity: 4, group_size: 8 },
    ]);
  });

  it('OOD scores that need raw logits are left out for log-probabilities', () => {
    const inDist = outputs(
      [
        [
          [Math.log(0.9), Math.log(0.1)],
          [Math.log(0.8), Math.log(0.2)],
        ],
      ],
      [0, 0],
    );
    const ood = outputs([[[Math.log(0.5), Math.log(0.5)]]], [-1]);
    const asLogits = evaluate({ outputs: inDist, ood: [{ name: 'x', outputs: ood }] }, ['ood']);
    const asLogProbs = evaluate({ outputs: inDist, ood: [{ name: 'x', outputs: ood }], scoreKind: 'log-probs' }, [
      'ood',
    ]);
    expect(Object.keys(asLogits.ood![0]!.scores)).toEqual(expect.arrayContaining(['msp', 'energy', 'max-logit']));
    expect(Object.keys(asLogProbs.ood![0]!.scores)).not.toContain('energy');
    expect(Object.keys(asLogProbs.ood![0]!.scores)).not.toContain('max-logit');
    // MSP: in-distribution confidences 0.9, 0.8 vs OOD 0.5 — perfectly separated
    expect(asLogProbs.ood![0]!.scores.msp!.ood_positive.auroc).toBe(1);
  });

  it('unknown evaluator names are a usage error listing the choices', () => {
    expect(evaluatorNames('classification, ood')).toEqual(['classification', 'ood']);
    expect(() => evaluatorNames('classification,bogus')).toThrow(UsageError);
    expect(() => evaluatorNames('bogus')).toThrow(/choose from classification, calibration/);
  });
});
