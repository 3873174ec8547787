import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerRobustnessCommand } from '../../src/cli/robustness.js';
import { initEngine } from '../../src/engine/index.js';
import { checkSvg, count, isPng } from '../eval/svg-check.js';
import { runCommand, tinyRun, tmpDir } from './tiny-run.js';

let run = '';
beforeAll(async () => {
  await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
  run = await tinyRun();
});

const base = () => [
  'robustness',
  '--dataset',
  'mnist',
  '--limit',
  '24',
  '--batch-size',
  '8',
  '--corruptions',
  'gaussian_noise,contrast',
  '--severities',
  '1,5',
  '--backend',
  'wasm',
  '--threads',
  '1',
];

describe('vmoe robustness', () => {
  it('writes per-set and summary tables (CSV, LaTeX, Markdown); a model ensembled with itself scores as the model', async () => {
    const out = tmpDir('robustness');
    const md = await runCommand(registerRobustnessCommand, [
      ...base(),
      '--checkpoint',
      run,
      '--label',
      'single',
      '--checkpoint',
      `${run}+${run}`,
      '--label',
      'self-ensemble',
      '--format',
      'markdown',
      '--out',
      out,
    ]);
    expect(fs.readFileSync(path.join(out, 'summary.md'), 'utf8')).toBe(md);
    const summaryCsv = fs.readFileSync(path.join(out, 'summary.csv'), 'utf8').trim().split('\n');
    const mdLines = md.trim().split('\n');
    expect(mdLines).toHaveLength(2 + 2); // header, separator, one line per model
    expect(
      mdLines[0]!
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    ).toEqual(summaryCsv[0]!.split(','));
    const result = JSON.parse(fs.readFileSync(path.join(out, 'robustness.json'), 'utf8'));
    expect(result.per_set).toHaveLength(2 * 2 * 2); // models × corruptions × severities
    // the corruption seed (--seed, default 0) and the training seed (tiny-run's config: 3) are two keys, not one
    expect(result.corruption_seed).toBe(0);
    expect(result.seed).toBe(3);
    // Identical members: the ensemble's mean probabilities equal the member's, and members never disagree.
    for (const r of result.per_set.filter((x: { model: string }) => x.model === 'self-ensemble')) {
      const single = result.per_set.find(
        (x: { model: string; corruption: string; severity: number }) =>
          x.model === 'single' && x.corruption === r.corruption && x.severity === r.severity,
      );
      expect(r.accuracy).toBe(single.accuracy);
      expect(r.nll).toBeCloseTo(single.nll, 5);
      expect(r.disagreement).toBe(0);
    }
    // The corruption list with its constants: 2 corruptions × 2 severities, none held out.
    const corr = fs.readFileSync(path.join(out, 'corruptions.csv'), 'utf8').trim().split('\n');
    expect(corr[0]).toBe('corruption,held_out,severity,constant');
    expect(corr.slice(1).map((l) => l.split(',').slice(0, 3).join(','))).toEqual([
      'gaussian_noise,false,1',
      'gaussian_noise,false,5',
      'contrast,false,1',
      'contrast,false,5',
    ]);
    expect(fs.readFileSync(path.join(out, 'summary.tex'), 'utf8')).toMatch(
      /over 2 corruptions \(gaussian\\_noise, contrast\)/,
    );
    // One box per (severity, model): 2 severities × 2 models.
    for (const m of ['accuracy', 'nll', 'ece']) {
      const els = checkSvg(fs.readFileSync(path.join(out, `${m}-vs-severity.svg`), 'utf8'));
      expect(count(els, 'g', (e) => e.attrs.class === 'box')).toBe(2 * 2);
      expect(isPng(path.join(out, `${m}-vs-severity.png`))).toBe(true);
    }
  });

  it.each([
    [['--checkpoint', 'X', '--format', 'xml'], /--format must be/],
    [['--corruptions', 'rain'], /unknown corruption\(s\) rain/],
  ])('refuses %j', async (extra, pattern) => {
    await expect(
      runCommand(registerRobustnessCommand, [
        ...base().filter((a, i, all) => a !== '--corruptions' && all[i - 1] !== '--corruptions'),
        '--checkpoint',
        run,
        ...extra,
      ]),
    ).rejects.toThrow(pattern);
  });
});
