/**
 * `vmoe finetune` from a V-MoE run into an E³ config at another image size, another data set, a new class count and the SGD recipe
 * with gradient accumulation: the position grid is resampled (checked by hand), member m starts from upstream
 * experts [m·E/M, (m+1)·E/M) with their router columns, the head starts afresh (zero kernel).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/checkpoint/format.js';
import { latestCheckpoint } from '../../src/checkpoint/format.js';
import { writeIdx } from '../../src/data/idx.js';
import { Rng } from '../../src/util/rng.js';
import { TINY_TRAIN, vmoe } from '../helpers/cli.js';
import { tmpDir } from './tiny-run.js';

/**
 * A folder of IDX files with 42×42 grayscale images in 3 classes (a 3×3 grid of 14-pixel patches), read as the
 * `fashion-mnist` entry with data.dataDir pointing at it (its images' size comes from the files).
 */
function writeIdxFolder(dir: string): void {
  const rng = new Rng(9);
  for (const [part, n] of [
    ['train', 48],
    ['t10k', 16],
  ] as const) {
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 3);
    const images = new Uint8Array(n * 42 * 42);
    for (let i = 0; i < n; i++)
      for (let p = 0; p < 42 * 42; p++) images[i * 42 * 42 + p] = (labels[i]! * 80 + rng.int(60)) & 255;
    writeIdx(path.join(dir, `${part}-images-idx3-ubyte`), [n, 42, 42], images);
    writeIdx(path.join(dir, `${part}-labels-idx1-ubyte`), [n], labels);
  }
}

const tensor = (file: string, name: string) => {
  const t = loadCheckpoint(file).tensors[`params/${name}`];
  if (!t) throw new Error(`${file} has no ${name}`);
  return { shape: t.shape, data: t.data as Float32Array };
};

describe('vmoe finetune: V-MoE → E³ at another image size', () => {
  it('resamples the positions, splits the experts across the members and starts a new head', () => {
    const root = tmpDir('ft-e3');
    const up = path.join(root, 'upstream');
    // Upstream: MNIST 28 px, patch 14 → 2×2 grid; E = 8, K = 2, MoE in blocks 1 and 3.
    let r = vmoe('train', ...TINY_TRAIN, '--set', 'train.steps=2', '--out', up);
    expect(r.status, r.stderr).toBe(0);
    const upCk = latestCheckpoint(path.join(up, 'checkpoints'))!;

    const data = path.join(root, 'idx42');
    writeIdxFolder(data);
    const ft = path.join(root, 'e3');
    // lr 1e-9: after one step the weights are still the initialisation to ~1e-7, so the test reads it back.
    r = vmoe(
      'finetune',
      '--from',
      up,
      ...TINY_TRAIN,
      '--set',
      'data.dataset=fashion-mnist',
      '--set',
      `data.dataDir=${data}`,
      '--set',
      'data.valSize=8',
      '--set',
      'data.trainLimit=null',
      '--set',
      'model.imageSize=42',
      '--set',
      'model.numClasses=12',
      '--set',
      'model.type=e3',
      '--set',
      'model.moe.k=1',
      '--set',
      'model.moe.capacityFactor=1.5',
      '--set',
      'model.ensemble.members=2',
      '--set',
      'optim.optimizer=sgd',
      '--set',
      'optim.lr=1e-9',
      '--set',
      'train.accumSteps=2',
      '--set',
      'train.batchSize=16',
      '--set',
      'model.moe.groupImages=4',
      '--set',
      'train.steps=1',
      '--out',
      ft,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resized \(pos, block1\/moe\/router\/kernel, block3\/moe\/router\/kernel\)/);
    expect(r.stderr).toMatch(/head reinitialised/);
    const ftCk = latestCheckpoint(path.join(ft, 'checkpoints'))!;
    const summary = JSON.parse(fs.readFileSync(path.join(ft, 'train_summary.json'), 'utf8')) as {
      init_from: { checkpoint: string; head: string };
    };
    expect(summary.init_from.head).toBe('reinitialised');

    // Positions: class row kept; the 2×2 grid stretched to 3×3 with corners aligned, by hand.
    const H = 16;
    const p0 = tensor(upCk, 'pos'),
      p1 = tensor(ftCk, 'pos');
    expect(p0.shape).toEqual([5, H]);
    expect(p1.shape).toEqual([10, H]);
    const up2 = (i: number, j: number, h: number) => p0.data[(1 + i * 2 + j) * H + h]!;
    const ft3 = (i: number, j: number, h: number) => p1.data[(1 + i * 3 + j) * H + h]!;
    for (let h = 0; h < H; h++) {
      expect(p1.data[h]).toBeCloseTo(p0.data[h]!, 5); // class token row
      expect(ft3(0, 0, h)).toBeCloseTo(up2(0, 0, h), 5);
      expect(ft3(2, 2, h)).toBeCloseTo(up2(1, 1, h), 5);
      expect(ft3(0, 1, h)).toBeCloseTo((up2(0, 0, h) + up2(0, 1, h)) / 2, 5);
      expect(ft3(1, 1, h)).toBeCloseTo((up2(0, 0, h) + up2(0, 1, h) + up2(1, 0, h) + up2(1, 1, h)) / 4, 5);
    }

    // Experts: the E³ router (H, M, E/M) holds, for member m, upstream router columns 4m … 4m+3; the experts'
    // weights are shared and copied unchanged.
    for (const b of [1, 3]) {
      const r0 = tensor(upCk, `block${b}/moe/router/kernel`),
        r1 = tensor(ftCk, `block${b}/moe/router/kernel`);
      expect(r0.shape).toEqual([H, 8]);
      expect(r1.shape).toEqual([H, 2, 4]);
      for (let h = 0; h < H; h++)
        for (let m = 0; m < 2; m++)
          for (let j = 0; j < 4; j++) expect(r1.data[(h * 2 + m) * 4 + j]).toBeCloseTo(r0.data[h * 8 + m * 4 + j]!, 5);
      const w0 = tensor(upCk, `block${b}/moe/w1`),
        w1 = tensor(ftCk, `block${b}/moe/w1`);
      expect(w1.shape).toEqual(w0.shape);
      for (let i = 0; i < w0.data.length; i += 97) expect(w1.data[i]).toBeCloseTo(w0.data[i]!, 5);
    }

    // A new head for 12 classes: zero kernel (moved by at most lr·|g| ≈ 1e-9 in one step).
    const head = tensor(ftCk, 'head/kernel');
    expect(head.shape).toEqual([H, 12]);
    expect(Math.max(...Array.from(head.data, Math.abs))).toBeLessThan(1e-6);
    // The run itself used the recipe: SGD momentum slots, no Adam ones.
    const slots = Object.keys(loadCheckpoint(ftCk).tensors).filter((k) => k.startsWith('opt/'));
    expect(slots.every((k) => k.startsWith('opt/momentum/'))).toBe(true);
  }, 120_000);
});
