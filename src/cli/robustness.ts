import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadDataset, type Split } from '../data/index.js';
import { evaluateRobustness, isHeldOut, suiteCorruptions, type ModelEntry } from '../eval/robustness.js';
import { boxPlotSvg } from '../export/figures.js';
import { writeFigure } from '../export/png.js';
import { toCsv, toLatex, toMarkdown, toTextTable, type Row } from '../export/tables.js';
import { CORRUPTIONS, MNIST_C, SUITES, type Suite } from '../robustness/index.js';
import { loadModel } from '../checkpoint/load.js';
import { checkOutputDir } from '../util/output-dir.js';
import { runRecord } from '../engine/record.js';
import { addEngineOptions, collect, parsePositiveInt, startEngine } from './common.js';
import { UsageError } from '../util/errors.js';

interface RobustnessFlags {
  checkpoint: string[]; label: string[]; dataset?: string; split: string; dataDir?: string; suite: string; corruptions: string;
  severities: string; limit?: string; batchSize: string; seed: string; bins: string; format: string; out?: string;
  backend?: string; threads?: string;
}

function parseSeverities(s: string): number[] {
  const out = new Set<number>();
  for (const part of s.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part);
    if (!m) throw new UsageError(`--severities: "${part}" is not a severity or range (e.g. 1-5 or 1,3,5)`);
    const a = Number(m[1]), b = m[2] !== undefined ? Number(m[2]) : a;
    for (let v = a; v <= b; v++) {
      if (v < 0 || v > 5) throw new UsageError(`--severities: ${v} is outside 0…5`);
      out.add(v);
    }
  }
  return [...out].sort((x, y) => x - y);
}

/** Which sets the summary averages, for captions: benchmark and held-out corruptions named. */
export function summaryCaption(dataset: string, suite: Suite, corruptions: { name: string; severities: number[] }[]): string {
  const sev = [...new Set(corruptions.flatMap((c) => c.severities))].sort((a, b) => a - b).join(',');
  const bench = corruptions.filter((c) => !isHeldOut(suite, c.name)).map((c) => c.name);
  const held = corruptions.filter((c) => isHeldOut(suite, c.name)).map((c) => c.name);
  return `${dataset}, ${suite === 'c' ? 'procedural C' : 'procedural MNIST-C'} suite, severities ${sev}: cA, cNLL, cECE over ${bench.length} corruptions (${bench.join(', ')})` +
    (held.length ? `; held out, averaged separately: ${held.join(', ')}` : '');
}

