/** Conformal prediction from the CLI: `vmoe metrics --calib … --conformal …` and `vmoe eval --conformal …`. */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerEvalCommand } from '../../src/cli/eval.js';
import { registerMetricsCommand } from '../../src/cli/metrics.js';
import { runMetrics } from '../../src/eval/predictions-files.js';
import { initEngine } from '../../src/engine/index.js';
import { flattenEvalResult } from '../../src/export/report.js';
import { parsePredictionsCsv } from '../../src/metrics/index.js';
import { checkSvg, isPng } from '../eval/svg-check.js';
import { runCommand, tinyRun, tmpDir } from './tiny-run.js';

import { cli, oneLineError, vmoe } from '../helpers/cli.js';

const dir = tmpDir('conformal');
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

// Calibration: true-label probabilities 0.9, 0.8, 0.6, 0.3 → LAC scores 0.1, 0.2, 0.4, 0.7.
const calib = file('calib.csv', 'label,p0,p1\n0,0.9,0.1\n1,0.2,0.8\n0,0.6,0.4\n1,0.7,0.3\n');
// Test: three examples of class 0 (logits, so the two files may differ in kind).
const test = file(
  'test.csv',
  `label,logit0,logit1\n0,${Math.log(0.75)},${Math.log(0.25)}\n0,${Math.log(0.45)},${Math.log(0.55)}\n0,${Math.log(0.2)},${Math.log(0.8)}\n`,
);
const calib3 = file('calib3.csv', 'label,p0,p1,p2\n0,0.8,0.1,0.1\n1,0.1,0.8,0.1\n');

describe('vmoe metrics --conformal', () => {
  it('JSON: conformal.<method> holds one report per alpha; LAC numbers by hand', async () => {
    const text = await runCommand(registerMetricsCommand, [
      'metrics',
      '--input',
      test,
      '--calib',
      calib,
      '--conformal',
      'lac,aps,raps',
      '--alpha',
      '0.4,0.2',
    ]);
    const r = JSON.parse(text);
    expect(Object.keys(r.conformal)).toEqual(['lac', 'aps', 'raps']);
    for (const m of ['lac', 'aps', 'raps']) {
      expect(r.conformal[m].map((x: { alpha: number }) => x.alpha)).toEqual([0.4, 0.2]);
      for (const x of r.conformal[m])
        for (const key of ['alpha', 'qhat', 'coverage', 'mean_set_size']) expect(x).toHaveProperty(key);
    }
    // α = 0.4: q̂ = 3rd smallest of 0.1, 0.2, 0.4, 0.7 = 0.4 → sets {0}, {}, {1}: coverage 1/3, size 2/3
    expect(r.conformal.lac[0].qhat).toBeCloseTo(0.4, 12);
    expect(r.conformal.lac[0].coverage).toBeCloseTo(1 / 3, 12);
    expect(r.conformal.lac[0].mean_set_size).toBeCloseTo(2 / 3, 12);
    // α = 0.2: q̂ = 4th smallest = 0.7 → sets {0}, {0, 1}, {1}: coverage 2/3, size 4/3
    expect(r.conformal.lac[1].qhat).toBeCloseTo(0.7, 12);
    expect(r.conformal.lac[1].coverage).toBeCloseTo(2 / 3, 12);
    expect(r.conformal.lac[1].mean_set_size).toBeCloseTo(4 / 3, 12);
    expect(r.conventions.conformal.calibration).toBe(`${calib} (n=4)`);
    expect(r.conventions.conformal.quantile_rule).toMatch(/ceil\(\(n\+1\)\(1-alpha\)\)/);
    // the other metrics are those of the test file alone
    const plain = await runMetrics({ input: test });
    expect(r.accuracy).toBe(plain.accuracy);
    expect(plain.conformal).toBeUndefined();
  });

  it('table, latex and csv show alpha, qhat, coverage, mean_set_size per method and alpha', async () => {
    const args = ['metrics', '--input', test, '--calib', calib, '--conformal', 'lac,aps', '--alpha', '0.4'];
    const table = await runCommand(registerMetricsCommand, [...args, '--format', 'table']);
    expect(table).toMatch(/^method\s+alpha\s+qhat\s+coverage\s+mean_set_size$/m);
    expect(table).toMatch(/^lac\s+0\.4\s+0\.4000\s+0\.3333\s+0\.6667$/m);
    expect(table).toMatch(/^aps\s+0\.4\s/m);
    const latex = await runCommand(registerMetricsCommand, [...args, '--format', 'latex']);
    expect(latex).toContain('Method & $\\alpha$ & $\\hat q$ & Coverage & Mean set size \\\\');
    expect(latex).toContain('LAC & 0.4 & 0.4000 & 0.3333 & 0.6667 \\\\');
    const csv = await runCommand(registerMetricsCommand, [...args, '--format', 'csv']);
    const rows = Object.fromEntries(
      csv
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf(',')), l.slice(l.indexOf(',') + 1)]),
    );
    expect(Number(rows['conformal.lac.alpha_0.4.alpha'])).toBe(0.4);
    expect(Number(rows['conformal.lac.alpha_0.4.qhat'])).toBeCloseTo(0.4, 12);
    expect(Number(rows['conformal.lac.alpha_0.4.coverage'])).toBeCloseTo(1 / 3, 12);
    expect(Number(rows['conformal.lac.alpha_0.4.mean_set_size'])).toBeCloseTo(2 / 3, 12);
    expect(rows).toHaveProperty('conformal.aps.alpha_0.4.coverage');
  });

  describe('bad input: exit 2 with one error line', () => {
    beforeAll(() => {
      if (!fs.existsSync(cli)) throw new Error('dist/ is missing: run `npm run build`');
    });
    it.each([
      [
        'alpha above 1',
        ['--calib', calib, '--conformal', 'lac', '--alpha', '1.5'],
        /^error: --alpha: .*\(0, 1\).*"1\.5"/,
      ],
      ['alpha 0', ['--calib', calib, '--conformal', 'lac', '--alpha', '0.1,0'], /^error: --alpha: .*"0"/],
      [
        'calibration with other classes',
        ['--calib', calib3, '--conformal', 'lac'],
        /^error: calibration file .*calib3\.csv has 3 classes but .*test\.csv has 2/,
      ],
      [
        '--conformal without --calib',
        ['--conformal', 'lac'],
        /^error: --conformal needs calibration predictions: add --calib/,
      ],
      [
        'unknown method',
        ['--calib', calib, '--conformal', 'lac,thr'],
        /^error: --conformal: unknown method "thr"; choose from lac, aps, raps/,
      ],
      ['--calib without --conformal', ['--calib', calib], /^error: --calib .* add --conformal/],
    ])('%s', (_name, args, message) => {
      const r = vmoe('metrics', '--input', test, ...args);
      expect(oneLineError(r, { stdoutEmpty: true }).error).toMatch(message);
    });
  });
});

