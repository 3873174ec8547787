/**
 * `vmoe routing`: parses flags into RoutingOptions, plots a training log (--log) and analyses a checkpoint's
 * routing (eval/routing-report.ts), writes the files (export/routing-files.ts) and prints the summary.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import type { Split } from '../data/index.js';
import {
  analyseCheckpointRouting,
  type RoutingAnalysis,
  type RoutingOptions,
  type RoutingReport,
} from '../eval/routing-report.js';
import {
  defaultRoutingOut,
  routingSummaryText,
  writeRoutingFiles,
  writeTrainingLogPlots,
} from '../export/routing-files.js';
import { addEngineOptions, parsePositiveInt, parsePositiveNumber, startEngine, addDataOptions } from './common.js';
import { UsageError } from '../util/errors.js';
import { checkOutputDir, writeOutputsWhole } from '../util/output-dir.js';

export interface RoutingFlags {
  checkpoint?: string;
  log?: string;
  dataset?: string;
  split: string;
  dataDir?: string;
  limit?: string;
  batchSize: string;
  capacityFactor: string;
  images: string;
  shareImages: string;
  out?: string;
  backend?: string;
  threads?: string;
  quiet?: boolean;
}

/** Flags (strings) → typed options for the checkpoint analysis; every malformed flag is a UsageError naming it. */
export function routingOptionsFromFlags(flags: RoutingFlags & { checkpoint: string }): RoutingOptions {
  return {
    checkpoint: flags.checkpoint,
    data: {
      dataset: flags.dataset,
      split: flags.split as Split,
      dataDir: flags.dataDir,
      limit: flags.limit ? parsePositiveInt(flags.limit, '--limit') : undefined,
    },
    batchSize: parsePositiveInt(flags.batchSize, '--batch-size'),
    lowCapacity: parsePositiveNumber(flags.capacityFactor, '--capacity-factor'),
    images: parsePositiveInt(flags.images, '--images'),
    shareImages: parsePositiveInt(flags.shareImages, '--share-images'),
  };
}

/** Parses, plots --log, analyses --checkpoint, writes into --out (default: routing/ of the run) and prints the summary unless --quiet. */
export async function runRoutingCommand(flags: RoutingFlags): Promise<Partial<RoutingReport> & { files: string[] }> {
  if (!flags.checkpoint && !flags.log)
    throw new UsageError('give --checkpoint (routing statistics) and/or --log runs/<x>/metrics.jsonl (training plots)');
  const opts = flags.checkpoint ? routingOptionsFromFlags({ ...flags, checkpoint: flags.checkpoint }) : null;
  const out = flags.out ?? defaultRoutingOut(flags);
  const say = (s: string) => {
    if (!flags.quiet) process.stdout.write(s);
  };
  checkOutputDir(out);
  if (flags.log && !fs.existsSync(flags.log)) throw new UsageError(`--log ${flags.log} does not exist`);
  let analysis: RoutingAnalysis | null = null;
  if (opts) {
    await startEngine(flags);
    analysis = analyseCheckpointRouting(opts);
  }
  fs.mkdirSync(out, { recursive: true });
  const files: string[] = [];
  // the log's plots and the analysis's files are renamed into place together: all of them or none
  const report = writeOutputsWhole(out, () => {
    if (flags.log) files.push(...writeTrainingLogPlots(flags.log, out));
    return analysis ? writeRoutingFiles(out, analysis, files) : null;
  });
  if (flags.log) say(`training routing plots from ${flags.log} → ${out}\n`);
  if (!report) return { files };
  say(routingSummaryText(report));
  return report;
}

export function registerRoutingCommand(program: Command): void {
  addEngineOptions(
    addDataOptions(
      program
        .command('routing')
        .description(
          'routing analysis: per-layer expert load, drops, router entropy, aux losses, expert × class affinity, processed patches, collapse flags; --log plots a training run',
        )
        .option('--checkpoint <path>', 'checkpoint file, checkpoints/ folder or run folder')
        .option('--log <file>', "a run's metrics.jsonl: plot per-layer drop fraction and max expert load over training")
        .option('--capacity-factor <c>', 'low capacity factor for the processed-patch overlay (BPR)', '0.2')
        .option('--images <n>', 'images in the processed-patch overlay', '4')
        .option(
          '--share-images <n>',
          'images for the processed share of background vs object patches at the low capacity',
          '256',
        )
        .option('--out <dir>', 'folder for the JSON/CSV statistics and figures (default: routing/ in the run folder)')
        .option('--quiet', 'no summary on stdout'),
    ),
  ).action(async (flags: RoutingFlags) => {
    await runRoutingCommand(flags);
  });
}
