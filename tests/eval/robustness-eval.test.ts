import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { loadDataset } from '../../src/data/index.js';
import {
  evaluateRobustness,
  mergeThroughput,
  isHeldOut,
  shiftedOutputs,
  summariseShift,
  type ModelEntry,
  type ShiftRow,
} from '../../src/eval/robustness.js';
import type { ClassificationMetrics } from '../../src/eval/harness.js';
import { corruptBatch } from '../../src/robustness/index.js';
import { ModelSchema } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { parseExperiment } from '../../src/config/experiment.js';
import type { LoadedModel } from '../../src/checkpoint/load.js';

let entry: ModelEntry;
beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
  const config = parseExperiment({
    model: {
      patchSize: 14,
      hidden: 16,
      depth: 2,
      heads: 2,
      mlpDim: 32,
      moe: { layers: { placement: 'list', list: [1] }, groupImages: 4 },
    },
    data: { dataset: 'mnist' },
  });
  const model = VisionMoE.init(ModelSchema.parse(config.model), 0);
  // a nonzero head so predictions depend on the input
  {
    const tf = await import('@tensorflow/tfjs-core');
    model
      .p<import('@tensorflow/tfjs-core').Variable>('head/kernel')
      .assign(tf.mul(tf.randomNormal([16, 10], 0, 1, 'float32', 3), 2));
  }
  const loaded: LoadedModel = { model, config, meta: {}, path: 'mem', sha256: 'x', step: 0 };
  entry = { label: 'tiny', members: [loaded] };
});

describe('shift evaluation', () => {
  const ds = () => loadDataset('mnist', 'test', { limit: 40 });

  it('on-the-fly corruption does not depend on the batch size (batches that keep routing groups whole)', () => {
    // Routing groups are 4 images here; a token's result depends on its group, so batch sizes must be multiples of 4.
    const d = ds();
    const shape = { h: 28, w: 28, c: 1 };
    const t = (images: Uint8Array, n: number, start: number) =>
      corruptBatch(images, { n, ...shape }, 'gaussian_noise', 3, 5, { startIndex: start });
    const a = shiftedOutputs([entry], d, 8, t).get('tiny')!;
    const b = shiftedOutputs([entry], d, 40, t).get('tiny')!;
    expect(Array.from(a.logits)).toEqual(Array.from(b.logits));
  });

  it('severity 0 reproduces the clean metrics; a harsh corruption changes them; summaries are means over sets', () => {
    const d = ds();
    const r = evaluateRobustness([entry], d, {
      suite: 'c',
      corruptions: [
        { name: 'contrast', severities: [0, 5] },
        { name: 'impulse_noise', severities: [0, 5] },
      ],
      batchSize: 16,
      seed: 1,
      bins: 15,
    });
    const clean = r.clean.get('tiny')!;
    const at = (name: string, s: number) => r.rows.find((x) => x.corruption === name && x.severity === s)!.metrics;
    for (const name of ['contrast', 'impulse_noise']) {
      expect(at(name, 0).accuracy).toBe(clean.accuracy);
      expect(at(name, 0).nll).toBeCloseTo(clean.nll, 10);
      expect(at(name, 5).nll).not.toBeCloseTo(clean.nll, 3);
    }
    const s = r.summary[0]!;
    expect(s.cA).toBeCloseTo(r.rows.reduce((a, x) => a + x.metrics.accuracy, 0) / r.rows.length, 12);
    expect(s.accuracy_drop).toBeCloseTo(clean.accuracy - s.cA, 12);
    // Throughput: the clean set and 4 corrupted sets of 40 images through the one model; the phases are disjoint
    // parts of the run, and the rates are the counts over the times.
    const tp = r.throughput;
    expect(tp.images).toBe(5 * 40);
    for (const v of [tp.model_seconds, tp.corruption_seconds, tp.metric_seconds]) expect(v).toBeGreaterThan(0);
    expect(tp.model_seconds + tp.corruption_seconds + tp.metric_seconds).toBeLessThanOrEqual(tp.seconds);
    expect(tp.model_images_per_s).toBeCloseTo(200 / tp.model_seconds, 6);
    expect(tp.images_per_s).toBeCloseTo(200 / tp.seconds, 6);
    expect(tp.model_images_per_s).toBeGreaterThan(tp.images_per_s);
  });

  it('merged throughput of queue jobs: times summed, images per model, rates recomputed', () => {
    const job = (images: number, model: number) => ({
      images,
      model_seconds: model,
      corruption_seconds: 0.5,
      metric_seconds: 0.25,
      seconds: model + 1,
      model_images_per_s: images / model,
      images_per_s: images / (model + 1),
    });
    // Two models × two sets: four jobs of (clean + 1 set) × 10 images each.
    const m = mergeThroughput([job(20, 1), job(20, 2), job(20, 1), undefined, job(20, 4)], 2);
    expect(m.images).toBe(40);
    expect(m.model_seconds).toBe(8);
    expect(m.corruption_seconds).toBe(2);
    expect(m.metric_seconds).toBe(1);
    expect(m.seconds).toBe(12);
    expect(m.model_images_per_s).toBe(80 / 8);
    expect(m.images_per_s).toBe(40 / 12);
  });
});

