/** `vmoe eval`: parses flags into EvalOptions, runs the harness (eval/harness.ts), prints and writes the results (export/eval-files.ts). */
import type { Command } from 'commander';
import type { Split } from '../data/index.js';
import { evaluateCheckpoints, type EvalOptions, type EvalRun } from '../eval/harness.js';
import { EVAL_FORMATS, formatEval, writeEvalResults, type EvalFormat } from '../export/eval-files.js';
import type { RoutingOverrides } from '../vmoe/model.js';
import { addConformalOptions, conformalFromFlags, type ConformalFlags } from './conformal-flags.js';
import { withOutputDir } from '../util/output-claim.js';
import { writeOutputsWhole } from '../util/output-dir.js';
import { UsageError } from '../util/errors.js';
import {
  addDataOptions,
  addEngineOptions,
  collect,
  parsePositiveInt,
  parsePositiveNumber,
  startEngine,
} from './common.js';

export interface EvalFlags extends ConformalFlags {
  checkpoint: string | string[];
  mcSamples?: string;
  seed?: string;
  ood?: string;
  oodDataDir?: string;
  temperatureScale?: boolean | string;
  mahalanobisFit?: string;
  dataset?: string;
  split: string;
  dataDir?: string;
  limit?: string;
  batchSize: string;
  capacityFactor?: string;
  capacity?: string;
  batchPriority?: boolean;
  k?: string;
  groupImages?: string;
  bins: string;
  format: string;
  out?: string;
  backend?: string;
  threads?: string;
  label?: string;
}

/** The eval-time routing flags shared by eval, predict and sweep-like commands. */
export function routingFromFlags(flags: {
  capacityFactor?: string;
  capacity?: string;
  batchPriority?: boolean;
  k?: string;
  groupImages?: string;
}): RoutingOverrides {
  const routing: RoutingOverrides = {};
  if (flags.capacityFactor !== undefined)
    routing.capacityFactor = parsePositiveNumber(flags.capacityFactor, '--capacity-factor');
  if (flags.capacity !== undefined) routing.capacity = parsePositiveInt(flags.capacity, '--capacity');
  if (flags.batchPriority !== undefined) routing.batchPriority = flags.batchPriority;
  if (flags.k !== undefined) routing.k = parsePositiveInt(flags.k, '--k');
  if (flags.groupImages !== undefined) routing.groupImages = parsePositiveInt(flags.groupImages, '--group-images');
  return routing;
}

/** Flags (strings) → typed harness options; every malformed flag is a UsageError naming it. */
export function evalOptionsFromFlags(flags: EvalFlags): EvalOptions {
  const tsMode =
    flags.temperatureScale === undefined || flags.temperatureScale === false
      ? null
      : flags.temperatureScale === true
        ? 'pooled'
        : flags.temperatureScale;
  if (tsMode !== null && tsMode !== 'pooled' && tsMode !== 'per-member')
    throw new UsageError(`--temperature-scale takes pooled or per-member, got "${tsMode}"`);
  const seed = Number(flags.seed ?? 0);
  if (!Number.isInteger(seed) || seed < 0)
    throw new UsageError(`--seed: expected a non-negative integer, got "${flags.seed}"`);
  const mahalanobisFit = Number(flags.mahalanobisFit ?? '5000');
  if (!Number.isInteger(mahalanobisFit) || mahalanobisFit < 0)
    throw new UsageError(`--mahalanobis-fit: expected a non-negative integer, got "${flags.mahalanobisFit}"`);
  return {
    checkpoints: Array.isArray(flags.checkpoint) ? flags.checkpoint : [flags.checkpoint],
    label: flags.label,
    dataset: flags.dataset,
    split: flags.split as Split,
    dataDir: flags.dataDir,
    limit: flags.limit ? parsePositiveInt(flags.limit, '--limit') : undefined,
    batchSize: parsePositiveInt(flags.batchSize, '--batch-size'),
    routing: routingFromFlags(flags),
    mcSamples: flags.mcSamples ? parsePositiveInt(flags.mcSamples, '--mc-samples') : 0,
    seed,
    bins: parsePositiveInt(flags.bins, '--bins'),
    ood: flags.ood
      ? flags.ood
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
      : [],
    oodDataDir: flags.oodDataDir,
    mahalanobisFit,
    temperatureScale: tsMode,
    conformal: conformalFromFlags(flags),
    onProgress: process.stderr.isTTY
      ? (label, d, t) => process.stderr.write(`\r[vmoe] ${label}: ${d}/${t}   `)
      : undefined,
  };
}

function checkFormat(format: string): EvalFormat {
  if (!(EVAL_FORMATS as readonly string[]).includes(format))
    throw new UsageError(`--format must be json, table, csv or latex, got "${format}"`);
  return format as EvalFormat;
}

/** Parses, evaluates, prints in `--format`, writes `--out`. */
export async function runEval(flags: EvalFlags): Promise<EvalRun> {
  const format = checkFormat(flags.format);
  const opts = evalOptionsFromFlags(flags);
  // --out is checked and locked before the evaluation, not after it
  return withOutputDir(flags.out, 'vmoe eval', async () => {
    await startEngine(flags);
    const run = evaluateCheckpoints(opts);
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    process.stdout.write(formatEval(run, format));
    if (flags.out) writeOutputsWhole(flags.out, () => writeEvalResults(flags.out!, run, { bins: opts.bins }));
    return run;
  });
}

export function registerEvalCommand(program: Command): void {
  addEngineOptions(
    addDataOptions(
      addConformalOptions(
        program
          .command('eval')
          .description('evaluate a checkpoint: accuracy, NLL, Brier, ECE, router statistics, FLOPs per image')
          .requiredOption(
            '--checkpoint <path>',
            "checkpoint file, checkpoints/ folder or run folder; repeat it to evaluate a deep ensemble (mean of the members' probabilities)",
            collect,
            [],
          )
          .option('--mc-samples <n>', 'MC dropout: average n stochastic passes (needs model.dropout > 0)')
          .option('--seed <n>', 'seed for MC-dropout masks', '0')
          .option('--capacity-factor <c>', 'override the expert capacity factor')
          .option('--capacity <n>', 'override with an absolute capacity per group')
          .option('--batch-priority', 'use Batch Prioritized Routing')
          .option('--no-batch-priority', 'use vanilla (position-order) routing')
          .option('--k <n>', 'override the number of experts per token')
          .option('--group-images <n>', 'images per routing group')
          .option('--bins <n>', 'ECE bins', '15')
          .option('--ood <names>', 'comma-separated OOD sets: data sets (test split) or uniform-noise, gaussian-noise')
          .option('--ood-data-dir <dir>', 'folder holding the OOD data sets')
          .option(
            '--mahalanobis-fit <n>',
            'training examples whose pre-logits fit the Mahalanobis scores (0 = skip)',
            '5000',
          )
          .option(
            '--temperature-scale [mode]',
            'also report metrics after temperature scaling fitted on the val split (ensembles: pooled or per-member)',
          )
          .option('--label <name>', 'name of the model in reports (results.json model_label; vmoe report groups by it)')
          .option('--format <fmt>', 'stdout format: json, table, csv or latex', 'json')
          .option(
            '--out <dir>',
            'also write results.json, results.csv, table.tex, predictions.csv, prediction_sets.csv (with --conformal) and figures/ (reliability, risk–coverage, OOD histograms, conformal set sizes and coverage; SVG + PNG) into this folder',
          ),
        'the val split (the split --temperature-scale fits on), reported on --split',
      ),
    ),
  ).action(async (flags: EvalFlags) => {
    await runEval(flags);
  });
}
