/**
 * Seeded, resumable epoch-wise batching and batch assembly (scaling, augmentation).
 * Pure array code: no tensors here, so training and evaluation share it and tests
 * need no backend.
 */
import { Rng, type RngState } from '../util/rng.js';
import { DataError } from '../util/errors.js';
import type { ImageDataset } from './registry.js';
import { augmentImage, keyedRng } from './preprocess.js';

/** Options of `BatchSampler`: batch size, seed, shuffling, dropping the last partial batch. */
export interface SamplerOptions {
  batchSize: number;
  seed?: number;
  /** Reshuffle every epoch (default true); false = file order every epoch. */
  shuffle?: boolean;
  /** Skip the last, smaller batch of each epoch (default false). */
  dropRemainder?: boolean;
}

/** Everything needed to continue a sampler exactly; plain JSON. */
export interface SamplerState {
  n: number;
  batchSize: number;
  shuffle: boolean;
  dropRemainder: boolean;
  /** Epoch the next batch belongs to (0-based). */
  epoch: number;
  /** Offset of the next batch in the epoch's order. */
  position: number;
  /** RNG state just before the current epoch's order was drawn (the order is redrawn from it on restore). */
  epochRng: RngState;
}

/**
 * Yields index batches forever, epoch after epoch. Each epoch visits a fresh seeded
 * permutation of 0..n-1. Saving the RNG state from before an epoch's shuffle (instead
 * of the 4n-byte permutation) keeps the state small and still exact.
 */
export class BatchSampler {
  readonly n: number;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropRemainder: boolean;
  private readonly rng: Rng;
  private order: Int32Array; // (n) current epoch's visiting order
  private epochRng: RngState;
  private _epoch = 0;
  private position = 0;

  constructor(n: number, opts: SamplerOptions) {
    const { batchSize, seed = 0, shuffle = true, dropRemainder = false } = opts;
    if (!Number.isInteger(n) || n <= 0) throw new DataError(`BatchSampler: n must be a positive integer, got ${n}`);
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new DataError(`BatchSampler: batchSize must be a positive integer, got ${batchSize}`);
    }
    if (dropRemainder && batchSize > n) {
      throw new DataError(`BatchSampler: batchSize ${batchSize} > n ${n} with dropRemainder would yield no batches`);
    }
    this.n = n;
    this.batchSize = batchSize;
    this.shuffle = shuffle;
    this.dropRemainder = dropRemainder;
    this.rng = new Rng(seed);
    this.epochRng = this.rng.getState();
    this.order = this.drawOrder();
  }

  /** Batches per epoch. */
  get stepsPerEpoch(): number {
    return this.dropRemainder ? Math.floor(this.n / this.batchSize) : Math.ceil(this.n / this.batchSize);
  }

  /** Epoch of the next batch. */
  get epoch(): number {
    return this.position >= this.epochEnd() ? this._epoch + 1 : this._epoch;
  }

  private epochEnd(): number {
    return this.dropRemainder ? this.stepsPerEpoch * this.batchSize : this.n;
  }

  private drawOrder(): Int32Array {
    if (this.shuffle) return this.rng.permutation(this.n);
    const order = new Int32Array(this.n);
    for (let i = 0; i < this.n; i++) order[i] = i;
    return order;
  }

  /** The next batch of example indices (a fresh array). */
  next(): Int32Array {
    if (this.position >= this.epochEnd()) {
      this._epoch++;
      this.position = 0;
      this.epochRng = this.rng.getState();
      this.order = this.drawOrder();
    }
    const end = Math.min(this.position + this.batchSize, this.n);
    const batch = this.order.slice(this.position, end);
    this.position = end;
    return batch;
  }

  /** The sampler's position and RNG state, to save in a checkpoint. */
  getState(): SamplerState {
    return {
      n: this.n,
      batchSize: this.batchSize,
      shuffle: this.shuffle,
      dropRemainder: this.dropRemainder,
      epoch: this._epoch,
      position: this.position,
      epochRng: [...this.epochRng] as RngState,
    };
  }

  /**
   * Restore a state saved by `getState`; throws if it was saved with other settings (batch size, shuffle, data
   * size …).
   */
  setState(state: SamplerState): void {
    for (const key of ['n', 'batchSize', 'shuffle', 'dropRemainder'] as const) {
      if (state[key] !== this[key]) {
        throw new DataError(
          `BatchSampler.setState: saved ${key} = ${state[key]} but this sampler has ${key} = ${this[key]}`,
        );
      }
    }
    if (!Number.isInteger(state.position) || state.position < 0 || state.position > this.n) {
      throw new DataError(`BatchSampler.setState: position ${state.position} outside [0, ${this.n}]`);
    }
    if (!Number.isInteger(state.epoch) || state.epoch < 0) {
      throw new DataError(`BatchSampler.setState: epoch must be a non-negative integer, got ${state.epoch}`);
    }
    if (!Array.isArray(state.epochRng) || state.epochRng.length !== 4) {
      throw new DataError('BatchSampler.setState: epochRng must be an array of 4 uint32 words');
    }
    this.rng.setState(state.epochRng);
    this.epochRng = [...state.epochRng] as RngState;
    this.order = this.drawOrder(); // leaves rng exactly where it was after the original draw
    this._epoch = state.epoch;
    this.position = state.position;
  }
}

