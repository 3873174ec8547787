/** The S/32 benchmark models (suite s32) and the machine-peak arithmetic of their GFLOP/s lines. */
import { describe, expect, it } from 'vitest';
import { flopsPerCycleFromFlags, parseArgs, peakGflops } from '../../bench/lib/stats.js';
import { benchModelConfig, peerArgs } from '../../bench/lib/configs.js';
import { flopsPerImage } from '../../src/vmoe/flops.js';
import { moeBlocks, tokensPerImage } from '../../src/vmoe/config.js';

describe('S/32 benchmark models', () => {
  it('run the peer with the shapes issue 17 names', () => {
    // --image 224 --channels 3 --patch 32 --hidden 512 --depth 8 --heads 8 --mlp 2048 --classes 10 --experts 8
    // --k 2 --moe-layers 5,7 --capacity-factor 1.05
    const a = peerArgs('vmoe-s32', 64, 2, 3)!;
    const flag = (f: string) => a[a.indexOf(f) + 1];
    expect(
      ['--image', '--channels', '--patch', '--hidden', '--depth', '--heads', '--mlp', '--classes'].map(flag),
    ).toEqual(['224', '3', '32', '512', '8', '8', '2048', '10']);
    expect(['--experts', '--k', '--moe-layers', '--capacity-factor', '--batch'].map(flag)).toEqual([
      '8',
      '2',
      '5,7',
      '1.05',
      '64',
    ]);
    expect(peerArgs('vit-s32', 64, 1, 3)![a.indexOf('--moe-layers') + 1]).toBe('');
  });

  it('have 50 tokens, MoE in blocks 5 and 7 (V-MoE) or none (ViT)', () => {
    const v = benchModelConfig('vmoe-s32');
    expect(tokensPerImage(v)).toBe(50);
    expect(moeBlocks(v)).toEqual([5, 7]);
    expect(moeBlocks(benchModelConfig('vit-s32'))).toEqual([]);
  });

  it('forward FLOPs of ViT-S/32 per image, by hand', () => {
    // embedding 49·3072·512 MACs; per block: q,k,v,out 4·50·512² + scores and values 2·50²·512 + MLP 2·50·512·2048;
    // head 512·10. FLOPs = 2 · MACs.
    const macs = 49 * 3072 * 512 + 8 * (4 * 50 * 512 * 512 + 2 * 50 * 50 * 512 + 2 * 50 * 512 * 2048) + 512 * 10;
    expect(flopsPerImage(benchModelConfig('vit-s32')).total).toBe(2 * macs);
  });
});

describe('machine peak', () => {
  it('is clock × FLOPs per cycle × cores', () => {
    expect(peakGflops(2596, 2, 32)).toBeCloseTo(166.144, 9);
    expect(peakGflops(3000, 1, 16)).toBeCloseTo(48, 9);
    expect(() => peakGflops(0, 1, 32)).toThrow();
  });
  it('counts 32 float32 FLOPs per cycle with AVX2 + FMA, 16 with AVX only, 8 otherwise', () => {
    expect(flopsPerCycleFromFlags(['sse2', 'avx', 'avx2', 'fma', 'avx512f'])).toBe(32);
    expect(flopsPerCycleFromFlags(['sse2', 'avx'])).toBe(16);
    expect(flopsPerCycleFromFlags(['sse2'])).toBe(8);
  });
  it('s32 is a suite of its own', () => {
    expect(parseArgs(['--only', 's32']).only).toEqual(['s32']);
  });
});
