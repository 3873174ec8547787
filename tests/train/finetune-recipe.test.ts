/**
 * The reference fine-tuning recipe: SGD with momentum (update rule by hand), global-norm clipping, the
 * warm-up + decay schedule, its optimizer state through checkpoint and resume, and gradient accumulation
 * (micro-batch gradients summed = the full-batch gradient).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { OptimSchema, parseExperiment } from '../../src/config/experiment.js';
import { loadCheckpoint } from '../../src/checkpoint/format.js';
import { learningRate, makeOptimizer, SgdMomentum, Adam } from '../../src/train/optimizer.js';
import { stepGradients, train } from '../../src/train/trainer.js';
import { ConfigError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { ModelSchema } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-ft-'));

describe('SGD with momentum', () => {
  it('follows buf ← g + μ·buf, p ← p − lr·buf (hand-computed for two steps)', () => {
    const opt = new SgdMomentum(OptimSchema.parse({ optimizer: 'sgd', momentum: 0.9, gradClipNorm: null }));
    const p = tf.variable(tf.tensor1d([1, -2]), true, 'sgd-p');
    const params = new Map([['w', p]]);
    // step 1: g = (0.5, 1), buf = (0.5, 1), p = (1 − 0.1·0.5, −2 − 0.1·1) = (0.95, −2.1)
    opt.apply(params, { w: tf.tensor1d([0.5, 1]) }, 0.1);
    expect(Array.from(p.dataSync())).toEqual([expect.closeTo(0.95, 6), expect.closeTo(-2.1, 6)]);
    // step 2: g = (−1, 2), buf = (−1 + 0.45, 2 + 0.9) = (−0.55, 2.9), p = (0.95 + 0.011, −2.1 − 0.058)
    const gnorm = opt.apply(params, { w: tf.tensor1d([-1, 2]) }, 0.02);
    expect(gnorm).toBeCloseTo(Math.sqrt(5), 5);
    expect(Array.from(p.dataSync())).toEqual([expect.closeTo(0.961, 6), expect.closeTo(-2.158, 6)]);
    expect(Array.from(opt.momentum.get('w')!.dataSync())).toEqual([expect.closeTo(-0.55, 6), expect.closeTo(2.9, 6)]);
    expect(opt.t).toBe(2);
    opt.dispose();
    p.dispose();
  });

  it('clips the gradient to the global norm before the momentum update', () => {
    const opt = new SgdMomentum(OptimSchema.parse({ optimizer: 'sgd', momentum: 0.5, gradClipNorm: 1 }));
    const a = tf.variable(tf.tensor1d([0]), true, 'sgd-a');
    const b = tf.variable(tf.tensor1d([0]), true, 'sgd-b');
    const params = new Map([
      ['a', a],
      ['b', b],
    ]);
    // ‖(3, 4)‖ = 5 > 1: g becomes (0.6, 0.8); lr 1 → p = −g
    const gnorm = opt.apply(params, { a: tf.tensor1d([3]), b: tf.tensor1d([4]) }, 1);
    expect(gnorm).toBeCloseTo(5, 5);
    expect(a.dataSync()[0]).toBeCloseTo(-0.6, 6);
    expect(b.dataSync()[0]).toBeCloseTo(-0.8, 6);
    // a gradient under the norm is not scaled: buf = 0.1 + 0.5·0.6 = 0.4 → a = −0.6 − 0.4
    opt.apply(params, { a: tf.tensor1d([0.1]), b: tf.tensor1d([0]) }, 1);
    expect(a.dataSync()[0]).toBeCloseTo(-1.0, 6);
    opt.dispose();
  });

  it('momentum 0 is plain SGD with no state', () => {
    const opt = new SgdMomentum(OptimSchema.parse({ optimizer: 'sgd', momentum: 0, gradClipNorm: null }));
    const p = tf.variable(tf.tensor1d([2]), true, 'sgd-plain');
    opt.apply(new Map([['w', p]]), { w: tf.tensor1d([3]) }, 0.5);
    expect(p.dataSync()[0]).toBeCloseTo(0.5, 6);
    expect(opt.momentum.size).toBe(0);
  });

  it('makeOptimizer picks SGD or Adam from optim.optimizer, and each names its slots', () => {
    const sgd = makeOptimizer(OptimSchema.parse({ optimizer: 'sgd' }), () => true);
    expect(sgd).toBeInstanceOf(SgdMomentum);
    expect(sgd.slots().map(([n]) => n)).toEqual(['momentum']);
    const adam = makeOptimizer(OptimSchema.parse({ optimizer: 'adamw' }), () => true);
    expect(adam).toBeInstanceOf(Adam);
    expect(adam.slots().map(([n]) => n)).toEqual(['m', 'v']);
  });
});

describe('the warm-up + decay schedule of the recipe', () => {
  it('rises linearly over the warm-up, then follows a half cosine down to lr·minLrRatio', () => {
    const o = OptimSchema.parse({ optimizer: 'sgd', lr: 0.003, warmupSteps: 50, minLrRatio: 0.01 });
    expect(learningRate(o, 25, 550)).toBeCloseTo(0.0015, 12);
    expect(learningRate(o, 50, 550)).toBeCloseTo(0.003, 12);
    // half-way through the decay: floor + (lr − floor)/2
    expect(learningRate(o, 300, 550)).toBeCloseTo(0.00003 + (0.003 - 0.00003) / 2, 12);
    expect(learningRate(o, 550, 550)).toBeCloseTo(0.00003, 12);
  });
});

/** A tiny V-MoE on MNIST trained with the SGD recipe. */
const sgdRun = (steps: number, train: Record<string, unknown> = {}, noiseStd = 1) =>
  parseExperiment({
    name: 'tiny-sgd',
    seed: 3,
    model: {
      type: 'vmoe',
      patchSize: 14,
      hidden: 16,
      depth: 2,
      heads: 2,
      mlpDim: 32,
      moe: {
        numExperts: 4,
        k: 2,
        groupImages: 4,
        capacityFactor: 1.5,
        noiseStd,
        layers: { placement: 'list', list: [1] },
      },
    },
    data: { dataset: 'mnist', valSize: 64, trainLimit: 256 },
    optim: { optimizer: 'sgd', lr: 0.05, momentum: 0.9, warmupSteps: 2, gradClipNorm: 1 },
    train: { batchSize: 16, steps, evalEvery: 0, evalLimit: 64, checkpointEvery: 3, logEvery: 1000, ...train },
  });

