import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { registerMetricsCommand } from '../../src/cli/metrics.js';
import { runMetrics } from '../../src/eval/predictions-files.js';
import { formatMetricsReport } from '../../src/export/metrics-format.js';
import type { PredictionsReport as MetricsReport } from '../../src/eval/report.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vmoe-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

const ln3 = Math.log(3);
// Two examples, K = 2: softmax rows [1/4, 3/4] (label 1, right) and [3/4, 1/4] (label 1, wrong).
const single = file('single.csv', `label,logit0,logit1\n1,0,${ln3}\n1,${ln3},0\n`);
const singleProbs = file('single-p.csv', 'label,p0,p1\n1,0.25,0.75\n1,0.75,0.25\n');
const expectedSingle = {
  n: 2,
  k: 2,
  members: 1,
  accuracy: 0.5,
  nll: (-Math.log(0.75) - Math.log(0.25)) / 2,
  brier: (2 * 0.25 ** 2 + 2 * 0.75 ** 2) / 2,
  // both confidences 0.75 share one bin: |0.5 − 0.75|
  ece: 0.25,
  // tied confidences: risk 1/2 at both coverages
  aurc: 0.5,
  calibration_auc: 0.5,
};

// Two members over one example with label 1: member probabilities [0.2, 0.8] and [0.6, 0.4].
const ensemble = file('ens.csv', 'id,member,label,p0,p1\nx,a,1,0.2,0.8\nx,b,1,0.6,0.4\ny,a,0,0.7,0.3\ny,b,0,0.9,0.1\n');
// OOD data: flat predictions, MSP score 0.5 against in-distribution 0.25 → perfectly separated
const oodFlat = file('ood.csv', 'label,logit0,logit1\n-1,0,0\n-1,1,1\n-1,2,2\n');

describe('runMetrics', () => {
  it.each([
    { name: 'logits', input: single },
    { name: 'probabilities', input: singleProbs },
  ])('single model from $name: hand-computed numbers', async ({ input }) => {
    const r = await runMetrics({ input });
    for (const [key, v] of Object.entries(expectedSingle))
      expect(r[key as keyof typeof r]).toBeCloseTo(v as number, 12);
    expect(r.gibbs_nll).toBeUndefined();
    expect(r.conventions.ece).toMatchObject({ bins: 15, binning: 'equal-width', name: 'ece' });
    expect(r.conventions.temperature_scaled).toBe(false);
  });

  it('ensemble: NLL is the ensemble NLL, plus Gibbs NLL and diversity', async () => {
    const r = await runMetrics({ input: ensemble, bins: 10 });
    // p̄ = [0.4, 0.6] (label 1) and [0.8, 0.2] (label 0)
    expect(r.members).toBe(2);
    expect(r.nll).toBeCloseTo((-Math.log(0.6) - Math.log(0.8)) / 2, 12);
    expect(r.gibbs_nll).toBeCloseTo((-Math.log(0.8) - Math.log(0.4) - Math.log(0.7) - Math.log(0.9)) / 4, 12);
    expect(r.ambiguity).toBeCloseTo(r.gibbs_nll! - r.nll, 14);
    // members disagree on x only
    expect(r.disagreement).toBeCloseTo(0.5, 14);
    expect(r.accuracy).toBe(1);
    expect(r.normalized_disagreement).toBe(Infinity);
    expect(r.mutual_information).toBeGreaterThan(0);
    expect(r.conventions.ece).toMatchObject({ bins: 10 });
  });

  it.each([
    { positive: 'ood' as const, auprc: 1 },
    // in-distribution positive, ranked by −score: both in-distribution examples (−0.25) above OOD (−0.5)
    { positive: 'in-distribution' as const, auprc: 1 },
  ])('OOD metrics with MSP ($positive positive)', async ({ positive, auprc }) => {
    const r = await runMetrics({ input: single, oodInput: oodFlat, oodPositive: positive });
    // both positive-class conventions are always reported; the flag picks the one the tables show
    const entry = r.ood![0]!;
    expect(entry.n).toBe(3);
    expect(entry.scores.msp![positive === 'ood' ? 'ood_positive' : 'in_positive']).toMatchObject({
      auroc: 1,
      auprc,
      fpr95: 0,
    });
    const table = formatMetricsReport(r, 'table', { score: 'msp', positive });
    expect(table).toMatch(new RegExp(`score msp, ${positive === 'ood' ? 'OOD' : 'in-distribution'} positive`));
    expect(table).toMatch(/^ood\.auroc\s+1\.0000$/m);
  });

  it.each([
    {
      name: 'energy needs logits',
      input: singleProbs,
      ood: file('ood-p.csv', 'label,p0,p1\n-1,0.5,0.5\n'),
      score: 'energy' as const,
      msg: /--ood-score energy needs logits/,
    },
    {
      name: 'class count mismatch',
      input: single,
      ood: file('ood3.csv', 'label,logit0,logit1,logit2\n-1,0,0,0\n'),
      score: 'msp' as const,
      msg: /has 3 classes but .*single\.csv has 2/,
    },
    {
      name: 'kind mismatch',
      input: single,
      ood: file('ood-p2.csv', 'label,p0,p1\n-1,0.5,0.5\n'),
      score: 'msp' as const,
      msg: /gives probs but .* gives logits/,
    },
  ])('OOD error: $name', async ({ input, ood, score, msg }) => {
    await expect(runMetrics({ input, oodInput: ood, oodScore: score })).rejects.toThrow(msg);
  });

  it('a missing file names the path', async () => {
    await expect(runMetrics({ input: path.join(dir, 'nope.csv') })).rejects.toThrow(
      /cannot read predictions file .*nope\.csv/,
    );
  });

  it('a malformed input names line and column', async () => {
    const bad = file('bad.csv', 'label,logit0,logit1\n0,1,2\n1,x,2\n');
    await expect(runMetrics({ input: bad })).rejects.toThrow(/bad\.csv line 3, column 2 \(logit0\)/);
  });
});

