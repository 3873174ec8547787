/**
 * Streaming training is resumable exactly: a run streamed from an image folder, stopped at step 3 and resumed,
 * logs the losses of the same run done in one go (the sampler state saved in the checkpoint decides the next batch,
 * and each example's augmentation depends only on (seed, step, example)).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, expect, it } from 'vitest';
import { parseExperiment } from '../../src/config/experiment.js';
import { initEngine } from '../../src/engine/index.js';
import { train } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-stream-resume-'));
const folder = path.join(dir, 'images');

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
  const rng = new Rng(4);
  for (let i = 0; i < 36; i++) {
    const cls = path.join(folder, `k${i % 3}`);
    fs.mkdirSync(cls, { recursive: true });
    const px = Buffer.from(Array.from({ length: 20 * 20 * 3 }, () => rng.int(256)));
    await sharp(px, { raw: { width: 20, height: 20, channels: 3 } })
      .png()
      .toFile(path.join(cls, `${i}.png`));
  }
});

const config = () =>
  parseExperiment({
    seed: 2,
    model: {
      type: 'vmoe',
      imageSize: 16,
      channels: 3,
      patchSize: 8,
      hidden: 16,
      depth: 2,
      heads: 2,
      mlpDim: 32,
      numClasses: 3,
      moe: { numExperts: 4, k: 2, groupImages: 4, layers: { placement: 'list', list: [1] } },
    },
    data: {
      dataset: `folder:${folder}`,
      valSize: 4,
      stream: true,
      prefetch: 2,
      augment: { inceptionCrop: true, flip: true, mixup: 0.4 },
    },
    optim: { warmupSteps: 1, lr: 3e-3 },
    train: { batchSize: 8, steps: 6, evalEvery: 0, evalLimit: 4, checkpointEvery: 3, logEvery: 1000 },
  });

const losses = (run: string) =>
  fs
    .readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.loss !== undefined)
    .map((r) => r.loss as number);

it('stopped at step 3 and resumed, a streamed run logs the losses of the uninterrupted one', async () => {
  const whole = path.join(dir, 'whole');
  await train({ config: config(), outDir: whole, quiet: true });
  const parts = path.join(dir, 'parts');
  await train({ config: config(), outDir: parts, quiet: true, stopAtStep: 3 });
  expect(losses(parts)).toHaveLength(3);
  await train({ config: config(), outDir: parts, quiet: true, resume: true });
  const a = losses(whole);
  expect(a).toHaveLength(6);
  expect(losses(parts)).toEqual(a);
}, 120_000);
