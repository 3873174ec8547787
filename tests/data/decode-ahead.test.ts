/**
 * Image folders decoded in a worker thread (src/data/decode.ts): the PNG reader that skips sharp for small 8-bit
 * PNGs already at the target size, held byte for byte against sharp itself on every PNG colour type it takes and
 * on those it must pass to sharp; `decodeImagesAhead` (chunks published into shared memory while the caller
 * runs) against the same bytes, its partial waits and its failure naming the file; and a data set decoded ahead
 * through `computeOutputs` against the same data set decoded whole first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeImages, decodeImagesAhead, decodeImagesSync } from '../../src/data/decode.js';
import { DECODE_AHEAD_ENV, loadDataset } from '../../src/data/index.js';
import { initEngine } from '../../src/engine/index.js';
import { DataError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { ModelSchema } from '../../src/vmoe/config.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { computeOutputs } from '../../src/vmoe/outputs.js';
import { randomImages, writePngFolder } from '../helpers/image-formats.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-decode-ahead-'));
const S = 16;

function raw(channels: number, seed: number, grey = false): Buffer {
  const rng = new Rng(seed);
  const b = Buffer.alloc(S * S * channels);
  for (let p = 0; p < S * S; p++) {
    const v = rng.int(256);
    for (let c = 0; c < channels; c++) b[p * channels + c] = grey && c < 3 ? v : rng.int(256);
  }
  return b;
}

/** One file per PNG kind; `kind` names what pngjs must report for it (checked, so the set covers each case). */
const KINDS: { name: string; colorType: number; depth: number; write: (f: string) => Promise<unknown> }[] = [
  {
    name: 'grey',
    colorType: 0,
    depth: 8,
    write: (f) =>
      sharp(raw(1, 1), { raw: { width: S, height: S, channels: 1 } })
        .toColourspace('b-w')
        .png()
        .toFile(f),
  },
  {
    name: 'grey-alpha',
    colorType: 4,
    depth: 8,
    write: (f) =>
      sharp(raw(2, 2), { raw: { width: S, height: S, channels: 2 } })
        .toColourspace('b-w')
        .png()
        .toFile(f),
  },
  {
    name: 'rgb',
    colorType: 2,
    depth: 8,
    write: (f) =>
      sharp(raw(3, 3), { raw: { width: S, height: S, channels: 3 } })
        .png()
        .toFile(f),
  },
  {
    name: 'rgb-grey-values',
    colorType: 2,
    depth: 8,
    write: (f) =>
      sharp(raw(3, 4, true), { raw: { width: S, height: S, channels: 3 } })
        .png()
        .toFile(f),
  },
  {
    name: 'rgba',
    colorType: 6,
    depth: 8,
    write: (f) =>
      sharp(raw(4, 5), { raw: { width: S, height: S, channels: 4 } })
        .png()
        .toFile(f),
  },
  {
    name: 'palette',
    colorType: 3,
    depth: 8,
    write: (f) =>
      sharp(raw(3, 6), { raw: { width: S, height: S, channels: 3 } })
        .png({ palette: true, colours: 200 })
        .toFile(f),
  },
  {
    name: 'interlaced',
    colorType: 2,
    depth: 8,
    write: (f) =>
      sharp(raw(3, 7), { raw: { width: S, height: S, channels: 3 } })
        .png({ progressive: true })
        .toFile(f),
  },
  {
    name: 'rgb16',
    colorType: 2,
    depth: 16,
    write: (f) =>
      sharp(raw(3, 8), { raw: { width: S, height: S, channels: 3 } })
        .toColourspace('rgb16')
        .png()
        .toFile(f),
  },
  {
    name: 'other-size',
    colorType: 2,
    depth: 8,
    write: (f) =>
      sharp(raw(3, 9), { raw: { width: S, height: S, channels: 3 } })
        .resize(S + 4, S + 4)
        .png()
        .toFile(f),
  },
];
const files = KINDS.map((k) => path.join(tmp, 'kinds', `${k.name}.png`));
/** Kinds sharp must still read for a target of c channels (the others are read without it). */
const VIA_SHARP: Record<1 | 3, string[]> = {
  1: ['rgb', 'rgba', 'palette', 'interlaced', 'rgb16', 'other-size'],
  3: ['rgb16', 'other-size'],
};

beforeAll(async () => {
  fs.mkdirSync(path.join(tmp, 'kinds'), { recursive: true });
  for (const [i, k] of KINDS.entries()) await k.write(files[i]!);
  const folder = randomImages(40, 11, S, 3, true);
  await writePngFolder(path.join(tmp, 'folder'), { train: folder, test: folder }, S, 3);
});

afterEach(() => {
  delete process.env[DECODE_AHEAD_ENV];
});

