/**
 * Input-pipeline benchmark: images/s of the streaming pipeline alone (JPEG decode with sharp, resize to 224 px RGB,
 * inception crop + flip, scaling to [−1, 1], batches of 64 through the prefetch queue), to set against the model's
 * training images/s at the same size (the `vmoe-s32` / `vit-s32` lines of `npm run bench`).
 *
 *   npm run bench:pipeline                      # 512 JPEGs of 256×256, 2 epochs
 *   npx vite-node bench/pipeline.ts -- --images 256 --parallel 2,4,8 --no-save
 *
 * It writes its own folder of JPEGs (smooth colour ramps with noise, like photos compress) under the OS temp folder
 * and removes it afterwards. stdout: one JSON line per setting (suite `input-pipeline`), in the JSON-lines format of
 * bench/run.ts; appended to bench/results/history.jsonl unless --no-save.
 */
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { BatchSampler } from '../src/data/batches.js';
import { openStreamingSource, StreamingBatches } from '../src/data/pipeline.js';
import { Rng } from '../src/util/rng.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const nImages = Number(arg('images', '512'));
const source = Number(arg('source-size', '256'));
const size = Number(arg('size', '224'));
const batch = Number(arg('batch', '64'));
const prefetch = Number(arg('prefetch', '4'));
const epochs = Number(arg('epochs', '2'));
const parallels = arg('parallel', '4').split(',').map(Number);
const save = !process.argv.includes('--no-save');

async function writeJpegs(dir: string): Promise<void> {
  const rng = new Rng(1);
  for (let i = 0; i < nImages; i++) {
    const cls = path.join(dir, `class${i % 10}`);
    fs.mkdirSync(cls, { recursive: true });
    const px = Buffer.alloc(source * source * 3);
    const [a, b, c] = [rng.int(256), rng.int(256), rng.int(256)];
    for (let y = 0; y < source; y++) {
      for (let x = 0; x < source; x++) {
        const o = (y * source + x) * 3;
        px[o] = (a + x + rng.int(24)) & 255;
        px[o + 1] = (b + y + rng.int(24)) & 255;
        px[o + 2] = (c + ((x + y) >> 1) + rng.int(24)) & 255;
      }
    }
    await sharp(px, { raw: { width: source, height: source, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(path.join(cls, `${i}.jpg`));
  }
}

function commit(): string {
  try {
    return execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-bench-pipeline-'));
try {
  process.stderr.write(`[bench] writing ${nImages} JPEGs of ${source}×${source} to ${dir}\n`);
  await writeJpegs(dir);
  const src = openStreamingSource(`folder:${dir}`, 'train_full', { imageSize: size, channels: 3 });
  for (const parallel of parallels) {
    const sampler = new BatchSampler(src.n, { batchSize: batch, seed: 0, dropRemainder: true });
    const steps = epochs * sampler.stepsPerEpoch - 2;
    const pipe = new StreamingBatches(src, {
      nextIndices: () => sampler.next(),
      firstStep: 0,
      prefetch,
      parallel,
      augment: process.argv.includes('--no-aug') ? {} : { inceptionCrop: true, flip: true },
      seed: 0,
    });
    // Warm-up (libvips start-up, thread stacks, allocator arenas): two batches before measuring time and RSS.
    for (let s = 0; s < 2; s++) await pipe.next();
    const rss0 = process.memoryUsage().rss;
    let rssMax = rss0;
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      await pipe.next();
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }
    const seconds = (performance.now() - t0) / 1000;
    await pipe.close();
    const rec = {
      date: new Date().toISOString(),
      commit: commit(),
      suite: 'input-pipeline',
      name: `pipeline-${size}`,
      image: size,
      channels: 3,
      source_image: source,
      format: 'jpeg',
      augment: 'inception_crop+flip',
      batch,
      prefetch,
      parallel,
      uv_threadpool: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
      cpus: os.cpus().length,
      images: steps * batch,
      seconds,
      images_per_s: (steps * batch) / seconds,
      rss_growth_mb: (rssMax - rss0) / 2 ** 20,
    };
    process.stdout.write(`${JSON.stringify(rec)}\n`);
    process.stderr.write(
      `[bench] input pipeline ${size} px, parallel ${parallel}: ${rec.images_per_s.toFixed(0)} images/s (RSS +${rec.rss_growth_mb.toFixed(0)} MB)\n`,
    );
    if (save)
      fs.appendFileSync(
        path.join(import.meta.dirname ?? 'bench', 'results', 'history.jsonl'),
        `${JSON.stringify(rec)}\n`,
      );
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
