/**
 * JPEG round trips through jpeg-js. Its `encode()` builds a new encoder per call,
 * and building one (Huffman and colour tables) costs ~25 ms — far more than
 * encoding a 28×28 image. The package does not export the encoder class, so we
 * load its encoder file once in a function scope that returns the class, and keep
 * one encoder (quality is reset per call; that only recomputes the quantisation
 * tables). Output is byte-identical to `jpeg.encode` (tested); if the file layout
 * ever changes we fall back to `jpeg.encode`.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { compileFunction } from 'node:vm';
import jpeg from 'jpeg-js';

interface Encoder {
  encode(image: { data: Uint8Array; width: number; height: number }, quality: number): Uint8Array;
}

let encoder: Encoder | null | undefined;

function cachedEncoder(): Encoder | null {
  if (encoder !== undefined) return encoder;
  try {
    const path = createRequire(import.meta.url).resolve('jpeg-js/lib/encoder.js');
    const src = readFileSync(path, 'utf8');
    const make = compileFunction(`${src}\nreturn JPEGEncoder;`, ['module', 'Buffer']) as (
      module: { exports: unknown },
      buffer: typeof Buffer,
    ) => new (
      quality: number,
    ) => Encoder;
    const Ctor = make({ exports: {} }, Buffer);
    encoder = new Ctor(50);
  } catch {
    encoder = null;
  }
  return encoder;
}

/** JPEG bytes of an (H, W, 4) RGBA image at quality 1..100. */
export function encodeJpeg(rgba: Uint8Array, width: number, height: number, quality: number): Uint8Array {
  const enc = cachedEncoder();
  if (enc) return enc.encode({ data: rgba, width, height }, quality);
  return jpeg.encode({ data: rgba, width, height }, quality).data;
}

/** Decodes JPEG bytes to (H, W, 4) RGBA. */
export function decodeJpeg(bytes: Uint8Array): Uint8Array {
  return jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true }).data;
}

/** Encode + decode an (H, W, 4) RGBA image. */
export function jpegRoundTrip(rgba: Uint8Array, width: number, height: number, quality: number): Uint8Array {
  return decodeJpeg(encodeJpeg(rgba, width, height, quality));
}