describe('PNGs read without sharp', () => {
  it('the fixture set has each PNG kind it claims', () => {
    KINDS.forEach((k, i) => {
      const p = PNG.sync.read(fs.readFileSync(files[i]!));
      expect([k.name, p.colorType, p.depth]).toEqual([k.name, k.colorType, k.depth]);
    });
  });

  for (const c of [1, 3] as const) {
    it(`give sharp's bytes for every kind at ${S}×${S}×${c}, and only the kinds that allow it skip sharp`, async () => {
      const target = { height: S, width: S, channels: c, resize: true };
      const bySharp = await decodeImages(files, target); // this thread: no PNG reader, sharp for every file
      expect(bySharp.readWithoutSharp).toBe(0);
      const inWorker = decodeImagesSync(files, target);
      expect(Buffer.from(inWorker.images).equals(Buffer.from(bySharp.images))).toBe(true);
      expect(inWorker.readWithoutSharp).toBe(KINDS.length - VIA_SHARP[c].length);
      // per file too, so a kind counted on the wrong side shows by name
      for (const [i, k] of KINDS.entries()) {
        const one = decodeImagesSync([files[i]!], target);
        expect([k.name, one.readWithoutSharp]).toEqual([k.name, VIA_SHARP[c].includes(k.name) ? 0 : 1]);
      }
    });
  }
});

describe('decodeImagesAhead', () => {
  it('publishes the same bytes chunk by chunk; waits return as soon as their images are in', async () => {
    const target = { height: S, width: S, channels: 3 as const, resize: true };
    const list = [...files, ...files, ...files]; // 27 images, chunks of 4
    const ref = await decodeImages(list, target);
    const ahead = decodeImagesAhead(list, target, { chunk: 4 });
    ahead.waitFor(5);
    expect(ahead.decoded()).toBeGreaterThanOrEqual(8); // whole chunks only
    ahead.waitFor(list.length);
    expect(ahead.decoded()).toBe(list.length);
    expect(Buffer.from(ahead.images).equals(Buffer.from(ref.images))).toBe(true);
    expect(ahead.readWithoutSharp()).toBe(3 * (KINDS.length - VIA_SHARP[3].length));
    expect(ahead.waitedSeconds()).toBeGreaterThanOrEqual(0);
  });

  it('a file that fails: the images before its chunk stay usable, a wait past it throws a DataError naming it', () => {
    const bad = path.join(tmp, 'kinds', 'broken.png');
    fs.writeFileSync(bad, Buffer.from('not a png at all'));
    const list = [...files.slice(0, 7), bad, ...files.slice(0, 3)]; // bad at 7: chunk [6, 9) fails
    const ahead = decodeImagesAhead(list, { height: S, width: S, channels: 1 }, { chunk: 3 });
    ahead.waitFor(6);
    expect(() => ahead.waitFor(8)).toThrow(DataError);
    expect(() => ahead.waitFor(8)).toThrow(bad);
    expect(ahead.decoded()).toBe(0); // -1 after the failure reads as nothing more decoded
  });
});

describe('a folder data set decoded ahead', () => {
  it('gives computeOutputs the logits of the same folder decoded whole first, and the same images', async () => {
    await initEngine({ backend: 'wasm', quiet: true });
    const cfg = ModelSchema.parse({
      type: 'vit',
      imageSize: S,
      channels: 3,
      patchSize: 4,
      hidden: 16,
      depth: 1,
      heads: 2,
      mlpDim: 32,
      numClasses: 10,
      dropout: 0,
    });
    const model = VisionMoE.init(cfg, 3);
    const head = model.params.get('head/kernel')!;
    head.assign(tf.randomNormal(head.shape, 0, 0.5, 'float32', 3));
    const load = (ahead: '0' | '1') => {
      process.env[DECODE_AHEAD_ENV] = ahead;
      return loadDataset(`folder:${tmp}/folder`, 'test', { imageSize: S, channels: 3 });
    };
    const whole = load('0');
    const streamed = load('1');
    expect(whole.imagesUpTo).toBeUndefined();
    expect(typeof streamed.imagesUpTo).toBe('function');
    const a = computeOutputs(model, whole, { batchSize: 8, scale: 'minus1to1' });
    const b = computeOutputs(model, streamed, { batchSize: 8, scale: 'minus1to1' });
    expect(a.inputWaitSeconds).toBe(0);
    expect(b.inputWaitSeconds).toBeGreaterThanOrEqual(0);
    expect(Buffer.from(b.logits.buffer).equals(Buffer.from(a.logits.buffer))).toBe(true);
    expect(Buffer.from(streamed.images).equals(Buffer.from(whole.images))).toBe(true);
    expect([...streamed.labels]).toEqual([...whole.labels]);
    model.dispose();
  });
});
