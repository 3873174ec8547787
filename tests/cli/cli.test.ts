/** End-to-end: the built CLI (`npm ci` runs the build) on real data, as a user runs it. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'dist/cli/main.js');
const vmoe = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, VMOE_THREADS: '1' } });

beforeAll(() => {
  if (!fs.existsSync(cli)) throw new Error('dist/ is missing: run `npm run build` (npm ci does it through the prepare script)');
});

describe('package', () => {
  it('imports as vmoe-ts from inside the package (exports map)', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e',
      "import { topExpertsPerItem, metrics } from 'vmoe-ts'; const r = topExpertsPerItem([[.4,0,.2],[.5,.1,.4],[.3,.2,.6]], { k: 2, capacity: 2 }); console.log(JSON.stringify(r.expert), typeof metrics.ece)"],
    { cwd: root, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    // spec golden vector: vanilla experts per token and choice
    expect(r.stdout.trim()).toBe('[[0,2],[0,2],[2,0]] function');
  });
});

describe('vmoe CLI on MNIST', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-cli-'));
  const run = path.join(dir, 'run');
  const common = ['--set', 'data.dataset="mnist"', '--set', 'data.trainLimit=256', '--set', 'data.valSize=64',
    '--set', 'model.patchSize=14', '--set', 'model.hidden=16', '--set', 'model.mlpDim=32', '--set', 'model.moe.groupImages=4',
    '--set', 'train.batchSize=16', '--set', 'train.evalEvery=0', '--set', 'train.evalLimit=64'];

  it('train → eval → info', () => {
    const t = vmoe('train', ...common, '--set', 'train.steps=4', '--out', run, '--backend', 'wasm');
    expect(t.status, t.stderr).toBe(0);
    expect(t.stderr).toMatch(/backend wasm/);
    expect(fs.existsSync(path.join(run, 'metrics.jsonl'))).toBe(true);
    const lines = fs.readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => !l.split).map((l) => l.step)).toEqual([1, 2, 3, 4]);

    const e = vmoe('eval', '--checkpoint', run, '--limit', '100', '--capacity-factor', '0.5', '--batch-priority');
    expect(e.status, e.stderr).toBe(0);
    const rep = JSON.parse(e.stdout);
    expect(rep.n).toBe(100);
    for (const k of ['accuracy', 'nll', 'brier', 'ece', 'flops_per_image']) expect(Number.isFinite(rep[k])).toBe(true);
    expect(rep.routing.batch_priority).toBe(true);
    expect(rep.engine.backend).toMatch(/^wasm(-blas)?$/); // wasm-blas where the optional native addon is built
    expect(rep.checkpoint.sha256).toMatch(/^[0-9a-f]{64}$/);

    // The harness: OOD sets, temperature scaling, exported predictions that `vmoe metrics` reads back.
    const outDir = path.join(dir, 'eval');
    const h = vmoe('eval', '--checkpoint', run, '--limit', '64', '--ood', 'uniform-noise,gaussian-noise', '--mahalanobis-fit', '64',
      '--temperature-scale', '--out', outDir, '--format', 'csv');
    expect(h.status, h.stderr).toBe(0);
    const full = JSON.parse(fs.readFileSync(path.join(outDir, 'results.json'), 'utf8'));
    expect(full.ood.map((o: { dataset: string }) => o.dataset)).toEqual(['uniform-noise', 'gaussian-noise']);
    for (const o of full.ood) {
      for (const s of ['msp', 'energy', 'mahalanobis']) {
        const { ood_positive: a, in_positive: b } = o.scores[s];
        // in-distribution positive ranks by the negated score: the ROC is the same curve, the PR curve is not
        expect(b.auroc).toBeCloseTo(a.auroc, 12);
        for (const v of [a.auprc, b.auprc, a.fpr95, b.fpr95]) expect(v >= 0 && v <= 1).toBe(true);
      }
    }
    expect(full.temperature_scaled.fit_nll_after).toBeLessThanOrEqual(full.temperature_scaled.fit_nll_before);
    for (const f of ['results.csv', 'table.tex', 'predictions.csv', 'figures/reliability.svg', 'figures/risk-coverage.svg', 'figures/ood-uniform-noise.svg']) {
      expect(fs.existsSync(path.join(outDir, f)), f).toBe(true);
    }
    const mm = vmoe('metrics', '--input', path.join(outDir, 'predictions.csv'), '--format', 'json');
    expect(mm.status, mm.stderr).toBe(0);
    const again = JSON.parse(mm.stdout);
    expect(again.accuracy).toBeCloseTo(full.accuracy, 9);
    expect(again.nll).toBeCloseTo(full.nll, 5);
    expect(again.ece).toBeCloseTo(full.ece, 5);
    expect(again.aurc).toBeCloseTo(full.aurc, 5);
    expect(again.calibration_auc).toBeCloseTo(full.calibration_auc, 5);
    // ECE variants and selective prediction: results.json and `vmoe metrics` on the exported predictions agree
    for (const k of ['ece_equal_mass', 'classwise_ece', 'rmsce', 'mce', 'signed_ece']) expect(again.calibration[k]).toBeCloseTo(full.calibration[k], 9);
    for (const c of ['50%', '90%', '99%']) expect(again.selective_prediction.accuracy_at_coverage[c]).toBeCloseTo(full.selective_prediction.accuracy_at_coverage[c], 9);
    expect(again.selective_prediction.coverage_at_risk).toEqual(full.selective_prediction.coverage_at_risk);
    expect(full.calibration.reliability.map((b: { count: number }) => b.count).reduce((a: number, b: number) => a + b, 0)).toBe(64);
    expect(full.selective_prediction.risk_coverage.coverage).toHaveLength(64);
    expect(full.conventions.calibration.mce).toMatchObject({ bins: 15, binning: 'equal-width', norm: 'max' });

    const fsOut = vmoe('fewshot', '--checkpoint', run, '--datasets', 'mnist', '--train-pool', '200', '--test-limit', '100',
      '--shots', '1,5', '--seeds', '2', '--format', 'json', '--cache-dir', path.join(dir, 'cache'));
    expect(fsOut.status, fsOut.stderr).toBe(0);
    const few = JSON.parse(fsOut.stdout);
    expect(few.results.map((r: { shot: number }) => r.shot)).toEqual([1, 5]);
    for (const r of few.results) expect(r.meanRank.accuracy.perSeed).toHaveLength(2);
    expect(few.l2_grid).toHaveLength(30);
    expect(fs.readdirSync(path.join(dir, 'cache')).length).toBe(2); // train pool + test pre-logits cached

    const i = vmoe('info', run);
    expect(i.status, i.stderr).toBe(0);
    const info = JSON.parse(i.stdout);
    expect(info.parameters.total).toBeGreaterThan(info.parameters.active_per_token);
    expect(info.training.step).toBe(4);
  });

  it('bad input gets a clear error and a non-zero exit', () => {
    const bad = vmoe('train', '--set', 'model.moe.k=99', '--out', path.join(dir, 'x'));
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/model\.moe\.k: 99 exceeds/);
    const missing = vmoe('eval', '--checkpoint', path.join(dir, 'nope'));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/does not exist/);
    const corrupt = path.join(dir, 'corrupt.vmoe');
    fs.writeFileSync(corrupt, 'VMOECKPT' + 'x'.repeat(100));
    const c = vmoe('eval', '--checkpoint', corrupt);
    expect(c.status).toBe(2);
    expect(c.stderr).toMatch(/corrupt|checksum|truncated/i);
  });
});

describe('ensembles from the CLI', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-ens-'));
  const common = ['--set', 'data.dataset="mnist"', '--set', 'data.trainLimit=128', '--set', 'data.valSize=32',
    '--set', 'model.patchSize=14', '--set', 'model.hidden=16', '--set', 'model.mlpDim=32', '--set', 'model.moe.groupImages=4',
    '--set', 'train.batchSize=16', '--set', 'train.evalEvery=0', '--set', 'train.evalLimit=32', '--set', 'train.steps=2'];

  it('deep ensemble of two V-MoEs, and an E³ fine-tuned from a V-MoE', () => {
    for (const seed of [1, 2]) {
      const t = vmoe('train', ...common, '--set', `seed=${seed}`, '--out', path.join(dir, `v${seed}`));
      expect(t.status, t.stderr).toBe(0);
    }
    const e = vmoe('eval', '--checkpoint', path.join(dir, 'v1'), '--checkpoint', path.join(dir, 'v2'), '--limit', '64');
    expect(e.status, e.stderr).toBe(0);
    const rep = JSON.parse(e.stdout);
    expect(rep.members).toBe(2);
    expect(rep.ensemble.kind).toBe('deep-ensemble');
    expect(rep.gibbs_nll).toBeGreaterThanOrEqual(rep.nll - 1e-9); // Jensen
    expect(rep.member_nll).toHaveLength(2);

    const f = vmoe('finetune', '--from', path.join(dir, 'v1'), ...common, '--set', 'model.type="e3"', '--set', 'model.moe.k=1',
      '--out', path.join(dir, 'e3'));
    expect(f.status, f.stderr).toBe(0);
    expect(f.stderr).toMatch(/resized \(block1\/moe\/router\/kernel/);
    const e3 = JSON.parse(vmoe('eval', '--checkpoint', path.join(dir, 'e3'), '--limit', '64').stdout);
    expect(e3.members).toBe(2);
    expect(e3.ensemble.kind).toBe('e3');
  });
});

describe('vmoe experiment e3', () => {
  it('trains every model per seed, forms the deep ensemble and writes the merged table', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-exp-'));
    const r = vmoe('experiment', 'e3', '--quick', '--steps', '2', '--seeds', '2', '--eval-limit', '32', '--dataset', 'mnist', '--ood', 'uniform-noise', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const table = JSON.parse(fs.readFileSync(path.join(out, 'table.json'), 'utf8'));
    const groups = Object.fromEntries(table.groups.map((g: { group: string; runs: number }) => [g.group, g.runs]));
    expect(groups).toEqual({ vit: 2, 'vmoe-k1': 2, 'vmoe-k2': 2, 'e3-m2-k1': 2, 'deep-ensemble-2x-vmoe-k2': 1 });
    const de = table.groups.find((g: { group: string }) => g.group === 'deep-ensemble-2x-vmoe-k2');
    const k2 = table.groups.find((g: { group: string }) => g.group === 'vmoe-k2');
    // an ensemble of two V-MoEs costs twice one V-MoE's FLOPs
    expect(de.mean.flops_per_image).toBe(2 * k2.mean.flops_per_image);
    for (const f of ['table.csv', 'table.tex', 'results.md']) expect(fs.existsSync(path.join(out, f))).toBe(true);
  });
});
