/** Library functions raise the toolkit's error classes for bad input; internal invariants stay plain Errors. */
import { describe, expect, it } from 'vitest';
import { CheckpointError, DataError, UsageError, type VmoeError, isVmoeError } from '../../src/util/errors.js';
import { ece } from '../../src/metrics/calibration.js';
import { aurocFromLabels, fprAtTpr } from '../../src/metrics/ranking.js';
import { oodScore } from '../../src/metrics/ood.js';
import { expertCapacity } from '../../src/vmoe/capacity.js';
import { topExpertsPerItem } from '../../src/vmoe/routing.js';
import { sampleFewShot } from '../../src/fewshot/protocol.js';
import { parseNumberList, sweepSettings } from '../../src/eval/sweep.js';
import { e3ValuesFromVmoe } from '../../src/ensembles/from-vmoe.js';
import { replaceSection } from '../../src/export/readme.js';
import { ModelSchema } from '../../src/vmoe/config.js';
import { Rng } from '../../src/util/rng.js';
import type { OodScoreName } from '../../src/metrics/ood.js';

/** The error `f` throws (fails the test when it does not throw). */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('bad input raises the fitting VmoeError subclass (exit code 2)', () => {
  const probs = { data: Float32Array.from([0.9, 0.1, 0.2, 0.8]), n: 2, k: 2 };

  it('user arrays of the wrong shape or content: DataError', () => {
    for (const e of [
      thrown(() => ece(probs, [0, 2])), // label outside [0, k)
      thrown(() => ece({ ...probs, n: 3 }, [0, 1, 1])), // data too short for n·k
      thrown(() => aurocFromLabels([0.1, 0.2], [1, 1])), // one class only
      thrown(() => topExpertsPerItem([[0.1, 0.2], [0.3]], { k: 1, capacity: 1 })), // ragged gates
      thrown(() => sampleFewShot([0, 0, 1], 2, 2, new Rng(0))), // class 1 has 1 example, 2-shot
    ]) {
      expect(e).toBeInstanceOf(DataError);
      expect((e as DataError).exitCode).toBe(2);
    }
  });

  it('options out of range or unknown names: UsageError', () => {
    for (const e of [
      thrown(() => ece(probs, [0, 1], { bins: 0 })),
      thrown(() => fprAtTpr([1], [0], 1.5)),
      thrown(() => oodScore({ data: Float32Array.from([1, 2]), n: 1, k: 2 }, 'bogus' as OodScoreName)),
      thrown(() => expertCapacity({ groupSize: 8, numExperts: 4, k: 1 })), // neither capacity nor factor
      thrown(() => parseNumberList('0.5,x', '--capacity-factors')),
      thrown(() => sweepSettings({ capacityFactors: [1, 1], ks: [1], batchPriority: 'off' })),
    ]) {
      expect(e).toBeInstanceOf(UsageError);
      expect(isVmoeError(e)).toBe(true);
    }
    expect((thrown(() => parseNumberList('0.5,x', '--capacity-factors')) as Error).message).toMatch(
      /^--capacity-factors: "x" is not a number/,
    );
  });

  it('a V-MoE whose parameters do not fit the E³ config: CheckpointError naming the parameter', () => {
    const e3 = ModelSchema.parse({
      type: 'e3',
      patchSize: 14,
      hidden: 16,
      depth: 2,
      heads: 2,
      mlpDim: 32,
      moe: { numExperts: 4, k: 1, layers: { placement: 'list', list: [1] } },
    });
    const e = thrown(() => e3ValuesFromVmoe(new Map(), e3));
    expect(e).toBeInstanceOf(CheckpointError);
    expect((e as Error).message).toMatch(/the V-MoE has no parameter /);
  });

  it('a README without the section markers: DataError naming the file, with a hint', () => {
    const e = thrown(() => replaceSection('# title\n', 'results', 'x', 'docs/README.md')) as VmoeError;
    expect(e).toBeInstanceOf(DataError);
    expect(e.message).toBe('docs/README.md has no section markers <!-- vmoe:results --> … <!-- /vmoe:results -->');
    expect(e.hint).toMatch(/add the two lines/);
  });
});
