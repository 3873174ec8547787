/**
 * Writes one set of images (n, H, W, C uint8 + labels) in each format the loaders read — CIFAR-10 binary records,
 * an image folder of PNGs (train/ and test/), an npz with the Keras names — using only the formats' definitions
 * (and sharp to encode PNG), so the loaders are checked against bytes the tests chose.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { zipSync } from 'fflate';
import { Rng } from '../../src/util/rng.js';

export const CIFAR10_NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

/**
 * n random hw×hw×c images with labels 0..9 (every class present when n ≥ 10): cycling, or `sorted` (the order an
 * image folder is read in: class by class).
 */
export function randomImages(
  n: number,
  seed: number,
  hw = 32,
  c = 3,
  sorted = false,
): { images: Uint8Array; labels: number[] } {
  const rng = new Rng(seed);
  const images = new Uint8Array(n * hw * hw * c);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  return { images, labels: Array.from({ length: n }, (_, i) => (sorted ? Math.floor((i * 10) / n) : i % 10)) };
}

/** CIFAR-10 records: label byte, then the R, G and B planes (1024 bytes each, row-major). */
export function cifarRecords(images: Uint8Array, labels: number[], from: number, to: number): Buffer {
  const out = Buffer.alloc((to - from) * 3073);
  for (let i = from; i < to; i++) {
    const r = (i - from) * 3073;
    out[r] = labels[i]!;
    for (let p = 0; p < 1024; p++)
      for (let ch = 0; ch < 3; ch++) out[r + 1 + ch * 1024 + p] = images[i * 3072 + p * 3 + ch]!;
  }
  return out;
}

/** Writes DIR/data_batch_{1..5}.bin (train split in five parts), DIR/test_batch.bin and batches.meta.txt. */
export function writeCifar10(
  dir: string,
  train: { images: Uint8Array; labels: number[] },
  test: { images: Uint8Array; labels: number[] },
): void {
  fs.mkdirSync(dir, { recursive: true });
  const n = train.labels.length;
  for (let k = 0; k < 5; k++) {
    const from = Math.floor((k * n) / 5);
    const to = Math.floor(((k + 1) * n) / 5);
    fs.writeFileSync(path.join(dir, `data_batch_${k + 1}.bin`), cifarRecords(train.images, train.labels, from, to));
  }
  fs.writeFileSync(path.join(dir, 'test_batch.bin'), cifarRecords(test.images, test.labels, 0, test.labels.length));
  fs.writeFileSync(path.join(dir, 'batches.meta.txt'), CIFAR10_NAMES.join('\n') + '\n\n');
}

/** Writes DIR/<split>/<class name>/<index>.png; returns the files in the loaders' order (class, then file name). */
export async function writePngFolder(
  dir: string,
  splits: Record<string, { images: Uint8Array; labels: number[] }>,
  hw = 32,
  c = 3,
): Promise<void> {
  for (const [split, { images, labels }] of Object.entries(splits)) {
    for (let i = 0; i < labels.length; i++) {
      const cls = path.join(dir, split, CIFAR10_NAMES[labels[i]!]!);
      fs.mkdirSync(cls, { recursive: true });
      const px = images.subarray(i * hw * hw * c, (i + 1) * hw * hw * c);
      let img = sharp(Buffer.from(px), { raw: { width: hw, height: hw, channels: c as 1 | 3 } });
      if (c === 1) img = img.toColourspace('b-w');
      await img.png().toFile(path.join(cls, `${String(i).padStart(5, '0')}.png`));
    }
  }
}

/** A version-1 .npy of uint8 (`|u1`) or little-endian int64 (`<i8`) values, written from the format's spec. */
export function npy(values: ArrayLike<number>, shape: number[], descr = '|u1'): Uint8Array {
  const size = descr.endsWith('8') ? 8 : descr.endsWith('4') ? 4 : 1;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const out = Buffer.alloc(10 + header.length + values.length * size);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = 1;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  for (let i = 0; i < values.length; i++) {
    const o = 10 + header.length + i * size;
    if (size === 1) out[o] = values[i]!;
    else if (size === 4) out.writeFloatLE(values[i]!, o);
    else out.writeBigInt64LE(BigInt(values[i]!), o);
  }
  return out;
}

/** Writes an npz with x_train, y_train, x_test, y_test (n, 32, 32, 3); `store` = numpy's savez (no compression). */
export function writeNpz(
  file: string,
  train: { images: Uint8Array; labels: number[] },
  test: { images: Uint8Array; labels: number[] },
  opts: { store?: boolean; hw?: number; c?: number } = {},
): void {
  const hw = opts.hw ?? 32;
  const c = opts.c ?? 3;
  const shape = (n: number) => [n, hw, hw, c];
  fs.writeFileSync(
    file,
    zipSync(
      {
        'x_train.npy': npy(train.images, shape(train.labels.length)),
        'y_train.npy': npy(train.labels, [train.labels.length], '<i8'),
        'x_test.npy': npy(test.images, shape(test.labels.length)),
        'y_test.npy': npy(test.labels, [test.labels.length], '<i8'),
      },
      { level: opts.store ? 0 : 6 },
    ),
  );
}
