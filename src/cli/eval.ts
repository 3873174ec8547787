import fs from 'node:fs';
import type { Command } from 'commander';
import { loadDataset, type Split } from '../data/index.js';
import { classificationMetrics } from '../eval/classification.js';
import { computeOutputs } from '../eval/outputs.js';
import { toCsv, toLatex, toTextTable, type Row } from '../export/tables.js';
import { loadModel } from '../train/load.js';
import { runRecord } from '../train/record.js';
import { flopsPerImage } from '../vmoe/flops.js';
import type { RoutingOverrides } from '../vmoe/model.js';
import { UsageError, addEngineOptions, parsePositiveInt, parsePositiveNumber, startEngine } from './common.js';

interface EvalFlags {
  checkpoint: string; dataset?: string; split: string; dataDir?: string; limit?: string; batchSize: string;
  capacityFactor?: string; capacity?: string; batchPriority?: boolean; k?: string; groupImages?: string;
  bins: string; format: string; out?: string; backend?: string; threads?: string;
}

export interface EvalReport {
  [key: string]: unknown;
}

export async function runEval(flags: EvalFlags): Promise<EvalReport> {
  if (!['json', 'table', 'csv', 'latex'].includes(flags.format)) throw new UsageError(`--format must be json, table, csv or latex, got "${flags.format}"`);
  await startEngine(flags);
  const { model, config, path: ckPath, sha256, step } = loadModel(flags.checkpoint);
  const routing: RoutingOverrides = {};
  if (flags.capacityFactor !== undefined) routing.capacityFactor = parsePositiveNumber(flags.capacityFactor, '--capacity-factor');
  if (flags.capacity !== undefined) routing.capacity = parsePositiveInt(flags.capacity, '--capacity');
  if (flags.batchPriority !== undefined) routing.batchPriority = flags.batchPriority;
  if (flags.k !== undefined) routing.k = parsePositiveInt(flags.k, '--k');
  if (flags.groupImages !== undefined) routing.groupImages = parsePositiveInt(flags.groupImages, '--group-images');
  if (routing.k !== undefined && routing.k > config.model.moe.numExperts) throw new UsageError(`--k ${routing.k} exceeds the model's ${config.model.moe.numExperts} experts`);
  const dataset = flags.dataset ?? config.data.dataset;
  const ds = loadDataset(dataset, flags.split as Split, {
    dataDir: flags.dataDir ?? config.data.dataDir ?? undefined, valSize: config.data.valSize,
    limit: flags.limit ? parsePositiveInt(flags.limit, '--limit') : undefined,
  });
  const batchSize = parsePositiveInt(flags.batchSize, '--batch-size');
  const out = computeOutputs(model, ds, { batchSize, scale: config.data.scale, routing });
  const m = classificationMetrics(out, parsePositiveInt(flags.bins, '--bins'));
  const settings = model.routingFor(routing);
  const flops = flopsPerImage(config.model, routing);
  const report: EvalReport = {
    dataset: ds.name, split: ds.split, n: m.n,
    accuracy: m.accuracy, nll: m.nll, brier: m.brier, ece: m.ece,
    flops_per_image: flops.total,
    images_per_s: out.n / out.seconds, seconds: out.seconds,
    routing: config.model.type !== 'vit'
      ? { router: settings.router, k: settings.k, capacity_factor: settings.capacity === null ? settings.capacityFactor : null, capacity: flops.moe[0]?.capacity ?? null, batch_priority: settings.batchPriority, group_size: settings.groupSize }
      : null,
    router: out.router,
    checkpoint: { path: ckPath, sha256, step },
    batch_size: batchSize,
    conventions: { ...m.conventions, flops: flops.convention },
    ...runRecord(config),
  };
  const row: Row = {
    dataset: ds.name, split: ds.split, n: m.n, accuracy: m.accuracy, nll: m.nll, brier: m.brier, ece: m.ece,
    flops_per_image: flops.total, images_per_s: Math.round(out.n / out.seconds),
  };
  const text = flags.format === 'json' ? JSON.stringify(report, null, 2) + '\n'
    : flags.format === 'csv' ? toCsv([row])
    : flags.format === 'latex' ? toLatex([row], `${ds.name} ${ds.split}, checkpoint ${sha256.slice(0, 12)}`)
    : toTextTable([row]);
  if (flags.out) fs.writeFileSync(flags.out, text);
  else process.stdout.write(text);
  model.dispose();
  return report;
}

export function registerEvalCommand(program: Command): void {
  addEngineOptions(
    program
      .command('eval')
      .description('evaluate a checkpoint: accuracy, NLL, Brier, ECE, router statistics, FLOPs per image')
      .requiredOption('--checkpoint <path>', 'checkpoint file, checkpoints/ folder or run folder')
      .option('--dataset <name>', 'data set (default: the one it was trained on)')
      .option('--split <split>', 'train, val, test or train_full', 'test')
      .option('--data-dir <dir>', 'folder holding the data set')
      .option('--limit <n>', 'evaluate only the first n examples')
      .option('--batch-size <n>', 'evaluation batch size', '256')
      .option('--capacity-factor <c>', 'override the expert capacity factor')
      .option('--capacity <n>', 'override with an absolute capacity per group')
      .option('--batch-priority', 'use Batch Prioritized Routing')
      .option('--no-batch-priority', 'use vanilla (position-order) routing')
      .option('--k <n>', 'override the number of experts per token')
      .option('--group-images <n>', 'images per routing group')
      .option('--bins <n>', 'ECE bins', '15')
      .option('--format <fmt>', 'json, table, csv or latex', 'json')
      .option('--out <file>', 'write the result to a file instead of stdout'),
  ).action(async (flags: EvalFlags) => {
    await runEval(flags);
  });
}
