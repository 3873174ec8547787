import { describe, expect, it } from 'vitest';
import {
  bestOfRepeats,
  comparePeer,
  imagesPerSecond,
  markdownTable,
  median,
  parseArgs,
} from '../../bench/lib/stats.js';
import { benchModelConfig, peerArgs } from '../../bench/lib/configs.js';
import { moeBlocks, tokensPerImage } from '../../src/vmoe/config.js';

describe('median', () => {
  it.each([
    [[5], 5],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 3], // upper median, as torch_peer.py's sorted(v)[len // 2]
    [[10, 10, 1, 1000, 10], 10],
  ])('median(%j) = %d', (v, want) => expect(median(v)).toBe(want));
  it('rejects an empty list', () => expect(() => median([])).toThrow(/empty/));
});

describe('imagesPerSecond', () => {
  it.each([
    [64, 500, 128],
    [1, 1000, 1],
    [256, 2000, 128],
  ])('batch %d in %d ms → %d images/s', (b, ms, want) => {
    expect(imagesPerSecond(b, ms)).toBeCloseTo(want, 10);
  });
  it('rejects a non-positive time', () => expect(() => imagesPerSecond(64, 0)).toThrow(/positive/));
});

describe('comparePeer', () => {
  it('divides by the best peer setting of each metric and the smallest peer RSS', () => {
    const peers = [
      { backend: 'xla', threads: 1, train_images_per_s: 200, infer_images_per_s: 900, peak_rss_mb: 400 },
      { backend: 'torch', threads: 2, train_images_per_s: 250, infer_images_per_s: 600, peak_rss_mb: 420 },
    ];
    const c = comparePeer({ train_images_per_s: 500, infer_images_per_s: 450, peak_rss_mb: 600 }, peers);
    expect(c.train_ratio).toBeCloseTo(500 / 250, 12);
    expect(c.infer_ratio).toBeCloseTo(450 / 900, 12);
    expect(c.peer_best_train_threads).toBe(2);
    expect(c.peer_best_infer_threads).toBe(1);
    expect([c.peer_best_train, c.peer_best_infer]).toEqual(['torch@2', 'xla@1']);
    expect(c.rss_ratio).toBeCloseTo(600 / 400, 12);
  });
  it('needs at least one peer result', () => {
    expect(() => comparePeer({ train_images_per_s: 1, infer_images_per_s: 1, peak_rss_mb: 1 }, [])).toThrow(/no peer/);
  });
});

describe('parseArgs', () => {
  it('defaults: full run, no peer, the engine default thread count, batch 64, all suites, saved', () => {
    expect(parseArgs([], 3)).toEqual({
      quick: false,
      peer: false,
      threads: [3],
      backend: 'auto',
      batch: 64,
      repeat: 1,
      only: [],
      save: true,
      child: null,
    });
  });
  it('reads every option (and ignores the npm "--" separator)', () => {
    const a = parseArgs([
      '--',
      '--quick',
      '--peer',
      '--threads',
      '1,2',
      '--batch',
      '32',
      '--repeat',
      '2',
      '--backend',
      'wasm',
      '--only',
      'models,capacity',
      '--no-save',
    ]);
    expect(a).toEqual({
      quick: true,
      peer: true,
      threads: [1, 2],
      backend: 'wasm',
      batch: 32,
      repeat: 2,
      only: ['models', 'capacity'],
      save: false,
      child: null,
    });
  });
  it.each([
    [['--threads', '0'], /--threads: "0"/],
    [['--threads'], /needs a value/],
    [['--batch', '1.5'], /--batch/],
    [['--only', 'models,speed'], /unknown suite speed/],
    [['--fast'], /unknown option --fast/],
  ])('rejects %j', (argv, msg) => expect(() => parseArgs(argv)).toThrow(msg));
});

describe('markdownTable', () => {
  it('writes a header, a rule and one row per record, 3 significant digits, blanks for missing', () => {
    const t = markdownTable(
      [
        { a: 'x', b: 1234.5678, c: 7 },
        { a: 'y', b: 0.012345 },
      ],
      ['a', 'b', 'c'],
    );
    expect(t).toBe('| a | b | c |\n|---|---|---|\n| x | 1230 | 7 |\n| y | 0.0123 |  |');
  });
});

describe('benchmark models match torch_peer.py defaults', () => {
  it.each(['vit-tiny', 'vmoe-tiny', 'e3-tiny'] as const)(
    '%s: 28×28×1, patch 4, hidden 64, 4 blocks, 4 heads, MLP 256, 10 classes',
    (name) => {
      const c = benchModelConfig(name);
      expect([c.imageSize, c.channels, c.patchSize, c.hidden, c.depth, c.heads, c.mlpDim, c.numClasses]).toEqual([
        28, 1, 4, 64, 4, 4, 256, 10,
      ]);
      expect(tokensPerImage(c)).toBe((28 / 4) ** 2 + 1); // 49 patches + class token, as the peer's T
    },
  );
  it('MoE placement, experts, K, capacity factor and group size', () => {
    const v = benchModelConfig('vmoe-tiny');
    expect(moeBlocks(v)).toEqual([1, 3]);
    expect([v.moe.numExperts, v.moe.k, v.moe.capacityFactor, v.moe.groupImages]).toEqual([8, 2, 1.05, 8]);
    const e = benchModelConfig('e3-tiny');
    expect([e.type, e.ensemble.members, e.moe.k]).toEqual(['e3', 2, 1]);
    expect(moeBlocks(benchModelConfig('vit-tiny'))).toEqual([]);
  });
  it('peer arguments: dense ViT has no MoE layers; E³ has no peer', () => {
    const vit = peerArgs('vit-tiny', 64, 2, 20)!;
    expect(vit[vit.indexOf('--moe-layers') + 1]).toBe('');
    const moe = peerArgs('vmoe-tiny', 64, 1, 5)!;
    expect(moe[moe.indexOf('--moe-layers') + 1]).toBe('1,3');
    expect(moe[moe.indexOf('--threads') + 1]).toBe('1');
    expect(moe[moe.indexOf('--batch') + 1]).toBe('64');
    expect(peerArgs('e3-tiny', 64, 1, 5)).toBeNull();
  });
});

describe('bestOfRepeats', () => {
  const rec = (threads: number, train: number, infer: number, rss: number, extra = {}) => ({
    name: 'vmoe-tiny',
    suite: 'models',
    backend: 'wasm-blas',
    threads,
    batch: 64,
    train_images_per_s: train,
    infer_images_per_s: infer,
    peak_rss_mb: rss,
    ...extra,
  });
  it('takes the fastest train and infer run separately and the largest RSS, per setting', () => {
    const best = bestOfRepeats([
      rec(1, 300, 900, 400),
      rec(1, 350, 800, 390),
      rec(2, 200, 1000, 410),
      rec(1, 1e6, 1e6, 1, { error: 'crashed' }),
    ]);
    expect(best).toHaveLength(2);
    const one = best.find((r) => r.threads === 1)!;
    expect([one.train_images_per_s, one.infer_images_per_s, one.peak_rss_mb, one.repeats]).toEqual([350, 900, 400, 2]);
    expect(best.find((r) => r.threads === 2)!.repeats).toBe(1);
  });
  it('--repeat is parsed as a positive integer', () => {
    expect(parseArgs(['--repeat', '3']).repeat).toBe(3);
    expect(parseArgs([]).repeat).toBe(1);
    expect(() => parseArgs(['--repeat', '0'])).toThrow(/positive integer/);
  });
});
