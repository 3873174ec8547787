import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import {
  concatMembers,
  fromRoutingOrder,
  membersFirst,
  repeatMembers,
  toRoutingOrder,
} from '../../src/vmoe/members.js';
import { VisionMoE } from '../../src/vmoe/model.js';
import { Rng } from '../../src/util/rng.js';
import { cfgOf, initModel, randomImages } from '../ensembles/helpers.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

describe('repeatMembers', () => {
  // B = 2 images of one token with 3 features: image 0 = [0, 1, 2], image 1 = [3, 4, 5]; M = 2.
  const x = () => tf.tensor3d([[[0, 1, 2]], [[3, 4, 5]]]);
  it('repeat: member m of image i at row i·M + m', () => {
    expect(repeatMembers(x(), 2, 'repeat').arraySync()).toEqual([[[0, 1, 2]], [[0, 1, 2]], [[3, 4, 5]], [[3, 4, 5]]]);
  });
  it('tile: member m of image i at row m·B + i', () => {
    expect(repeatMembers(x(), 2, 'tile').arraySync()).toEqual([[[0, 1, 2]], [[3, 4, 5]], [[0, 1, 2]], [[3, 4, 5]]]);
  });
  it("keeps each image's tokens together", () => {
    const rows = tf.tensor3d([
      [[0], [1]],
      [[2], [3]],
      [[4], [5]],
    ]); // B = 3, T = 2
    const r = repeatMembers(rows, 2, 'repeat').arraySync(),
      t = repeatMembers(rows, 2, 'tile').arraySync();
    for (let i = 0; i < 3; i++)
      for (let m = 0; m < 2; m++) {
        expect(r[i * 2 + m]).toEqual([[2 * i], [2 * i + 1]]);
        expect(t[m * 3 + i]).toEqual([[2 * i], [2 * i + 1]]);
      }
  });
});

describe('membersFirst', () => {
  // rows (B·M, 1) = 10, 11, 12, 13 with B = 2, M = 2
  const rows = () => tf.tensor2d([[10], [11], [12], [13]]);
  it('repeat: member m = rows m, M + m, …', () => {
    expect(membersFirst(rows(), 2, 2, 'repeat').arraySync()).toEqual([
      [[10], [12]],
      [[11], [13]],
    ]);
  });
  it('tile: member m = rows m·B … m·B + B − 1', () => {
    expect(membersFirst(rows(), 2, 2, 'tile').arraySync()).toEqual([
      [[10], [11]],
      [[12], [13]],
    ]);
  });
  it('undoes repeatMembers in both layouts', () => {
    const x = tf.tensor3d([[[1, 2]], [[3, 4]], [[5, 6]]]); // (B=3, T=1, D=2)
    for (const layout of ['repeat', 'tile'] as const) {
      const back = membersFirst(tf.reshape(repeatMembers(x, 2, layout), [6, 2]), 3, 2, layout).arraySync();
      expect(back).toEqual([
        [
          [1, 2],
          [3, 4],
          [5, 6],
        ],
        [
          [1, 2],
          [3, 4],
          [5, 6],
        ],
      ]);
    }
  });
});

describe('concatMembers', () => {
  it('(M, B, D) → (B, M·D), member 0 first', () => {
    const t = tf.tensor3d([
      [
        [1, 2],
        [3, 4],
      ],
      [
        [5, 6],
        [7, 8],
      ],
    ]); // member 0: images [1,2], [3,4]; member 1: [5,6], [7,8]
    expect(concatMembers(t).arraySync()).toEqual([
      [1, 2, 5, 6],
      [3, 4, 7, 8],
    ]);
  });
});

describe('routing order', () => {
  // B = 2 images, T = 2 tokens, M = 2 members; the value 100·i + 10·m + t names image i, member m, token t.
  const name = (i: number, m: number, t: number) => 100 * i + 10 * m + t;
  const layoutRows = {
    repeat: [0, 1].flatMap((i) => [0, 1].flatMap((m) => [0, 1].map((t) => name(i, m, t)))), // (i, m, t)
    tile: [0, 1].flatMap((m) => [0, 1].flatMap((i) => [0, 1].map((t) => name(i, m, t)))), // (m, i, t)
  };
  const routingRows = [0, 10, 1, 11, 100, 110, 101, 111]; // (i, t, m): member fastest

  it.each(['repeat', 'tile'] as const)('%s: rows become (image, token, member) and back', (layout) => {
    const h = tf.tensor2d(layoutRows[layout], [8, 1]);
    const routed = toRoutingOrder(h, 2, 2, 2, layout);
    expect(Array.from(routed.dataSync())).toEqual(routingRows);
    expect(Array.from(fromRoutingOrder(routed, 2, 2, 2, layout).dataSync())).toEqual(layoutRows[layout]);
  });

  it('is the identity for one member', () => {
    const h = tf.tensor2d([1, 2, 3, 4], [4, 1]);
    expect(toRoutingOrder(h, 2, 2, 1, 'tile')).toBe(h);
    expect(fromRoutingOrder(h, 2, 2, 1, 'tile')).toBe(h);
  });
});

describe('layouts in the E³ model', () => {
  it('the model uses its configured layout, and both layouts give the same predictions', () => {
    const M = 2;
    const rep = initModel(cfgOf({ type: 'e3', ensemble: { members: M, layout: 'repeat' } }), 6);
    const til = VisionMoE.fromValues(cfgOf({ type: 'e3', ensemble: { members: M, layout: 'tile' } }), rep.values());
    const rows = tf.tensor3d([[[0, 1, 2]], [[3, 4, 5]]]);
    expect(rep.repeatMembers(rows, M).arraySync()).toEqual(repeatMembers(rows, M, 'repeat').arraySync());
    expect(til.repeatMembers(rows, M).arraySync()).toEqual(repeatMembers(rows, M, 'tile').arraySync());
    const x = randomImages(new Rng(7), 4);
    const a = rep.forward(x, { train: false }),
      b = til.forward(x, { train: false });
    const da = a.memberLogits!.dataSync(),
      db = b.memberLogits!.dataSync();
    for (let i = 0; i < da.length; i++) expect(da[i]).toBeCloseTo(db[i]!, 5);
    const pa = a.logits.dataSync(),
      pb = b.logits.dataSync();
    for (let i = 0; i < pa.length; i++) expect(pa[i]).toBeCloseTo(pb[i]!, 5);
  });
});
