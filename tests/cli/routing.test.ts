import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerRoutingCommand } from '../../src/cli/routing.js';
import { defaultRoutingOut } from '../../src/export/routing-files.js';
import { initEngine } from '../../src/engine/index.js';
import { checkSvg, count, isPng } from '../eval/svg-check.js';
import { runCommand, tinyRun, tmpDir } from './tiny-run.js';

let run = '';
beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
  run = await tinyRun();
});

describe('vmoe routing', () => {
  it('writes per-layer statistics, affinity, patch overlay and the summary', async () => {
    const out = tmpDir('routing');
    const text = await runCommand(registerRoutingCommand, [
      'routing',
      '--checkpoint',
      run,
      '--dataset',
      'mnist',
      '--limit',
      '40',
      '--batch-size',
      '20',
      '--out',
      out,
      '--capacity-factor',
      '0.25',
      '--images',
      '3',
      '--share-images',
      '3',
      '--backend',
      'wasm',
      '--threads',
      '1',
    ]);
    expect(text).toMatch(/^block 1: drop /m);
    expect(text).toMatch(/collapse.*more than 50%.*less than 1%/);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'routing.json'), 'utf8'));
    expect(report.n).toBe(40);
    expect(report.layers).toHaveLength(1);
    const layer = report.layers[0];
    expect(layer.block).toBe(1);
    expect(layer.expertLoad.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 9);
    expect(layer.affinity).toHaveLength(10);
    for (const row of layer.affinity) {
      if (row.every((v: number | null) => v === null)) continue; // a class absent from the first 40 test images
      expect(row.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 9);
    }
    expect(report.collapsed).toBe(layer.collapse.length > 0);
    for (const f of ['routing-layers.csv', 'routing-experts.csv', 'affinity-block1.csv'])
      expect(fs.existsSync(path.join(out, f))).toBe(true);
    expect(fs.readFileSync(path.join(out, 'routing-experts.csv'), 'utf8').trim().split('\n')).toHaveLength(1 + 4);
    const heat = checkSvg(fs.readFileSync(path.join(out, 'affinity-block1.svg'), 'utf8'));
    expect(count(heat, 'title')).toBe(10 * 4);
    // overlay: 3 images × 1 MoE layer, 28×28 pixels each, 4 patches of 14×14
    const overlay = checkSvg(fs.readFileSync(path.join(out, 'patches.svg'), 'utf8'));
    expect(count(overlay, 'g', (e) => e.attrs.class === 'panel')).toBe(3);
    for (const f of ['affinity-block1.png', 'patches.png']) expect(isPng(path.join(out, f))).toBe(true);
    const patches = JSON.parse(fs.readFileSync(path.join(out, 'patches.json'), 'utf8'));
    expect(patches.images).toHaveLength(3);
    const shares: number[] = patches.images.flatMap(
      (im: { layers: { processed_share_per_patch: number[] }[] }) => im.layers[0]!.processed_share_per_patch,
    );
    expect(shares).toHaveLength(12);
    expect(count(overlay, 'rect', (e) => e.attrs.class === 'processed')).toBe(shares.filter((s) => s > 0).length);
    // the background/object split covers every patch of the overlay images, and its weighted mean is the overall share
    const c = report.low_capacity.processed_share_by_content[0];
    expect(c.images).toBe(3);
    expect(c.background_patches + c.object_patches).toBe(12);
    const mean = shares.reduce((a, b) => a + b, 0) / shares.length;
    const weighted = ((c.background ?? 0) * c.background_patches + (c.object ?? 0) * c.object_patches) / 12;
    expect(weighted).toBeCloseTo(mean, 12);
    expect(patches.processed_share_by_content).toEqual(report.low_capacity.processed_share_by_content);
    expect(text).toMatch(/^block 1, BPR at capacity factor 0\.25 \(3 images\): processed /m);
  });

  it('computes the background/object share over --share-images images while drawing only --images', async () => {
    const out = tmpDir('routing-share');
    await runCommand(registerRoutingCommand, [
      'routing',
      '--checkpoint',
      run,
      '--dataset',
      'mnist',
      '--limit',
      '40',
      '--batch-size',
      '20',
      '--out',
      out,
      '--images',
      '2',
      '--share-images',
      '8',
      '--backend',
      'wasm',
      '--threads',
      '1',
      '--quiet',
    ]);
    const patches = JSON.parse(fs.readFileSync(path.join(out, 'patches.json'), 'utf8'));
    expect(patches.images).toHaveLength(2);
    const c = patches.processed_share_by_content[0];
    expect([c.images, c.background_patches + c.object_patches]).toEqual([8, 8 * 4]);
    expect(
      count(checkSvg(fs.readFileSync(path.join(out, 'patches.svg'), 'utf8')), 'g', (e) => e.attrs.class === 'panel'),
    ).toBe(2);
  });

  it('plots a training log: drop fraction and max load per layer over steps', async () => {
    const out = tmpDir('routing-log');
    await runCommand(registerRoutingCommand, ['routing', '--log', path.join(run, 'metrics.jsonl'), '--out', out]);
    const csv = fs.readFileSync(path.join(out, 'train-routing.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('step,block,drop_fraction,max_load');
    expect(csv.slice(1).map((l) => l.split(',').slice(0, 2).join(','))).toEqual(['1,1', '2,1', '3,1', '4,1']);
    for (const f of ['train-drop-fraction.svg', 'train-max-load.svg']) {
      const els = checkSvg(fs.readFileSync(path.join(out, f), 'utf8'));
      expect(count(els, 'circle')).toBe(4);
      expect(isPng(path.join(out, f.replace('.svg', '.png')))).toBe(true);
    }
    // every expert of the one MoE block (4 experts), 4 logged steps each
    const experts = checkSvg(fs.readFileSync(path.join(out, 'train-expert-load-block1.svg'), 'utf8'));
    expect([count(experts, 'polyline'), count(experts, 'circle')]).toEqual([4, 16]);
  });

  it('without --out writes into routing/ of the run the checkpoint or log belongs to', () => {
    const r = tmpDir('routing-default');
    fs.mkdirSync(path.join(r, 'checkpoints'));
    fs.writeFileSync(path.join(r, 'checkpoints', 'checkpoint-4.vmoe'), '');
    const want = path.join(r, 'routing');
    expect(defaultRoutingOut({ checkpoint: r })).toBe(want);
    expect(defaultRoutingOut({ checkpoint: path.join(r, 'checkpoints') })).toBe(want);
    expect(defaultRoutingOut({ checkpoint: path.join(r, 'checkpoints', 'checkpoint-4.vmoe') })).toBe(want);
    expect(defaultRoutingOut({ log: path.join(r, 'metrics.jsonl') })).toBe(want);
  });

  it.each([
    [['--out', 'x'], /give --checkpoint.*--log/],
    [['--log', '/nonexistent/metrics.jsonl', '--out', '/tmp/vmoe-routing-x'], /does not exist/],
  ])('refuses %j', async (extra, pattern) => {
    await expect(runCommand(registerRoutingCommand, ['routing', ...extra])).rejects.toThrow(pattern);
  });
});
