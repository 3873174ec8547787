/**
 * Data sources named with a prefix: `cifar10:DIR`, `cifar100:DIR` (the binary versions), `folder:DIR` (one
 * sub-folder of images per class) and `npz:FILE` (numpy arrays). Each reads its official parts — `train`, `test`,
 * and an explicit `val` where the source has one — whole and checked before anything is returned, so a bad file
 * is one DataError naming it and nothing is half-loaded. `registry.ts` forms the splits from the parts.
 *
 * Layouts (docs/data.md):
 * - CIFAR-10: `data_batch_1.bin … data_batch_5.bin` + `test_batch.bin`, records of 1 label byte + 3072 pixel
 *   bytes (1024 R, 1024 G, 1024 B, each 32×32 row-major); class names from `batches.meta.txt` when present.
 * - CIFAR-100: `train.bin` + `test.bin`, records of coarse byte, fine byte, 3072 pixel bytes; names from
 *   `fine_label_names.txt` / `coarse_label_names.txt` when present.
 * - folder: `DIR/{train,val,test}/<class>/*.{png,jpg,jpeg,webp}`, or `DIR/<class>/…` split by a fixed seed.
 * - npz: `x_train, y_train, x_test, y_test[, x_val, y_val]` (Keras) or one split as `images, labels`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../util/rng.js';
import { DataError } from '../util/errors.js';
import { isIntegerDtype, readNpz, toNumbers, type NpyArray } from '../util/npy.js';
import { decodeImagesSync, type DecodeTarget } from './decode.js';

/** Prefixes of the sources in this file, e.g. `cifar10:/data/cifar-10-batches-bin`. */
export const SOURCE_PREFIXES = ['cifar10:', 'cifar100:', 'folder:', 'npz:'] as const;
/** One of `SOURCE_PREFIXES`. */
export type SourcePrefix = (typeof SOURCE_PREFIXES)[number];

/** Which CIFAR-100 label is the class: the 100 fine classes (default) or the 20 coarse superclasses. */
export type LabelKind = 'fine' | 'coarse';

/** An official part of a source. */
export type Part = 'train' | 'val' | 'test';

/**
 * One part of a source before splitting: in memory (`images`) or, for image folders, a listing (`files`) decoded
 * only for the examples a split keeps.
 */
export interface SourcePart {
  n: number;
  labels: Int32Array;
  /** (n, H, W, C) uint8, for in-memory sources. */
  images?: Uint8Array;
  height?: number;
  width?: number;
  channels?: number;
  /** One path per example, for image folders. */
  files?: string[];
  /** The file (or folder) the part came from, for messages. */
  file: string;
}

/** A source's parts and class names; `val` only where the source has an explicit one. */
export interface SourceData {
  location: string;
  classNames: string[];
  parts: Partial<Record<Part, SourcePart>>;
}

/** Splits `name` into a source prefix and its path; undefined for names without one of `SOURCE_PREFIXES`. */
export function parseSourceName(name: string): { prefix: SourcePrefix; path: string } | undefined {
  const prefix = SOURCE_PREFIXES.find((p) => name.startsWith(p));
  if (!prefix) return undefined;
  const path = name.slice(prefix.length);
  if (path === '') throw new DataError(`data set '${name}' names no path: write ${prefix}<path>`);
  return { prefix, path };
}

/** What each source expects to find, for messages and `vmoe datasets`. */
export const SOURCE_HELP: Record<SourcePrefix, string> = {
  'cifar10:': 'CIFAR-10 binary version: DIR/data_batch_{1..5}.bin and DIR/test_batch.bin (cifar-10-batches-bin)',
  'cifar100:': 'CIFAR-100 binary version: DIR/train.bin and DIR/test.bin (cifar-100-binary); data.label fine|coarse',
  'folder:': 'DIR/<class>/*.{png,jpg,jpeg,webp}, or DIR/{train,val,test}/<class>/…; class names = sorted folder names',
  'npz:': 'FILE.npz with uint8 NHWC images: x_train, y_train, x_test, y_test[, x_val, y_val], or images, labels',
};

