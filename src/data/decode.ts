/**
 * Image decoding with sharp (libvips): one file → raw (H, W, C) uint8 pixels at a fixed size and channel count.
 *
 * Two ways in: `decodeImages` (async, in this thread; sharp's calls run on libuv's thread pool, so several images
 * decode in parallel — the streaming pipeline's workers) and `decodeImagesSync` (the in-memory loaders, whose
 * callers are synchronous: one worker thread decodes with the same code while this thread waits on an Atomics
 * flag and then takes the result with `receiveMessageOnPort`). sharp is loaded only when an image is decoded.
 */
import { createRequire } from 'node:module';
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { DataError } from '../util/errors.js';
import type { CropBox } from './preprocess.js';

/** What every decoded image is made into: this size (when given) and channel count (1 grey, 3 RGB). */
export interface DecodeTarget {
  height?: number;
  width?: number;
  channels?: 1 | 3;
  /** Resize images of another size to height×width (bilinear); when false such an image is an error. */
  resize?: boolean;
}

/** Decoded images, (n, H, W, C) uint8. */
export interface DecodedImages {
  n: number;
  height: number;
  width: number;
  channels: number;
  images: Uint8Array;
}

/** One image's result inside the decoder (kept free of outer references: it is also run as a worker's source). */
interface OneResult {
  ok: boolean;
  message?: string;
  data?: Uint8Array;
  height?: number;
  width?: number;
  channels?: number;
}

// Self-contained (no imports, no outer names): `String(decodeAll)` is the worker thread's code too.
async function decodeAll(
  // biome-ignore lint/suspicious/noExplicitAny: sharp's chained API, untyped here because this code also runs as a worker's source
  sharp: (file: string, opts: object) => any,
  files: string[],
  target: { height?: number; width?: number; channels?: number; resize?: boolean },
  parallel: number,
  // Per file (by index): a box of the source image to cut out before resizing (the streaming inception crop).
  boxFor?: (i: number, width: number, height: number) => { y: number; x: number; h: number; w: number } | null,
): Promise<OneResult & { images?: Uint8Array }> {
  let { height, width, channels } = target;
  const one = async (file: string, index: number): Promise<OneResult> => {
    try {
      const img = sharp(file, { failOn: 'error' });
      const meta = await img.metadata();
      if (channels === undefined) channels = meta.channels - (meta.hasAlpha ? 1 : 0) === 1 ? 1 : 3;
      let h = meta.height;
      let w = meta.width;
      if (height === undefined || width === undefined) {
        height = h;
        width = w;
      }
      const box = boxFor ? boxFor(index, w, h) : null;
      if (box) {
        img.extract({ left: box.x, top: box.y, width: box.w, height: box.h });
        w = box.w;
        h = box.h;
      }
      if (h !== height || w !== width) {
        if (!target.resize) {
          return {
            ok: false,
            message: `${file} is ${w}×${h} but the data set's images are ${width}×${height}: images must share one size (or be read at the model's size)`,
          };
        }
        img.resize(width, height, { fit: 'fill', kernel: 'linear' });
        h = height;
        w = width;
      }
      // Conversions only where needed: an sRGB → sRGB toColourspace costs as much as the resize.
      const own = meta.channels - (meta.hasAlpha ? 1 : 0);
      if (meta.hasAlpha) img.removeAlpha();
      if (channels === 1) img.toColourspace('b-w');
      else if (own !== 3 || meta.space !== 'srgb') img.toColourspace('srgb');
      const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
      if (info.channels !== channels || data.length !== h * w * channels) {
        return {
          ok: false,
          message: `${file}: decoded to ${info.width}×${info.height}×${info.channels}, expected ${w}×${h}×${channels}`,
        };
      }
      return { ok: true, data, height: h, width: w, channels };
    } catch (e) {
      return { ok: false, message: `${file}: cannot decode the image: ${(e as Error).message}` };
    }
  };
  if (files.length === 0)
    return { ok: true, images: new Uint8Array(0), height: height ?? 0, width: width ?? 0, channels: channels ?? 3 };
  // The first image fixes size and channels when the target leaves them open.
  const first = await one(files[0]!, 0);
  if (!first.ok) return first;
  const pixels = height! * width! * channels!;
  const images = new Uint8Array(files.length * pixels);
  images.set(first.data!, 0);
  let next = 1;
  let failed: OneResult | null = null;
  const lane = async () => {
    while (failed === null && next < files.length) {
      const i = next++;
      const r = await one(files[i]!, i);
      if (!r.ok) failed = r;
      else images.set(r.data!, i * pixels);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, lane));
  if (failed) return failed;
  return { ok: true, images, height, width, channels };
}

let sharpFn: ((file: string, opts: object) => unknown) | null = null;
function sharpPath(): string {
  return createRequire(import.meta.url).resolve('sharp');
}
function loadSharp(): (file: string, opts: object) => unknown {
  if (!sharpFn) {
    const sharp = createRequire(import.meta.url)('sharp') as ((file: string, opts: object) => unknown) & {
      cache(on: boolean): void;
    };
    // Each file is read once: libvips' operation cache (up to 50 MB) would only hold memory the bound leaves out.
    sharp.cache(false);
    sharpFn = sharp;
  }
  return sharpFn;
}

function check(r: OneResult & { images?: Uint8Array }, n: number): DecodedImages {
  if (!r.ok) throw new DataError(r.message ?? 'image decoding failed');
  return { n, height: r.height!, width: r.width!, channels: r.channels!, images: r.images! };
}

/**
 * Decodes `files` in this thread, `parallel` at a time on sharp's (libuv) thread pool. `boxFor(i, width, height)`
 * may name a box of file i's source image to cut out before the resize (needs `target.resize`).
 */
export async function decodeImages(
  files: string[],
  target: DecodeTarget = {},
  parallel = 4,
  boxFor?: (i: number, width: number, height: number) => CropBox | null,
): Promise<DecodedImages> {
  return check(await decodeAll(loadSharp() as never, files, target, parallel, boxFor), files.length);
}

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { port, signal, files, target, parallel, sharpPath } = workerData;
const decodeAll = ${String(decodeAll)};
(async () => {
  let msg;
  try {
    msg = await decodeAll(require(sharpPath), files, target, parallel);
  } catch (e) {
    msg = { ok: false, message: 'image decoder failed: ' + (e && e.message) };
  }
  port.postMessage(msg, msg.images ? [msg.images.buffer] : []);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
})();
`;

/**
 * Decodes `files` synchronously: a worker thread runs the same decoder while this thread waits (at most
 * `timeoutMs`). For loaders that build a whole split in memory.
 */
export function decodeImagesSync(
  files: string[],
  target: DecodeTarget = {},
  parallel = 4,
  timeoutMs = 3_600_000,
): DecodedImages {
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { port: port2, signal, files, target, parallel, sharpPath: sharpPath() },
    transferList: [port2],
  });
  worker.unref();
  try {
    const waited = Atomics.wait(signal, 0, 0, timeoutMs);
    const got = receiveMessageOnPort(port1);
    if (waited === 'timed-out' || !got) {
      throw new DataError(
        `decoding ${files.length} images (first ${files[0]}) did not finish within ${timeoutMs / 1000} s`,
      );
    }
    return check(got.message as OneResult & { images?: Uint8Array }, files.length);
  } finally {
    port1.close();
    void worker.terminate();
  }
}
