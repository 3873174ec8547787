import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerSweepCommand } from '../../src/cli/sweep.js';
import { initEngine } from '../../src/engine/index.js';
import { checkSvg, count, isPng } from '../eval/svg-check.js';
import { runCommand, tinyRun, tmpDir } from './tiny-run.js';

let run = '';
beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
  run = await tinyRun();
});

const base = () => [
  'sweep',
  '--checkpoint',
  run,
  '--dataset',
  'mnist',
  '--limit',
  '48',
  '--batch-size',
  '16',
  '--backend',
  'wasm',
  '--threads',
  '1',
];

describe('vmoe sweep', () => {
  it('writes the table, JSON, LaTeX and both figures; one row per setting', async () => {
    const out = tmpDir('sweep');
    const csv = await runCommand(registerSweepCommand, [
      ...base(),
      '--capacity-factors',
      '0.25,1,4',
      '--k',
      '1,2',
      '--batch-priority',
      'both',
      '--format',
      'csv',
      '--out',
      out,
    ]);
    const lines = csv.trim().split('\n');
    expect(lines[0]).toMatch(
      /^routing,k,capacity_factor,capacity,group_size,n,accuracy,nll,ece,processed_fraction,flops_per_image,images_per_s,seconds,decode_wait_seconds,processed_block1$/,
    );
    expect(lines).toHaveLength(1 + 3 * 2 * 2);
    expect(fs.readFileSync(path.join(out, 'sweep.csv'), 'utf8')).toBe(csv);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'sweep.json'), 'utf8'));
    expect(report.rows).toHaveLength(12);
    expect(report.n).toBe(48);
    expect(report.checkpoint.step).toBe(4);
    // 4 images × 5 tokens per group, K·c·S/E rounded up to a multiple of 4: c=4 → C ≥ S, nothing dropped
    for (const r of report.rows.filter((x: { capacity_factor: number }) => x.capacity_factor === 4))
      expect(r.processed_fraction).toBe(1);
    expect(fs.readFileSync(path.join(out, 'sweep.tex'), 'utf8')).toMatch(/\\begin\{tabular\}/);
    const md = fs.readFileSync(path.join(out, 'sweep.md'), 'utf8').trim().split('\n');
    expect(md).toHaveLength(2 + 12); // header, separator, one line per setting
    expect(
      md[0]!
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    ).toEqual(lines[0]!.split(','));
    for (const f of ['accuracy-vs-processed.svg', 'nll-vs-processed.svg']) {
      const els = checkSvg(fs.readFileSync(path.join(out, f), 'utf8'));
      expect(count(els, 'polyline')).toBe(4);
      expect(isPng(path.join(out, f.replace('.svg', '.png')))).toBe(true);
    }
  });

  it("defaults to the model's K and prints a text table without --out", async () => {
    const text = await runCommand(registerSweepCommand, [
      ...base(),
      '--capacity-factors',
      '0.5',
      '--batch-priority',
      'on',
    ]);
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/^bpr\s+2\s+0\.5\s/);
  });

  it.each([
    [['--capacity-factors', '0.5,abc'], /"abc" is not a number/],
    [['--k', '5'], /--k 5 exceeds the 4 experts/],
    [['--batch-priority', 'maybe'], /both, on or off/],
    [['--format', 'xml'], /--format must be/],
  ])('refuses %j', async (extra, pattern) => {
    await expect(runCommand(registerSweepCommand, [...base(), ...extra])).rejects.toThrow(pattern);
  });
});
