import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { writeIdx } from '../../src/data/idx.js';
import { loadDataset } from '../../src/data/registry.js';
import { parseCorruptions, parseSeverities, registerCorruptCommand } from '../../src/cli/corrupt.js';
import { writeCorruptedSets as runCorrupt } from '../../src/export/corrupted-sets.js';
import { corruptBatch } from '../../src/robustness/batch.js';
import { mnistDigits } from '../robustness/helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vmoe-corrupt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// a small source data set: 5 MNIST digits with made-up labels and class names
const n = 5;
const src = path.join(dir, 'src');
const images = mnistDigits(n);
const labels = Uint8Array.of(3, 0, 2, 2, 1);
writeIdx(path.join(src, 't10k-images-idx3-ubyte.gz'), [n, 28, 28], images);
writeIdx(path.join(src, 't10k-labels-idx1-ubyte.gz'), [n], labels);
writeFileSync(path.join(src, 'meta.json'), JSON.stringify({ name: 'tiny', classNames: ['a', 'b', 'c', 'd'] }));

describe('parsing', () => {
  it.each([
    ['3', [3]],
    ['1-5', [1, 2, 3, 4, 5]],
    ['1,3, 5', [1, 3, 5]],
    ['4,2-3', [2, 3, 4]],
  ])('severity %s', (spec, expected) => {
    expect(parseSeverities(spec)).toEqual(expected);
  });
  it.each(['0', '6', '2-1', 'x', '1-6', ''])('severity "%s" is an error', (spec) => {
    expect(() => parseSeverities(spec)).toThrow(/--severity/);
  });
  it('corruption names: all, a list, unknown names', () => {
    expect(parseCorruptions('all', 'c')).toHaveLength(19);
    expect(parseCorruptions('all', 'mnist-c')).toHaveLength(15);
    expect(parseCorruptions('fog,snow', 'c')).toEqual(['fog', 'snow']);
    expect(() => parseCorruptions('fog,rain', 'c')).toThrow(/unknown corruption 'rain'/);
    expect(() => parseCorruptions('zigzag', 'c')).toThrow(/unknown corruption 'zigzag'/);
  });
});

describe('vmoe corrupt', () => {
  it('writes IDX folders that loadDataset reads back unchanged, a manifest and a preview', async () => {
    const out = path.join(dir, 'out');
    const program = new Command().exitOverride();
    registerCorruptCommand(program);
    const write = process.stdout.write;
    let stdout = '';
    process.stdout.write = ((s: string) => {
      stdout += s;
      return true;
    }) as typeof process.stdout.write;
    const errWrite = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      await program.parseAsync([
        'node',
        'vmoe',
        'corrupt',
        '--dataset',
        `idx:${src}`,
        '--corruption',
        'gaussian_noise,pixelate',
        '--severity',
        '2-3',
        '--seed',
        '7',
        '--out',
        out,
        '--preview-images',
        '2',
      ]);
    } finally {
      process.stdout.write = write;
      process.stderr.write = errWrite;
    }
    const manifest = JSON.parse(stdout);
    expect(manifest.sets.map((s: { dir: string }) => s.dir)).toEqual([
      'gaussian_noise-2',
      'gaussian_noise-3',
      'pixelate-2',
      'pixelate-3',
    ]);
    expect(JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'))).toEqual(manifest);
    for (const set of manifest.sets as Array<{ dir: string; corruption: string; severity: number }>) {
      const ds = loadDataset(`idx:${path.join(out, set.dir)}`, 'test');
      expect([ds.n, ds.height, ds.width, ds.channels]).toEqual([n, 28, 28, 1]);
      expect([...ds.labels]).toEqual([...labels]);
      expect(ds.classNames).toEqual(['a', 'b', 'c', 'd']);
      expect(ds.name).toBe(`tiny-c/${set.dir}`);
      expect([...ds.images]).toEqual([
        ...corruptBatch(images, { n, h: 28, w: 28, c: 1 }, set.corruption, set.severity, 7),
      ]);
    }
    // preview: 2 rows (corruptions) × 6 columns (severities 0..5) of 2 images, zoom 2
    const png = PNG.sync.read(readFileSync(path.join(out, 'preview.png')));
    expect(png.width).toBe((4 + 6 * (2 * 28 + 1 + 4)) * 2);
    expect(png.height).toBe((4 + 2 * (28 + 4)) * 2);
  });
  it('the MNIST-C suite writes one folder per corruption', () => {
    const out = path.join(dir, 'mnistc');
    const m = runCorrupt({
      dataset: `idx:${src}`,
      split: 'test',
      corruptions: ['rotate', 'stripe'],
      severities: [1, 2, 3, 4, 5],
      out,
      suite: 'mnist-c',
      seed: 0,
      previewImages: 0,
    });
    expect(m.sets.map((s) => s.dir)).toEqual(['rotate', 'stripe']);
    expect(existsSync(path.join(out, 'preview.png'))).toBe(false);
    const ds = loadDataset(`idx:${path.join(out, 'stripe')}`, 'test', { limit: 1 });
    expect(ds.images[0]).toBe(255 - images[0]!);
    const meta = JSON.parse(readFileSync(path.join(out, 'stripe', 'meta.json'), 'utf8'));
    expect(meta.corruption).toMatchObject({ suite: 'mnist-c', name: 'stripe', severity: null });
  });
  it('--limit keeps the first N images', () => {
    const out = path.join(dir, 'lim');
    runCorrupt({
      dataset: `idx:${src}`,
      split: 'test',
      corruptions: ['contrast'],
      severities: [5],
      out,
      suite: 'c',
      seed: 0,
      previewImages: 1,
      limit: 2,
    });
    expect(loadDataset(`idx:${path.join(out, 'contrast-5')}`, 'test').n).toBe(2);
  });
});
