import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readResult, summarise } from '../../src/export/report.js';

describe('report: mean ± std over runs', () => {
  it('groups by model and computes mean and sample std (ddof 1) by hand', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-report-'));
    const runs = [
      { name: 'a', accuracy: 0.8, nll: 0.5 }, { name: 'a', accuracy: 0.9, nll: 0.3 }, { name: 'a', accuracy: 0.7, nll: 0.4 },
      { name: 'b', accuracy: 0.6, nll: 1.0, ood: [{ dataset: 'mnist', scores: { msp: { ood_positive: { auroc: 0.7 } } } }] },
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

  it('averages the members\' accuracy and NLL of an ensemble result', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-report-'));
    const f = path.join(dir, 'ens.json');
    fs.writeFileSync(f, JSON.stringify({ config: { name: 'e3' }, accuracy: 0.9, member_accuracy: [0.8, 0.85], member_nll: [0.5, 0.7] }));
    const v = readResult(f, 'model').values;
    expect(v.member_accuracy_mean).toBeCloseTo((0.8 + 0.85) / 2, 12);
    expect(v.member_nll_mean).toBeCloseTo((0.5 + 0.7) / 2, 12);
  });

  it('exposes the nested ECE variants and AURC as columns, not the curve data', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-report-'));
    const f = path.join(dir, 'r.json');
    const calibration = { ece_equal_mass: 0.1, classwise_ece: 0.2, rmsce: 0.3, mce: 0.4, signed_ece: -0.05, reliability: [{ lo: 0, hi: 1, count: 3, accuracy: 1, confidence: 0.9 }] };
    fs.writeFileSync(f, JSON.stringify({ config: { name: 'm' }, accuracy: 0.9, aurc: 0.07, calibration, selective_prediction: { risk_coverage: { coverage: [1], risk: [0.1] } } }));
    const v = readResult(f, 'model').values;
    expect(v).toEqual({ accuracy: 0.9, aurc: 0.07, ece_equal_mass: 0.1, classwise_ece: 0.2, rmsce: 0.3, mce: 0.4, signed_ece: -0.05 });
  });

  it('adds training time and steps from the run folder\'s train_summary.json next to eval_test/', () => {
    const run = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-report-'));
    fs.mkdirSync(path.join(run, 'eval_test'));
    fs.writeFileSync(path.join(run, 'eval_test', 'results.json'), JSON.stringify({ config: { name: 'm' }, accuracy: 0.9 }));
    fs.writeFileSync(path.join(run, 'train_summary.json'), JSON.stringify({ step: 10000, seconds: 1234.5 }));
    const v = readResult(run, 'model').values;
    expect(v.train_seconds).toBe(1234.5);
    expect(v.train_steps).toBe(10000);
    fs.writeFileSync(path.join(run, 'train_summary.json'), '{broken');
    expect(() => readResult(run, 'model')).toThrow(/train_summary\.json: not valid JSON/);
  });
});