describe('runMetrics: ECE variants, reliability bins and selective prediction', () => {
  // K = 2, confidences 0.95 ✓, 0.85 ✓, 0.75 ✗, 0.65 ✗ (none near an edge of 3 bins)
  const details = file('details.csv', 'label,p0,p1\n0,0.95,0.05\n1,0.15,0.85\n1,0.75,0.25\n0,0.35,0.65\n');
  // equal-width thirds: {0.65 ✗} weight 1/4, gap 0.65; {0.75 ✗, 0.85 ✓, 0.95 ✓} weight 3/4, conf 0.85, acc 2/3
  const gap2 = 0.85 - 2 / 3;

  it.each([
    { key: 'ece', get: (r: MetricsReport) => r.ece, expected: 0.25 * 0.65 + 0.75 * gap2 },
    {
      key: 'calibration.rmsce',
      get: (r: MetricsReport) => r.calibration.rmsce,
      expected: Math.sqrt(0.25 * 0.65 ** 2 + 0.75 * gap2 ** 2),
    },
    { key: 'calibration.mce', get: (r: MetricsReport) => r.calibration.mce, expected: 0.65 },
    {
      key: 'calibration.signed_ece',
      get: (r: MetricsReport) => r.calibration.signed_ece,
      expected: 0.25 * 0.65 + 0.75 * gap2,
    },
    // equal mass, ascending ranks [0,1) [1,2) [2,4): {0.65 ✗} {0.75 ✗} {0.85 ✓, 0.95 ✓}
    {
      key: 'calibration.ece_equal_mass',
      get: (r: MetricsReport) => r.calibration.ece_equal_mass,
      expected: 0.25 * 0.65 + 0.25 * 0.75 + 0.5 * 0.1,
    },
    // class 0 values 0.95 ✓ 0.15 ✗ 0.75 ✗ 0.35 ✓: {0.15} {0.35} {0.75, 0.95}; class 1 mirrors it
    {
      key: 'calibration.classwise_ece',
      get: (r: MetricsReport) => r.calibration.classwise_ece,
      expected: 0.25 * 0.15 + 0.25 * 0.65 + 0.5 * 0.35,
    },
    // 2 most confident both right
    {
      key: 'accuracy at coverage 50%',
      get: (r: MetricsReport) => r.selective_prediction.accuracy_at_coverage['50%']!,
      expected: 1,
    },
    // round(0.8·4) = 3 most confident: 2 right
    {
      key: 'accuracy at coverage 80%',
      get: (r: MetricsReport) => r.selective_prediction.accuracy_at_coverage['80%']!,
      expected: 2 / 3,
    },
    {
      key: 'coverage at risk 5%',
      get: (r: MetricsReport) => r.selective_prediction.coverage_at_risk['5%']!,
      expected: 0.5,
    },
  ])('$key by hand (3 bins)', async ({ get, expected }) => {
    expect(get(await runMetrics({ input: details, bins: 3 }))).toBeCloseTo(expected, 12);
  });

  it('reliability bins and the risk–coverage curve', async () => {
    const r = await runMetrics({ input: details, bins: 3 });
    expect(r.calibration.reliability.map((b) => b.count)).toEqual([0, 1, 3]);
    expect(r.calibration.reliability[2]).toMatchObject({
      lo: 2 / 3,
      hi: 1,
      accuracy: 2 / 3,
      confidence: expect.closeTo(0.85, 12),
    });
    expect(r.selective_prediction.risk_coverage).toEqual({ coverage: [0.25, 0.5, 0.75, 1], risk: [0, 0, 1 / 3, 0.5] });
    expect(r.conventions.calibration).toMatchObject({
      mce: { bins: 3, binning: 'equal-width', norm: 'max' },
      rmsce: { norm: 'l2' },
    });
  });

  it('--binning equal-mass moves the variants and the reliability bins with it', async () => {
    const r = await runMetrics({ input: details, bins: 3, binning: 'equal-mass' });
    expect(r.ece).toBeCloseTo(r.calibration.ece_equal_mass, 15);
    // bins {0.65 ✗} {0.75 ✗} {0.85 ✓, 0.95 ✓}: max gap 0.75
    expect(r.calibration.mce).toBeCloseTo(0.75, 12);
    expect(r.calibration.reliability.map((b) => b.count)).toEqual([1, 1, 2]);
    expect(r.conventions.calibration).toMatchObject({
      mce: { binning: 'equal-mass' },
      reliability: { binning: 'equal-mass' },
    });
  });

  it('json keeps the curve data (empty bins as null); table and latex show the scalars only', async () => {
    const r = await runMetrics({ input: details, bins: 3 });
    const json = JSON.parse(formatMetricsReport(r, 'json'));
    expect(json.calibration.reliability[0]).toMatchObject({ count: 0, accuracy: null, confidence: null });
    expect(json.selective_prediction.risk_coverage.risk).toHaveLength(4);
    const tex = formatMetricsReport(r, 'latex');
    expect(tex).toMatch(/^MCE & 0\.6500 \\\\$/m);
    expect(tex).toMatch(/^Acc\. @ coverage 50\\% & 1\.0000 \\\\$/m);
    expect(tex).not.toMatch(/reliability|risk\\_coverage/);
    const table = formatMetricsReport(r, 'table');
    expect(table).toMatch(/^calibration\.mce\s+0\.6500$/m);
    expect(table).not.toMatch(/reliability|risk_coverage/);
    expect(formatMetricsReport(r, 'csv')).toMatch(/^selective_prediction\.risk_coverage\.risk\.3,0\.5$/m);
  });
});

