import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadDataset } from '../data/index.js';
import { extractPreLogits } from '../eval/features-cache.js';
import { toCsv, toLatex, toTextTable, type Row } from '../export/tables.js';
import { runFewShot, type FewShotDataset, type ProbeKind } from '../fewshot/index.js';
import { loadModel } from '../checkpoint/load.js';
import { checkOutputDir } from '../util/output-dir.js';
import { runRecord } from '../engine/record.js';
import { addEngineOptions, collect, parsePositiveInt, startEngine } from './common.js';
import { UsageError } from '../util/errors.js';

interface FewshotFlags {
  checkpoint: string[]; datasets: string; shots: string; seeds: string; probe: string; selectBy?: string;
  trainPool: string; testLimit?: string; batchSize: string; cacheDir: string; format: string; out?: string;
  dataDir?: string; backend?: string; threads?: string;
}

const fmt = (m: number, s: number) => `${(100 * m).toFixed(1)} ± ${(100 * s).toFixed(1)}`;

export async function runFewshot(flags: FewshotFlags): Promise<Record<string, unknown>> {
  if (flags.out) checkOutputDir(flags.out);
  if (!['json', 'table', 'csv', 'latex'].includes(flags.format)) throw new UsageError(`--format must be json, table, csv or latex, got "${flags.format}"`);
  if (!['lsr', 'logreg'].includes(flags.probe)) throw new UsageError(`--probe must be lsr or logreg, got "${flags.probe}"`);
  const shots = flags.shots.split(',').map((s) => parsePositiveInt(s.trim(), '--shots'));
  const seeds = parsePositiveInt(flags.seeds, '--seeds');
  const names = flags.datasets.split(',').map((s) => s.trim()).filter(Boolean);
  if (!names.length) throw new UsageError('--datasets: give at least one data set');
  await startEngine(flags);
  const models = flags.checkpoint.map((c) => loadModel(c));
  const pool = parsePositiveInt(flags.trainPool, '--train-pool');
  const batchSize = parsePositiveInt(flags.batchSize, '--batch-size');
  const datasets: FewShotDataset[] = names.map((name) => {
    const train = loadDataset(name, 'train_full', { dataDir: flags.dataDir, limit: pool });
    const test = loadDataset(name, 'test', { dataDir: flags.dataDir, limit: flags.testLimit ? parsePositiveInt(flags.testLimit, '--test-limit') : undefined });
    process.stderr.write(`[vmoe] pre-logits of ${name}: ${train.n} train (the few-shot pool), ${test.n} test\n`);
    const tr = extractPreLogits(models, train, { batchSize, cacheDir: flags.cacheDir });
    const te = extractPreLogits(models, test, { batchSize, cacheDir: flags.cacheDir });
    return {
      name, numClasses: train.numClasses,
      trainX: { rows: tr.n, cols: tr.d, data: tr.data }, trainY: tr.labels,
      testX: { rows: te.n, cols: te.d, data: te.data }, testY: te.labels,
    };
  });
  const report = runFewShot(datasets, { shots, seeds, probe: flags.probe as ProbeKind, selectBy: (flags.selectBy as 'accuracy' | 'nll' | undefined) ?? undefined });
  const rows: Row[] = report.results.map((r) => ({
    dataset: r.dataset, shot: r.shot,
    accuracy_mean: r.meanRank.accuracy.mean, accuracy_std: r.meanRank.accuracy.std, l2_mean_rank: r.meanRank.l2,
    accuracy_leave_self_out: r.leaveSelfOut.accuracy.mean, accuracy_leave_self_out_std: r.leaveSelfOut.accuracy.std, l2_leave_self_out: r.leaveSelfOut.l2,
    ...(r.meanRank.nll ? { nll_mean: r.meanRank.nll.mean, ece_mean: r.meanRank.ece!.mean } : {}),
  }));
  const result = {
    probe: report.probe, select_by: report.selectBy, shots: report.shots, seeds: report.seeds, l2_grid: report.l2s,
    results: report.results, selection: report.selection, notes: report.notes,
    representation: models.length > 1 || models[0]!.config.model.type === 'e3' ? 'members\' pre-logits concatenated' : 'pre-logits',
    checkpoints: models.map((m) => ({ path: m.path, sha256: m.sha256 })),
    train_pool: `first ${pool} examples of the official train split`,
    conventions: {
      accuracy: 'test accuracy, mean ± sample std over seeds of the example draw',
      l2_mean_rank: 'λ chosen by mean rank across the data sets (as the reference; uses test accuracy)',
      l2_leave_self_out: 'λ for each data set chosen from the other data sets\' ranks (honest)',
    },
    ...runRecord(models[0]!.config),
  };
  const pretty: Row[] = report.results.map((r) => ({
    dataset: r.dataset, shot: r.shot, 'accuracy % (mean rank λ)': fmt(r.meanRank.accuracy.mean, r.meanRank.accuracy.std),
    'log2 λ': Math.log2(r.meanRank.l2), 'accuracy % (leave-self-out λ)': fmt(r.leaveSelfOut.accuracy.mean, r.leaveSelfOut.accuracy.std),
  }));
  const text = flags.format === 'json' ? JSON.stringify(result, null, 2) + '\n'
    : flags.format === 'csv' ? toCsv(rows) : flags.format === 'latex' ? toLatex(pretty, `few-shot ${report.probe} probe, ${seeds} seeds`) : toTextTable(pretty);
  process.stdout.write(text);
  if (flags.out) {
    fs.mkdirSync(flags.out, { recursive: true });
    fs.writeFileSync(path.join(flags.out, 'fewshot.json'), JSON.stringify(result, null, 2) + '\n');
    fs.writeFileSync(path.join(flags.out, 'fewshot.csv'), toCsv(rows));
    fs.writeFileSync(path.join(flags.out, 'fewshot.tex'), toLatex(pretty, `few-shot ${report.probe} probe, ${seeds} seeds`));
    fs.writeFileSync(path.join(flags.out, 'fewshot.md'), (await import('../export/tables.js')).toMarkdown(pretty));
    // fewshot.{svg,png}: accuracy against shots, ± std over seeds (export/eval-figures)
    const { fewShotFigure } = await import('../export/eval-figures.js');
    const { writeFigure } = await import('../export/png.js');
    writeFigure(flags.out, 'fewshot', fewShotFigure(report.results, {
      subtitle: `${report.probe} probe on ${result.representation}, ${seeds} seeds, checkpoint ${models[0]!.sha256.slice(0, 12)}`,
      chance: Object.fromEntries(datasets.map((d) => [d.name, 1 / d.numClasses])),
    }));
  }
  for (const m of models) m.model.dispose();
  return result;
}

