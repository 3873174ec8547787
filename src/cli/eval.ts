import fs from 'node:fs';
import type { Command } from 'commander';
import { loadDataset, type Split } from '../data/index.js';
import { classificationMetrics, stackOutputs } from '../eval/classification.js';
import { computeOutputs, type Outputs } from '../eval/outputs.js';
import { toCsv, toLatex, toTextTable, type Row } from '../export/tables.js';
import { loadModel } from '../train/load.js';
import { runRecord } from '../train/record.js';
import { flopsPerImage } from '../vmoe/flops.js';
import type { RoutingOverrides } from '../vmoe/model.js';
import { UsageError, addEngineOptions, collect, parsePositiveInt, parsePositiveNumber, startEngine } from './common.js';
import { Rng } from '../util/rng.js';

interface EvalFlags {
  checkpoint: string | string[]; mcSamples?: string; seed?: string; dataset?: string; split: string; dataDir?: string; limit?: string; batchSize: string;
  capacityFactor?: string; capacity?: string; batchPriority?: boolean; k?: string; groupImages?: string;
  bins: string; format: string; out?: string; backend?: string; threads?: string;
}

export interface EvalReport {
  [key: string]: unknown;
}

export async function runEval(flags: EvalFlags): Promise<EvalReport> {
  if (!['json', 'table', 'csv', 'latex'].includes(flags.format)) throw new UsageError(`--format must be json, table, csv or latex, got "${flags.format}"`);
  const checkpoints = Array.isArray(flags.checkpoint) ? flags.checkpoint : [flags.checkpoint];
  const mcSamples = flags.mcSamples ? parsePositiveInt(flags.mcSamples, '--mc-samples') : 0;
  await startEngine(flags);
  const loaded = checkpoints.map((c) => loadModel(c));
  const first = loaded[0]!;
  const config = first.config;
  for (const l of loaded) {
    if (l.config.model.numClasses !== config.model.numClasses || l.config.model.imageSize !== config.model.imageSize) {
      throw new UsageError(`${l.path}: ${l.config.model.numClasses} classes at ${l.config.model.imageSize}px cannot be ensembled with ${first.path} (${config.model.numClasses} classes at ${config.model.imageSize}px)`);
    }
  }
  if (mcSamples > 0) {
    const noDropout = loaded.filter((l) => !(l.config.model.dropout > 0)).map((l) => l.path);
    if (noDropout.length) throw new UsageError(`--mc-samples needs dropout, but ${noDropout.join(', ')} ha${noDropout.length > 1 ? 've' : 's'} model.dropout = 0`);
  }
  const routing: RoutingOverrides = {};
  if (flags.capacityFactor !== undefined) routing.capacityFactor = parsePositiveNumber(flags.capacityFactor, '--capacity-factor');
  if (flags.capacity !== undefined) routing.capacity = parsePositiveInt(flags.capacity, '--capacity');
  if (flags.batchPriority !== undefined) routing.batchPriority = flags.batchPriority;
  if (flags.k !== undefined) routing.k = parsePositiveInt(flags.k, '--k');
  if (flags.groupImages !== undefined) routing.groupImages = parsePositiveInt(flags.groupImages, '--group-images');
  for (const l of loaded) {
    const maxK = l.config.model.moe.numExperts / (l.config.model.type === 'e3' ? l.config.model.ensemble.members : 1);
    if (routing.k !== undefined && l.config.model.type !== 'vit' && routing.k > maxK) throw new UsageError(`--k ${routing.k} exceeds the ${maxK} experts each token can reach in ${l.path}`);
  }
  const dataset = flags.dataset ?? config.data.dataset;
  const ds = loadDataset(dataset, flags.split as Split, {
    dataDir: flags.dataDir ?? config.data.dataDir ?? undefined, valSize: config.data.valSize,
    limit: flags.limit ? parsePositiveInt(flags.limit, '--limit') : undefined,
  });
  const batchSize = parsePositiveInt(flags.batchSize, '--batch-size');
  const parts: Outputs[] = [];
  let flopsTotal = 0;
  const rng = new Rng(Number(flags.seed ?? 0));
  for (const l of loaded) {
    const passes = mcSamples > 0 ? mcSamples : 1;
    for (let s = 0; s < passes; s++) {
      parts.push(computeOutputs(l.model, ds, { batchSize, scale: l.config.data.scale, routing, mcDropout: mcSamples > 0, rng: mcSamples > 0 ? rng : undefined }));
      flopsTotal += flopsPerImage(l.config.model, routing).total;
    }
  }
  const out = parts.length === 1 ? parts[0]! : stackOutputs(parts);
  const m = classificationMetrics(out, parsePositiveInt(flags.bins, '--bins'));
  const settings = first.model.routingFor(routing);
  const flops = flopsPerImage(config.model, routing);
  const { n: _n, members: _members, conventions, ...metricValues } = m;
  const report: EvalReport = {
    dataset: ds.name, split: ds.split, n: m.n, members: m.members,
    ...metricValues,
    flops_per_image: flopsTotal,
    images_per_s: out.n / out.seconds, seconds: out.seconds,
    ensemble: loaded.length > 1 || mcSamples > 0
      ? { kind: mcSamples > 0 ? 'mc-dropout' : 'deep-ensemble', checkpoints: loaded.length, mc_samples: mcSamples || null, combination: 'mean of member probabilities' }
      : first.config.model.type === 'e3' ? { kind: 'e3', members: first.config.model.ensemble.members, combination: 'mean of member probabilities' } : null,
    routing: config.model.type !== 'vit'
      ? { router: settings.router, k: settings.k, capacity_factor: settings.capacity === null ? settings.capacityFactor : null, capacity: flops.moe[0]?.capacity ?? null, batch_priority: settings.batchPriority, group_size: settings.groupSize }
      : null,
    router: out.router,
    checkpoint: loaded.length === 1 ? { path: first.path, sha256: first.sha256, step: first.step } : loaded.map((l) => ({ path: l.path, sha256: l.sha256, step: l.step })),
    batch_size: batchSize,
    conventions: { ...conventions, flops: flops.convention },
    ...runRecord(config),
  };
  const row: Row = {
    dataset: ds.name, split: ds.split, n: m.n, members: m.members, accuracy: m.accuracy, nll: m.nll, brier: m.brier, ece: m.ece,
    ...(m.gibbs_nll !== undefined ? { gibbs_nll: m.gibbs_nll, disagreement: m.diversity!.disagreement, ambiguity: m.diversity!.ambiguity } : {}),
    flops_per_image: flopsTotal, images_per_s: Math.round(out.n / out.seconds),
  };
  const text = flags.format === 'json' ? JSON.stringify(report, null, 2) + '\n'
    : flags.format === 'csv' ? toCsv([row])
    : flags.format === 'latex' ? toLatex([row], `${ds.name} ${ds.split}, checkpoint ${first.sha256.slice(0, 12)}`)
    : toTextTable([row]);
  if (flags.out) fs.writeFileSync(flags.out, text);
  else process.stdout.write(text);
  for (const l of loaded) l.model.dispose();
  return report;
}

export function registerEvalCommand(program: Command): void {
  addEngineOptions(
    program
      .command('eval')
      .description('evaluate a checkpoint: accuracy, NLL, Brier, ECE, router statistics, FLOPs per image')
      .requiredOption('--checkpoint <path>', 'checkpoint file, checkpoints/ folder or run folder; repeat it to evaluate a deep ensemble (mean of the members\' probabilities)', collect, [])
      .option('--mc-samples <n>', 'MC dropout: average n stochastic passes (needs model.dropout > 0)')
      .option('--seed <n>', 'seed for MC-dropout masks', '0')
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
