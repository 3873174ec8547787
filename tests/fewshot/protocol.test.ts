import { describe, expect, it } from 'vitest';
import type { Features } from '../../src/fewshot/features.js';
import { lsrSweep } from '../../src/fewshot/lsr.js';
import {
  DEFAULT_L2_GRID,
  rankDescending,
  runFewShot,
  sampleFewShot,
  seedStats,
  selectByMeanRank,
  selectRows,
  type FewShotDataset,
} from '../../src/fewshot/protocol.js';
import { Rng } from '../../src/util/rng.js';

describe('sampleFewShot', () => {
  const labels = Int32Array.from({ length: 60 }, (_, i) => (i * 7) % 4);

  it.each([1, 5, 10])('%i-shot: per class the first picks of the seeded permutation, grouped by class', (shot) => {
    const idx = sampleFewShot(labels, 4, shot, new Rng(3));
    const perm = new Rng(3).permutation(labels.length);
    const expected = [0, 1, 2, 3].flatMap((c) =>
      Array.from(perm)
        .filter((i) => labels[i] === c)
        .slice(0, shot),
    );
    expect(Array.from(idx)).toEqual(expected);
  });

  it('for one seed, smaller shot sets are contained in larger ones; another seed draws differently', () => {
    const one = new Set(sampleFewShot(labels, 4, 1, new Rng(0)));
    const five = new Set(sampleFewShot(labels, 4, 5, new Rng(0)));
    expect([...one].every((i) => five.has(i))).toBe(true);
    expect(Array.from(sampleFewShot(labels, 4, 5, new Rng(1)))).not.toEqual([...five]);
  });

  it('throws when a class has fewer examples than the shot count', () => {
    expect(() => sampleFewShot(labels, 4, 16, new Rng(0))).toThrow(/class 0 has 15 examples, 16-shot needs 16/);
  });
});

describe('ranking and λ selection', () => {
  it.each([
    { values: [0.5, 0.9, 0.5, 0.1], ranks: [2.5, 1, 2.5, 4] },
    { values: [0.3, 0.3, 0.3], ranks: [2, 2, 2] },
    { values: [0.1, 0.2, 0.3], ranks: [3, 2, 1] },
  ])('rankDescending($values) = $ranks', ({ values, ranks }) => {
    expect(Array.from(rankDescending(values))).toEqual(ranks);
  });

  // Three data sets, four λs. Ranks: A [1,2,3,4], B [3,1,2,4], C [4,3,1,2] (rank 1 = best).
  const acc = [
    [0.9, 0.8, 0.7, 0.6],
    [0.5, 0.7, 0.6, 0.4],
    [0.1, 0.2, 0.4, 0.3],
  ];
  it('mean rank over all data sets: [8/3, 2, 2, 10/3] → index 1 (tie with 2 → first in grid order)', () => {
    const { index, meanRanks } = selectByMeanRank(acc);
    [8 / 3, 2, 2, 10 / 3].forEach((v, j) => expect(meanRanks[j]).toBeCloseTo(v, 12));
    expect(index).toBe(1);
  });
  it.each([
    { exclude: 0, index: 2 }, // B, C: [3.5, 2, 1.5, 3]
    { exclude: 1, index: 2 }, // A, C: [2.5, 2.5, 2, 3]
    { exclude: 2, index: 1 }, // A, B: [2, 1.5, 2.5, 4]
  ])('leave-self-out excluding data set $exclude → index $index', ({ exclude, index }) => {
    expect(selectByMeanRank(acc, exclude).index).toBe(index);
  });

  it('seedStats uses the sample std (ddof 1), 0 for one seed', () => {
    const s = seedStats([0.5, 0.7, 0.9]);
    expect(s.mean).toBeCloseTo(0.7, 12);
    expect(s.std).toBeCloseTo(0.2, 12); // √((0.04 + 0 + 0.04)/2)
    expect(seedStats([0.4]).std).toBe(0);
  });
});

/** Gaussian clusters around class-specific centres; `spread` sets the difficulty. */
function clusterDataset(
  name: string,
  seed: number,
  k: number,
  d: number,
  perClassTrain: number,
  perClassTest: number,
  spread: number,
): FewShotDataset {
  const rng = new Rng(seed);
  const centres = Array.from({ length: k }, () => Array.from({ length: d }, () => rng.normal()));
  const make = (perClass: number): { x: Features; y: Int32Array } => {
    const y = Int32Array.from({ length: perClass * k }, (_, i) => i % k);
    const data = new Float64Array(y.length * d);
    y.forEach((c, i) => {
      for (let j = 0; j < d; j++) data[i * d + j] = centres[c]![j]! + spread * rng.normal();
    });
    return { x: { rows: y.length, cols: d, data }, y };
  };
  const train = make(perClassTrain);
  const test = make(perClassTest);
  return { name, trainX: train.x, trainY: train.y, testX: test.x, testY: test.y, numClasses: k };
}

