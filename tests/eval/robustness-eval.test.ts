import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { loadDataset } from '../../src/data/index.js';
import { evaluateRobustness, shiftedOutputs, type ModelEntry } from '../../src/eval/robustness.js';
import { corruptBatch } from '../../src/robustness/index.js';
import { ModelSchema } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { parseExperiment } from '../../src/train/config.js';
import type { LoadedModel } from '../../src/train/load.js';

let entry: ModelEntry;
beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
  const config = parseExperiment({ model: { patchSize: 14, hidden: 16, depth: 2, heads: 2, mlpDim: 32, moe: { layers: { placement: 'list', list: [1] }, groupImages: 4 } }, data: { dataset: 'mnist' } });
  const model = VisionMoE.init(ModelSchema.parse(config.model), 0);
  // a nonzero head so predictions depend on the input
  { const tf = await import('@tensorflow/tfjs-core'); model.p<import('@tensorflow/tfjs-core').Variable>('head/kernel').assign(tf.mul(tf.randomNormal([16, 10], 0, 1, 'float32', 3), 2)); }
  const loaded: LoadedModel = { model, config, meta: {}, path: 'mem', sha256: 'x', step: 0 };
  entry = { label: 'tiny', members: [loaded] };
});

describe('shift evaluation', () => {
  const ds = () => loadDataset('mnist', 'test', { limit: 40 });

  it('on-the-fly corruption does not depend on the batch size (batches that keep routing groups whole)', () => {
    // Routing groups are 4 images here; a token's result depends on its group, so batch sizes must be multiples of 4.
    const d = ds();
    const shape = { h: 28, w: 28, c: 1 };
    const t = (images: Uint8Array, n: number, start: number) => corruptBatch(images, { n, ...shape }, 'gaussian_noise', 3, 5, { startIndex: start });
    const a = shiftedOutputs([entry], d, 8, t).get('tiny')!;
    const b = shiftedOutputs([entry], d, 40, t).get('tiny')!;
    expect(Array.from(a.logits)).toEqual(Array.from(b.logits));
  });

  it('severity 0 reproduces the clean metrics; a harsh corruption changes them; summaries are means over sets', () => {
    const d = ds();
    const r = evaluateRobustness([entry], d, {
      suite: 'c', corruptions: [{ name: 'contrast', severities: [0, 5] }, { name: 'impulse_noise', severities: [0, 5] }], batchSize: 16, seed: 1, bins: 15,
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
  });
});
