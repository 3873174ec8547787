/** End-to-end: the built CLI (`npm ci` runs the build) on real data, as a user runs it. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { TINY_TRAIN, cli, root, vmoe } from '../helpers/cli.js';

/** One-row CSV as an object (the provenance cells hold no commas or quotes, so a split suffices). */
function csvRecord(text: string): Record<string, string> {
  const [header, row, ...rest] = text.trim().split('\n');
  expect(rest).toHaveLength(0);
  expect(text).not.toContain('"');
  const keys = header!.split(','),
    cells = row!.split(',');
  expect(cells).toHaveLength(keys.length);
  return Object.fromEntries(keys.map((k, i) => [k, cells[i]!]));
}
const packageVersion = (p: string) => (JSON.parse(fs.readFileSync(p, 'utf8')) as { version: string }).version;

beforeAll(() => {
  if (!fs.existsSync(cli))
    throw new Error('dist/ is missing: run `npm run build` (npm ci does it through the prepare script)');
});

describe('package', () => {
  it('imports as vmoe-ts from inside the package (exports map)', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { topExpertsPerItem, metrics } from 'vmoe-ts'; const r = topExpertsPerItem([[.4,0,.2],[.5,.1,.4],[.3,.2,.6]], { k: 2, capacity: 2 }); console.log(JSON.stringify(r.expert), typeof metrics.ece)",
      ],
      { cwd: root, encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    // docs/spec/routing.md §8 golden vector: vanilla experts per token and choice
    expect(r.stdout.trim()).toBe('[[0,2],[0,2],[2,0]] function');
  });
});