export function registerFewshotCommand(program: Command): void {
  addEngineOptions(
    program
      .command('fewshot')
      .description('few-shot linear probes on frozen pre-logits (E³ and repeated --checkpoint: members\' pre-logits concatenated)')
      .requiredOption('--checkpoint <path>', 'checkpoint or run folder (repeatable)', collect, [])
      .option('--datasets <names>', 'comma-separated data sets', 'mnist,fashion-mnist')
      .option('--shots <list>', 'examples per class', '1,5,10,25')
      .option('--seeds <n>', 'seeds of the example draw', '3')
      .option('--probe <kind>', 'lsr (closed-form least squares) or logreg (multinomial logistic regression)', 'lsr')
      .option('--select-by <metric>', 'λ selection metric: accuracy or nll (logreg)')
      .option('--train-pool <n>', 'few-shot examples are drawn from the first n training examples', '10000')
      .option('--test-limit <n>', 'evaluate on the first n test examples')
      .option('--batch-size <n>', 'extraction batch size', '256')
      .option('--cache-dir <dir>', 'pre-logit cache', '.vmoe-cache')
      .option('--data-dir <dir>', 'folder holding the data sets')
      .option('--format <fmt>', 'json, table, csv or latex', 'table')
      .option('--out <dir>', 'write fewshot.{json,csv,tex,md} and the accuracy-vs-shots figure (SVG + PNG) into this folder'),
  ).action(async (flags: FewshotFlags) => {
    await runFewshot(flags);
  });
}
