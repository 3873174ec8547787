/** `vmoe report`: parses flags, merges several runs' results into one mean ± std table (export/report.ts), prints and writes it. */
import type { Command } from 'commander';
import { reportOutputs, reportRows, writeReportFiles } from '../export/report.js';
import { UsageError } from '../util/errors.js';
import { checkOutputDir, writeOutputsWhole } from '../util/output-dir.js';

export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description('merge the results of several runs / seeds into one table (mean ± sample std per model)')
    .argument('<runs...>', 'run folders (eval_test/results.json or results.json) or results JSON files')
    .option('--group-by <key>', 'model (the config name) or path', 'model')
    .option('--metrics <list>', 'comma-separated metrics to show (default: all shared numeric metrics)')
    .option('--format <fmt>', 'table, csv, json, latex or markdown', 'table')
    .option('--out <dir>', 'also write report.{csv,json,tex,md} here')
    .action((runs: string[], flags: { groupBy: string; metrics?: string; format: string; out?: string }) => {
      if (flags.groupBy !== 'model' && flags.groupBy !== 'path')
        throw new UsageError(`--group-by must be model or path, got "${flags.groupBy}"`);
      const metrics = flags.metrics
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (flags.out) checkOutputDir(flags.out);
      const outputs = reportOutputs(reportRows(runs, flags.groupBy, metrics));
      if (!(flags.format in outputs))
        throw new UsageError(`--format must be one of ${Object.keys(outputs).join(', ')}`);
      process.stdout.write(outputs[flags.format]!);
      const out = flags.out;
      if (out) writeOutputsWhole(out, () => writeReportFiles(out, outputs)); // all files or none
    });
}
