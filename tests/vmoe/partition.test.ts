import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import { checkPartition, memberBlock, partitionMask } from '../../src/vmoe/partition.js';
import type { MoeLayerResult } from '../../src/vmoe/moe.js';
import { Rng } from '../../src/util/rng.js';
import { base, cfgOf, initModel, randomImages } from '../ensembles/helpers.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

const X = -1e9;

describe('partitionMask', () => {
  it('row r opens the experts of member r mod M only', () => {
    expect(partitionMask(4, 4, 2).arraySync()).toEqual([
      [0, 0, X, X],
      [X, X, 0, 0],
      [0, 0, X, X],
      [X, X, 0, 0],
    ]);
    expect(partitionMask(3, 6, 3).arraySync()).toEqual([
      [0, 0, X, X, X, X],
      [X, X, 0, 0, X, X],
      [X, X, X, X, 0, 0],
    ]);
  });

  it('is all zeros for one member', () => {
    expect(Array.from(partitionMask(2, 3, 1).dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe('memberBlock', () => {
  it("takes member m's rows (r ≡ m mod M) on its own experts", () => {
    const g = tf.tensor2d(Array.from({ length: 4 }, (_, r) => Array.from({ length: 4 }, (_, e) => 10 * r + e))); // g[r][e] = 10r + e
    expect(memberBlock(g, 1, 4, 2, 0).arraySync()).toEqual([
      [
        [0, 1],
        [20, 21],
      ],
    ]);
    expect(memberBlock(g, 1, 4, 2, 1).arraySync()).toEqual([
      [
        [12, 13],
        [32, 33],
      ],
    ]);
  });
  it('splits G groups of S rows at once: group j holds rows j·S … (j+1)·S − 1', () => {
    const g = tf.tensor2d(Array.from({ length: 8 }, (_, r) => Array.from({ length: 4 }, (_, e) => 10 * r + e))); // 2 groups of 4 rows
    expect(memberBlock(g, 2, 4, 2, 1).arraySync()).toEqual([
      [
        [12, 13],
        [32, 33],
      ],
      [
        [52, 53],
        [72, 73],
      ],
    ]);
  });
});

describe('checkPartition', () => {
  it('needs experts, group size and rows divisible by M', () => {
    expect(() => checkPartition(4, 20, 40, 2)).not.toThrow();
    expect(() => checkPartition(6, 20, 40, 4)).toThrow(/E \(6\).*multiples of M \(4\)/);
    expect(() => checkPartition(4, 21, 42, 2)).toThrow(/group size \(21\)/);
    expect(() => checkPartition(4, 20, 41, 2)).toThrow(/token count \(41\)/);
  });
});

describe('partitioned routing in the E³ model', () => {
  it.each(['repeat', 'tile'] as const)(
    "%s layout: no member ever reaches another member's experts (train and eval)",
    (layout) => {
      const M = 2,
        E = 4,
        K = 2;
      const model = initModel(cfgOf({ type: 'e3', ensemble: { members: M, layout }, moe: { ...base.moe, k: K } }), 3);
      const x = randomImages(new Rng(4), 6);
      let layers = 0;
      const check = (_b: number, r: MoeLayerResult) => {
        layers++;
        const { expert, numTokens } = r.plan;
        for (let t = 0; t < numTokens; t++)
          for (let c = 0; c < K; c++) expect(Math.floor(expert![t * K + c]! / (E / M))).toBe(t % M);
        // gates outside the member's partition are exactly zero
        const g = r.gatesClean.dataSync();
        for (let t = 0; t < numTokens; t++)
          for (let e = 0; e < E; e++) if (Math.floor(e / (E / M)) !== t % M) expect(g[t * E + e]).toBe(0);
      };
      model.forward(x, { train: false, onMoeLayer: check });
      model.forward(x, { train: true, rng: new Rng(5), onMoeLayer: check });
      expect(layers).toBe(4); // 2 MoE layers × 2 passes
    },
  );
});
