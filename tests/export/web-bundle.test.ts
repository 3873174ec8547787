/**
 * `vmoe export --format web` (src/export/web-bundle*.ts): the shard layout round-trips values the test writes,
 * across shard boundaries; the manifest checks name the fault; a bundle of a trained checkpoint holds exactly its
 * parameters, the SHA-256 of its file and the data set's first test images; re-exporting replaces the folder whole;
 * bad input is one error line from the CLI.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, latestCheckpoint } from '../../src/checkpoint/format.js';
import { loadDataset } from '../../src/data/index.js';
import { initEngine } from '../../src/engine/index.js';
import { exportWebBundle } from '../../src/export/web-bundle.js';
import {
  WEB_BUNDLE_FORMAT,
  packWebTensors,
  parseWebManifest,
  unpackWebTensors,
  type WebManifest,
} from '../../src/export/web-bundle-format.js';
import { CheckpointError } from '../../src/util/errors.js';
import { oneLineError, vmoe } from '../helpers/cli.js';
import { tinyRun, tmpDir } from '../cli/tiny-run.js';

describe('web bundle format', () => {
  const tensors = [
    { name: 'a', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 1e-8, -0, 7]) },
    { name: 'b', shape: [1], data: Float32Array.from([Math.PI]) },
    { name: 'c', shape: [5], data: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5]) },
  ];

  it('packs tensors end to end into shards of at most the given size and unpacks the same values', () => {
    const { entries, shards } = packWebTensors(tensors, 20); // 48 bytes → shards of 20, 20, 8: tensors span them
    expect(shards.map((s) => s.byteLength)).toEqual([20, 20, 8]);
    expect(entries.map((e) => e.offset)).toEqual([0, 24, 28]);
    const manifest = {
      name: 't',
      shards: shards.map((s, i) => ({ file: `w${i}.bin`, bytes: s.byteLength })),
      tensors: entries,
    } as unknown as WebManifest;
    const back = unpackWebTensors(manifest, shards);
    for (const t of tensors) {
      expect(back.get(t.name)!.shape).toEqual(t.shape);
      expect(Array.from(back.get(t.name)!.data)).toEqual(Array.from(t.data));
    }
    // little-endian float32: the second value of `a` (−2 = 0xC0000000) at bytes 4..7
    expect(Array.from(shards[0]!.subarray(4, 8))).toEqual([0, 0, 0, 0xc0]);
  });

  it('refuses shards whose sizes differ from the manifest', () => {
    const { entries, shards } = packWebTensors(tensors, 20);
    const manifest = {
      name: 't',
      shards: [
        { file: 'w0.bin', bytes: 20 },
        { file: 'w1.bin', bytes: 20 },
        { file: 'w2.bin', bytes: 8 },
      ],
      tensors: entries,
    } as unknown as WebManifest;
    expect(() => unpackWebTensors(manifest, [shards[0]!, shards[1]!, shards[2]!.subarray(0, 4)])).toThrow(
      /w2\.bin has 4 bytes, the manifest says 8/,
    );
    expect(() => unpackWebTensors(manifest, shards.slice(0, 2))).toThrow(CheckpointError);
  });

  it('names the fault of a manifest that is not a bundle', () => {
    expect(() => parseWebManifest([], 'm.json')).toThrow(
      /m\.json: not a vmoe web bundle manifest: expected a JSON object/,
    );
    expect(() => parseWebManifest({ format: 'tfjs' }, 'm.json')).toThrow(/format is "tfjs"/);
    expect(() => parseWebManifest({ format: WEB_BUNDLE_FORMAT, version: 99 }, 'm.json')).toThrow(/version 99/);
  });
});

describe('exportWebBundle on a trained checkpoint', () => {
  let run = '';
  beforeAll(async () => {
    await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
    run = await tinyRun();
  });

  it("holds the checkpoint's parameters, its file's SHA-256, class names and the first test images", () => {
    const out = path.join(tmpDir('web-export'), 'bundle');
    const r = exportWebBundle({ checkpoint: run, out, images: 5, shardBytes: 4096 });
    const file = latestCheckpoint(path.join(run, 'checkpoints'))!;
    const m = parseWebManifest(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')), out);
    expect(m.checkpoint.sha256).toBe(createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
    expect(m.checkpoint.step).toBe(4);
    expect(m.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(m.pixelScale).toBe('minus1to1');
    expect(fs.readdirSync(out).sort()).toEqual([...r.files].sort());
    const shards = m.shards.map((s) => new Uint8Array(fs.readFileSync(path.join(out, s.file))));
    const values = unpackWebTensors(m, shards);
    const ck = loadCheckpoint(file);
    const params = Object.keys(ck.tensors).filter((k) => k.startsWith('params/'));
    expect(values.size).toBe(params.length);
    const bytes = params.reduce((sum, k) => sum + 4 * ck.tensors[k]!.data.length, 0);
    expect(m.shards.map((s) => s.bytes)).toEqual(
      Array.from({ length: Math.ceil(bytes / 4096) }, (_, i) => Math.min(4096, bytes - 4096 * i)),
    );
    for (const k of params) {
      const v = values.get(k.slice('params/'.length))!;
      expect(v.shape).toEqual(ck.tensors[k]!.shape);
      expect(Buffer.from(v.data.buffer).equals(Buffer.from((ck.tensors[k]!.data as Float32Array).buffer))).toBe(true);
    }
    const test = loadDataset('mnist', 'test', { limit: 5 });
    expect(m.samples!.labels).toEqual(Array.from(test.labels));
    expect(fs.readFileSync(path.join(out, 'samples.bin')).equals(Buffer.from(test.images))).toBe(true);
  });

  it('replaces a previous bundle whole and leaves no temporary folder', () => {
    const parent = tmpDir('web-export-again');
    const out = path.join(parent, 'bundle');
    exportWebBundle({ checkpoint: run, out, images: 3, shardBytes: 32 * 1024 });
    const before = fs.readdirSync(out).length;
    exportWebBundle({ checkpoint: run, out, images: 0 });
    expect(fs.readdirSync(out).sort()).toEqual(['manifest.json', 'weights-0.bin']);
    expect(before).toBeGreaterThan(2);
    expect(fs.readdirSync(parent)).toEqual(['bundle']);
  });

  it('CLI: bad input is one error line, and nothing is written', () => {
    const parent = tmpDir('web-export-cli');
    const out = path.join(parent, 'b');
    expect(
      oneLineError(vmoe('export', '--checkpoint', path.join(parent, 'missing'), '--format', 'web', '--out', out)).error,
    ).toMatch(/missing does not exist/);
    expect(oneLineError(vmoe('export', '--checkpoint', run, '--format', 'onnx', '--out', out)).error).toMatch(
      /--format: .*"onnx"/,
    );
    fs.mkdirSync(path.join(parent, 'other'));
    fs.writeFileSync(path.join(parent, 'other', 'notes.txt'), 'mine');
    expect(
      oneLineError(vmoe('export', '--checkpoint', run, '--format', 'web', '--out', path.join(parent, 'other'))).error,
    ).toMatch(/holds files but no bundle/);
    expect(fs.readdirSync(path.join(parent, 'other'))).toEqual(['notes.txt']);
    fs.writeFileSync(path.join(parent, 'afile'), 'x');
    expect(
      oneLineError(vmoe('export', '--checkpoint', run, '--format', 'web', '--out', path.join(parent, 'afile'))).error,
    ).toMatch(/is a file/);
    expect(fs.readdirSync(parent).sort()).toEqual(['afile', 'other']);
    const ok = vmoe('export', run, '--format', 'web', '--out', out, '--images', '2');
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/wrote .*: .*vmoe, \d+ tensors in 1 shard\(s\), 2 sample images/);
  });
});