export async function runRobustness(flags: RobustnessFlags): Promise<Record<string, unknown>> {
  if (flags.out) checkOutputDir(flags.out);
  if (!(SUITES as readonly string[]).includes(flags.suite)) throw new UsageError(`--suite must be ${SUITES.join(' or ')}, got "${flags.suite}"`);
  const suite = flags.suite as Suite;
  if (!['json', 'table', 'csv', 'latex', 'markdown'].includes(flags.format)) throw new UsageError(`--format must be json, table, csv, latex or markdown, got "${flags.format}"`);
  if (!flags.checkpoint.length) throw new UsageError('--checkpoint: give at least one model (join checkpoints with + for a deep ensemble)');
  const known = suite === 'c' ? Object.keys(CORRUPTIONS) : Object.keys(MNIST_C);
  let corruptions = suiteCorruptions(suite);
  if (flags.corruptions !== 'all') {
    const want = flags.corruptions.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = want.filter((w) => !known.includes(w));
    if (unknown.length) throw new UsageError(`unknown corruption(s) ${unknown.join(', ')} for suite ${suite}; known: ${known.join(', ')}`);
    corruptions = corruptions.filter((c) => want.includes(c.name));
  }
  if (suite === 'c') {
    const sev = parseSeverities(flags.severities);
    corruptions = corruptions.map((c) => ({ ...c, severities: sev }));
  }
  await startEngine(flags);
  const models: ModelEntry[] = flags.checkpoint.map((spec, i) => ({
    label: flags.label[i] ?? spec.split('+').map((p) => path.basename(path.resolve(p))).join('+'),
    members: spec.split('+').map((p) => loadModel(p)),
  }));
  const first = models[0]!.members[0]!;
  const dataset = flags.dataset ?? first.config.data.dataset;
  const ds = loadDataset(dataset, flags.split as Split, {
    dataDir: flags.dataDir ?? first.config.data.dataDir ?? undefined, valSize: first.config.data.valSize,
    limit: flags.limit ? parsePositiveInt(flags.limit, '--limit') : undefined,
  });
  const seed = Number(flags.seed);
  const res = evaluateRobustness(models, ds, {
    suite, corruptions, batchSize: parsePositiveInt(flags.batchSize, '--batch-size'), seed, bins: parsePositiveInt(flags.bins, '--bins'),
    onSet: (name, s, i, total) => process.stderr.write(`[vmoe] ${i + 1}/${total} ${name} severity ${s}\n`),
  });
  const rows: Row[] = res.rows.map((r) => ({
    model: r.model, corruption: r.corruption, severity: r.severity, accuracy: r.metrics.accuracy, nll: r.metrics.nll, ece: r.metrics.ece,
    ...(r.metrics.members > 1 ? { disagreement: r.metrics.disagreement ?? null, mutual_information: r.metrics.mutual_information ?? null, ambiguity: r.metrics.ambiguity ?? null } : {}),
  }));
  const summaryRows: Row[] = res.summary.map((s) => ({ ...s }));
  const constants = Object.fromEntries(corruptions.map((c) => [c.name, suite === 'c' ? CORRUPTIONS[c.name]!.constants : [MNIST_C[c.name]!.constant]]));
  const result = {
    dataset: ds.name, split: ds.split, n: ds.n, suite, seed,
    models: models.map((m) => ({ label: m.label, checkpoints: m.members.map((l) => ({ path: l.path, sha256: l.sha256 })) })),
    clean: Object.fromEntries([...res.clean].map(([k, v]) => [k, { accuracy: v.accuracy, nll: v.nll, ece: v.ece }])),
    summary: res.summary, per_set: rows,
    corruptions: corruptions.map((c) => ({ name: c.name, severities: c.severities, held_out: isHeldOut(suite, c.name) })), severity_constants: constants,
    conventions: {
      cA: suite === 'c'
        ? 'mean accuracy over the benchmark sets (the 15 ImageNet-C corruptions × severities run); the 4 held-out corruptions are averaged separately in *_held_out'
        : 'mean accuracy over every corrupted set (corruption × severity)',
      cNLL: 'mean NLL over the same sets as cA', cECE: `mean ECE (${flags.bins} equal-width bins, top-label) over the same sets as cA`,
      accuracy_drop: 'clean accuracy − cA; relative_accuracy_drop divides by clean accuracy', nll_increase: 'cNLL − clean NLL', ece_increase: 'cECE − clean ECE',
      corruptions: `procedural-${suite === 'c' ? 'C' : 'MNIST-C'}, generated by vmoe-ts with seed ${seed}; not identical to the released data sets`,
    },
    ...runRecord(first.config),
  };
  const text = flags.format === 'json' ? JSON.stringify(result, null, 2) + '\n'
    : flags.format === 'csv' ? toCsv(rows) : flags.format === 'latex' ? toLatex(summaryRows, summaryCaption(ds.name, suite, corruptions))
    : flags.format === 'markdown' ? toMarkdown(summaryRows) : toTextTable(summaryRows);
  process.stdout.write(text);
  if (flags.out) {
    fs.mkdirSync(flags.out, { recursive: true });
    fs.writeFileSync(path.join(flags.out, 'robustness.json'), JSON.stringify(result, null, 2) + '\n');
    fs.writeFileSync(path.join(flags.out, 'robustness.csv'), toCsv(rows));
    fs.writeFileSync(path.join(flags.out, 'summary.csv'), toCsv(summaryRows));
    fs.writeFileSync(path.join(flags.out, 'summary.md'), toMarkdown(summaryRows));
    fs.writeFileSync(path.join(flags.out, 'summary.tex'), toLatex(summaryRows, summaryCaption(ds.name, suite, corruptions)));
    // The corruption list with its severity constants, next to the tables that average over it.
    fs.writeFileSync(path.join(flags.out, 'corruptions.csv'), toCsv(corruptions.flatMap((c) => c.severities.map((sev) => ({
      corruption: c.name, held_out: String(isHeldOut(suite, c.name)), severity: sev,
      constant: JSON.stringify(suite === 'c' ? CORRUPTIONS[c.name]!.constants[sev - 1] : MNIST_C[c.name]!.constant),
    })))));
    const severities = [...new Set(res.rows.map((r) => r.severity))].sort((a, b) => a - b);
    for (const metric of ['accuracy', 'nll', 'ece'] as const) {
      const groups = severities.flatMap((s) => models.map((m) => ({
        name: `s${s} ${m.label}`, series: m.label, cluster: String(s),
        values: res.rows.filter((r) => r.severity === s && r.model === m.label).map((r) => r.metrics[metric]),
      })));
      writeFigure(flags.out, `${metric}-vs-severity`, boxPlotSvg({
        title: `${ds.name}: ${metric} per severity (boxes over corruptions)`, yLabel: metric, xLabel: 'severity', groups,
      }));
    }
  }
  for (const m of models) for (const l of m.members) l.model.dispose();
  return result;
}

export function registerRobustnessCommand(program: Command): void {
  addEngineOptions(
    program
      .command('robustness')
      .description('accuracy, NLL and ECE under procedural corruptions (ImageNet-C family or MNIST-C), summaries cA / cNLL / cECE')
      .requiredOption('--checkpoint <path>', 'a model to evaluate (repeat for several models; join checkpoints with + for a deep ensemble)', collect, [])
      .option('--label <name>', 'label of the matching --checkpoint (repeatable)', collect, [])
      .option('--dataset <name>', 'data set (default: the one it was trained on)')
      .option('--split <split>', 'split', 'test')
      .option('--data-dir <dir>', 'folder holding the data set')
      .option('--suite <name>', 'c (15 + 4 held-out corruptions × 5 severities) or mnist-c', 'c')
      .option('--corruptions <list>', 'comma-separated corruption names, or all', 'all')
      .option('--severities <list>', 'severities for suite c, e.g. 1-5 or 1,3,5', '1-5')
      .option('--limit <n>', 'use the first n test images')
      .option('--batch-size <n>', 'batch size', '256')
      .option('--seed <n>', 'corruption seed', '0')
      .option('--bins <n>', 'ECE bins', '15')
      .option('--format <fmt>', 'stdout format: table, json, csv, latex or markdown', 'table')
      .option('--out <dir>', 'write robustness.{json,csv}, summary.{csv,tex} and metric-vs-severity box plots'),
  ).action(async (flags: RobustnessFlags) => {
    await runRobustness(flags);
  });
}