describe('runFewShot', () => {
  const a = clusterDataset('a', 1, 3, 6, 12, 20, 1.0);
  const b = clusterDataset('b', 2, 4, 6, 12, 20, 1.5);
  const c = clusterDataset('c', 3, 3, 6, 12, 20, 0.8);
  const l2s = [2 ** -4, 2 ** 2, 2 ** 8, 2 ** 14];
  const shots = [1, 5];
  const report = runFewShot([a, b, c], { shots, seeds: 2, l2s });

  it("each per-seed accuracy equals an LSR sweep on that seed's few-shot draw", () => {
    for (const d of [a, b, c]) {
      for (const shot of shots) {
        const perSeed = [0, 1].map((seed) => {
          const idx = sampleFewShot(d.trainY, d.numClasses, shot, new Rng(seed));
          const y = Int32Array.from(idx, (i) => d.trainY[i]!);
          return Array.from(lsrSweep(selectRows(d.trainX, idx), y, d.testX, d.testY, d.numClasses, l2s));
        });
        const r = report.results.find((x) => x.dataset === d.name && x.shot === shot)!;
        l2s.forEach((_, j) => expect(r.accuracyByL2[j]).toBeCloseTo((perSeed[0]![j]! + perSeed[1]![j]!) / 2, 12));
        const sel = l2s.indexOf(r.meanRank.l2);
        expect(r.meanRank.accuracy.perSeed).toEqual([perSeed[0]![sel], perSeed[1]![sel]]);
      }
    }
  });

  it('mean-rank λ and leave-self-out λ follow selectByMeanRank on the per-λ mean accuracies', () => {
    for (const shot of shots) {
      const rows = report.results.filter((r) => r.shot === shot);
      const table = rows.map((r) => r.accuracyByL2);
      const overall = l2s[selectByMeanRank(table).index];
      expect(report.selection.find((s) => s.shot === shot)!.l2).toBe(overall);
      rows.forEach((r, di) => {
        expect(r.meanRank.l2).toBe(overall);
        expect(r.leaveSelfOut.l2).toBe(l2s[selectByMeanRank(table, di).index]);
        expect(r.leaveSelfOut.accuracy.mean).toBeCloseTo(r.accuracyByL2[l2s.indexOf(r.leaveSelfOut.l2)]!, 12);
      });
    }
    expect(report.results).toHaveLength(3 * shots.length);
    expect(report.seeds).toEqual([0, 1]);
  });

  it('more shots help on these clusters (mean over data sets at the selected λ)', () => {
    const mean = (shot: number) =>
      report.results.filter((r) => r.shot === shot).reduce((s, r) => s + r.meanRank.accuracy.mean, 0) / 3;
    expect(mean(5)).toBeGreaterThan(mean(1));
  });

  it('one data set: leave-self-out falls back to the fixed λ with a note, also off the grid', () => {
    const single = runFewShot([a], { shots: [5], seeds: [4], l2s, fallbackL2: 3 });
    const r = single.results[0]!;
    expect(r.leaveSelfOut.l2).toBe(3);
    const idx = sampleFewShot(a.trainY, 3, 5, new Rng(4));
    const expected = lsrSweep(
      selectRows(a.trainX, idx),
      Int32Array.from(idx, (i) => a.trainY[i]!),
      a.testX,
      a.testY,
      3,
      [3],
    )[0];
    expect(r.leaveSelfOut.accuracy.mean).toBeCloseTo(expected!, 12);
    expect(single.notes.join(' ')).toMatch(/leave-self-out needs at least two data sets.*λ = 3/);
  });

  it('logreg probe reports NLL and ECE at the selected λ; selectBy nll ranks on −NLL', () => {
    const opts = { shots: [5], seeds: 1, l2s: [2 ** -2, 2 ** 4, 2 ** 8], probe: 'logreg' as const };
    const rep = runFewShot([a, c], opts);
    const byNll = runFewShot([a, c], { ...opts, selectBy: 'nll' });
    const table = byNll.results.map((r) => r.nllByL2!.map((v) => -v));
    expect(byNll.results[0]!.meanRank.l2).toBe(opts.l2s[selectByMeanRank(table).index]);
    byNll.results.forEach((r, di) => {
      expect(r.leaveSelfOut.l2).toBe(opts.l2s[selectByMeanRank(table, di).index]);
      expect(r.meanRank.nll!.mean).toBeCloseTo(r.nllByL2![opts.l2s.indexOf(r.meanRank.l2)]!, 12);
    });
    expect(() => runFewShot([a], { selectBy: 'nll' })).toThrow(/needs probe 'logreg'/);
    for (const r of rep.results) {
      expect(r.meanRank.nll!.mean).toBeGreaterThan(0);
      expect(r.meanRank.ece!.mean).toBeGreaterThanOrEqual(0);
      expect(r.meanRank.ece!.mean).toBeLessThanOrEqual(1);
      expect(r.leaveSelfOut.nll).toBeDefined();
    }
  });

  it('defaults: 30-value grid 2^−10…2^19, 3 seeds, shots 1/5/10/25', () => {
    expect(DEFAULT_L2_GRID).toHaveLength(30);
    expect(DEFAULT_L2_GRID[0]).toBe(2 ** -10);
    expect(DEFAULT_L2_GRID[29]).toBe(2 ** 19);
    const d = clusterDataset('d', 9, 2, 3, 25, 5, 1);
    const rep = runFewShot([d]);
    expect(rep.shots).toEqual([1, 5, 10, 25]);
    expect(rep.seeds).toEqual([0, 1, 2]);
  });

  it('rejects mismatched widths and bad λ', () => {
    expect(() => runFewShot([{ ...a, testX: { rows: 0, cols: 5, data: new Float64Array(0) }, testY: [] }])).toThrow(
      /data set 'a': train features have 6 columns, test features have 5/,
    );
    expect(() => runFewShot([a], { l2s: [1, 0] })).toThrow(/every λ must be a finite number > 0/);
  });
});
