/**
 * The cifar10:, cifar100:, folder: and npz: loaders on files these tests write, checked pixel for pixel against
 * the values written; their splits; and their bad-file errors (one DataError naming the file).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { zipSync } from 'fflate';
import { beforeAll, describe, expect, it } from 'vitest';
import { carveValidation, loadDataset, listDatasets } from '../../src/data/index.js';
import { DataError } from '../../src/util/errors.js';
import { CIFAR10_NAMES, npy, randomImages, writeCifar10, writeNpz, writePngFolder } from '../helpers/image-formats.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-sources-'));
const train = randomImages(30, 1);
const test = randomImages(10, 2);
const P = 32 * 32 * 3;
const img = (d: { images: Uint8Array }, i: number) => d.images.subarray(i * P, (i + 1) * P);

beforeAll(async () => {
  writeCifar10(path.join(tmp, 'cifar'), train, test);
  await writePngFolder(path.join(tmp, 'folder'), { train, test });
  writeNpz(path.join(tmp, 'keras.npz'), train, test);
  writeNpz(path.join(tmp, 'stored.npz'), train, test, { store: true });
});

describe('cifar10:', () => {
  it('reads records pixel for pixel, in file order, with the class names of batches.meta.txt', () => {
    const ds = loadDataset(`cifar10:${tmp}/cifar`, 'train_full');
    expect([ds.n, ds.height, ds.width, ds.channels, ds.numClasses]).toEqual([30, 32, 32, 3, 10]);
    expect(ds.classNames).toEqual(CIFAR10_NAMES);
    expect(Buffer.from(ds.images).equals(Buffer.from(train.images))).toBe(true);
    expect([...ds.labels]).toEqual(train.labels);
    const t = loadDataset(`cifar10:${tmp}/cifar`, 'test');
    expect(Buffer.from(t.images).equals(Buffer.from(test.images))).toBe(true);
    // pixel (row 3, col 5) of image 7, green channel: plane G at offset 1024 + 3*32 + 5 of record 7 written
    const rec = fs.readFileSync(path.join(tmp, 'cifar', 'data_batch_2.bin')); // records 6..11
    expect(ds.images[7 * P + (3 * 32 + 5) * 3 + 1]).toBe(rec[1 * 3073 + 1 + 1024 + 3 * 32 + 5]);
  });

  it('carves val from train like the IDX data sets, and fits to another model size', () => {
    const carve = carveValidation(30, 5);
    const val = loadDataset(`cifar10:${tmp}/cifar`, 'val', { valSize: 5 });
    expect(val.n).toBe(5);
    carve.val.forEach((src, i) => expect(Buffer.from(img(val, i)).equals(Buffer.from(img(train, src)))).toBe(true));
    const grey = loadDataset(`cifar10:${tmp}/cifar`, 'test', { imageSize: 16, channels: 1, limit: 2 });
    expect([grey.height, grey.width, grey.channels, grey.images.length]).toEqual([16, 16, 1, 2 * 256]);
    // output (0,0) of a 2× bilinear downsize (half-pixel centres) is the mean of source (0..1, 0..1), in luma
    const luma = (p: number) => 0.299 * test.images[p]! + 0.587 * test.images[p + 1]! + 0.114 * test.images[p + 2]!;
    const lumas = [0, 1, 32, 33].map((q) => Math.round(luma(q * 3)));
    expect(grey.images[0]).toBe(Math.round(lumas.reduce((a, b) => a + b) / 4));
  });

  it('truncated file → DataError naming it, nothing returned', () => {
    const dir = path.join(tmp, 'cifar-cut');
    writeCifar10(dir, train, test);
    const f = path.join(dir, 'data_batch_3.bin');
    fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 3073 * 2 + 100));
    expect(() => loadDataset(`cifar10:${dir}`, 'train')).toThrow(DataError);
    expect(() => loadDataset(`cifar10:${dir}`, 'train')).toThrow(f);
    expect(() => loadDataset(`cifar10:${tmp}/nowhere`, 'train')).toThrow(/not found/);
  });
});

describe('cifar100:', () => {
  it('reads fine or coarse labels', () => {
    const dir = path.join(tmp, 'c100');
    fs.mkdirSync(dir);
    const rec = (i: number, d: typeof train) => {
      const b = Buffer.alloc(3074);
      b[0] = (i * 7) % 20; // coarse
      b[1] = (i * 13) % 100; // fine
      for (let p = 0; p < 1024; p++)
        for (let ch = 0; ch < 3; ch++) b[2 + ch * 1024 + p] = d.images[i * P + p * 3 + ch]!;
      return b;
    };
    fs.writeFileSync(path.join(dir, 'train.bin'), Buffer.concat(train.labels.map((_, i) => rec(i, train))));
    fs.writeFileSync(path.join(dir, 'test.bin'), Buffer.concat(test.labels.map((_, i) => rec(i, test))));
    fs.writeFileSync(
      path.join(dir, 'coarse_label_names.txt'),
      Array.from({ length: 20 }, (_, i) => `super${i}`).join('\n'),
    );
    const fine = loadDataset(`cifar100:${dir}`, 'train_full');
    expect(fine.numClasses).toBe(100);
    expect([...fine.labels]).toEqual(train.labels.map((_, i) => (i * 13) % 100));
    expect(Buffer.from(fine.images).equals(Buffer.from(train.images))).toBe(true);
    const coarse = loadDataset(`cifar100:${dir}`, 'test', { label: 'coarse' });
    expect(coarse.classNames[3]).toBe('super3');
    expect([...coarse.labels]).toEqual(test.labels.map((_, i) => (i * 7) % 20));
  });
});

describe('folder:', () => {
  it('reads PNGs pixel for pixel, classes = sorted folder names, order = class then file name', () => {
    const ds = loadDataset(`folder:${tmp}/folder`, 'train_full');
    expect(ds.classNames).toEqual([...CIFAR10_NAMES].sort());
    expect([ds.n, ds.height, ds.width, ds.channels]).toEqual([30, 32, 32, 3]);
    // expected order: by class, then by the index in the file name
    const order = train.labels.map((y, i) => ({ y, i })).sort((a, b) => a.y - b.y || a.i - b.i);
    order.forEach(({ y, i }, k) => {
      expect(ds.labels[k]).toBe(y);
      expect(Buffer.from(img(ds, k)).equals(Buffer.from(img(train, i)))).toBe(true);
    });
  });

  it('one folder without train/test is split by a fixed seed; grey PNGs and JPEGs decode', async () => {
    const dir = path.join(tmp, 'flat');
    const grey = randomImages(10, 3, 8, 1);
    for (let i = 0; i < 10; i++) {
      const cls = path.join(dir, i < 5 ? 'b' : 'a');
      fs.mkdirSync(cls, { recursive: true });
      const px = Buffer.from(grey.images.subarray(i * 64, (i + 1) * 64));
      await sharp(px, { raw: { width: 8, height: 8, channels: 1 } })
        .toColourspace('b-w')
        .png()
        .toFile(path.join(cls, `${i}.png`));
    }
    await sharp(Buffer.alloc(8 * 8 * 3, 200), { raw: { width: 8, height: 8, channels: 3 } })
      .jpeg()
      .toFile(path.join(dir, 'a', 'x.jpg'));
    const tr = loadDataset(`folder:${dir}`, 'train_full');
    const te = loadDataset(`folder:${dir}`, 'test');
    expect(tr.n + te.n).toBe(11);
    expect(te.n).toBe(2); // round(11 · 0.2)
    expect(tr.classNames).toEqual(['a', 'b']);
    expect(tr.channels).toBe(1); // the first file (a/5.png) is grey
    const again = loadDataset(`folder:${dir}`, 'test');
    expect(Buffer.from(again.images).equals(Buffer.from(te.images))).toBe(true);
  });

  it('empty class folder, corrupt image, mixed sizes → DataError naming the file', async () => {
    const dir = path.join(tmp, 'bad');
    fs.mkdirSync(path.join(dir, 'cat'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'dog'), { recursive: true });
    await sharp(Buffer.alloc(48), { raw: { width: 4, height: 4, channels: 3 } })
      .png()
      .toFile(path.join(dir, 'cat', '1.png'));
    await sharp(Buffer.alloc(48), { raw: { width: 4, height: 4, channels: 3 } })
      .png()
      .toFile(path.join(dir, 'cat', '2.png'));
    expect(() => loadDataset(`folder:${dir}`, 'train_full')).toThrow(
      `class folder ${path.join(dir, 'dog')} holds no images`,
    );
    await sharp(Buffer.alloc(75), { raw: { width: 5, height: 5, channels: 3 } })
      .png()
      .toFile(path.join(dir, 'dog', '1.png'));
    await sharp(Buffer.alloc(75), { raw: { width: 5, height: 5, channels: 3 } })
      .png()
      .toFile(path.join(dir, 'dog', '2.png'));
    expect(() => loadDataset(`folder:${dir}`, 'train_full', { valSize: 1 })).toThrow(/dog.*5×5.*4×4/);
    // at the model's size the odd one is resized instead
    expect(loadDataset(`folder:${dir}`, 'train_full', { imageSize: 4 }).n).toBe(3);
    const png = fs.readFileSync(path.join(dir, 'cat', '1.png'));
    fs.writeFileSync(path.join(dir, 'cat', '1.png'), png.subarray(0, 30));
    expect(() => loadDataset(`folder:${dir}`, 'train_full', { imageSize: 4 })).toThrow(path.join(dir, 'cat', '1.png'));
  });
});

describe('npz:', () => {
  it('reads the Keras names pixel for pixel, deflated or stored', () => {
    for (const f of ['keras.npz', 'stored.npz']) {
      const ds = loadDataset(`npz:${tmp}/${f}`, 'train_full');
      expect(Buffer.from(ds.images).equals(Buffer.from(train.images))).toBe(true);
      expect([...ds.labels]).toEqual(train.labels);
      const t = loadDataset(`npz:${tmp}/${f}`, 'test');
      expect(Buffer.from(t.images).equals(Buffer.from(test.images))).toBe(true);
    }
  });

  it('one split as images, labels (grey, (n, H, W)) serves test and train_full; x_val is the val split', () => {
    const f = path.join(tmp, 'one.npz');
    const g = randomImages(6, 4, 5, 1);
    fs.writeFileSync(
      f,
      zipSync({ 'images.npy': npy(g.images, [6, 5, 5]), 'labels.npy': npy([0, 1, 2, 0, 1, 2], [6, 1], '<i8') }),
    );
    const t = loadDataset(`npz:${f}`, 'test');
    expect([t.n, t.height, t.channels, t.numClasses]).toEqual([6, 5, 1, 3]);
    expect(Buffer.from(t.images).equals(Buffer.from(g.images))).toBe(true);
    const fv = path.join(tmp, 'val.npz');
    fs.writeFileSync(
      fv,
      zipSync({
        'x_train.npy': npy(g.images, [6, 5, 5, 1]),
        'y_train.npy': npy([0, 1, 0, 1, 0, 1], [6], '<i8'),
        'x_val.npy': npy(g.images.subarray(0, 50), [2, 5, 5, 1]),
        'y_val.npy': npy([1, 0], [2], '<i8'),
        'x_test.npy': npy(g.images.subarray(0, 25), [1, 5, 5, 1]),
        'y_test.npy': npy([1], [1], '<i8'),
      }),
    );
    expect([...loadDataset(`npz:${fv}`, 'val').labels]).toEqual([1, 0]);
    expect(loadDataset(`npz:${fv}`, 'train').n).toBe(6);
  });

  it('wrong dtype, shape mismatch, missing arrays, not a zip → DataError naming the file', () => {
    const bad = (name: string, files: Record<string, Uint8Array>) => {
      const f = path.join(tmp, name);
      fs.writeFileSync(f, zipSync(files));
      return f;
    };
    const f1 = bad('float.npz', {
      'images.npy': npy(new Float32Array(8), [2, 2, 2], '<f4'),
      'labels.npy': npy([0, 1], [2], '<i8'),
    });
    expect(() => loadDataset(`npz:${f1}`, 'test')).toThrow(`${f1} (images.npy): images must be uint8, got dtype '<f4'`);
    const f2 = bad('shape.npz', {
      'images.npy': npy(new Uint8Array(8), [2, 2, 2]),
      'labels.npy': npy([0, 1, 1], [3], '<i8'),
    });
    expect(() => loadDataset(`npz:${f2}`, 'test')).toThrow(`${f2} (labels): labels must have shape (2,)`);
    const f3 = bad('none.npz', { 'a.npy': npy([1], [1]) });
    expect(() => loadDataset(`npz:${f3}`, 'test')).toThrow(/none\.npz has arrays a: expected/);
    const f4 = path.join(tmp, 'text.npz');
    fs.writeFileSync(f4, 'not a zip');
    expect(() => loadDataset(`npz:${f4}`, 'test')).toThrow(DataError);
    expect(() => loadDataset(`npz:${f4}`, 'test')).toThrow(f4);
    const full = npy(new Uint8Array(16), [2, 2, 2, 2]);
    const f5 = bad('cut.npz', {
      'images.npy': full.subarray(0, full.length - 3),
      'labels.npy': npy([0, 1], [2], '<i8'),
    });
    expect(() => loadDataset(`npz:${f5}`, 'test')).toThrow(/cut\.npz \(images\.npy\).*truncated/);
  });
});

it('vmoe datasets lists the kinds', () => {
  const names = listDatasets().map((d) => d.name);
  for (const k of ['idx:DIR', 'cifar10:DIR', 'cifar100:DIR', 'folder:DIR', 'npz:FILE']) expect(names).toContain(k);
});
