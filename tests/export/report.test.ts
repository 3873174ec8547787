import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readResult, summarise } from '../../src/export/report.js';

describe('report: mean ± std over runs', () => {
  it('groups by model and computes mean and sample std (ddof 1) by hand', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-report-'));
    const runs = [
      { name: 'a', accuracy: 0.8, nll: 0.5 },
      { name: 'a', accuracy: 0.9, nll: 0.3 },
      { name: 'a', accuracy: 0.7, nll: 0.4 },
      {
        name: 'b',
        accuracy: 0.6,
        nll: 1.0,
        ood: [{ dataset: 'mnist', scores: { msp: { ood_positive: { auroc: 0.7 } } } }],
      },
    ];
    const files = runs.map((r, i) => {
      const f = path.join(dir, `r${i}.json`);
      fs.writeFileSync(f, JSON.stringify({ config: { name: r.name }, accuracy: r.accuracy, nll: r.nll, ood: r.ood }));
      return f;
    });
    const s = summarise(files.map((f) => readResult(f, 'model')));
    const a = s.find((g) => g.group === 'a')!;
    expect(a.runs).toBe(3);
    expect(a.mean.accuracy).toBeCloseTo(0.8, 12);
    // deviations ±0.1, 0 → sample variance (0.01 + 0.01) / 2 = 0.01
    expect(a.std.accuracy).toBeCloseTo(0.1, 12);
    expect(a.mean.nll).toBeCloseTo(0.4, 12);
    const b = s.find((g) => g.group === 'b')!;
    expect(b.std.accuracy).toBe(0);
    expect(b.mean.ood_mnist_msp_auroc).toBe(0.7);
    expect(() => readResult(path.join(dir, 'missing'), 'model')).toThrow(/no results found/);
  });

  it("averages the members' accuracy and NLL of an ensemble result", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-report-'));
    const f = path.join(dir, 'ens.json');
    fs.writeFileSync(
      f,
      JSON.stringify({
        config: { name: 'e3' },
        accuracy: 0.9,
        member_accuracy: [0.8, 0.85],
        member_nlls: [0.5, 0.7],
        mutual_information: 0.02,
      }),
    );
    const v = readResult(f, 'model').values;
    expect(v.member_accuracy_mean).toBeCloseTo((0.8 + 0.85) / 2, 12);
    expect(v.member_nlls_mean).toBeCloseTo((0.5 + 0.7) / 2, 12);
    expect(v.mutual_information).toBe(0.02);
    // results.json from before the one report schema: member_nll and camelCase diversity under `diversity`
    const old = path.join(dir, 'old.json');
    fs.writeFileSync(
      old,
      JSON.stringify({
        config: { name: 'e3' },
        accuracy: 0.9,
        member_nll: [0.4, 0.6],
        diversity: { mutualInformation: 0.03 },
      }),
    );
    const w = readResult(old, 'model').values;
    expect(w.member_nlls_mean).toBeCloseTo(0.5, 12);
    expect(w.mutual_information).toBe(0.03);
  });

  it('exposes the nested ECE variants and AURC as columns, not the curve data', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-report-'));
    const f = path.join(dir, 'r.json');
    const calibration = {
      ece_equal_mass: 0.1,
      classwise_ece: 0.2,
      rmsce: 0.3,
      mce: 0.4,
      signed_ece: -0.05,
      reliability: [{ lo: 0, hi: 1, count: 3, accuracy: 1, confidence: 0.9 }],
    };
    fs.writeFileSync(
      f,
      JSON.stringify({
        config: { name: 'm' },
        accuracy: 0.9,
        aurc: 0.07,
        calibration,
        selective_prediction: { risk_coverage: { coverage: [1], risk: [0.1] } },
      }),
    );
    const v = readResult(f, 'model').values;
    expect(v).toEqual({
      accuracy: 0.9,
      aurc: 0.07,
      ece_equal_mass: 0.1,
      classwise_ece: 0.2,
      rmsce: 0.3,
      mce: 0.4,
      signed_ece: -0.05,
    });
  });

  it("adds training time and steps from the run folder's train_summary.json next to eval_test/", () => {
    const run = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-report-'));
    fs.mkdirSync(path.join(run, 'eval_test'));
    fs.writeFileSync(
      path.join(run, 'eval_test', 'results.json'),
      JSON.stringify({ config: { name: 'm' }, accuracy: 0.9 }),
    );
    fs.writeFileSync(path.join(run, 'train_summary.json'), JSON.stringify({ step: 10000, seconds: 1234.5 }));
    const v = readResult(run, 'model').values;
    expect(v.train_seconds).toBe(1234.5);
    expect(v.train_steps).toBe(10000);
    fs.writeFileSync(path.join(run, 'train_summary.json'), '{broken');
    expect(() => readResult(run, 'model')).toThrow(/train_summary\.json: not valid JSON/);
  });
});

