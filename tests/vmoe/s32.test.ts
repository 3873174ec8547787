/**
 * The S/32 configs (configs/s32-vmoe.json, configs/s32-e3.json): the reference layout and recipe, the parameter
 * count worked out by hand, and forward/backward on a shrunk model with the same code path (RGB, patch 32, 8
 * blocks, E=8, K=2 in blocks 5 and 7) against finite differences.
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { loadExperiment } from '../../src/config/experiment.js';
import { ModelSchema, moeBlocks, type ModelConfig } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { modelLoss } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

const configs = path.resolve(__dirname, '../../configs');
const vmoe = () => loadExperiment(path.join(configs, 's32-vmoe.json'));
const e3 = () => loadExperiment(path.join(configs, 's32-e3.json'));

/**
 * S/32 parameters by hand: 224 px RGB, patch 32 → 7×7 = 49 patches + class token; H = 512, MLP 2048, 8 blocks,
 * E = 8 experts in 2 blocks, 10 classes.
 */
const H = 512,
  MLP = 2048,
  E = 8,
  C = 10;
const EMBED = 32 * 32 * 3 * H + H; // patch kernel 3072×512 + bias = 1 573 376
const TOKENS = 512 + 50 * H; // class token + 50 position rows = 26 112
const BLOCK_COMMON = 2 * 2 * H + 4 * (H * H + H); // two LayerNorms + q, k, v, out = 1 052 672
const DENSE_MLP = H * MLP + MLP + MLP * H + H; // 2 099 712
const MOE_MLP = H * E + E * (H * MLP + MLP + MLP * H + H); // router + 8 experts = 16 801 792
const FINAL_NORM = 2 * H;
const HEAD = (repr: number) => repr * C + C;
const VMOE_S32 = EMBED + TOKENS + 8 * BLOCK_COMMON + 6 * DENSE_MLP + 2 * MOE_MLP + FINAL_NORM + HEAD(H);

describe('configs/s32-vmoe.json and configs/s32-e3.json', () => {
  it('have the reference S/32 layout: 224 px RGB, patch 32, 512 wide, 8 blocks of 8 heads, MLP 2048, MoE in 5 and 7', () => {
    for (const cfg of [vmoe(), e3()]) {
      const m = cfg.model;
      expect([m.imageSize, m.channels, m.patchSize, m.hidden, m.depth, m.heads, m.mlpDim]).toEqual([
        224, 3, 32, 512, 8, 8, 2048,
      ]);
      expect(m.moe.numExperts).toBe(8);
      expect(moeBlocks(m)).toEqual([5, 7]);
      expect(m.moe.capacityFactor).toBe(1.5);
      expect(m.headBiasInit).toBe(0);
    }
    expect(vmoe().model.type).toBe('vmoe');
    expect(vmoe().model.moe.k).toBe(2);
    expect(vmoe().model.preLogits).toBeNull();
    expect(e3().model.type).toBe('e3');
    expect(e3().model.moe.k).toBe(1);
    expect(e3().model.ensemble.members).toBe(2);
    expect(e3().model.preLogits).toBe(512);
  });

  it('use the reference fine-tuning recipe: SGD momentum 0.9, clip 1.0, warm-up then cosine, batch 512 in micro-batches of 64', () => {
    for (const cfg of [vmoe(), e3()]) {
      expect(cfg.optim.optimizer).toBe('sgd');
      expect(cfg.optim.momentum).toBe(0.9);
      expect(cfg.optim.gradClipNorm).toBe(1);
      expect(cfg.optim.schedule).toBe('cosine');
      expect(cfg.optim.warmupSteps).toBeGreaterThan(0);
      expect(cfg.train.batchSize).toBe(512);
      expect(cfg.train.batchSize / cfg.train.accumSteps).toBe(64);
    }
  });

  it('build models with the hand-computed parameter counts', () => {
    expect(VMOE_S32).toBe(56_228_874);
    const count = (m: ModelConfig) => {
      const model = VisionMoE.init(m, 0);
      const n = [...model.params.values()].reduce((s, v) => s + v.size, 0);
      model.dispose();
      return n;
    };
    expect(count(vmoe().model)).toBe(VMOE_S32);
    // E³: the same router numbers stored (H, M, E/M), plus a 512-wide pre-logits layer feeding the head
    expect(count(e3().model)).toBe(VMOE_S32 + (H * 512 + 512));
    // the dense ViT-S/32 of the bench: MLPs in every block
    expect(count(ModelSchema.parse({ ...vmoe().model, type: 'vit' }))).toBe(VMOE_S32 - 2 * MOE_MLP + 2 * DENSE_MLP);
  }, 60_000);
});

