import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import {
  formatMeanStd, provenanceCaption, provenanceComments, provenanceCsvColumns, provenanceNote, readResult, summarise,
} from '../export/report.js';
import { toCsv, toLatex, toMarkdown, toTextTable, type Row } from '../export/tables.js';
import { UsageError } from './common.js';

export function reportRows(paths: string[], groupBy: 'model' | 'path', metrics?: string[]) {
  const summaries = summarise(paths.map((p) => readResult(p, groupBy)));
  const keys = metrics ?? [...new Set(summaries.flatMap((s) => Object.keys(s.mean)))];
  // every group lists every metric (empty where it has none) so the provenance columns come last in the CSV
  const anyHas = keys.filter((k) => summaries.some((s) => k in s.mean));
  const numeric: Row[] = summaries.map((s) => ({
    model: s.group, runs: s.runs,
    ...Object.fromEntries(anyHas.flatMap((k) => [[`${k}_mean`, s.mean[k] ?? null], [`${k}_std`, s.std[k] ?? null]])),
    ...provenanceCsvColumns(s),
  }));
  const pretty: Row[] = summaries.map((s) => ({
    model: s.group, runs: s.runs,
    ...Object.fromEntries(keys.map((k) => [k, k in s.mean ? formatMeanStd(s.mean[k]!, s.std[k]!, k) : '–'])),
  }));
  return { summaries, numeric, pretty };
}

/** The report in every format; each states the provenance and conventions of its numbers. */
export function reportOutputs(rows: ReturnType<typeof reportRows>, caption = ''): Record<string, string> {
  const { summaries, numeric, pretty } = rows;
  const note = provenanceNote(summaries);
  return {
    csv: toCsv(numeric),
    json: JSON.stringify({ groups: summaries, convention: 'mean ± sample std (ddof 1) over runs' }, null, 2) + '\n',
    latex: toLatex(pretty, [caption, provenanceCaption(summaries)].filter(Boolean).join('; '), provenanceComments(summaries)),
    markdown: `${toMarkdown(pretty)}\n${note}`,
    table: `${toTextTable(pretty)}\n${note}`,
  };
}

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
      if (flags.groupBy !== 'model' && flags.groupBy !== 'path') throw new UsageError(`--group-by must be model or path, got "${flags.groupBy}"`);
      const metrics = flags.metrics?.split(',').map((s) => s.trim()).filter(Boolean);
      const outputs = reportOutputs(reportRows(runs, flags.groupBy, metrics));
      if (!(flags.format in outputs)) throw new UsageError(`--format must be one of ${Object.keys(outputs).join(', ')}`);
      process.stdout.write(outputs[flags.format]!);
      if (flags.out) {
        fs.mkdirSync(flags.out, { recursive: true });
        fs.writeFileSync(path.join(flags.out, 'report.csv'), outputs.csv!);
        fs.writeFileSync(path.join(flags.out, 'report.json'), outputs.json!);
        fs.writeFileSync(path.join(flags.out, 'report.tex'), outputs.latex!);
        fs.writeFileSync(path.join(flags.out, 'report.md'), outputs.markdown!);
      }
    });
}