describe('vmoe CLI on MNIST', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-cli-'));
  const run = path.join(dir, 'run');
  const common = TINY_TRAIN;

  it('train → eval → info', () => {
    const t = vmoe('train', ...common, '--set', 'train.steps=4', '--out', run, '--backend', 'wasm');
    expect(t.status, t.stderr).toBe(0);
    expect(t.stderr).toMatch(/backend wasm/);
    expect(fs.existsSync(path.join(run, 'metrics.jsonl'))).toBe(true);
    const lines = fs
      .readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
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
    const h = vmoe(
      'eval',
      '--checkpoint',
      run,
      '--limit',
      '64',
      '--ood',
      'uniform-noise,gaussian-noise',
      '--mahalanobis-fit',
      '64',
      '--temperature-scale',
      '--seed',
      '3',
      '--out',
      outDir,
      '--format',
      'csv',
    );
    expect(h.status, h.stderr).toBe(0);
    const full = JSON.parse(fs.readFileSync(path.join(outDir, 'results.json'), 'utf8'));

    // Provenance of every exported number: results.csv columns, the LaTeX caption and comment, results.json.
    const ckDir = path.join(run, 'checkpoints');
    const ckFiles = fs.readdirSync(ckDir).filter((f) => f.endsWith('.vmoe'));
    expect(ckFiles).toHaveLength(1);
    const sha = createHash('sha256')
      .update(fs.readFileSync(path.join(ckDir, ckFiles[0]!)))
      .digest('hex');
    const trainSeed = String(JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')).seed);
    const vmoeVersion = packageVersion(path.join(root, 'package.json'));
    const tfjsVersion = packageVersion(path.join(root, 'node_modules/@tensorflow/tfjs-core/package.json'));
    const csv = csvRecord(fs.readFileSync(path.join(outDir, 'results.csv'), 'utf8'));
    expect(csvRecord(h.stdout)).toMatchObject({ checkpoint_sha256: sha }); // --format csv prints the same columns
    expect(csv).toMatchObject({
      checkpoint_sha256: sha,
      seed: trainSeed,
      eval_seed: '3',
      threads: '1',
      vmoe_ts_version: vmoeVersion,
      tfjs_version: tfjsVersion,
      node_version: process.version,
      ece_bins: '15',
      ece_binning: 'equal-width',
      temperature_scaled: 'false',
      ood_positive: 'ood',
    });
    expect(csv.backend).toMatch(/^wasm(-blas)?$/);
    expect(Number(csv.temperature_scaled_nll)).toBeCloseTo(full.temperature_scaled.nll, 4);
    expect(Number(csv.temperature_scaled_ece)).toBeCloseTo(full.temperature_scaled.ece, 4);
    expect(Number(csv.nll)).toBeCloseTo(full.nll, 4); // the headline column is the raw NLL
    const tex = fs.readFileSync(path.join(outDir, 'table.tex'), 'utf8');
    expect(tex).toContain(`% checkpoint sha256: ${sha}`);
    const caption = tex.match(/\\caption\{(.*)\}/)![1]!;
    for (const part of [
      sha.slice(0, 12),
      `seed ${trainSeed}, eval seed 3`,
      `backend ${csv.backend} (1 thread)`,
      `vmoe-ts ${vmoeVersion}`,
      `tfjs ${tfjsVersion}`,
      '15 equal-width bins',
      'not temperature scaled',
      'OOD as the positive class',
    ]) {
      expect(caption).toContain(part);
    }
    expect(full).toMatchObject({
      eval_seed: 3,
      checkpoint: { sha256: sha, seed: Number(trainSeed) },
      conventions: { temperature_scaled: false },
    });
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
    for (const f of [
      'results.csv',
      'table.tex',
      'predictions.csv',
      'figures/reliability.svg',
      'figures/risk-coverage.svg',
      'figures/ood-uniform-noise.svg',
    ]) {
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
    for (const k of ['ece_equal_mass', 'classwise_ece', 'rmsce', 'mce', 'signed_ece'])
      expect(again.calibration[k]).toBeCloseTo(full.calibration[k], 9);
    for (const c of ['50%', '90%', '99%'])
      expect(again.selective_prediction.accuracy_at_coverage[c]).toBeCloseTo(
        full.selective_prediction.accuracy_at_coverage[c],
        9,
      );
    expect(again.selective_prediction.coverage_at_risk).toEqual(full.selective_prediction.coverage_at_risk);
    expect(
      full.calibration.reliability.map((b: { count: number }) => b.count).reduce((a: number, b: number) => a + b, 0),
    ).toBe(64);
    expect(full.selective_prediction.risk_coverage.coverage).toHaveLength(64);
    expect(full.conventions.calibration.mce).toMatchObject({ bins: 15, binning: 'equal-width', norm: 'max' });

    const fsOut = vmoe(
      'fewshot',
      '--checkpoint',
      run,
      '--datasets',
      'mnist',
      '--train-pool',
      '200',
      '--test-limit',
      '100',
      '--shots',
      '1,5',
      '--seeds',
      '2',
      '--format',
      'json',
      '--cache-dir',
      path.join(dir, 'cache'),
    );
    expect(fsOut.status, fsOut.stderr).toBe(0);
    const few = JSON.parse(fsOut.stdout);
    expect(few.results.map((r: { shot: number }) => r.shot)).toEqual([1, 5]);
    for (const r of few.results) expect(r.meanRank.accuracy.perSeed).toHaveLength(2);
    expect(few.l2_grid).toHaveLength(30);
    expect(fs.readdirSync(path.join(dir, 'cache')).length).toBe(2); // train pool + test pre-logits cached
    // Feature extraction throughput: examples over the model passes' seconds, per split (nothing cached yet).
    type Timing = { dataset: string; split: string; n: number; cached: boolean; seconds: number; images_per_s: number };
    const fx = few.feature_extraction as Timing[];
    expect(fx.map((f) => [f.dataset, f.split, f.n, f.cached])).toEqual([
      ['mnist', 'train', 200, false],
      ['mnist', 'test', 100, false],
    ]);
    for (const f of fx) expect(f.images_per_s).toBeCloseTo(f.n / f.seconds, 6);

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
  const common = [
    '--set',
    'data.dataset="mnist"',
    '--set',
    'data.trainLimit=128',
    '--set',
    'data.valSize=32',
    '--set',
    'model.patchSize=14',
    '--set',
    'model.hidden=16',
    '--set',
    'model.mlpDim=32',
    '--set',
    'model.moe.groupImages=4',
    '--set',
    'train.batchSize=16',
    '--set',
    'train.evalEvery=0',
    '--set',
    'train.evalLimit=32',
    '--set',
    'train.steps=2',
  ];

  it('deep ensemble of two V-MoEs, and an E³ fine-tuned from a V-MoE', () => {
    for (const seed of [1, 2]) {
      const t = vmoe('train', ...common, '--set', `seed=${seed}`, '--out', path.join(dir, `v${seed}`));
      expect(t.status, t.stderr).toBe(0);
    }
    const evalDir = path.join(dir, 'ens-eval');
    const e = vmoe(
      'eval',
      '--checkpoint',
      path.join(dir, 'v1'),
      '--checkpoint',
      path.join(dir, 'v2'),
      '--limit',
      '64',
      '--out',
      evalDir,
      '--label',
      'two-vmoes',
    );
    expect(e.status, e.stderr).toBe(0);
    const rep = JSON.parse(e.stdout);
    expect(rep.model_label).toBe('two-vmoes');
    // vmoe report groups by the label (the config name would be the first member's)
    const grouped = JSON.parse(vmoe('report', path.join(evalDir, 'results.json'), '--format', 'json').stdout);
    expect(grouped.groups.map((g: { group: string }) => g.group)).toEqual(['two-vmoes']);
    expect(rep.members).toBe(2);
    expect(rep.ensemble.kind).toBe('deep-ensemble');
    expect(rep.gibbs_nll).toBeGreaterThanOrEqual(rep.nll - 1e-9); // Jensen
    expect(rep.member_nlls).toHaveLength(2);

    // The same predictions through `vmoe metrics` (from the predictions.csv eval wrote) give the same keys and values:
    // one harness, one schema. The CSV holds the float32 logits exactly, so the numbers are equal, not just close.
    const m = vmoe('metrics', '--input', path.join(evalDir, 'predictions.csv'));
    expect(m.status, m.stderr).toBe(0);
    const met = JSON.parse(m.stdout) as Record<string, unknown>;
    const { source, input, ...metricPart } = met;
    expect(input).toBe('logits');
    expect(source).toBe(path.join(evalDir, 'predictions.csv'));
    const sharedKeys = Object.keys(metricPart);
    expect(sharedKeys).toEqual(
      expect.arrayContaining([
        'accuracy',
        'nll',
        'brier',
        'ece',
        'calibration',
        'selective_prediction',
        'gibbs_nll',
        'mutual_information',
        'conventions',
      ]),
    );
    for (const key of sharedKeys) {
      if (key === 'conventions') continue;
      expect(rep[key], key).toEqual(metricPart[key]);
    }
    // eval's conventions hold the metrics' plus what only a model run has (FLOPs, router, OOD)
    expect(rep.conventions).toMatchObject(metricPart.conventions as object);

    const f = vmoe(
      'finetune',
      '--from',
      path.join(dir, 'v1'),
      ...common,
      '--set',
      'model.type="e3"',
      '--set',
      'model.moe.k=1',
      '--out',
      path.join(dir, 'e3'),
    );
    expect(f.status, f.stderr).toBe(0);
    expect(f.stderr).toMatch(/resized \(block1\/moe\/router\/kernel/);
    // same data set (mnist → mnist): the V-MoE's head carries over unless asked otherwise
    expect(f.stderr).toMatch(/head copied \(same data set \(mnist\): kept\)/);
    const g = vmoe(
      'finetune',
      '--from',
      path.join(dir, 'v1'),
      ...common,
      '--set',
      'train.steps=1',
      '--reinit-head',
      '--out',
      path.join(dir, 'fresh-head'),
    );
    expect(g.status, g.stderr).toBe(0);
    expect(
      JSON.parse(fs.readFileSync(path.join(dir, 'fresh-head', 'train_summary.json'), 'utf8')).init_from,
    ).toMatchObject({ head: 'reinitialised' });
    const e3 = JSON.parse(vmoe('eval', '--checkpoint', path.join(dir, 'e3'), '--limit', '64').stdout);
    expect(e3.members).toBe(2);
    expect(e3.ensemble.kind).toBe('e3');
  });
});

describe('vmoe experiment e3', () => {
  it('one seed (quick) still forms the deep ensemble; more seeds reuse those runs and write the merged table', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-exp-'));
    const args = [
      'experiment',
      'e3',
      '--quick',
      '--steps',
      '2',
      '--eval-limit',
      '32',
      '--dataset',
      'mnist',
      '--ood',
      'uniform-noise',
      '--out',
      out,
    ];
    const groupsOf = () => {
      const table = JSON.parse(fs.readFileSync(path.join(out, 'table.json'), 'utf8'));
      return table.groups as {
        group: string;
        runs: number;
        mean: Record<string, number>;
        provenance: { seeds: number[]; checkpoints: string[] };
      }[];
    };
    const runsOf = () => Object.fromEntries(groupsOf().map((g) => [g.group, g.runs]));

    // --quick is one seed: a second V-MoE K=2 is trained for the ensemble only, so the table has all five rows
    const one = vmoe(...args);
    expect(one.status, one.stderr).toBe(0);
    expect(runsOf()).toEqual({ vit: 1, 'vmoe-k1': 1, 'vmoe-k2': 1, 'e3-m2-k1': 1, 'deep-ensemble-2x-vmoe-k2': 1 });
    const k2 = groupsOf().find((g) => g.group === 'vmoe-k2')!;
    expect(k2.provenance.seeds).toEqual([0]); // the extra member stays out of the V-MoE row
    const pair = JSON.parse(
      fs.readFileSync(path.join(out, 'deep-ensemble-vmoe-k2-s0', 'eval_test', 'results.json'), 'utf8'),
    );
    expect(pair.checkpoint.map((c: { seed: number }) => c.seed)).toEqual([0, 1]);
    expect(pair.members).toBe(2);

    const two = vmoe(...args, '--seeds', '2');
    expect(two.status, two.stderr).toBe(0);
    expect(two.stderr).toMatch(/training vit seed 1/);
    expect(two.stderr).not.toMatch(/training vmoe-k2 seed 1/); // trained by the one-seed run, evaluated now
    expect(runsOf()).toEqual({ vit: 2, 'vmoe-k1': 2, 'vmoe-k2': 2, 'e3-m2-k1': 2, 'deep-ensemble-2x-vmoe-k2': 1 });
    const de = groupsOf().find((g) => g.group === 'deep-ensemble-2x-vmoe-k2')!;
    const k2b = groupsOf().find((g) => g.group === 'vmoe-k2')!;
    // an ensemble of two V-MoEs costs twice one V-MoE's FLOPs
    expect(de.mean.flops_per_image).toBe(2 * k2b.mean.flops_per_image!);
    // the ensemble is made of the two V-MoE K=2 runs of the table
    expect([...de.provenance.checkpoints].sort()).toEqual([...k2b.provenance.checkpoints].sort());
    for (const f of ['table.csv', 'table.tex', 'results.md']) expect(fs.existsSync(path.join(out, f))).toBe(true);
  });
});
