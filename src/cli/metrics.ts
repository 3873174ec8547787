/**
 * `vmoe metrics`: uncertainty metrics for any model's predictions, read from the predictions CSV
 * (src/metrics/predictions-csv.ts) and evaluated by the same harness as `vmoe eval` (eval/harness.ts);
 * with --calib and --conformal, split conformal prediction sets (docs/conformal.md).
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { ConformalEvalOptions } from '../eval/evaluators.js';
import { evaluatePredictions } from '../eval/harness.js';
import type { PredictionsReport } from '../eval/report.js';
import { formatMetricsReport, type MetricsFormat } from '../export/metrics-format.js';
import {
  OOD_SCORE_NAMES, parsePredictionsCsv, type Binning, type OodPositive, type OodScoreName, type PredictionsTable,
} from '../metrics/index.js';
import { DataError, UsageError } from '../util/errors.js';
import { addConformalOptions, conformalFromFlags, type ConformalFlags } from './conformal-flags.js';

async function readPredictions(file: string, allowUnknownLabel: boolean): Promise<PredictionsTable> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read predictions file ${file}: ${(e as Error).message}`);
  }
  return parsePredictionsCsv(text, file, { allowUnknownLabel });
}

export interface MetricsOptions {
  input: string;
  oodInput?: string;
  bins?: number;
  binning?: Binning;
  oodScore?: OodScoreName;
  oodPositive?: OodPositive;
  /** calibration predictions CSV for conformal prediction (needs `conformal`) */
  calib?: string;
  conformal?: ConformalEvalOptions | null;
}

/** Reads the predictions CSV(s) and runs the harness's evaluators on them. */
export async function runMetrics(opts: MetricsOptions): Promise<PredictionsReport> {
  if (opts.conformal && !opts.calib) throw new UsageError('--conformal needs calibration predictions: add --calib <file> (a predictions CSV of held-out data)');
  if (opts.calib && !opts.conformal) throw new UsageError('--calib is the calibration data of conformal prediction: add --conformal lac,aps,raps');
  const [input, ood, calib] = await Promise.all([
    readPredictions(opts.input, false),
    opts.oodInput ? readPredictions(opts.oodInput, true) : Promise.resolve(undefined),
    opts.calib ? readPredictions(opts.calib, false) : Promise.resolve(undefined),
  ]);
  const score = opts.oodScore ?? 'msp';
  if (ood && input.kind === 'probs' && (score === 'max-logit' || score === 'energy')) {
    throw new UsageError(`--ood-score ${score} needs logits, but ${input.source} gives probabilities (p0..)`);
  }
  return evaluatePredictions(input, ood, { bins: opts.bins, binning: opts.binning, calib, conformal: opts.conformal ?? undefined });
}

function parseBins(value: string): number {
  const v = Number(value);
  if (!/^\d+$/.test(value.trim()) || v < 1) throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return v;
}

export function registerMetricsCommand(program: Command): void {
  const cmd = program
    .command('metrics')
    .description(
      'uncertainty metrics for predictions in a CSV (header label and logit0..logit{K-1} or p0..p{K-1}; ' +
        'ensembles add id and member columns, one row per example and member)',
    )
    .requiredOption('--input <file>', 'predictions CSV')
    .option('--ood-input <file>', 'predictions CSV of out-of-distribution data (label may be -1)')
    .option('--bins <n>', 'ECE bins', parseBins, 15)
    .addOption(new Option('--binning <kind>', 'ECE binning').choices(['equal-width', 'equal-mass']).default('equal-width'))
    .addOption(new Option('--ood-score <name>', 'OOD score (higher = more OOD)').choices([...OOD_SCORE_NAMES]).default('msp'))
    .addOption(new Option('--ood-positive <label>', 'positive class for OOD metrics').choices(['ood', 'in-distribution']).default('ood'))
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'csv', 'latex', 'table']).default('json'))
    .option('--calib <file>', 'predictions CSV of held-out calibration data (same classes) for --conformal');
  addConformalOptions(cmd, '--calib')
    .action(
      async (o: ConformalFlags & {
        calib?: string;
        input: string;
        oodInput?: string;
        bins: number;
        binning: Binning;
        oodScore: OodScoreName;
        oodPositive: OodPositive;
        format: MetricsFormat;
      }) => {
        const report = await runMetrics({ ...o, conformal: conformalFromFlags(o) });
        process.stdout.write(formatMetricsReport(report, o.format, { score: o.oodScore, positive: o.oodPositive }) + '\n');
      },
    );
}
