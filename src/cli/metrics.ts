/**
 * `vmoe metrics`: parses flags, evaluates the predictions CSVs (eval/predictions-files.ts: the same harness as
 * `vmoe eval`; with --calib and --conformal, split conformal prediction sets, docs/conformal.md) and prints the
 * report (export/metrics-format.ts).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { runMetrics } from '../eval/predictions-files.js';
import { formatMetricsReport, type MetricsFormat } from '../export/metrics-format.js';
import { OOD_SCORE_NAMES, type Binning, type OodPositive, type OodScoreName } from '../metrics/index.js';
import { addConformalOptions, conformalFromFlags, type ConformalFlags } from './conformal-flags.js';

function parseBins(value: string): number {
  const v = Number(value);
  if (!/^\d+$/.test(value.trim()) || v < 1)
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
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
    .addOption(
      new Option('--binning <kind>', 'ECE binning').choices(['equal-width', 'equal-mass']).default('equal-width'),
    )
    .addOption(
      new Option('--ood-score <name>', 'OOD score (higher = more OOD)').choices([...OOD_SCORE_NAMES]).default('msp'),
    )
    .addOption(
      new Option('--ood-positive <label>', 'positive class for OOD metrics')
        .choices(['ood', 'in-distribution'])
        .default('ood'),
    )
    .addOption(
      new Option('--format <format>', 'output format').choices(['json', 'csv', 'latex', 'table']).default('json'),
    )
    .option('--calib <file>', 'predictions CSV of held-out calibration data (same classes) for --conformal');
  addConformalOptions(cmd, '--calib').action(
    async (
      o: ConformalFlags & {
        calib?: string;
        input: string;
        oodInput?: string;
        bins: number;
        binning: Binning;
        oodScore: OodScoreName;
        oodPositive: OodPositive;
        format: MetricsFormat;
      },
    ) => {
      const report = await runMetrics({ ...o, conformal: conformalFromFlags(o) });
      process.stdout.write(
        formatMetricsReport(report, o.format, { score: o.oodScore, positive: o.oodPositive }) + '\n',
      );
    },
  );
}