describe('formats', () => {
  it('json has the required top-level keys; csv, latex and table carry the numbers', async () => {
    const r = await runMetrics({ input: single, oodInput: oodFlat });
    const json = JSON.parse(formatMetricsReport(r, 'json'));
    for (const key of ['n', 'accuracy', 'nll', 'brier', 'ece', 'ood', 'conventions']) expect(json).toHaveProperty(key);
    expect(Object.keys(json.ood[0].scores.msp.ood_positive)).toEqual(
      expect.arrayContaining(['auroc', 'auprc', 'fpr95']),
    );
    const csv = formatMetricsReport(r, 'csv');
    expect(csv.split('\n')[0]).toBe('metric,value');
    expect(csv).toMatch(/^ece,0\.25$/m);
    expect(csv).toMatch(/^conventions\.ece\.bins,15$/m);
    const tex = formatMetricsReport(r, 'latex');
    expect(tex).toMatch(/\\toprule/);
    expect(tex).toMatch(/^ECE & 0\.2500 \\\\$/m);
    expect(tex).toMatch(/^OOD auroc & 1\.0000 \\\\$/m);
    expect(tex).toMatch(/\\bottomrule/);
    const table = formatMetricsReport(r, 'table');
    expect(table).toMatch(/^ece \(15 bins\)\s+0\.2500$/m);
    expect(table).toMatch(/^accuracy\s+0\.5000$/m);
  });

  it('non-finite numbers survive JSON as strings', async () => {
    const r = await runMetrics({ input: ensemble });
    expect(JSON.parse(formatMetricsReport(r, 'json')).normalized_disagreement).toBe('Infinity');
  });
});

describe('vmoe metrics command', () => {
  async function run(args: string[]): Promise<string> {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    registerMetricsCommand(program);
    const chunks: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      chunks.push(String(c));
      return true;
    });
    try {
      await program.parseAsync(['node', 'vmoe', 'metrics', ...args]);
    } finally {
      spy.mockRestore();
    }
    return chunks.join('');
  }

  it('prints JSON by default and honours --bins', async () => {
    const out = JSON.parse(await run(['--input', single, '--bins', '4']));
    expect(out.ece).toBeCloseTo(0.25, 12);
    expect(out.conventions.ece.bins).toBe(4);
  });

  it('prints a table with --format table', async () => {
    expect(await run(['--input', single, '--format', 'table'])).toMatch(/^nll\s+\d\.\d{4}$/m);
  });

  it.each([
    [['--bins', '0'], /expected a positive integer/],
    [['--format', 'xml'], /Allowed choices are json, csv, latex, table/],
    [['--ood-score', 'odin'], /Allowed choices are msp/],
  ])('rejects %j', async (extra, msg) => {
    await expect(run(['--input', single, ...extra])).rejects.toThrow(msg);
  });
});