/** Where the source's files are (the path itself or a known sub-folder); undefined when not found. */
export function locateSource(prefix: SourcePrefix, path: string): string | undefined {
  const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();
  if (prefix === 'npz:') return existsSync(path) && statSync(path).isFile() ? path : undefined;
  if (prefix === 'folder:') return isDir(path) ? path : undefined;
  const marker = prefix === 'cifar10:' ? 'test_batch.bin' : 'test.bin';
  const sub = prefix === 'cifar10:' ? 'cifar-10-batches-bin' : 'cifar-100-binary';
  for (const dir of [path, join(path, sub)]) if (isDir(dir) && existsSync(join(dir, marker))) return dir;
  return undefined;
}

// ---- CIFAR ----------------------------------------------------------------------------------

const CIFAR_PIXELS = 32 * 32 * 3;

function readNames(file: string): string[] | undefined {
  if (!existsSync(file)) return undefined;
  return readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Reads CIFAR binary record files into (n, 32, 32, 3) images; `labelByte` is the record byte holding the class. */
function readCifarFiles(files: string[], headerBytes: number, labelByte: number, numClasses: number): SourcePart {
  const record = headerBytes + CIFAR_PIXELS;
  const bufs = files.map((f) => {
    let b: Buffer;
    try {
      b = readFileSync(f);
    } catch (e) {
      throw new DataError(`cannot read ${f}: ${(e as Error).message}`);
    }
    if (b.length === 0 || b.length % record !== 0) {
      throw new DataError(
        `${f} is not a whole number of CIFAR records: ${b.length} bytes, records are ${record} bytes (truncated or not a CIFAR binary file)`,
      );
    }
    return b;
  });
  const n = bufs.reduce((a, b) => a + b.length / record, 0);
  const images = new Uint8Array(n * CIFAR_PIXELS); // (n, 32, 32, 3)
  const labels = new Int32Array(n);
  let i = 0;
  for (const [k, b] of bufs.entries()) {
    for (let r = 0; r < b.length; r += record, i++) {
      const y = b[r + labelByte]!;
      if (y >= numClasses) {
        throw new DataError(`${files[k]} record ${r / record} has label ${y}, outside [0, ${numClasses})`);
      }
      labels[i] = y;
      // planes R, G, B of 1024 each → interleaved HWC
      const src = r + headerBytes;
      const dst = i * CIFAR_PIXELS;
      for (let p = 0; p < 1024; p++) {
        images[dst + p * 3] = b[src + p]!;
        images[dst + p * 3 + 1] = b[src + 1024 + p]!;
        images[dst + p * 3 + 2] = b[src + 2048 + p]!;
      }
    }
  }
  return {
    n,
    labels,
    images,
    height: 32,
    width: 32,
    channels: 3,
    file: files.length === 1 ? files[0]! : files.join(', '),
  };
}

function cifarSource(prefix: 'cifar10:' | 'cifar100:', dir: string, label: LabelKind, parts: Part[]): SourceData {
  const part = (files: string[]) =>
    prefix === 'cifar10:'
      ? readCifarFiles(files, 1, 0, 10)
      : readCifarFiles(files, 2, label === 'fine' ? 1 : 0, label === 'fine' ? 100 : 20);
  const names: Record<'train' | 'test', string[]> =
    prefix === 'cifar10:'
      ? { train: [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`), test: ['test_batch.bin'] }
      : { train: ['train.bin'], test: ['test.bin'] };
  const out: SourceData['parts'] = {};
  for (const p of parts) {
    if (p === 'val') continue;
    const files = names[p].map((f) => join(dir, f));
    const missing = files.find((f) => !existsSync(f));
    if (missing) throw new DataError(`${prefix}${dir}: ${missing} is missing (${SOURCE_HELP[prefix]})`);
    out[p] = part(files);
  }
  const numClasses = prefix === 'cifar10:' ? 10 : label === 'fine' ? 100 : 20;
  const namesFile = join(dir, prefix === 'cifar10:' ? 'batches.meta.txt' : `${label}_label_names.txt`);
  const classNames = readNames(namesFile) ?? Array.from({ length: numClasses }, (_, i) => String(i));
  if (classNames.length !== numClasses) {
    throw new DataError(
      `${namesFile} names ${classNames.length} classes, ${prefix.slice(0, -1)} (${label}) has ${numClasses}`,
    );
  }
  return { location: dir, classNames, parts: out };
}

// ---- npz ------------------------------------------------------------------------------------

function npzPart(file: string, arrays: Map<string, NpyArray>, xKey: string, yKey: string): SourcePart {
  const x = arrays.get(xKey);
  const y = arrays.get(yKey);
  if (!x || !y) throw new DataError(`${file} has ${x ? '' : xKey}${!x && !y ? ' and ' : ''}${y ? '' : yKey} missing`);
  const where = `${file} (${xKey}.npy)`;
  if (x.dtype !== 'uint8') {
    throw new DataError(`${where}: images must be uint8, got dtype '${x.descr}'`, {
      hint: 'save the images with x.astype(np.uint8) (values 0..255)',
    });
  }
  if (x.shape.length !== 4 && x.shape.length !== 3) {
    throw new DataError(`${where}: images must be (n, H, W, C) or (n, H, W), got shape (${x.shape.join(', ')})`);
  }
  const [n, height, width, channels = 1] = x.shape as [number, number, number, number?];
  if (channels !== 1 && channels !== 3) {
    throw new DataError(`${where}: images must have 1 or 3 channels (NHWC), got shape (${x.shape.join(', ')})`);
  }
  const yShape = y.shape;
  if (!(yShape.length === 1 || (yShape.length === 2 && yShape[1] === 1)) || yShape[0] !== n) {
    throw new DataError(
      `${file} (${yKey}): labels must have shape (${n},) to match ${xKey}, got (${yShape.join(', ')})`,
    );
  }
  if (!isIntegerDtype(y.dtype)) {
    throw new DataError(`${file} (${yKey}.npy): labels must be integers, got dtype '${y.descr}'`);
  }
  const yValues = toNumbers(y);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = yValues[i]!;
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
      throw new DataError(`${file} (${yKey}): label ${v} at index ${i} is not a class index (a non-negative integer)`);
    }
    labels[i] = v;
  }
  return { n, labels, images: x.bytes.slice(), height, width, channels, file };
}

function npzSource(file: string, parts: Part[]): SourceData {
  const arrays = readNpz(file);
  const keras = arrays.has('x_train') || arrays.has('x_test');
  const out: SourceData['parts'] = {};
  if (keras) {
    const keys: Record<Part, [string, string]> = {
      train: ['x_train', 'y_train'],
      val: ['x_val', 'y_val'],
      test: ['x_test', 'y_test'],
    };
    for (const p of parts) {
      if (p === 'val' && !arrays.has('x_val')) continue;
      out[p] = npzPart(file, arrays, ...keys[p]);
    }
  } else if (arrays.has('images')) {
    // One split: it is both the whole training data (carved for train/val) and the test split.
    const one = npzPart(file, arrays, 'images', 'labels');
    for (const p of parts) if (p !== 'val') out[p] = one;
  } else {
    throw new DataError(
      `${file} has arrays ${[...arrays.keys()].join(', ') || '(none)'}: expected x_train, y_train, x_test, y_test (Keras names) or images, labels`,
    );
  }
  let max = -1;
  for (const p of Object.values(out)) for (const y of p.labels) max = Math.max(max, y);
  return { location: file, classNames: Array.from({ length: max + 1 }, (_, i) => String(i)), parts: out };
}

// ---- image folders ---------------------------------------------------------------------------

const IMAGE_EXT = /\.(png|jpe?g|webp)$/i;
/** Seed of the test carve of a folder without train/ and test/ sub-folders (a constant, like VAL_SPLIT_SEED). */
export const FOLDER_TEST_SEED = 0x5eed_0002;
/** Share of a single folder's images that forms its test split. */
export const FOLDER_TEST_FRACTION = 0.2;

function subdirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort();
}

function listClasses(dir: string, classNames?: string[]): { files: string[]; labels: number[]; classNames: string[] } {
  const classes = subdirs(dir);
  if (classes.length === 0)
    throw new DataError(`image folder ${dir} has no class sub-folders (expected ${dir}/<class>/*.png)`);
  const names = classNames ?? classes;
  const files: string[] = [];
  const labels: number[] = [];
  for (const c of classes) {
    const y = names.indexOf(c);
    if (y < 0)
      throw new DataError(`${join(dir, c)}: class '${c}' is not among the training classes (${names.join(', ')})`);
    const imgs = readdirSync(join(dir, c))
      .filter((f) => IMAGE_EXT.test(f))
      .sort();
    if (imgs.length === 0)
      throw new DataError(`class folder ${join(dir, c)} holds no images (*.png, *.jpg, *.jpeg, *.webp)`);
    for (const f of imgs) {
      files.push(join(dir, c, f));
      labels.push(y);
    }
  }
  return { files, labels, classNames: names };
}

function listingPart(file: string, files: string[], labels: number[]): SourcePart {
  return { n: files.length, files, labels: Int32Array.from(labels), file };
}

/** Lists an image folder's parts (no decoding): the sub-folder layout, or one folder carved by FOLDER_TEST_SEED. */
export function listImageFolder(dir: string, parts: Part[] = ['train', 'val', 'test']): SourceData {
  const top = subdirs(dir);
  const out: SourceData['parts'] = {};
  if (top.includes('train')) {
    const train = listClasses(join(dir, 'train'));
    const classNames = train.classNames;
    out.train = listingPart(join(dir, 'train'), train.files, train.labels);
    for (const p of ['val', 'test'] as const) {
      if (!parts.includes(p)) continue;
      if (!top.includes(p)) {
        if (p === 'test') throw new DataError(`image folder ${dir} has train/ but no test/ sub-folder`);
        continue;
      }
      const l = listClasses(join(dir, p), classNames);
      out[p] = listingPart(join(dir, p), l.files, l.labels);
    }
    return { location: dir, classNames, parts: out };
  }
  const all = listClasses(dir);
  const n = all.files.length;
  const nTest = Math.max(1, Math.round(n * FOLDER_TEST_FRACTION));
  if (n < 2) throw new DataError(`image folder ${dir} holds ${n} image: too few to split into train and test`);
  const perm = new Rng(FOLDER_TEST_SEED).permutation(n);
  const pick = (idx: Int32Array) => {
    const sorted = idx.slice().sort();
    return listingPart(
      dir,
      Array.from(sorted, (i) => all.files[i]!),
      Array.from(sorted, (i) => all.labels[i]!),
    );
  };
  out.test = pick(perm.slice(0, nTest));
  out.train = pick(perm.slice(nTest));
  return { location: dir, classNames: all.classNames, parts: out };
}

/** Decodes the listed images at `indices` of a folder part into memory (sharp, in a worker thread). */
export function decodeFolderPart(part: SourcePart, indices: ArrayLike<number>, target: DecodeTarget): SourcePart {
  const files = Array.from(indices, (i) => part.files![i]!);
  const labels = Int32Array.from(indices, (i) => part.labels[i]!);
  const d = decodeImagesSync(files, target);
  return { n: d.n, labels, images: d.images, height: d.height, width: d.width, channels: d.channels, file: part.file };
}

/** Reads the given parts of a prefixed source (folders: listed only). */
export function readSource(prefix: SourcePrefix, dir: string, parts: Part[], label: LabelKind = 'fine'): SourceData {
  if (prefix === 'npz:') return npzSource(dir, parts);
  if (prefix === 'folder:') return listImageFolder(dir, parts);
  return cifarSource(prefix, dir, label, parts);
}
