/**
 * The streaming input pipeline, for image folders larger than memory: index batches from the seeded sampler →
 * a bounded queue of batches being decoded (sharp, several images at once on libuv's thread pool), resized to the
 * model's size and augmented → the trainer. At most `prefetch` batches are decoded or being decoded and not yet
 * taken, so memory is bounded by prefetch × batch × H × W × C whatever the folder's size.
 *
 * Reproducible: the sampler is deterministic and each example's augmentation comes from keyedRng(seed, step,
 * example), so a batch is the same whatever order the decodes finish in. Pad-crop and flip give exactly what
 * `makeBatch` gives with `keyed` on the same images held in memory; the inception crop draws the same numbers but
 * cuts its box from the source image (sharp: extract, then resize), not from the image already resized.
 */
import { DataError } from '../util/errors.js';
import type { AugmentOptions, Batch, PixelScale } from './batches.js';
import { decodeImages } from './decode.js';
import { augmentImage, inceptionCropBox, keyedRng } from './preprocess.js';
import type { Split } from './registry.js';
import { carveValidation, DEFAULT_VAL_SIZE } from './registry.js';
import { listImageFolder, parseSourceName } from './sources.js';

/** The files and labels of one split of an image folder, not decoded; images are read at height × width × channels. */
export interface StreamingSource {
  name: string;
  split: Split;
  n: number;
  files: string[];
  labels: Int32Array;
  classNames: string[];
  numClasses: number;
  height: number;
  width: number;
  channels: 1 | 3;
  source: string;
}

/** Lists one split of a `folder:` data set for streaming (same splits as `loadDataset`), read at size × size × channels. */
export function openStreamingSource(
  name: string,
  split: Split,
  opts: { imageSize: number; channels: number; valSize?: number; limit?: number },
): StreamingSource {
  const src = parseSourceName(name);
  if (src?.prefix !== 'folder:') {
    throw new DataError(`data.stream reads image folders (folder:DIR); '${name}' is held in memory instead`, {
      hint: 'set data.stream=false for this data set',
    });
  }
  if (opts.channels !== 1 && opts.channels !== 3)
    throw new DataError(`streaming needs 1 or 3 channels, got ${opts.channels}`);
  const data = listImageFolder(src!.path, split === 'test' ? ['test'] : ['train', 'val']);
  const part =
    split === 'test' ? data.parts.test : split === 'val' ? (data.parts.val ?? data.parts.train) : data.parts.train;
  if (!part?.files) throw new DataError(`${src.path}: no ${split} images`);
  let keep: ArrayLike<number> = Array.from({ length: part.n }, (_, i) => i);
  if ((split === 'train' || split === 'val') && !data.parts.val) {
    const carve = carveValidation(part.n, opts.valSize ?? DEFAULT_VAL_SIZE);
    keep = split === 'train' ? carve.train : carve.val;
  }
  const n = Math.min(opts.limit ?? keep.length, keep.length);
  const idx = Array.from({ length: n }, (_, i) => keep[i]!);
  return {
    name,
    split,
    n,
    files: idx.map((i) => part.files![i]!),
    labels: Int32Array.from(idx, (i) => part.labels[i]!),
    classNames: data.classNames,
    numClasses: data.classNames.length,
    height: opts.imageSize,
    width: opts.imageSize,
    channels: opts.channels,
    source: src.path,
  };
}

/** Options of `StreamingBatches`. */
export interface StreamingOptions {
  /** The next index batch, in training order (a sampler's `next`, called only from `StreamingBatches`). */
  nextIndices: () => Int32Array;
  /** Step of the first batch (a resumed run starts past 0). */
  firstStep: number;
  /** Batches decoded ahead; the bound on decoded-but-untaken batches (default 4). */
  prefetch?: number;
  /** Images of one batch decoded at once (default 4: libuv's thread pool). */
  parallel?: number;
  scale?: PixelScale;
  augment?: AugmentOptions;
  /** Seed of the keyed augmentation. */
  seed: number;
}

