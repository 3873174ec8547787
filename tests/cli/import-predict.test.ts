/**
 * `vmoe import` then `vmoe predict` on checkpoints in the reference's format (tests/fixtures/vmoe-ref/format,
 * written by write_format.py). The expected logits come from write_format.py's numpy forward pass, written from
 * the reference's conventions (flax LayerNorm ε 1e-6, tanh GELU, (D, heads, D/heads) attention kernels, conv patch
 * embedding, top-k gates from a softmax over all experts — E³: over the member's own experts, batch repeated with
 * the member fastest) with room for every token; it shares no code with the toolkit.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneLineError, vmoe } from '../helpers/cli.js';
import { floatToBfloat16Bits, parseNpy, toFloat32 } from '../../src/util/npy.js';
import { loadCheckpoint } from '../../src/checkpoint/format.js';
import { resolveCheckpoint } from '../../src/checkpoint/load.js';

const FIXTURES = path.resolve(__dirname, '../fixtures/vmoe-ref/format');
const forward = (
  JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
    _forward: { logits: Record<string, number[][] | number[][][]> };
  }
)._forward;

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-import-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** `vmoe predict` on the fixture images with capacity factor 8: with E = 4 experts every token finds room. */
function predictNoDrop(checkpoint: string, out: string) {
  const args = ['--capacity-factor', '8', '--group-images', '2'];
  return vmoe(
    'predict',
    '--checkpoint',
    checkpoint,
    '--input',
    path.join(FIXTURES, 'images.npy'),
    '--out',
    out,
    ...args,
  );
}

function readNpy(file: string): { shape: number[]; data: Float32Array } {
  const a = parseNpy(fs.readFileSync(file), file);
  return { shape: a.shape, data: toFloat32(a.dtype, a.bytes) };
}