describe('report: provenance and conventions per group', () => {
  const sha = (c: string) => c.repeat(64);
  /** A results.json as `vmoe eval` writes it, reduced to the fields provenance is read from. */
  const result = (name: string, seed: number, ck: string | string[], extra: Record<string, unknown> = {}) => ({
    config: { name },
    seed,
    accuracy: 0.9,
    nll: 0.3,
    dataset: 'fashion-mnist',
    split: 'test',
    eval_seed: 0,
    checkpoint: Array.isArray(ck) ? ck.map((c, i) => ({ sha256: sha(c), seed: seed + i })) : { sha256: sha(ck), seed },
    engine: { backend: 'wasm-blas', threads: 1 },
    versions: { 'vmoe-ts': '9.8.7', tfjs: '4.22.0', node: 'v20.0.0' },
    conventions: { ece: { bins: 15, binning: 'equal-width', labels: 'top-label' }, temperature_scaled: false },
    temperature_scaled: null,
    ood: null,
    ...extra,
  });

  async function writeRuns(runs: Record<string, unknown>[]): Promise<string[]> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-report-prov-'));
    return runs.map((r, i) => {
      const f = path.join(dir, `r${i}.json`);
      fs.writeFileSync(f, JSON.stringify(r));
      return f;
    });
  }

  it('keeps data, seeds, checkpoints, backend, versions and conventions in JSON, CSV, Markdown and LaTeX', async () => {
    const { reportOutputs, reportRows } = await import('../../src/export/report.js');
    const ood = [{ dataset: 'mnist', scores: { msp: { ood_positive: { auroc: 0.8 } } } }];
    const files = await writeRuns([
      result('vmoe', 0, 'a', { ood, temperature_scaled: { nll: 0.25, ece: 0.01 } }),
      result('vmoe', 1, 'b', { ood, temperature_scaled: { nll: 0.27, ece: 0.02 } }),
      result('ensemble', 0, ['a', 'b'], { members: 2 }),
    ]);
    const rows = reportRows(files, 'model');
    const vmoe = rows.summaries.find((g) => g.group === 'vmoe')!;
    expect(vmoe.provenance).toEqual({
      datasets: ['fashion-mnist/test'],
      checkpoints: [sha('a'), sha('b')],
      seeds: [0, 1],
      eval_seeds: [0],
      backends: ['wasm-blas (1 thread)'],
      versions: ['vmoe-ts 9.8.7, tfjs 4.22.0, node v20.0.0'],
    });
    expect(vmoe.conventions).toMatchObject({
      ece: ['top-label ECE, 15 equal-width bins'],
      ood_positive: 'ood',
      temperature_scaled: false,
    });
    expect(vmoe.conventions.ts_columns).toMatch(/ts_nll/);
    // a deep ensemble's record lists both members' checkpoints and seeds
    const ens = rows.summaries.find((g) => g.group === 'ensemble')!;
    expect(ens.provenance.checkpoints).toEqual([sha('a'), sha('b')]);
    expect(ens.provenance.seeds).toEqual([0, 1]);
    expect(ens.conventions.ood_positive).toBeNull();

    const out = reportOutputs(rows);
    const json = JSON.parse(out.json!);
    expect(json.groups.find((g: { group: string }) => g.group === 'vmoe').provenance.seeds).toEqual([0, 1]);
    // CSV: one row per group, provenance in extra columns, lists joined with '+'
    const lines = out.csv!.trim().split('\n');
    expect(lines).toHaveLength(3);
    const header = lines[0]!.split(',');
    for (const c of [
      'datasets',
      'seeds',
      'checkpoints',
      'backends',
      'versions',
      'ece',
      'ood_positive',
      'temperature_scaled',
    ])
      expect(header).toContain(c);
    const vmoeRow = lines.find((l) => l.startsWith('vmoe,'))!;
    expect(vmoeRow).toContain(`${sha('a')}+${sha('b')}`);
    expect(vmoeRow).toContain(',0+1,');
    // Markdown: a note under the table
    const [table, note] = out.markdown!.split('\n\n');
    expect(table).toMatch(/^\| model \| runs \|/);
    for (const part of [
      'Data: fashion-mnist/test.',
      'Seeds: 0, 1.',
      'vmoe: aaaaaaaa, bbbbbbbb',
      'wasm-blas (1 thread)',
      'vmoe-ts 9.8.7',
      '15 equal-width bins',
      'OOD as the positive class',
      'not temperature scaled (ts_* are',
    ]) {
      expect(note).toContain(part);
    }
    // LaTeX: provenance in the caption, full hashes in comments above the table
    const caption = out.latex!.match(/\\caption\{(.*)\}/)![1]!;
    for (const part of [
      'fashion-mnist/test',
      'wasm-blas (1 thread)',
      'vmoe-ts 9.8.7',
      'tfjs 4.22.0',
      '15 equal-width bins',
      'not temperature scaled',
    ]) {
      expect(caption).toContain(part);
    }
    expect(out.latex).toContain(`% vmoe: 2 run(s), seeds 0, 1, checkpoints sha256 ${sha('a')}, ${sha('b')}`);
  });

  it('states what differs between groups per group and what a result does not record as unknown', async () => {
    const { reportOutputs, reportRows } = await import('../../src/export/report.js');
    const files = await writeRuns([
      result('a', 0, 'c'),
      { ...result('b', 5, 'd'), engine: { backend: 'cpu', threads: 1 } },
      { config: { name: 'old' }, accuracy: 0.5 }, // written before provenance was recorded
    ]);
    const rows = reportRows(files, 'model');
    const note = reportOutputs(rows).markdown!.split('\n\n')[1]!;
    expect(note).toContain('Backend: a: wasm-blas (1 thread); b: cpu (1 thread); old: ?');
    expect(note).toContain('Seeds: a: 0; b: 5; old: ?');
    expect(rows.summaries.find((g) => g.group === 'old')!.conventions.ece).toEqual(['ECE convention not recorded']);
  });
});