interface Pending {
  step: number;
  indices: Int32Array;
  batch: Promise<Batch>;
  done: boolean;
}

/** Batches decoded from disk ahead of the trainer, at most `prefetch` at a time (see the file header). */
export class StreamingBatches {
  private readonly queue: Pending[] = [];
  private nextStep: number;
  private readonly prefetch: number;
  /** The most batches that were ever decoded (or decoding) and not yet taken. */
  maxOutstanding = 0;
  /** Images decoded so far. */
  decoded = 0;

  constructor(
    private readonly src: StreamingSource,
    private readonly opts: StreamingOptions,
  ) {
    this.prefetch = opts.prefetch ?? 4;
    if (!Number.isInteger(this.prefetch) || this.prefetch < 1)
      throw new DataError(`prefetch must be ≥ 1, got ${this.prefetch}`);
    this.nextStep = opts.firstStep;
    this.fill();
  }

  private fill(): void {
    while (this.queue.length < this.prefetch) {
      const step = this.nextStep++;
      const indices = this.opts.nextIndices();
      const p: Pending = { step, indices, batch: this.assemble(step, indices), done: false };
      // An unhandled rejection would kill the process before the trainer takes the batch and sees the DataError.
      p.batch.then(
        () => (p.done = true),
        () => (p.done = true),
      );
      this.queue.push(p);
    }
    this.maxOutstanding = Math.max(this.maxOutstanding, this.queue.length);
  }

  private async assemble(step: number, indices: Int32Array): Promise<Batch> {
    const { src, opts } = this;
    const aug = opts.augment ?? {};
    const files = Array.from(indices, (i) => src.files[i]!);
    // One generator per example, keyed by (seed, step, example): the inception box (cut from the source image by
    // sharp, before the resize, as big_vision's decode_jpeg_and_inception_crop does), then the pad-crop and flip.
    const rngs = Array.from(indices, (ex) => keyedRng(opts.seed, step, ex));
    const boxFor = aug.inceptionCrop
      ? (i: number, w: number, h: number) => inceptionCropBox(rngs[i]!, h, w)
      : undefined;
    const d = await decodeImages(
      files,
      { height: src.height, width: src.width, channels: src.channels, resize: true },
      opts.parallel ?? 4,
      boxFor,
    );
    this.decoded += d.n;
    const { height: H, width: W, channels: C } = d;
    const pixels = H * W * C;
    const scale = opts.scale === 'zero1' ? { mul: 1 / 255, add: 0 } : { mul: 1 / 127.5, add: -1 };
    const x = new Float32Array(d.n * pixels); // (B, H, W, C)
    const rest = { randomCrop: aug.inceptionCrop ? 0 : aug.randomCrop, flip: aug.flip };
    for (let b = 0; b < d.n; b++) {
      const img = d.images.subarray(b * pixels, (b + 1) * pixels);
      augmentImage(img, H, W, C, rest, rngs[b]!, x.subarray(b * pixels, (b + 1) * pixels), 1, scale);
    }
    return { x, y: Int32Array.from(indices, (i) => src.labels[i]!), shape: [d.n, H, W, C] };
  }

  /** The batch of the next step (its indices too, to check against the trainer's own sampler). */
  async next(): Promise<{ step: number; indices: Int32Array; batch: Batch }> {
    const head = this.queue.shift()!;
    const batch = await head.batch;
    this.fill();
    return { step: head.step, indices: head.indices, batch };
  }

  /** Batches decoded or decoding and not yet taken (≤ prefetch). */
  get outstanding(): number {
    return this.queue.length;
  }

  /** Waits for the batches in flight (so no decode outlives the run) and drops them. */
  async close(): Promise<void> {
    const q = this.queue.splice(0);
    await Promise.allSettled(q.map((p) => p.batch));
  }
}
