/**
 * Reading google-research/vmoe's checkpoint format. The fixtures in tests/fixtures/vmoe-ref/format were written by
 * tests/fixtures/vmoe-ref/write_format.py (numpy + msgpack, independently of this reader); expected.json holds the
 * SHA-256 of every array's float32 values as numpy computed them.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  readReferenceCheckpoint,
  readReferenceIndex,
  writeReferenceCheckpoint,
} from '../../src/checkpoint/reference-format.js';
import { importReferenceParams, inferArchitecture } from '../../src/checkpoint/reference-map.js';
import { float32Bytes, halfToFloat, toFloat32, floatToBfloat16Bits } from '../../src/util/npy.js';
import { CheckpointError, UsageError } from '../../src/util/errors.js';

const FIXTURES = path.resolve(__dirname, '../fixtures/vmoe-ref/format');
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as Record<
  string,
  Record<string, { shape: number[]; sha256: string; first: number | null }>
>;
const fx = (name: string) => path.join(FIXTURES, name);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-ref-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('reference checkpoint reader', () => {
  for (const name of Object.keys(expected).filter((k) => !k.startsWith('_'))) {
    it(`${name}: every array equals the values numpy wrote`, () => {
      const ck = readReferenceCheckpoint(fx(name));
      const want = expected[name]!;
      expect([...ck.arrays.keys()].sort()).toEqual(Object.keys(want).sort());
      for (const [p, a] of ck.arrays) {
        expect(a.shape, p).toEqual(want[p]!.shape);
        const values = toFloat32(a.dtype, a.bytes, p);
        expect(sha(float32Bytes(values)), p).toBe(want[p]!.sha256);
        if (want[p]!.first !== null) expect(values[0], p).toBe(want[p]!.first);
      }
    });
  }

  it('numbers leaves in sorted-key depth-first order (as JAX flattens dicts)', () => {
    const idx = readReferenceIndex(fx('vmoe-1shard'));
    const paths = idx.leaves.map((l) => l.path);
    // hand-sorted: uppercase before lowercase (code-point order), parents' keys before children's
    expect(paths[0]).toBe('Encoder/encoder_norm/bias');
    expect(paths).toEqual(
      [...paths].sort((a, b) => {
        const pa = a.split('/'),
          pb = b.split('/');
        for (let i = 0; i < Math.min(pa.length, pb.length); i++) if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
        return pa.length - pb.length;
      }),
    );
    expect(idx.version).toBe('20220622');
    expect(readReferenceIndex(fx('vmoe-f16-noversion')).version).toBeNull();
  });

  it('reads arrays cut into chunks along axis 0 and axis 1, over two shards, in sub-chunks', () => {
    const idx = readReferenceIndex(fx('vmoe-2shard-chunked'));
    expect(idx.shardCount).toBe(2);
    const head = idx.leaves.find((l) => l.path === 'head/kernel')!.info;
    expect(head.slices.length).toBe(2);
    // the head kernel (6, 3) was cut along its second axis: columns [0, 2) and [2, 3)
    expect(head.slices.map((s) => [s.slices[1]!.start, s.slices[1]!.stop])).toEqual([
      [0, 2],
      [2, 3],
    ]);
    expect(new Set(idx.leaves.flatMap((l) => l.info.shards))).toEqual(new Set([0, 1]));
  });

  it('bfloat16 is the top half of a float32 and float16 converts exactly', () => {
    // hand values: 1.0 = 0x3f80 (bf16) / 0x3c00 (f16); -2.5 = 0xc020 / 0xc100; f16 smallest subnormal 2^-24
    expect(toFloat32('bfloat16', new Uint8Array([0x80, 0x3f, 0x20, 0xc0]))).toEqual(new Float32Array([1, -2.5]));
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc100)).toBe(-2.5);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    // round to nearest even: 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7 → 1; 1 + 3·2^-8 → 1 + 2^-6
    expect([...floatToBfloat16Bits(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8]))]).toEqual([0x3f80, 0x3f82]);
  });

  it('a missing shard, a truncated shard and a missing index are errors naming the file', () => {
    for (const f of fs.readdirSync(FIXTURES))
      if (f.startsWith('vmoe-2shard-chunked')) fs.copyFileSync(fx(f), path.join(tmp, f));
    const prefix = path.join(tmp, 'vmoe-2shard-chunked');
    const shard1 = `${prefix}.data-00001-of-00002`;
    const bytes = fs.readFileSync(shard1);
    fs.writeFileSync(shard1, bytes.subarray(0, bytes.length - 100));
    expect(() => readReferenceCheckpoint(prefix)).toThrow(
      new RegExp(`${shard1.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*truncated or corrupt`),
    );
    fs.rmSync(shard1);
    expect(() => readReferenceCheckpoint(prefix)).toThrow(/data-00001-of-00002 does not exist/);
    expect(() => readReferenceCheckpoint(path.join(tmp, 'nothing'))).toThrow(/nothing\.index does not exist/);
    const idx = `${prefix}.index`;
    fs.writeFileSync(idx, Buffer.from([0x81, 0xa1, 0x61, 0x01])); // msgpack {"a": 1}
    expect(() => readReferenceCheckpoint(prefix)).toThrow(/not a vmoe checkpoint index/);
  });

  it('write → read is bit-identical, over shards and chunks, float32 and bfloat16', () => {
    for (const name of ['vmoe-2shard-chunked', 'vmoe-bf16', 'e3', 'trainstate']) {
      const a = readReferenceCheckpoint(fx(name));
      const out = path.join(tmp, name);
      writeReferenceCheckpoint(out, a.arrays, { shards: 3, maxChunkElements: 10 });
      const b = readReferenceCheckpoint(out);
      expect(b.index.shardCount).toBe(3);
      expect([...b.arrays.keys()]).toEqual([...a.arrays.keys()]);
      for (const [p, x] of a.arrays) {
        const y = b.arrays.get(p)!;
        expect(y.dtype, p).toBe(x.dtype);
        expect(y.shape, p).toEqual(x.shape);
        expect(Buffer.from(y.bytes).equals(Buffer.from(x.bytes)), p).toBe(true);
      }
    }
  });
});

describe('mapping the reference tree onto our parameters', () => {
  it('infers a V-MoE: sizes, MoE blocks, experts, pre-logits, classes', () => {
    const ck = readReferenceCheckpoint(fx('vmoe-1shard'));
    const arch = inferArchitecture(ck.arrays, '', 'x');
    // write_format.py: patch 4, grid 2 → 8 px, 3 channels, hidden 8, 2 heads, 2 blocks, MoE in block 1, E = 4,
    // MLP 16, pre-logits 6, 3 classes, class token
    expect(arch).toEqual({
      type: 'vmoe',
      imageSize: 8,
      channels: 3,
      patchSize: 4,
      hidden: 8,
      depth: 2,
      heads: 2,
      mlpDim: 16,
      numClasses: 3,
      readout: 'token',
      preLogits: 6,
      moeBlocks: [1],
      numExperts: 4,
      members: null,
    });
  });

  it('infers E³ from a (D, M, E/M) router and a ViT with GAP readout from a missing class token', () => {
    expect(inferArchitecture(readReferenceCheckpoint(fx('e3')).arrays, '', 'x')).toMatchObject({
      type: 'e3',
      members: 2,
      numExperts: 4,
    });
    expect(inferArchitecture(readReferenceCheckpoint(fx('vit-gap')).arrays, '', 'x')).toMatchObject({
      type: 'vit',
      readout: 'gap',
      preLogits: null,
      moeBlocks: [],
    });
  });

  it('puts each reference array where our model expects it, bytes unchanged', () => {
    const ck = readReferenceCheckpoint(fx('vmoe-1shard'));
    const { params } = importReferenceParams(ck.arrays, 'x', { groupSize: 40 });
    const same = (ours: string, ref: string) =>
      expect(
        Buffer.from(float32Bytes(params.get(ours)!.data)).equals(Buffer.from(ck.arrays.get(ref)!.bytes)),
        ours,
      ).toBe(true);
    same('embed/kernel', 'embedding/kernel');
    same('cls', 'cls');
    same('pos', 'Encoder/posembed_input/pos_embedding');
    same('block0/attn/query/kernel', 'Encoder/encoderblock_0/SelfAttention/query/kernel');
    same('block0/attn/out/kernel', 'Encoder/encoderblock_0/SelfAttention/out/kernel');
    same('block0/mlp/fc2/bias', 'Encoder/encoderblock_0/Mlp/Dense_1/bias');
    same('block1/moe/w1', 'Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel');
    same('block1/moe/router/kernel', 'Encoder/encoderblock_1/Moe/Router/dense/kernel');
    same('norm/scale', 'Encoder/encoder_norm/scale');
    same('prelogits/kernel', 'pre_logits/kernel');
    same('head/bias', 'head/bias');
    expect(params.get('block0/attn/query/kernel')!.shape).toEqual([8, 8]);
    expect(params.get('embed/kernel')!.shape).toEqual([48, 8]);
  });

  it('a train state: the params subtree is imported, optimizer slots and step ignored', () => {
    const r = importReferenceParams(readReferenceCheckpoint(fx('trainstate')).arrays, 'x');
    expect(r.arch.type).toBe('vmoe');
    expect(r.params.size).toBeGreaterThan(20);
  });

  it('routing settings the tree cannot hold: K defaults, --group-size in tokens becomes whole images', () => {
    const arrays = readReferenceCheckpoint(fx('e3')).arrays;
    // 8 px / patch 4 → 4 patches + class token = 5 tokens per image; E³ M = 2 → 10 rows per image
    const r = importReferenceParams(arrays, 'x', { groupSize: 40, capacityFactor: 0.5, batchPriority: true });
    expect(r.config.model.moe).toMatchObject({ k: 1, groupImages: 4, capacityFactor: 0.5, batchPriority: true });
    expect(r.config.model.moe.layers).toMatchObject({ placement: 'list', list: [1] });
    expect(() => importReferenceParams(arrays, 'x', { groupSize: 25 })).toThrow(UsageError);
    expect(() => importReferenceParams(arrays, 'x', { groupSize: 25 })).toThrow(/multiple of 10 tokens/);
  });

  it('unknown keys are listed in one error', () => {
    expect(() => importReferenceParams(readReferenceCheckpoint(fx('unknown-key')).arrays, 'ck')).toThrow(
      CheckpointError,
    );
    expect(() => importReferenceParams(readReferenceCheckpoint(fx('unknown-key')).arrays, 'ck')).toThrow(
      /unknown key MapHead\/probe/,
    );
  });
});