describe('SGD in training runs', () => {
  it('checkpoints its momentum and resumes to exactly the uninterrupted losses', async () => {
    const full = await train({ config: sgdRun(6), outDir: tmp(), quiet: true });
    const dir = tmp();
    const part1 = await train({ config: sgdRun(6), outDir: dir, quiet: true, stopAtStep: 4 });
    const ck = loadCheckpoint(part1.checkpoint);
    const slots = Object.keys(ck.tensors).filter((k) => k.startsWith('opt/'));
    expect(slots.length).toBeGreaterThan(0);
    expect(slots.every((k) => k.startsWith('opt/momentum/'))).toBe(true);
    const part2 = await train({ config: sgdRun(6), outDir: dir, quiet: true, resume: true });
    expect([...part1.losses, ...part2.losses]).toEqual(full.losses);
  });

  it('trains with accumulation: 2 micro-batches of 8 give the losses of batches of 16', async () => {
    // Without router noise (whose draws differ: one seed per forward pass) the two runs take the same steps.
    const one = await train({ config: sgdRun(3, {}, 0), outDir: tmp(), quiet: true });
    const acc = await train({ config: sgdRun(3, { accumSteps: 2 }, 0), outDir: tmp(), quiet: true });
    expect(acc.losses).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect(acc.losses[i], `step ${i + 1}`).toBeCloseTo(one.losses[i]!, 4);
  });
});

describe('gradient accumulation', () => {
  it('the summed micro-batch gradients equal the full-batch gradient', () => {
    // No noise and no dropout, so the micro-batches see exactly what the full batch sees.
    const cfg = ModelSchema.parse({
      type: 'vmoe',
      imageSize: 8,
      patchSize: 4,
      hidden: 8,
      depth: 2,
      heads: 2,
      mlpDim: 12,
      numClasses: 3,
      moe: {
        numExperts: 4,
        k: 2,
        groupImages: 2,
        capacityFactor: 1.0,
        noiseStd: 0,
        expertInit: 'random',
        layers: { placement: 'list', list: [1] },
      },
    });
    const model = VisionMoE.init(cfg, 11);
    const rng = new Rng(5);
    const head = model.p<tf.Variable>('head/kernel');
    head.assign(
      tf.tensor(
        Float32Array.from({ length: head.size }, () => rng.normal()),
        head.shape,
      ),
    );
    const B = 8;
    const x = tf.tensor4d(
      Float32Array.from({ length: B * 64 }, () => rng.normal()),
      [B, 8, 8, 1],
    );
    const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 1, 0], 'int32');
    const vars = [...model.params.values()];
    const opts = { numClasses: 3, labelSmoothing: 0.1, rng: new Rng(1) };
    /** The step's losses and gradients on the host (the tensors are freed). */
    const gradientsOf = (accumSteps: number) => {
      let out: { task: number; aux: number; grads: Map<string, Float32Array> } | null = null;
      tf.tidy(() => {
        const g = stepGradients(model, vars, x, y, { ...opts, accumSteps });
        const grads = new Map([...g.grads].map(([n, t]) => [n, t.dataSync() as Float32Array]));
        out = { task: g.task, aux: g.aux, grads };
      });
      return out!;
    };
    const full = gradientsOf(1);
    for (const A of [2, 4]) {
      const acc = gradientsOf(A);
      expect(acc.task).toBeCloseTo(full.task, 5);
      expect(acc.aux).toBeCloseTo(full.aux, 6);
      expect([...acc.grads.keys()]).toEqual([...full.grads.keys()]);
      let maxAbs = 0,
        maxDiff = 0;
      for (const [n, g] of full.grads) {
        const a = acc.grads.get(n)!;
        for (let i = 0; i < g.length; i++) {
          maxAbs = Math.max(maxAbs, Math.abs(g[i]!));
          maxDiff = Math.max(maxDiff, Math.abs(g[i]! - a[i]!));
        }
      }
      expect(maxAbs).toBeGreaterThan(1e-3); // the gradients are not all zero
      expect(maxDiff, `accumSteps ${A}`).toBeLessThan(1e-5 * Math.max(1, maxAbs));
    }
    model.dispose();
  });

  it('a batch that does not split into whole routing groups per micro-batch is a config error', () => {
    const cfg = (train: Record<string, unknown>) => () =>
      parseExperiment({ model: { moe: { groupImages: 8 } }, train: { batchSize: 64, ...train } });
    expect(cfg({ accumSteps: 8 })).not.toThrow();
    expect(cfg({ accumSteps: 3 })).toThrow(ConfigError);
    expect(cfg({ accumSteps: 3 })).toThrow(/train\.batchSize \(64\) must be a multiple of train\.accumSteps \(3\)/);
    expect(cfg({ accumSteps: 16 })).toThrow(/micro-batch .* \(4\) must be a multiple of model\.moe\.groupImages \(8\)/);
  });
});