describe('vmoe eval --conformal on a tiny trained model', () => {
  let run = '';
  beforeAll(async () => {
    await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
    run = await tinyRun();
  });

  it('calibrates on val, reports on test, writes prediction_sets.csv and figures; vmoe metrics on the same predictions agrees', async () => {
    const out = tmpDir('conformal-eval');
    const common = ['--checkpoint', run, '--backend', 'wasm', '--threads', '1'];
    const text = await runCommand(registerEvalCommand, [
      'eval',
      ...common,
      '--limit',
      '48',
      '--conformal',
      'lac,aps,raps',
      '--alpha',
      '0.1,0.2',
      '--temperature-scale',
      '--out',
      out,
    ]);
    const r = JSON.parse(text);
    expect(r.temperature_scaled.fit_split).toBe('mnist/val (n=32)');
    expect(r.conventions.conformal.calibration).toBe('mnist/val (n=32)');
    for (const m of ['lac', 'aps', 'raps']) {
      expect(r.conformal[m]).toHaveLength(2);
      for (const x of r.conformal[m]) {
        expect(x.coverage).toBeGreaterThanOrEqual(0);
        expect(x.coverage).toBeLessThanOrEqual(1);
        expect(x.n_test).toBe(48);
        expect(x.prediction_sets).toBeUndefined(); // in prediction_sets.csv, not results.json
      }
    }
    // prediction_sets.csv: index, label, one column per method and α; sizes agree with the report
    const lines = fs.readFileSync(path.join(out, 'prediction_sets.csv'), 'utf8').trim().split('\n');
    expect(lines[0]).toBe('index,label,set_lac_0.1,set_lac_0.2,set_aps_0.1,set_aps_0.2,set_raps_0.1,set_raps_0.2');
    expect(lines).toHaveLength(1 + 48);
    const cells = lines.slice(1).map((l) => l.split(','));
    const sets = (col: number) => cells.map((c) => (c[col] === '' ? [] : c[col]!.split(' ').map(Number)));
    const lac01 = sets(2);
    expect(lac01.reduce((a, s) => a + s.length, 0) / 48).toBeCloseTo(r.conformal.lac[0].mean_set_size, 12);
    expect(lac01.filter((s, i) => s.includes(Number(cells[i]![1]))).length / 48).toBeCloseTo(
      r.conformal.lac[0].coverage,
      12,
    );
    // predictions.csv is still vmoe metrics input
    parsePredictionsCsv(fs.readFileSync(path.join(out, 'predictions.csv'), 'utf8'), 'predictions.csv');
    for (const f of ['conformal-set-size', 'conformal-coverage']) {
      checkSvg(fs.readFileSync(path.join(out, 'figures', `${f}.svg`), 'utf8'));
      expect(isPng(path.join(out, 'figures', `${f}.png`))).toBe(true);
    }
    // results.csv and vmoe report columns
    const resultsCsv = fs.readFileSync(path.join(out, 'results.csv'), 'utf8').split('\n')[0]!;
    expect(resultsCsv).toContain('conformal_lac_0.1_coverage');
    const flat = flattenEvalResult(JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')));
    expect(flat['conformal_aps_0.2_mean_set_size']).toBe(r.conformal.aps[1].mean_set_size);
    expect(flat['conformal_lac_0.1_coverage']).toBe(r.conformal.lac[0].coverage);

    // the val predictions (same 32 examples, same batch) → vmoe metrics gives the same conformal numbers
    const valOut = tmpDir('conformal-val');
    await runCommand(registerEvalCommand, ['eval', ...common, '--split', 'val', '--out', valOut]);
    const m = await runMetrics({
      input: path.join(out, 'predictions.csv'),
      calib: path.join(valOut, 'predictions.csv'),
      conformal: { methods: ['lac', 'aps', 'raps'], alphas: [0.1, 0.2] },
    });
    for (const method of ['lac', 'aps', 'raps'] as const) {
      m.conformal![method]!.forEach((x, i) => {
        const e = r.conformal[method][i];
        expect(x.n_calib).toBe(e.n_calib);
        expect(x.coverage).toBe(e.coverage);
        expect(x.mean_set_size).toBe(e.mean_set_size);
        expect(x.qhat as number).toBeCloseTo(e.qhat === 'Infinity' ? Infinity : e.qhat, 12);
      });
    }
  });

  it('--alpha without --conformal is a usage error', async () => {
    await expect(runCommand(registerEvalCommand, ['eval', '--checkpoint', run, '--alpha', '0.1'])).rejects.toThrow(
      /--alpha applies to conformal prediction/,
    );
  });
});
