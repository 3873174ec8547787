/**
 * The streaming pipeline on image folders it writes: batches equal to the in-memory keyed batches of the same
 * folder whatever the decode parallelism; never more than `prefetch` decoded-but-untaken batches on a folder many
 * times larger than the queue; and RSS growth bounded by the queue, far below the decoded folder's size.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchSampler, inceptionCropBox, keyedRng, loadDataset, makeBatch } from '../../src/data/index.js';
import { openStreamingSource, StreamingBatches } from '../../src/data/pipeline.js';
import { Rng } from '../../src/util/rng.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-pipeline-'));
const small = path.join(tmp, 'small');
const big = path.join(tmp, 'big');

async function writeFolder(dir: string, n: number, size: number, fmt: 'png' | 'jpeg'): Promise<void> {
  const rng = new Rng(n);
  for (let i = 0; i < n; i++) {
    const cls = path.join(dir, `c${i % 3}`);
    fs.mkdirSync(cls, { recursive: true });
    const px = Buffer.alloc(size * size * 3);
    for (let k = 0; k < px.length; k++) px[k] = ((k % (size * 3)) + rng.int(40)) & 255;
    const img = sharp(px, { raw: { width: size, height: size, channels: 3 } });
    await (fmt === 'png' ? img.png() : img.jpeg({ quality: 90 })).toFile(
      path.join(cls, `${i}.${fmt === 'png' ? 'png' : 'jpg'}`),
    );
  }
}

beforeAll(async () => {
  await writeFolder(small, 40, 12, 'png');
  await writeFolder(big, 360, 224, 'jpeg');
}, 120_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('StreamingBatches', () => {
  it('gives the in-memory keyed batches of the same folder (pad-crop, flip), at any parallelism, resized', async () => {
    const aug = { randomCrop: 2, flip: true };
    const mem = loadDataset(`folder:${small}`, 'train', { valSize: 8, imageSize: 16, channels: 3 });
    const src = openStreamingSource(`folder:${small}`, 'train', { imageSize: 16, channels: 3, valSize: 8 });
    expect(src.n).toBe(mem.n);
    for (const parallel of [1, 4]) {
      const sampler = new BatchSampler(src.n, { batchSize: 5, seed: 3, dropRemainder: true });
      const ref = new BatchSampler(src.n, { batchSize: 5, seed: 3, dropRemainder: true });
      const s = new StreamingBatches(src, {
        nextIndices: () => sampler.next(),
        firstStep: 0,
        prefetch: 3,
        parallel,
        augment: aug,
        seed: 7,
      });
      for (let step = 0; step < 8; step++) {
        const got = await s.next();
        const idx = ref.next();
        expect([...got.indices]).toEqual([...idx]);
        const want = makeBatch(mem, idx, { augment: aug, keyed: { seed: 7, step } });
        expect(got.batch.shape).toEqual([5, 16, 16, 3]);
        expect([...got.batch.y]).toEqual([...want.y]);
        expect(got.batch.x).toEqual(want.x);
      }
      await s.close();
    }
  });

  it('inception crop: the keyed box cut from the source image by sharp, then resized and flipped', async () => {
    const src = openStreamingSource(`folder:${small}`, 'train_full', { imageSize: 16, channels: 3 });
    const batches: Float32Array[][] = [];
    for (const parallel of [1, 4]) {
      const sampler = new BatchSampler(src.n, { batchSize: 4, seed: 5, dropRemainder: true });
      const s = new StreamingBatches(src, {
        nextIndices: () => sampler.next(),
        firstStep: 10,
        prefetch: 2,
        parallel,
        augment: { inceptionCrop: true, flip: true },
        seed: 3,
      });
      const got: Float32Array[] = [];
      for (let k = 0; k < 3; k++) {
        const { step, indices, batch } = await s.next();
        got.push(batch.x);
        if (parallel !== 1) continue;
        // reference: the same draws, sharp's extract + resize directly, the flip by hand
        for (let b = 0; b < indices.length; b++) {
          const r = keyedRng(3, step, indices[b]!);
          const box = inceptionCropBox(r, 12, 12);
          const raw = await sharp(src.files[indices[b]!]!)
            .extract({ left: box.x, top: box.y, width: box.w, height: box.h })
            .resize(16, 16, { fit: 'fill', kernel: 'linear' })
            .raw()
            .toBuffer();
          const mirrored = r.uniform() < 0.5;
          for (let i = 0; i < 16; i++) {
            for (let j = 0; j < 16; j++) {
              const sj = mirrored ? 15 - j : j;
              for (let c = 0; c < 3; c++) {
                const v = batch.x[b * 768 + (i * 16 + j) * 3 + c]!;
                expect(v).toBeCloseTo(raw[(i * 16 + sj) * 3 + c]! / 127.5 - 1, 5);
              }
            }
          }
        }
      }
      batches.push(got);
      await s.close();
    }
    expect(batches[1]).toEqual(batches[0]);
  });

  it('holds at most `prefetch` decoded-but-untaken batches, and RSS stays far below the decoded folder', async () => {
    const src = openStreamingSource(`folder:${big}`, 'train_full', { imageSize: 224, channels: 3 });
    const B = 8;
    const prefetch = 2;
    const sampler = new BatchSampler(src.n, { batchSize: B, seed: 1, dropRemainder: true });
    const s = new StreamingBatches(src, {
      nextIndices: () => sampler.next(),
      firstStep: 0,
      prefetch,
      augment: { flip: true },
      seed: 1,
    });
    const rss0 = process.memoryUsage().rss;
    let rssMax = rss0;
    const steps = 2 * Math.floor(src.n / B); // two epochs (72 batches) through a queue of 2
    for (let step = 0; step < steps; step++) {
      expect(s.outstanding).toBeLessThanOrEqual(prefetch);
      const { batch } = await s.next();
      expect(batch.x.length).toBe(B * 224 * 224 * 3);
      await sleep(2); // a consumer slower than nothing: the queue must not run ahead
      expect(s.decoded).toBeLessThanOrEqual((step + 1 + prefetch) * B);
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }
    await s.close();
    expect(s.maxOutstanding).toBe(prefetch);
    // Holding the split's 288 decoded images as float32 batches would take 288·224·224·3·4 B ≈ 165 MB.
    const wholeFolder = src.n * 224 * 224 * 3 * 4;
    const growth = rssMax - rss0;
    console.log(
      `[pipeline] RSS growth ${(growth / 2 ** 20).toFixed(1)} MB over 2 epochs; folder as float32 ${(wholeFolder / 2 ** 20).toFixed(0)} MB`,
    );
    expect(growth).toBeLessThan(wholeFolder / 2);
  }, 120_000);
});
