import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadDataset, makeBatch, type Split } from '../data/index.js';
import { modelSweepEvaluator, parseBatchPriorityMode, parseNumberList, runSweep, sweepSettings, type SweepRow } from '../eval/sweep.js';
import { sweepFigures } from '../export/sweep-figures.js';
import { writeFigure } from '../export/png.js';
import { toCsv, toLatex, toMarkdown, toTextTable } from '../export/tables.js';
import { loadModel } from '../checkpoint/load.js';
import { runRecord } from '../engine/record.js';
import { FLOPS_CONVENTION } from '../vmoe/flops.js';
import { modelMembers } from '../vmoe/config.js';
import { checkOutputDir } from '../util/output-dir.js';
import { addEngineOptions, parsePositiveInt, startEngine, addDataOptions } from './common.js';
import { UsageError } from '../util/errors.js';
import * as tf from '@tensorflow/tfjs-core';

export interface SweepFlags {
  checkpoint: string; dataset?: string; split: string; dataDir?: string; limit?: string; batchSize: string;
  capacityFactors: string; k?: string; batchPriority: string; bins: string; format: string; out?: string;
  backend?: string; threads?: string; quiet?: boolean;
}

export const DEFAULT_CAPACITY_FACTORS = '0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,1.05,1.5';

export interface SweepReport {
  rows: SweepRow[];
  files: string[];
  [key: string]: unknown;
}


export async function runSweepCommand(flags: SweepFlags): Promise<SweepReport> {
  if (flags.out) checkOutputDir(flags.out);
  if (!['json', 'table', 'csv', 'latex', 'markdown'].includes(flags.format)) throw new UsageError(`--format must be json, table, csv, latex or markdown, got "${flags.format}"`);
  const capacityFactors = parseNumberList(flags.capacityFactors, '--capacity-factors');
  const mode = parseBatchPriorityMode(flags.batchPriority);
  const batchSize = parsePositiveInt(flags.batchSize, '--batch-size');
  const bins = parsePositiveInt(flags.bins, '--bins');
  await startEngine(flags);
  const { model, config, path: ckPath, sha256, step } = loadModel(flags.checkpoint);
  try {
    const ks = flags.k !== undefined ? parseNumberList(flags.k!, '--k') : [config.model.moe.k];
    const settings = sweepSettings({ capacityFactors, ks, batchPriority: mode });
    const maxK = config.model.moe.numExperts / modelMembers(config.model);
    const tooBig = ks.find((k) => k > maxK);
    if (tooBig !== undefined) throw new UsageError(`--k ${tooBig} exceeds the ${maxK} experts a token can reach in this model`);
    const dataset = flags.dataset ?? config.data.dataset;
    const ds = loadDataset(dataset, flags.split as Split, {
      dataDir: flags.dataDir ?? config.data.dataDir ?? undefined, valSize: config.data.valSize,
      limit: flags.limit ? parsePositiveInt(flags.limit, '--limit') : undefined,
    });
    const evaluator = modelSweepEvaluator(model, ds, { batchSize, scale: config.data.scale });
    // One untimed batch first, so the first setting's images/s does not include backend warm-up.
    tf.tidy(() => {
      const b = makeBatch(ds, Int32Array.from({ length: Math.min(batchSize, ds.n) }, (_, i) => i), { scale: config.data.scale });
      model.forward(tf.tensor4d(b.x, b.shape), { train: false });
    });
    const log = (s: string) => { if (!flags.quiet) process.stderr.write(s); };
    const result = runSweep(settings, evaluator, {
      bins,
      onRow: (r, i) => log(`[sweep ${i + 1}/${settings.length}] ${r.routing} K=${r.k} c=${r.capacity_factor}: processed ${r.processed_fraction.toFixed(3)} accuracy ${r.accuracy.toFixed(4)} nll ${r.nll.toFixed(4)}\n`),
    });
    const caption = `${ds.name} ${ds.split} (n=${ds.n}), checkpoint ${sha256.slice(0, 12)}`;
    const report: SweepReport = {
      dataset: ds.name, split: ds.split, n: ds.n, batch_size: batchSize,
      checkpoint: { path: ckPath, sha256, step },
      model: { type: config.model.type, experts: config.model.moe.numExperts, k: config.model.moe.k, group_images: config.model.moe.groupImages, capacity_rounding: config.model.moe.capacityRounding },
      rows: result.rows,
      per_layer: result.perLayer,
      conventions: { ...result.conventions, flops: FLOPS_CONVENTION },
      files: [],
      ...runRecord(config),
    };
    const json = JSON.stringify(report, null, 2) + '\n';
    const text = flags.format === 'json' ? json
      : flags.format === 'csv' ? toCsv(result.rows)
      : flags.format === 'latex' ? toLatex(result.rows, caption)
      : flags.format === 'markdown' ? toMarkdown(result.rows)
      : toTextTable(result.rows);
    if (flags.out) {
      fs.mkdirSync(flags.out, { recursive: true });
      const figs = sweepFigures(result.rows, `${ds.name} ${ds.split}`);
      const files: [string, string][] = [
        ['sweep.csv', toCsv(result.rows)],
        ['sweep.tex', toLatex(result.rows, caption)],
        ['sweep.md', toMarkdown(result.rows)],
      ];
      for (const [f, body] of files) fs.writeFileSync(path.join(flags.out, f), body);
      report.files = [
        ...files.map(([f]) => path.join(flags.out!, f)),
        ...writeFigure(flags.out, 'accuracy-vs-processed', figs.accuracy),
        ...writeFigure(flags.out, 'nll-vs-processed', figs.nll),
        path.join(flags.out, 'sweep.json'),
      ];
      fs.writeFileSync(path.join(flags.out, 'sweep.json'), JSON.stringify(report, null, 2) + '\n');
    }
    process.stdout.write(text);
    return report;
  } finally {
    model.dispose();
  }
}

export function registerSweepCommand(program: Command): void {
  addEngineOptions(addDataOptions(
    program
      .command('sweep')
      .description('adaptive compute: accuracy, NLL, ECE, processed fraction, FLOPs and images/s over capacity factors, K and BPR/vanilla routing')
      .requiredOption('--checkpoint <path>', 'checkpoint file, checkpoints/ folder or run folder')
      .option('--capacity-factors <list>', 'comma-separated capacity factors', DEFAULT_CAPACITY_FACTORS)
      .option('--k <list>', 'comma-separated experts per token (default: the model\'s K)')
      .option('--batch-priority <mode>', 'both, on (BPR only) or off (vanilla only)', 'both')
      .option('--bins <n>', 'ECE bins', '15')
      .option('--format <fmt>', 'stdout format: json, table, csv, latex or markdown', 'table')
      .option('--out <dir>', 'also write sweep.{csv,json,tex} and accuracy/NLL-vs-processed SVG figures here')
      .option('--quiet', 'no progress lines on stderr'),)
  ).action(async (flags: SweepFlags) => {
    await runSweepCommand(flags);
  });
}
