/**
 * The training form of the encoder block (src/vmoe/layers.ts attentionResidual / mlpResidual): under a gradient
 * tape, without dropout, each half of a block is one tape node running the kernels the op-by-op block runs. Its loss
 * and every parameter's gradient are held equal, bit for bit, to the op-by-op block's (VMOE_FUSED_TRAINING_BLOCK=0)
 * for ViT, V-MoE (noisy routing, auxiliary losses) and E³, on wasm-blas: the same kernels on the same inputs in the
 * same order, and the residual's gradient one IEEE add whichever way round. A wrong saved tensor, a transposed
 * product or a missing residual term changes gradients by far more than one ulp.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import { loadBlasAddon } from '../../src/engine/native-blas.js';
import { FUSED_TRAINING_BLOCK_ENV } from '../../src/vmoe/layers.js';
import { ModelSchema, type ModelConfig } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { modelLoss } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';
import { SMALL_MODEL, SMALL_MOE } from '../helpers/small-models.js';

const blas = loadBlasAddon();
if (!blas.addon) console.warn(`[training-block tests] skipped: ${blas.reason}`);

const SHARED = SMALL_MODEL;
const MOE = SMALL_MOE;
const CONFIGS: [string, ModelConfig][] = [
  ['vit', ModelSchema.parse({ ...SHARED, type: 'vit' })],
  ['vmoe', ModelSchema.parse({ ...SHARED, type: 'vmoe', moe: { ...MOE, k: 2, noiseStd: 1 } })],
  ['e3', ModelSchema.parse({ ...SHARED, type: 'e3', moe: { ...MOE, k: 1 }, ensemble: { members: 2 } })],
  ['vit, GAP readout', ModelSchema.parse({ ...SHARED, type: 'vit', readout: 'gap' })],
];

/** Loss and gradients (by parameter name) of one training step's forward, with a fixed routing-noise seed. */
function lossAndGrads(
  model: VisionMoE,
  cfg: ModelConfig,
  fused: boolean,
): { loss: number; grads: Map<string, Float32Array> } {
  if (fused) delete process.env[FUSED_TRAINING_BLOCK_ENV];
  else process.env[FUSED_TRAINING_BLOCK_ENV] = '0';
  const before = tf.memory().numTensors;
  const x = tf.randomUniform([8, 16, 16, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
  const y = tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 0], 'int32');
  const vars = [...model.params.values()];
  const nameOf = new Map([...model.params].map(([n, v]) => [v.name, n]));
  const out = { loss: 0, grads: new Map<string, Float32Array>() };
  tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const r = model.forward(x, { train: true, rng: new Rng(5) });
      return tf.add(modelLoss(r, y, cfg.numClasses, 0), r.aux) as tf.Scalar;
    }, vars);
    out.loss = value.dataSync()[0]!;
    for (const [v, g] of Object.entries(grads)) out.grads.set(nameOf.get(v)!, g.dataSync() as Float32Array);
  });
  tf.dispose([x, y]);
  expect(tf.memory().numTensors).toBe(before);
  return out;
}

describe.skipIf(!blas.addon)('encoder block under a gradient tape: one node per half', () => {
  beforeAll(async () => {
    await initEngine({ backend: 'wasm-blas', threads: 1, quiet: true });
  });
  afterEach(() => {
    delete process.env[FUSED_TRAINING_BLOCK_ENV];
  });

  it.each(CONFIGS)('%s: loss and every gradient equal the op-by-op block bit for bit', (_, cfg) => {
    const model = VisionMoE.init(cfg, 1);
    // A random head (init zeroes it, which would leave the blocks' gradients zero).
    const head = model.params.get('head/kernel')!;
    head.assign(tf.randomNormal(head.shape, 0, 0.5, 'float32', 2));
    const fused = lossAndGrads(model, cfg, true);
    const opByOp = lossAndGrads(model, cfg, false);
    expect(Number.isFinite(fused.loss)).toBe(true);
    expect(fused.loss).toBe(opByOp.loss);
    expect([...fused.grads.keys()].sort()).toEqual([...opByOp.grads.keys()].sort());
    let nonzero = 0;
    for (const [name, g] of fused.grads) {
      const want = opByOp.grads.get(name)!;
      expect(g.length, name).toBe(want.length);
      for (let i = 0; i < g.length; i++) {
        if (!Object.is(g[i], want[i])) expect(`${name}[${i}] ${g[i]}`).toBe(`${name}[${i}] ${want[i]}`);
      }
      if (name.includes('/attn/query/kernel') && g.some((v) => v !== 0)) nonzero++;
    }
    expect(nonzero).toBe(cfg.depth); // the comparison covers real gradients in every block
    model.dispose();
  });

  it('the two paths run different kernels (the switch reaches the model), and dropout keeps the op-by-op block', async () => {
    const cfg = CONFIGS[0]![1];
    const model = VisionMoE.init(cfg, 1);
    const x = tf.randomUniform([4, 16, 16, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
    const count = async (env: string | undefined, dropout: number) => {
      if (env === undefined) delete process.env[FUSED_TRAINING_BLOCK_ENV];
      else process.env[FUSED_TRAINING_BLOCK_ENV] = env;
      const m = dropout > 0 ? VisionMoE.init({ ...cfg, dropout }, 1) : model;
      const p = await tf.profile(() =>
        tf.tidy(() => {
          tf.variableGrads(() => tf.sum(m.forward(x, { train: true, rng: new Rng(5) }).logits) as tf.Scalar);
        }),
      );
      if (m !== model) m.dispose();
      return p.kernels.filter((k) => k.name === 'Reshape').length;
    };
    expect(await count(undefined, 0)).toBeLessThan(await count('0', 0));
    expect(await count(undefined, 0.1)).toBe(await count('0', 0.1));
    x.dispose();
    model.dispose();
  });
});