describe('shift summary', () => {
  const m = (accuracy: number, nll: number, ece: number) => ({ accuracy, nll, ece }) as ClassificationMetrics;
  const row = (corruption: string, severity: number, acc: number, nll: number, ece: number): ShiftRow => ({
    model: 'a',
    corruption,
    severity,
    metrics: m(acc, nll, ece),
  });
  it('marks the four ImageNet-C held-out corruptions, and none in MNIST-C', () => {
    expect(['speckle_noise', 'gaussian_blur', 'spatter', 'saturate'].every((n) => isHeldOut('c', n))).toBe(true);
    expect(isHeldOut('c', 'gaussian_noise')).toBe(false);
    expect(isHeldOut('mnist-c', 'spatter')).toBe(false);
  });
  it.each([
    // benchmark sets: (0.8, 0.6) → cA 0.7; held out: 0.2 alone
    {
      name: 'benchmark and held out',
      rows: [
        row('gaussian_noise', 1, 0.8, 0.5, 0.1),
        row('contrast', 5, 0.6, 0.9, 0.3),
        row('spatter', 2, 0.2, 2, 0.4),
      ],
      cA: (0.8 + 0.6) / 2,
      cNLL: (0.5 + 0.9) / 2,
      cECE: (0.1 + 0.3) / 2,
      sets: 2,
      held: { cA: 0.2, cNLL: 2, cECE: 0.4, sets: 1 },
    },
    { name: 'benchmark only', rows: [row('fog', 3, 0.5, 1, 0.2)], cA: 0.5, cNLL: 1, cECE: 0.2, sets: 1, held: null },
    {
      name: 'held out only (means fall back to them)',
      rows: [row('saturate', 1, 0.4, 1.5, 0.25)],
      cA: 0.4,
      cNLL: 1.5,
      cECE: 0.25,
      sets: 1,
      held: null,
    },
  ])('$name', ({ rows, cA, cNLL, cECE, sets, held }) => {
    const clean = m(0.9, 0.3, 0.05);
    const s = summariseShift('a', clean, [...rows, { ...rows[0]!, model: 'other', metrics: m(0, 9, 1) }], 'c');
    expect(s.cA).toBeCloseTo(cA, 12);
    expect(s.cNLL).toBeCloseTo(cNLL, 12);
    expect(s.cECE).toBeCloseTo(cECE, 12);
    expect(s.benchmark_sets).toBe(sets);
    expect(s.accuracy_drop).toBeCloseTo(0.9 - cA, 12);
    expect(s.relative_accuracy_drop).toBeCloseTo((0.9 - cA) / 0.9, 12);
    expect(s.nll_increase).toBeCloseTo(cNLL - 0.3, 12);
    expect(s.ece_increase).toBeCloseTo(cECE - 0.05, 12);
    if (held) {
      expect([s.cA_held_out, s.cNLL_held_out, s.cECE_held_out, s.held_out_sets]).toEqual([
        held.cA,
        held.cNLL,
        held.cECE,
        held.sets,
      ]);
    } else {
      expect(s.cA_held_out).toBeUndefined();
    }
  });
});
