/**
 * Bad files of the RGB data sources through the CLI (docs/reliability.md): a truncated CIFAR batch, a corrupt PNG,
 * an empty class folder, an npz with a wrong dtype or shape, an unknown data set name — each a clear refusal
 * (exit 2, one `error:` line naming the file, no stack trace, nothing on stdout) and no checkpoint written.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { zipSync } from 'fflate';
import { npy, randomImages, writeCifar10, writePngFolder } from '../helpers/image-formats.js';
import { ensureBuilt, refusal, tmpDir, vmoe } from './helpers.js';

beforeAll(ensureBuilt);

const dir = tmpDir('image-data');
const SMALL = [
  ...['model.imageSize=32', 'model.channels=3', 'model.patchSize=8', 'model.hidden=16', 'model.mlpDim=32'],
  ...['model.heads=2', 'data.valSize=4', 'train.batchSize=8', 'train.steps=2', 'train.evalEvery=0'],
].flatMap((s) => ['--set', s]);
const train = (dataset: string, out: string) =>
  vmoe('train', '--config', 'configs/quickstart.json', '--set', `data.dataset=${dataset}`, ...SMALL, '--out', out);
const noCheckpoint = (out: string) =>
  expect(
    fs.existsSync(path.join(out, 'checkpoints')) && fs.readdirSync(path.join(out, 'checkpoints')).length,
  ).toBeFalsy();

const imgs = randomImages(20, 5);
beforeAll(async () => {
  writeCifar10(path.join(dir, 'cifar'), imgs, imgs);
  await writePngFolder(path.join(dir, 'folder'), { train: imgs, test: imgs });
});

describe('bad RGB data files: one line naming the file, exit 2', () => {
  it('a truncated CIFAR batch', () => {
    const f = path.join(dir, 'cifar', 'data_batch_4.bin');
    fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 3073 + 17));
    const out = path.join(dir, 'run-cifar');
    const e = refusal(train(`cifar10:${path.join(dir, 'cifar')}`, out));
    expect(e).toContain(f);
    expect(e).toMatch(/not a whole number of CIFAR records/);
    noCheckpoint(out);
  });

  it('a corrupt PNG', () => {
    const f = path.join(dir, 'folder', 'train', 'cat', '00003.png');
    fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 64));
    const out = path.join(dir, 'run-png');
    const e = refusal(train(`folder:${path.join(dir, 'folder')}`, out));
    expect(e).toContain(f);
    expect(e).toMatch(/cannot decode the image/);
    noCheckpoint(out);
  });

  it('an empty class folder', () => {
    fs.mkdirSync(path.join(dir, 'folder', 'train', 'zebra'));
    const e = refusal(train(`folder:${path.join(dir, 'folder')}`, path.join(dir, 'run-empty')));
    expect(e).toContain(`class folder ${path.join(dir, 'folder', 'train', 'zebra')} holds no images`);
  });

  it('an npz with float images, or labels of another length', () => {
    const f1 = path.join(dir, 'float.npz');
    fs.writeFileSync(
      f1,
      zipSync({
        'images.npy': npy(new Float32Array(8 * 12), [8, 2, 2, 3], '<f4'),
        'labels.npy': npy([0, 1], [2], '<i8'),
      }),
    );
    expect(refusal(train(`npz:${f1}`, path.join(dir, 'run-f1')))).toContain(
      `${f1} (images.npy): images must be uint8, got dtype '<f4'`,
    );
    const f2 = path.join(dir, 'shape.npz');
    fs.writeFileSync(
      f2,
      zipSync({ 'images.npy': npy(new Uint8Array(8 * 12), [8, 2, 2, 3]), 'labels.npy': npy([0, 1, 0], [3], '<i8') }),
    );
    expect(refusal(train(`npz:${f2}`, path.join(dir, 'run-f2')))).toContain(
      `${f2} (labels): labels must have shape (8,)`,
    );
  });

  it('an unknown data set name in the config', () => {
    const e = refusal(train('cifar11:/data', path.join(dir, 'run-name')));
    expect(e).toMatch(/data\.dataset: unknown data set: use .*cifar10:DIR/);
  });
});
