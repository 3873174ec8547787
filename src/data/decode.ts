/**
 * Image decoding with sharp (libvips): one file → raw (H, W, C) uint8 pixels at a fixed size and channel count.
 *
 * Three ways in: `decodeImages` (async, in this thread; sharp's calls run on libuv's thread pool, so several images
 * decode in parallel — the streaming pipeline's workers), `decodeImagesSync` (the in-memory loaders, whose
 * callers are synchronous: one worker thread decodes with the same code while this thread waits on an Atomics
 * flag and then takes the result with `receiveMessageOnPort`) and `decodeImagesAhead` (the same worker, but it
 * publishes the images chunk by chunk into shared memory, so a caller can use the first ones — run the model on
 * them — while the rest decode). sharp is loaded only when an image is decoded.
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
  /** Of n, the PNGs read without sharp (see decodeAll's pngAsIs); absent where no PNG reader was given. */
  readWithoutSharp?: number;
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
  // A synchronous PNG reader (pngjs in a worker thread): RGBA 8-bit data and the file's colour type, or null.
  readPng?: (
    file: string,
  ) => { width: number; height: number; depth: number; colorType: number; gamma: number; data: Uint8Array } | null,
): Promise<OneResult & { images?: Uint8Array; readWithoutSharp?: number }> {
  let { height, width, channels } = target;
  let readWithoutSharp = 0;
  // A small 8-bit PNG already at the target size needs no resize and no colour conversion, so its pixels are the
  // file's: read it without sharp, whose fixed cost per call (~1 ms on two cores) is 20–50× a 32×32 PNG's
  // decoding. Only where sharp would give the same bytes (tested against it): no gAMA chunk, grey to one channel,
  // RGB(A) or palette to three (alpha dropped, as removeAlpha does), RGB with R = G = B everywhere to one channel
  // (sharp's b-w conversion leaves such pixels as they are). Anything else goes to sharp.
  const pngAsIs = (file: string): OneResult | null => {
    if (height === undefined || width === undefined || channels === undefined || height * width > 128 * 128)
      return null;
    if (!/[.]png$/i.test(file)) return null;
    const p = readPng!(file);
    if (!p || p.depth !== 8 || p.gamma || p.width !== width || p.height !== height) return null;
    const px = width * height;
    const src = p.data; // (H, W, 4)
    const out = new Uint8Array(px * channels);
    if (channels === 3) {
      for (let i = 0; i < px; i++) {
        out[3 * i] = src[4 * i]!;
        out[3 * i + 1] = src[4 * i + 1]!;
        out[3 * i + 2] = src[4 * i + 2]!;
      }
    } else if (p.colorType === 0 || p.colorType === 4) {
      for (let i = 0; i < px; i++) out[i] = src[4 * i]!;
    } else {
      for (let i = 0; i < px; i++) {
        const r = src[4 * i]!;
        if (r !== src[4 * i + 1] || r !== src[4 * i + 2]) return null;
        out[i] = r;
      }
    }
    return { ok: true, data: out, height, width, channels };
  };
  const one = async (file: string, index: number): Promise<OneResult> => {
    try {
      const fast = readPng && !boxFor ? pngAsIs(file) : null;
      if (fast) {
        readWithoutSharp++;
        return fast;
      }
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
  return { ok: true, images, height, width, channels, readWithoutSharp };
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

function check(r: OneResult & { images?: Uint8Array; readWithoutSharp?: number }, n: number): DecodedImages {
  if (!r.ok) throw new DataError(r.message ?? 'image decoding failed');
  return {
    n,
    height: r.height!,
    width: r.width!,
    channels: r.channels!,
    images: r.images!,
    readWithoutSharp: r.readWithoutSharp,
  };
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

/** The workers' PNG reader (source text; `pngPath` is pngjs's resolved path): null where pngjs cannot read a file. */
const PNG_READER = `(() => {
  const { PNG } = require(pngPath);
  const { readFileSync } = require('node:fs');
  return (file) => {
    try {
      return PNG.sync.read(readFileSync(file));
    } catch {
      return null;
    }
  };
})()`;

function pngjsPath(): string {
  return createRequire(import.meta.url).resolve('pngjs');
}

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { port, signal, files, target, parallel, sharpPath, pngPath } = workerData;
const decodeAll = ${String(decodeAll)};
const readPng = ${PNG_READER};
(async () => {
  let msg;
  try {
    const sharp = require(sharpPath);
    sharp.cache(false);
    msg = await decodeAll(sharp, files, target, parallel, undefined, readPng);
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
    workerData: { port: port2, signal, files, target, parallel, sharpPath: sharpPath(), pngPath: pngjsPath() },
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

const AHEAD_WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { port, progress, buffer, files, target, parallel, chunk, sharpPath, pngPath } = workerData;
const decodeAll = ${String(decodeAll)};
const readPng = ${PNG_READER};
(async () => {
  const images = new Uint8Array(buffer);
  const pixels = target.height * target.width * target.channels;
  let failure = null;
  try {
    const sharp = require(sharpPath);
    sharp.cache(false);
    for (let start = 0; start < files.length && failure === null; start += chunk) {
      const r = await decodeAll(sharp, files.slice(start, start + chunk), target, parallel, undefined, readPng);
      if (!r.ok) failure = r;
      else {
        images.set(r.images, start * pixels);
        Atomics.add(progress, 1, r.readWithoutSharp);
        Atomics.store(progress, 0, Math.min(files.length, start + chunk));
        Atomics.notify(progress, 0);
      }
    }
  } catch (e) {
    failure = { ok: false, message: 'image decoder failed: ' + (e && e.message) };
  }
  if (failure !== null) {
    port.postMessage(failure);
    Atomics.store(progress, 0, -1);
    Atomics.notify(progress, 0);
  }
})();
`;

/** Images a worker thread is decoding in order into shared memory (see `decodeImagesAhead`). */
export interface ImagesAhead {
  n: number;
  height: number;
  width: number;
  channels: number;
  /** (n, H, W, C) uint8 in shared memory; image i holds its pixels once `waitFor(i + 1)` has returned. */
  images: Uint8Array;
  /** Images decoded so far (in order). */
  decoded(): number;
  /** Of those, the PNGs read without sharp. */
  readWithoutSharp(): number;
  /** Blocks until the first `count` images are decoded; throws the decoder's DataError if one failed before them. */
  waitFor(count: number): void;
  /** Seconds spent in `waitFor` so far. */
  waitedSeconds(): number;
}

/**
 * Starts decoding `files` at a fixed size and channel count on a worker thread, `chunk` images at a time (each
 * chunk `parallel` at a time on the worker's libuv pool), publishing each finished chunk, in order, into one
 * shared (n, H, W, C) buffer. The bytes equal `decodeImagesSync`'s for the same files and target (the same
 * decoder). `stallMs` bounds a wait without progress.
 */
export function decodeImagesAhead(
  files: string[],
  target: { height: number; width: number; channels: 1 | 3; resize?: boolean },
  opts: { parallel?: number; chunk?: number; stallMs?: number } = {},
): ImagesAhead {
  const n = files.length;
  const { height, width, channels } = target;
  const chunk = opts.chunk ?? 64;
  const stallMs = opts.stallMs ?? 600_000;
  const buffer = new SharedArrayBuffer(n * height * width * channels);
  // [images decoded (in order), or -1 after a failure; PNGs among them read without sharp]
  const progress = new Int32Array(new SharedArrayBuffer(8));
  const { port1, port2 } = new MessageChannel();
  let failure: DataError | null = null;
  let waited = 0;
  if (n > 0) {
    const worker = new Worker(AHEAD_WORKER_SOURCE, {
      eval: true,
      workerData: {
        port: port2,
        progress,
        buffer,
        files,
        target,
        parallel: opts.parallel ?? 4,
        chunk,
        sharpPath: sharpPath(),
        pngPath: pngjsPath(),
      },
      transferList: [port2],
    });
    // Neither may keep the process alive: a command that stops early (an error, a limit) just exits.
    worker.unref();
    port1.unref();
  }
  const waitFor = (count: number): void => {
    const want = Math.min(count, n);
    if (Atomics.load(progress, 0) >= want) return;
    const t0 = performance.now();
    try {
      for (;;) {
        if (failure) throw failure;
        const done = Atomics.load(progress, 0);
        if (done >= want) return;
        if (done < 0) {
          const got = receiveMessageOnPort(port1);
          const r = (got?.message ?? { ok: false }) as OneResult;
          failure = new DataError(r.message ?? `decoding ${n} images (first ${files[0]}) failed`);
          port1.close();
          throw failure;
        }
        if (Atomics.wait(progress, 0, done, stallMs) === 'timed-out') {
          throw new DataError(
            `decoding ${n} images (first ${files[0]}) made no progress for ${stallMs / 1000} s after image ${done}`,
          );
        }
      }
    } finally {
      waited += performance.now() - t0;
    }
  };
  return {
    n,
    height,
    width,
    channels,
    images: new Uint8Array(buffer),
    decoded: () => Math.max(0, Atomics.load(progress, 0)),
    readWithoutSharp: () => Atomics.load(progress, 1),
    waitFor,
    waitedSeconds: () => waited / 1000,
  };
}
