import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../src/engine/index.js';
import { meanMemberLoss } from '../../src/ensembles/combine.js';
import { ensembleLogits } from '../../src/vmoe/members.js';
import { classificationLoss, modelLoss } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';
import { cfgOf, initModel, randomImages } from './helpers.js';

beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
});

// M = 2 members, B = 2 images, K = 2 classes, logits chosen so the softmaxes are simple fractions:
// member 0: image 0 → [1/4, 3/4], image 1 → [4/5, 1/5]; member 1: image 0 → [1/2, 1/2], image 1 → [1/5, 4/5].
const memberLogits = () =>
  tf.tensor3d([
    [
      [0, Math.log(3)],
      [Math.log(4), 0],
    ],
    [
      [0, 0],
      [0, Math.log(4)],
    ],
  ]);

describe('ensembleLogits', () => {
  it("is log of the mean of the members' softmaxes", () => {
    const got = ensembleLogits(memberLogits()).arraySync();
    const want = [
      [Math.log(3 / 8), Math.log(5 / 8)],
      [Math.log(1 / 2), Math.log(1 / 2)],
    ];
    for (let i = 0; i < 2; i++) for (let c = 0; c < 2; c++) expect(got[i]![c]).toBeCloseTo(want[i]![c]!, 6);
  });

  it('of one member is its log-softmax', () => {
    const z = [2, -1, 0.5];
    const got = ensembleLogits(tf.tensor3d([[z]])).dataSync();
    const lse = Math.log(Math.exp(2) + Math.exp(-1) + Math.exp(0.5));
    for (let c = 0; c < 3; c++) expect(got[c]).toBeCloseTo(z[c]! - lse, 6);
  });
});

describe('meanMemberLoss', () => {
  it("averages the members' cross-entropies on the same labels", () => {
    const labels = tf.tensor1d([0, 1], 'int32');
    const got = meanMemberLoss(memberLogits(), labels, (z, y) => classificationLoss(z, y, 2, 0)).dataSync()[0]!;
    // −log p: member 0: 1/4 (image 0, class 0), 1/5 (image 1, class 1); member 1: 1/2, 4/5
    const want = (Math.log(4) + Math.log(5) + Math.log(2) + Math.log(5 / 4)) / 4;
    expect(got).toBeCloseTo(want, 6);
  });
});

describe('E³ model outputs', () => {
  it("the prediction is log of the mean of the members' probabilities", () => {
    const M = 2,
      B = 4,
      K = 3;
    const model = initModel(cfgOf({ type: 'e3', ensemble: { members: M } }), 8);
    const r = model.forward(randomImages(new Rng(9), B), { train: false });
    const ml = r.memberLogits!.arraySync();
    const lp = r.logits.arraySync();
    for (let i = 0; i < B; i++)
      for (let c = 0; c < K; c++) {
        let mean = 0;
        for (let m = 0; m < M; m++) {
          const row = ml[m]![i]!;
          const z = row.reduce((s, v) => s + Math.exp(v), 0);
          mean += Math.exp(row[c]!) / z / M;
        }
        expect(lp[i]![c]).toBeCloseTo(Math.log(mean), 5);
      }
  });

  it("the training loss is the mean of the members' own cross-entropies", () => {
    const M = 2,
      B = 4;
    const model = initModel(cfgOf({ type: 'e3', ensemble: { members: M } }), 10);
    const y = [0, 2, 1, 1];
    const r = model.forward(randomImages(new Rng(11), B), { train: false });
    const loss = modelLoss(r, tf.tensor1d(y, 'int32'), 3, 0).dataSync()[0]!;
    const ml = r.memberLogits!.arraySync();
    let want = 0;
    for (let m = 0; m < M; m++)
      for (let i = 0; i < B; i++) {
        const row = ml[m]![i]!;
        want += (Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[y[i]!]!) / (M * B);
      }
    expect(loss).toBeCloseTo(want, 5);
  });
});
