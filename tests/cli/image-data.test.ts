/**
 * The CLI on cifar10:, folder: and npz: data: `vmoe train` with the command, the same test images as CIFAR
 * records, a PNG folder and an npz evaluating to the identical NLL, a streamed folder training exactly like the
 * same folder held in memory, fine-tuning onto an npz, robustness and few-shot on the new sources.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { vmoe } from '../helpers/cli.js';
import { randomImages, writeCifar10, writeNpz, writePngFolder } from '../helpers/image-formats.js';
import { tmpDir } from './tiny-run.js';

const dir = tmpDir('image-data');
const cifar = `cifar10:${dir}/cifar`;
const folder = `folder:${dir}/folder`;
const npz = `npz:${dir}/data.npz`;
// Tiny model at 32×32×3, patch 8 (16 tokens); a few steps only.
const SMALL = [
  ...['model.imageSize=32', 'model.channels=3', 'model.patchSize=8', 'model.hidden=16', 'model.mlpDim=32'],
  ...['model.heads=2', 'data.valSize=16', 'train.batchSize=16', 'train.steps=3', 'train.evalEvery=0'],
  ...['train.evalLimit=16', 'train.checkpointEvery=3'],
].flatMap((s) => ['--set', s]);
const trainRun = (dataset: string, out: string, ...extra: string[]) =>
  vmoe(
    'train',
    '--config',
    'configs/quickstart.json',
    '--set',
    `data.dataset=${dataset}`,
    ...SMALL,
    ...extra,
    '--out',
    out,
  );
const losses = (run: string) =>
  fs
    .readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.loss !== undefined)
    .map((r) => r.loss);

beforeAll(async () => {
  const train = randomImages(64, 11);
  // test images sorted by class: the order a folder is read in, so all three give the same routing groups
  const test = randomImages(20, 12, 32, 3, true);
  writeCifar10(path.join(dir, 'cifar'), train, test);
  writeNpz(path.join(dir, 'data.npz'), train, test);
  await writePngFolder(path.join(dir, 'folder'), { train, test });
});

describe('vmoe on RGB data sources', () => {
  it('trains on cifar10:DIR; the same images as CIFAR records, PNG folder and npz evaluate to identical NLL', () => {
    const run = path.join(dir, 'run');
    const t = trainRun(cifar, run);
    expect(t.status, t.stderr).toBe(0);
    const nlls = [cifar, folder, npz].map((d) => {
      const r = vmoe('eval', '--checkpoint', run, '--dataset', d, '--split', 'test');
      expect(r.status, r.stderr).toBe(0);
      const m = JSON.parse(r.stdout);
      expect([m.dataset, m.n]).toEqual([d, 20]);
      return m.nll as number;
    });
    expect(nlls[0]).toBeGreaterThan(0);
    expect(nlls[1]).toBe(nlls[0]);
    expect(nlls[2]).toBe(nlls[0]);
  });

  it('a streamed folder (pad-crop, flip, mixup) trains with exactly the losses of the folder held in memory', () => {
    const aug = ['data.augment.randomCrop=4', 'data.augment.flip=true', 'data.augment.mixup=0.2'].flatMap((s) => [
      '--set',
      s,
    ]);
    const mem = trainRun(folder, path.join(dir, 'mem'), ...aug);
    expect(mem.status, mem.stderr).toBe(0);
    const st = trainRun(
      folder,
      path.join(dir, 'stream'),
      ...aug,
      '--set',
      'data.stream=true',
      '--set',
      'data.prefetch=2',
    );
    expect(st.status, st.stderr).toBe(0);
    const a = losses(path.join(dir, 'mem'));
    expect(a.length).toBe(3);
    expect(losses(path.join(dir, 'stream'))).toEqual(a);
  });

  it('fine-tunes onto an npz; robustness and few-shot run on folder: and npz:', () => {
    const ft = vmoe(
      'finetune',
      '--from',
      path.join(dir, 'run'),
      '--config',
      'configs/quickstart.json',
      '--set',
      `data.dataset=${npz}`,
      ...SMALL,
      '--out',
      path.join(dir, 'ft'),
    );
    expect(ft.status, ft.stderr).toBe(0);
    const rob = vmoe(
      'robustness',
      '--checkpoint',
      path.join(dir, 'ft'),
      '--dataset',
      folder,
      '--limit',
      '8',
      '--format',
      'json',
    );
    expect(rob.status, rob.stderr).toBe(0);
    const few = vmoe(
      'fewshot',
      '--checkpoint',
      path.join(dir, 'ft'),
      '--datasets',
      `${npz},mnist`,
      '--shots',
      '1',
      '--seeds',
      '1',
      '--train-pool',
      '64',
      '--test-limit',
      '20',
      '--cache-dir',
      path.join(dir, 'cache'),
      '--format',
      'json',
    );
    expect(few.status, few.stderr).toBe(0);
    expect(few.stdout).toContain(npz);
  });
});
