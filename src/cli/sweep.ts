/** `vmoe sweep`: parses flags into SweepOptions, runs the adaptive-compute sweep (eval/sweep.ts), prints and writes it (export/sweep-files.ts). */
import type { Command } from 'commander';
import type { Split } from '../data/index.js';
import {
  parseBatchPriorityMode,
  parseNumberList,
  sweepCheckpoint,
  type SweepOptions,
  type SweepReport,
} from '../eval/sweep.js';
import { SWEEP_FORMATS, formatSweep, writeSweepFiles, type SweepFormat } from '../export/sweep-files.js';
import { addEngineOptions, parsePositiveInt, startEngine, addDataOptions } from './common.js';
import { UsageError } from '../util/errors.js';
import { writeOutputsWhole } from '../util/output-dir.js';
import { withOutputDir } from '../util/output-claim.js';
import { sweepOnQueue } from '../queue/evaluations.js';
import { QUEUE_OPTION, RUN_ROOT_OPTION, gridStatusPrinter } from './queue.js';

export interface SweepFlags {
  checkpoint: string;
  dataset?: string;
  split: string;
  dataDir?: string;
  limit?: string;
  batchSize: string;
  capacityFactors: string;
  k?: string;
  batchPriority: string;
  bins: string;
  format: string;
  out?: string;
  backend?: string;
  threads?: string;
  quiet?: boolean;
  queue?: string;
  runRoot?: string;
}

export const DEFAULT_CAPACITY_FACTORS = '0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,1.05,1.5';

/** Flags (strings) → typed options; every malformed flag is a UsageError naming it. */
export function sweepOptionsFromFlags(flags: SweepFlags): SweepOptions {
  return {
    checkpoint: flags.checkpoint,
    capacityFactors: parseNumberList(flags.capacityFactors, '--capacity-factors'),
    batchPriority: parseBatchPriorityMode(flags.batchPriority),
    batchSize: parsePositiveInt(flags.batchSize, '--batch-size'),
    bins: parsePositiveInt(flags.bins, '--bins'),
    ks: flags.k !== undefined ? parseNumberList(flags.k, '--k') : undefined,
    data: {
      dataset: flags.dataset,
      split: flags.split as Split,
      dataDir: flags.dataDir,
      limit: flags.limit ? parsePositiveInt(flags.limit, '--limit') : undefined,
    },
    onRow: flags.quiet
      ? undefined
      : (r, i, total) =>
          process.stderr.write(
            `[sweep ${i + 1}/${total}] ${r.routing} K=${r.k} c=${r.capacity_factor}: processed ${r.processed_fraction.toFixed(3)} accuracy ${r.accuracy.toFixed(4)} nll ${r.nll.toFixed(4)}\n`,
          ),
  };
}

/** Parses, sweeps, prints in `--format` (JSON: before --out's files are listed), writes `--out`. */
export async function runSweepCommand(flags: SweepFlags): Promise<SweepReport> {
  if (!(SWEEP_FORMATS as readonly string[]).includes(flags.format))
    throw new UsageError(`--format must be json, table, csv, latex or markdown, got "${flags.format}"`);
  const opts = sweepOptionsFromFlags(flags);
  // --out is checked and locked before any work
  return withOutputDir(flags.out, 'vmoe sweep', async () => {
    if (!flags.queue) await startEngine(flags);
    const report = flags.queue
      ? await sweepOnQueue(opts, { url: flags.queue, runRoot: flags.runRoot ?? '.', onStatus: gridStatusPrinter() })
      : sweepCheckpoint(opts);
    const text = formatSweep(report, flags.format as SweepFormat);
    if (flags.out) writeOutputsWhole(flags.out, () => writeSweepFiles(flags.out!, report));
    process.stdout.write(text);
    return report;
  });
}

export function registerSweepCommand(program: Command): void {
  addEngineOptions(
    addDataOptions(
      program
        .command('sweep')
        .description(
          'adaptive compute: accuracy, NLL, ECE, processed fraction, FLOPs and images/s over capacity factors, K and BPR/vanilla routing',
        )
        .requiredOption('--checkpoint <path>', 'checkpoint file, checkpoints/ folder or run folder')
        .option('--capacity-factors <list>', 'comma-separated capacity factors', DEFAULT_CAPACITY_FACTORS)
        .option('--k <list>', "comma-separated experts per token (default: the model's K)")
        .option('--batch-priority <mode>', 'both, on (BPR only) or off (vanilla only)', 'both')
        .option('--bins <n>', 'ECE bins', '15')
        .option('--format <fmt>', 'stdout format: json, table, csv, latex or markdown', 'table')
        .option('--out <dir>', 'also write sweep.{csv,json,tex} and accuracy/NLL-vs-processed SVG figures here')
        .option('--quiet', 'no progress lines on stderr')
        .option(...QUEUE_OPTION)
        .option(...RUN_ROOT_OPTION),
    ),
  ).action(async (flags: SweepFlags) => {
    await runSweepCommand(flags);
  });
}