/** Consecutive index batches 0..n-1 for evaluation (last batch may be smaller). */
export function* sequentialBatches(n: number, batchSize: number): Generator<Int32Array> {
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new DataError(`sequentialBatches: batchSize must be a positive integer, got ${batchSize}`);
  }
  for (let start = 0; start < n; start += batchSize) {
    const end = Math.min(start + batchSize, n);
    const batch = new Int32Array(end - start);
    for (let i = 0; i < batch.length; i++) batch[i] = start + i;
    yield batch;
  }
}

/** How `makeBatch` scales uint8 pixels: `minus1to1` is x/127.5 − 1, `zero1` is x/255. */
export type PixelScale = 'minus1to1' | 'zero1';

/** Training augmentation applied by `makeBatch`: random crop with zero padding, horizontal flip. */
export interface AugmentOptions {
  /** Zero-pad each side by this many pixels, then crop back to H×W at a random offset. */
  randomCrop?: number;
  /** Mirror left-right with probability 1/2 (not sensible for digits or text). */
  flip?: boolean;
  /** Inception crop (random area/aspect box resized back to H×W) instead of randomCrop; needs `keyed`. */
  inceptionCrop?: boolean;
  /** Mixup α (applied by the trainer to the whole batch, not here). */
  mixup?: number;
}

/** Options of `makeBatch`: pixel scaling and augmentation (which needs an `rng`). */
export interface MakeBatchOptions {
  /** 'minus1to1' (default): x/127.5 − 1; 'zero1': x/255. */
  scale?: PixelScale;
  augment?: AugmentOptions;
  /** Required when augmenting; per image it draws the crop row, crop column, then the flip. */
  rng?: Rng;
  /**
   * Draw each example's augmentation from `keyedRng(seed, step, index)` instead of `rng`: the batch then depends
   * only on (seed, step, indices), whoever assembles it (the streaming pipeline's guarantee). `examples` gives the
   * data set index of each batch position when `ds` holds only the batch's images.
   */
  keyed?: { seed: number; step: number; examples?: ArrayLike<number> };
  /**
   * The (n, H, W, C) pixels to read instead of `ds.images`: those of a data set still being decoded, as
   * `ds.imagesUpTo` returns them (valid below the count it waited for).
   */
  pixels?: Uint8Array;
}

/** A batch ready for the model: images `x` (B, H, W, C) float32 and labels `y` (B) int32. */
export interface Batch {
  /** (B, H, W, C) */
  x: Float32Array;
  /** (B) */
  y: Int32Array;
  shape: [number, number, number, number];
}

/** Gathers, augments and scales the images at `indices`. Padding is raw 0, the background of these data sets. */
export function makeBatch(ds: ImageDataset, indices: ArrayLike<number>, opts: MakeBatchOptions = {}): Batch {
  const { scale = 'minus1to1', augment = {}, rng, keyed } = opts;
  const pad = augment.randomCrop ?? 0;
  const flip = augment.flip ?? false;
  if (!Number.isInteger(pad) || pad < 0) {
    throw new DataError(`makeBatch: augment.randomCrop must be a non-negative integer pad, got ${pad}`);
  }
  if (augment.inceptionCrop && !keyed) throw new DataError('makeBatch: augment.inceptionCrop needs opts.keyed');
  if ((pad > 0 || flip) && !rng && !keyed) throw new DataError('makeBatch: augmentation needs opts.rng');
  if (scale !== 'minus1to1' && scale !== 'zero1') {
    throw new DataError(`makeBatch: unknown scale '${String(scale)}': use 'minus1to1' or 'zero1'`);
  }
  const mul = scale === 'minus1to1' ? 1 / 127.5 : 1 / 255;
  const add = scale === 'minus1to1' ? -1 : 0;

  const { height: H, width: W, channels: C } = ds;
  const images = opts.pixels ?? ds.images;
  const B = indices.length;
  const pixels = H * W * C;
  const x = new Float32Array(B * pixels); // (B, H, W, C)
  const y = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const src = indices[b]!;
    if (!Number.isInteger(src) || src < 0 || src >= ds.n) {
      throw new DataError(`makeBatch: index ${src} at batch position ${b} outside data set '${ds.name}' of ${ds.n}`);
    }
    y[b] = ds.labels[src]!;
    if (keyed) {
      const img = images.subarray(src * pixels, (src + 1) * pixels);
      const r = keyedRng(keyed.seed, keyed.step, keyed.examples ? keyed.examples[b]! : src);
      augmentImage(img, H, W, C, augment, r, x.subarray(b * pixels, (b + 1) * pixels), 1, { mul, add });
      continue;
    }
    // Output (i, j) reads source (i + dy, j + dx) or, mirrored, (i + dy, W-1-j + dx); outside = background.
    const dy = pad > 0 ? rng!.int(2 * pad + 1) - pad : 0;
    const dx = pad > 0 ? rng!.int(2 * pad + 1) - pad : 0;
    const mirrored = flip && rng!.uniform() < 0.5;
    const srcBase = src * pixels;
    const dstBase = b * pixels;
    for (let i = 0; i < H; i++) {
      const si = i + dy;
      for (let j = 0; j < W; j++) {
        const sj = (mirrored ? W - 1 - j : j) + dx;
        const dst = dstBase + (i * W + j) * C;
        const inside = si >= 0 && si < H && sj >= 0 && sj < W;
        const s = srcBase + (si * W + sj) * C;
        for (let c = 0; c < C; c++) x[dst + c] = (inside ? images[s + c]! : 0) * mul + add;
      }
    }
  }
  return { x, y, shape: [B, H, W, C] };
}
