import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { ensembleFlops, ensembleOutputs, stackOutputs } from '../../src/ensembles/baselines.js';
import { classificationMetrics } from '../../src/eval/harness.js';
import { computeOutputs, type Outputs } from '../../src/vmoe/outputs.js';
import { parseExperiment } from '../../src/config/experiment.js';
import type { LoadedModel } from '../../src/checkpoint/load.js';
import { flopsPerImage } from '../../src/vmoe/flops.js';
import { Rng } from '../../src/util/rng.js';
import { syntheticDataset } from '../eval/helpers.js';
import { initModel } from './helpers.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

function outputs(over: Partial<Outputs> & Pick<Outputs, 'members' | 'logits'>): Outputs {
  return {
    n: 2,
    numClasses: 2,
    preLogits: new Float32Array(0),
    preLogitsDim: 0,
    labels: Int32Array.from([0, 1]),
    router: [],
    seconds: 1,
    ...over,
  };
}

describe('stackOutputs', () => {
  it('puts members after each other and concatenates pre-logits per example', () => {
    // n = 2 examples, K = 2: a has one member (pre-logits D = 1), b two members (D = 2)
    const a = outputs({
      members: 1,
      logits: Float32Array.from([1, 2, 3, 4]),
      preLogits: Float32Array.from([-1, -2]),
      preLogitsDim: 1,
    });
    const b = outputs({
      members: 2,
      logits: Float32Array.from([5, 6, 7, 8, 9, 10, 11, 12]),
      preLogits: Float32Array.from([10, 11, 20, 21]),
      preLogitsDim: 2,
      seconds: 2,
    });
    const s = stackOutputs([a, b]);
    expect(s.members).toBe(3);
    expect(Array.from(s.logits)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    // pre-logits are concatenated only when every part has the same width
    expect(s.preLogitsDim).toBe(0);
    const c = outputs({
      members: 1,
      logits: Float32Array.from([0, 0, 0, 0]),
      preLogits: Float32Array.from([5, 6]),
      preLogitsDim: 1,
    });
    const s2 = stackOutputs([a, c]);
    expect(s2.preLogitsDim).toBe(2);
    expect(Array.from(s2.preLogits)).toEqual([-1, 5, -2, 6]);
    expect(s.seconds).toBe(3);
  });

  it('refuses outputs over different data', () => {
    const a = outputs({ members: 1, logits: new Float32Array(4) });
    expect(() => stackOutputs([])).toThrow(/no outputs/);
    expect(() => stackOutputs([a, { ...a, labels: Int32Array.from([1, 1]) }])).toThrow(/labels differ \(example 0\)/);
    expect(() => stackOutputs([a, { ...a, n: 1, logits: new Float32Array(2), labels: Int32Array.from([0]) }])).toThrow(
      /different data: 1×2 vs 2×2/,
    );
  });

  it("averaging identical members returns the member's own prediction", () => {
    const rng = new Rng(14);
    const n = 50,
      k = 4;
    const one: Outputs = {
      n,
      numClasses: k,
      members: 1,
      logits: Float32Array.from({ length: n * k }, () => rng.normal() * 2),
      preLogits: new Float32Array(0),
      preLogitsDim: 0,
      labels: Int32Array.from({ length: n }, () => rng.int(k)),
      router: [],
      seconds: 0,
    };
    const single = classificationMetrics(one);
    const ens = classificationMetrics(stackOutputs([one, one, one]));
    expect(ens.members).toBe(3);
    expect(ens.accuracy).toBe(single.accuracy);
    expect(ens.nll).toBeCloseTo(single.nll, 6);
    expect(ens.gibbs_nll).toBeCloseTo(single.nll, 6);
    expect(ens.disagreement).toBe(0);
    expect(ens.mutual_information).toBeCloseTo(0, 9);
  });
});

describe('ensembleOutputs and ensembleFlops', () => {
  const config = parseExperiment({
    model: {
      imageSize: 8,
      patchSize: 4,
      hidden: 8,
      depth: 2,
      heads: 2,
      mlpDim: 12,
      numClasses: 3,
      dropout: 0.3,
      moe: { numExperts: 4, k: 1, groupImages: 2, expertInit: 'random', layers: { placement: 'list', list: [1] } },
    },
    train: { batchSize: 8 },
    data: { dataset: 'mnist' },
  });
  const loaded = (): LoadedModel => ({
    model: initModel(config.model, 3),
    config,
    meta: {},
    path: 'mem',
    sha256: 'x',
    step: 0,
  });
  const ds = syntheticDataset(8);
  const opts = { batchSize: 4, routing: {}, rng: new Rng(1) };
  const memberBlock = (o: Outputs, j: number) =>
    Array.from(o.logits.subarray(j * o.n * o.numClasses, (j + 1) * o.n * o.numClasses));

  it('a deep ensemble stacks one pass per model, dropout off', () => {
    const l = loaded();
    const single = computeOutputs(l.model, ds, { batchSize: 4, scale: config.data.scale });
    const one = ensembleOutputs([l], ds, { ...opts, mcSamples: 0 });
    expect(one.members).toBe(1);
    expect(Array.from(one.logits)).toEqual(Array.from(single.logits));
    const two = ensembleOutputs([l, l], ds, { ...opts, mcSamples: 0 });
    expect(two.members).toBe(2);
    expect(memberBlock(two, 0)).toEqual(Array.from(single.logits));
    expect(memberBlock(two, 1)).toEqual(Array.from(single.logits));
  });

  it('MC dropout stacks mcSamples passes per model with dropout on', () => {
    const l = loaded();
    const off = Array.from(computeOutputs(l.model, ds, { batchSize: 4, scale: config.data.scale }).logits);
    const mc = ensembleOutputs([l, l], ds, { ...opts, mcSamples: 3 });
    expect(mc.members).toBe(6);
    for (let j = 0; j < 6; j++) expect(memberBlock(mc, j)).not.toEqual(off);
    expect(memberBlock(mc, 0)).not.toEqual(memberBlock(mc, 1));
  });

  it('FLOPs count every model and every MC pass', () => {
    const perModel = flopsPerImage(config.model, {}).total;
    expect(ensembleFlops([loaded(), loaded()], {}, 0)).toBe(2 * perModel);
    expect(ensembleFlops([loaded(), loaded()], {}, 3)).toBe(6 * perModel);
  });
});