describe('vmoe import + vmoe predict', () => {
  for (const [name, members] of [
    ['vmoe-1shard', 1],
    ['vmoe-bf16', 1],
    ['e3', 2],
    ['vit-gap', 1],
    ['vit-npz', 1],
    ['bigvision-npz', 1],
  ] as const) {
    it(`${name}: logits equal the numpy forward pass of the same tree`, () => {
      const out = path.join(tmp, name);
      const file = name.endsWith('-npz') ? `${name}.npz` : `${name}.index`;
      const imp = vmoe('import', path.join(FIXTURES, file), '--out', out);
      expect(imp.status, imp.stderr).toBe(0);
      expect(imp.stdout).toMatch(/imported .* 8px\/4, hidden 8, 2 blocks, 2 heads/);
      const summary = JSON.parse(fs.readFileSync(path.join(out, 'import.json'), 'utf8'));
      expect(summary.inferred.type).toBe(name === 'e3' ? 'e3' : name.startsWith('vmoe') ? 'vmoe' : 'vit');
      const pred = path.join(out, 'pred');
      const r = predictNoDrop(out, pred);
      expect(r.status, r.stderr).toBe(0);
      const logits = readNpy(path.join(pred, 'logits.npy'));
      const want = forward.logits[name]!.flat(2) as number[];
      expect(logits.shape).toEqual(members > 1 ? [4, members, 3] : [4, 3]);
      const scale = Math.max(...want.map(Math.abs));
      for (let i = 0; i < want.length; i++)
        expect(Math.abs(logits.data[i]! - want[i]!), `logit ${i}`).toBeLessThan(2e-4 + 1e-4 * scale);
      const pre = readNpy(path.join(pred, 'pre_logits.npy'));
      expect(pre.shape[0]).toBe(4);
      if (members > 1) {
        // log of the members' mean probability, computed here from the member logits
        const lp = readNpy(path.join(pred, 'log_probs.npy'));
        for (let i = 0; i < 4; i++) {
          for (let c = 0; c < 3; c++) {
            let mean = 0;
            for (let m = 0; m < members; m++) {
              const row = Array.from(logits.data.subarray((i * members + m) * 3, (i * members + m + 1) * 3));
              const lse = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
              mean += Math.exp(row[c]! - lse) / members;
            }
            expect(lp.data[i * 3 + c]!).toBeCloseTo(Math.log(mean), 5);
          }
        }
      }
    });
  }

  it("the reference's bfloat16 dispatcher (--set model.moe.dispatchBfloat16=true) matches its numpy model", () => {
    const out = path.join(tmp, 'bf16-dispatch');
    const i = vmoe(
      'import',
      path.join(FIXTURES, 'vmoe-1shard'),
      '--out',
      out,
      '--set',
      'model.moe.dispatchBfloat16=true',
    );
    expect(i.status, i.stderr).toBe(0);
    const pred = path.join(out, 'pred');
    const r = predictNoDrop(out, pred);
    expect(r.status, r.stderr).toBe(0);
    const got = readNpy(path.join(pred, 'logits.npy')).data;
    const want = forward.logits['vmoe-1shard-bf16-dispatch']!.flat(2) as number[];
    const plain = forward.logits['vmoe-1shard']!.flat(2) as number[];
    const scale = Math.max(...want.map(Math.abs));
    for (let i = 0; i < want.length; i++)
      expect(Math.abs(got[i]! - want[i]!), `logit ${i}`).toBeLessThan(2e-4 + 1e-4 * scale);
    // and the rounding is visible: float32 dispatch differs from it by far more than the tolerance
    expect(Math.max(...want.map((w, i) => Math.abs(w - plain[i]!)))).toBeGreaterThan(1e-2);
  });

  it('vmoe info on an imported checkpoint shows the inferred architecture', () => {
    const out = path.join(tmp, 'info');
    expect(
      vmoe('import', path.join(FIXTURES, 'vmoe-2shard-chunked'), '--out', out, '--num-selected-experts', '1').status,
    ).toBe(0);
    const info = JSON.parse(vmoe('info', out).stdout);
    expect(info.architecture).toMatchObject({
      type: 'vmoe',
      image: '8×8×3',
      patch: 4,
      hidden: 8,
      depth: 2,
      heads: 2,
      mlp: 16,
      classes: 3,
    });
    expect(info.architecture.moe).toMatchObject({ blocks: [1], experts: 4, k: 1 });
    expect(info.training.imported).toMatchObject({ format: 'vmoe', shards: 2, index_version: '20220622' });
    expect(Object.keys(info.training.imported.sha256).sort()).toEqual([
      'vmoe-2shard-chunked.data-00000-of-00002',
      'vmoe-2shard-chunked.data-00001-of-00002',
      'vmoe-2shard-chunked.index',
    ]);
  });

  it('vmoe finetune --from an imported checkpoint: new resolution (positions resized), new data set and head', () => {
    const imported = path.join(tmp, 'ft-src');
    expect(vmoe('import', path.join(FIXTURES, 'vmoe-1shard'), '--out', imported).status).toBe(0);
    const run = path.join(tmp, 'ft-run');
    // the imported architecture (write_format.py), at 16 px instead of 8 and with MNIST's 10 classes; MNIST is
    // resized to 16 px and repeated to 3 channels by the data pipeline
    const model = {
      type: 'vmoe',
      imageSize: 16,
      channels: 3,
      patchSize: 4,
      hidden: 8,
      depth: 2,
      heads: 2,
      mlpDim: 16,
      numClasses: 10,
      preLogits: 6,
      moe: { layers: { placement: 'list', list: [1] }, numExperts: 4, k: 2, groupImages: 4 },
    };
    const r = vmoe(
      'finetune',
      '--from',
      imported,
      '--out',
      run,
      '--set',
      `model=${JSON.stringify(model)}`,
      '--set',
      'data.dataset="mnist"',
      '--set',
      'data.trainLimit=64',
      '--set',
      'data.valSize=16',
      '--set',
      'train.batchSize=16',
      '--set',
      'train.steps=2',
      '--set',
      'train.evalEvery=0',
      '--set',
      'train.logEvery=1',
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resized \(pos\)/);
    const summary = JSON.parse(fs.readFileSync(path.join(run, 'train_summary.json'), 'utf8'));
    expect(summary.init_from).toMatchObject({ head: 'reinitialised' });
    // the expert weights came from the import unchanged (2 steps of AdamW at lr ≤ 1e-3 move them by < 3e-3)
    const before = loadCheckpoint(resolveCheckpoint(imported)).tensors['params/block1/moe/w1']!.data;
    const after = loadCheckpoint(resolveCheckpoint(run)).tensors['params/block1/moe/w1']!.data;
    let maxDiff = 0;
    for (let i = 0; i < before.length; i++) maxDiff = Math.max(maxDiff, Math.abs(after[i]! - before[i]!));
    expect(maxDiff).toBeLessThan(3e-3);
  });

  it('bad input: one line naming the problem, exit 2, nothing written', () => {
    const out = path.join(tmp, 'bad');
    const unknown = oneLineError(vmoe('import', path.join(FIXTURES, 'unknown-key'), '--out', out));
    expect(unknown.error).toMatch(/unknown key MapHead\/probe/);
    expect(fs.existsSync(path.join(out, 'checkpoints'))).toBe(false);
    const missing = oneLineError(vmoe('import', path.join(tmp, 'nope'), '--out', out));
    expect(missing.error).toMatch(/nope\.index does not exist/);
    const group = oneLineError(vmoe('import', path.join(FIXTURES, 'e3'), '--out', out, '--group-size', '7'));
    expect(group.error).toMatch(/--group-size 7: .*multiple of 10 tokens/);
    // predict on images of the wrong size
    const ok = path.join(tmp, 'ok');
    expect(vmoe('import', path.join(FIXTURES, 'vmoe-1shard'), '--out', ok).status).toBe(0);
    const wrong = path.join(tmp, 'wrong.npy');
    const hdr = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4, 3), }";
    const pad = ' '.repeat(64 - ((10 + hdr.length + 1) % 64)) + '\n';
    const head = Buffer.concat([Buffer.from([0x93]), Buffer.from('NUMPY'), Buffer.from([1, 0]), Buffer.alloc(2)]);
    head.writeUInt16LE(hdr.length + pad.length, 8);
    fs.writeFileSync(wrong, Buffer.concat([head, Buffer.from(hdr + pad, 'latin1'), Buffer.alloc(2 * 4 * 4 * 3)]));
    const bad = oneLineError(vmoe('predict', '--checkpoint', ok, '--input', wrong, '--out', path.join(tmp, 'p')));
    expect(bad.error).toMatch(/wrong\.npy: images must be \(N, 8, 8, 3\) for this model, got \(2, 4, 4, 3\)/);
  });

  it('export → import round trips bit for bit (vmoe over 3 shards, npz; bfloat16 = the values rounded)', () => {
    const a = path.join(tmp, 'rt-a');
    expect(vmoe('import', path.join(FIXTURES, 'vmoe-2shard-chunked'), '--out', a).status).toBe(0);
    const vitA = path.join(tmp, 'rt-vit');
    expect(vmoe('import', path.join(FIXTURES, 'vit-npz.npz'), '--out', vitA).status).toBe(0);
    const params = (dir: string) => loadCheckpoint(resolveCheckpoint(dir)).tensors;
    const cases: [string, string, string[]][] = [
      [a, 'vmoe', ['--shards', '3']],
      [a, 'npz', []],
      [vitA, 'npz', []],
      [a, 'vmoe', ['--dtype', 'bfloat16']],
    ];
    for (const [src, fmt, extra] of cases) {
      const exported = path.join(tmp, `rt-${path.basename(src)}-${fmt}-${extra.join('')}`);
      const e = vmoe('export', src, '--format', fmt, '--out', exported, ...extra);
      expect(e.status, e.stderr).toBe(0);
      const back = `${exported}-back`;
      const i = vmoe('import', fmt === 'npz' ? `${exported}.npz` : exported, '--out', back);
      expect(i.status, i.stderr).toBe(0);
      const x = params(src),
        y = params(back);
      expect(Object.keys(y).sort()).toEqual(Object.keys(x).sort());
      const bf16 = extra.includes('bfloat16');
      for (const k of Object.keys(x)) {
        const want = bf16
          ? new Float32Array(
              new Uint32Array(Array.from(floatToBfloat16Bits(x[k]!.data as Float32Array), (b) => b << 16)).buffer,
            )
          : (x[k]!.data as Float32Array);
        expect(Buffer.from((y[k]!.data as Float32Array).buffer).equals(Buffer.from(want.buffer)), k).toBe(true);
      }
    }
  });
});