/** The S/32 code path shrunk: RGB, patch 32, 8 blocks, 8 heads, E = 8, K = 2, MoE in blocks 5 and 7; 64 px, 32 wide. */
const shrunk = (type: 'vmoe' | 'e3'): ModelConfig =>
  ModelSchema.parse({
    ...vmoe().model,
    type,
    imageSize: 64,
    hidden: 32,
    mlpDim: 48,
    preLogits: type === 'e3' ? 16 : null,
    moe: {
      ...vmoe().model.moe,
      k: type === 'e3' ? 1 : 2,
      groupImages: 2,
      // nothing dropped, so only a top-k flip (measure zero) could break differentiability
      capacity: 64,
      expertInit: 'random',
    },
    ensemble: { members: 2 },
  });

describe('S/32 code path: forward/backward on a batch of 2 against finite differences', () => {
  it.each(['vmoe', 'e3'] as const)('%s: directional derivatives along single parameters agree', (type) => {
    const cfg = shrunk(type);
    const model = VisionMoE.init(cfg, 3);
    const rng = new Rng(4);
    // A nonzero head so every parameter matters; O(1) class token and positions (LayerNorm of a near-zero token is
    // too curved for finite differences).
    const randomise = (name: string, scale: number) => {
      const v = model.p<tf.Variable>(name);
      v.assign(
        tf.tensor(
          Float32Array.from({ length: v.size }, () => rng.normal() * scale),
          v.shape,
        ),
      );
    };
    randomise('head/kernel', 0.5);
    randomise('cls', 1);
    randomise('pos', 1);
    const x = tf.tensor4d(
      Float32Array.from({ length: 2 * 64 * 64 * 3 }, () => 2 * rng.uniform() - 1),
      [2, 64, 64, 3],
    );
    const y = tf.tensor1d([3, 7], 'int32');
    const loss = () => {
      const r = model.forward(x, { train: false, auxLosses: true });
      return tf.add(modelLoss(r, y, cfg.numClasses, 0), r.aux) as tf.Scalar;
    };
    const names = [
      'embed/kernel',
      'pos',
      'block0/attn/query/kernel',
      'block4/mlp/fc1/kernel',
      'block5/moe/router/kernel',
      'block5/moe/w1',
      'block7/moe/w2',
      'block7/moe/b2',
      'norm/scale',
      ...(type === 'e3' ? ['prelogits/kernel'] : []),
      'head/kernel',
    ];
    const vars = names.map((n) => model.p<tf.Variable>(n));
    const { grads } = tf.variableGrads(loss, vars);
    for (const [i, name] of names.entries()) {
      const v = vars[i]!;
      const g = grads[v.name]!.dataSync();
      const original = v.dataSync().slice();
      // a random direction in this one parameter tensor
      const d = Float32Array.from({ length: v.size }, () => rng.normal());
      let analytic = 0;
      for (let j = 0; j < g.length; j++) analytic += g[j]! * d[j]!;
      const at = (eps: number) => {
        v.assign(
          tf.tensor(
            original.map((o, j) => o + eps * d[j]!),
            v.shape,
          ),
        );
        return tf.tidy(() => loss().dataSync()[0]!);
      };
      // Small: a step of 1e-3 along a whole patch-embedding direction already moves a token across a top-k
      // boundary (the loss jumps); 1e-4 stays inside one routing pattern and float32 still resolves the difference.
      const eps = 1e-4;
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      v.assign(tf.tensor(original, v.shape));
      expect(Math.abs(numeric - analytic), `${name}: numeric ${numeric}, analytic ${analytic}`).toBeLessThan(
        5e-3 * Math.max(1, Math.abs(analytic)),
      );
    }
    model.dispose();
  });
});
