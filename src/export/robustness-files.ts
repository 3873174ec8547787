/**
 * What a robustness evaluation (eval/robustness.ts, `vmoe robustness`) becomes on stdout and on disk: the report
 * as JSON, the per-set rows and the per-model summary as CSV, Markdown, LaTeX (caption naming the averaged sets) or
 * a text table, the corruption list with its severity constants, and metric-vs-severity box plots (SVG + PNG).
 */
import fs from 'node:fs';
import path from 'node:path';
import { isHeldOut, type RobustnessReport } from '../eval/robustness.js';
import { CORRUPTIONS, MNIST_C, type Suite } from '../robustness/index.js';
import { boxPlotSvg } from './figures.js';
import { writeFigure } from './png.js';
import { toCsv, toLatex, toMarkdown, toTextTable, type Row } from './tables.js';
import { writeFileWhole } from '../util/output-dir.js';

export type RobustnessFormat = 'json' | 'table' | 'csv' | 'latex' | 'markdown';
export const ROBUSTNESS_FORMATS: readonly RobustnessFormat[] = ['json', 'table', 'csv', 'latex', 'markdown'];

/** Which sets the summary averages, for captions: benchmark and held-out corruptions named. */
export function summaryCaption(
  dataset: string,
  suite: Suite,
  corruptions: { name: string; severities: number[] }[],
): string {
  const sev = [...new Set(corruptions.flatMap((c) => c.severities))].sort((a, b) => a - b).join(',');
  const bench = corruptions.filter((c) => !isHeldOut(suite, c.name)).map((c) => c.name);
  const held = corruptions.filter((c) => isHeldOut(suite, c.name)).map((c) => c.name);
  return (
    `${dataset}, ${suite === 'c' ? 'procedural C' : 'procedural MNIST-C'} suite, severities ${sev}: cA, cNLL, cECE over ${bench.length} corruptions (${bench.join(', ')})` +
    (held.length ? `; held out, averaged separately: ${held.join(', ')}` : '')
  );
}

const perSetRows = (r: RobustnessReport): Row[] => r.per_set.map((x) => ({ ...x }) as Row);
const summaryRows = (r: RobustnessReport): Row[] => r.summary.map((s) => ({ ...s }));
const reportText = (r: RobustnessReport) => JSON.stringify(r, null, 2) + '\n';
const caption = (r: RobustnessReport) => summaryCaption(r.dataset, r.suite, r.corruptions);

/** The report as stdout text: JSON, the per-set rows as CSV, or the summary as LaTeX, Markdown or a text table. */
export function formatRobustness(r: RobustnessReport, format: RobustnessFormat): string {
  if (format === 'json') return reportText(r);
  if (format === 'csv') return toCsv(perSetRows(r));
  if (format === 'latex') return toLatex(summaryRows(r), caption(r));
  if (format === 'markdown') return toMarkdown(summaryRows(r));
  return toTextTable(summaryRows(r));
}

/**
 * Writes robustness.{json,csv}, summary.{csv,md,tex}, corruptions.csv (each corruption × severity with its
 * constant) and {accuracy,nll,ece}-vs-severity box plots (one box per severity and model, over corruptions) into `dir`.
 */
export function writeRobustnessFiles(dir: string, r: RobustnessReport): void {
  fs.mkdirSync(dir, { recursive: true });
  writeFileWhole(path.join(dir, 'robustness.json'), reportText(r));
  writeFileWhole(path.join(dir, 'robustness.csv'), toCsv(perSetRows(r)));
  writeFileWhole(path.join(dir, 'summary.csv'), toCsv(summaryRows(r)));
  writeFileWhole(path.join(dir, 'summary.md'), toMarkdown(summaryRows(r)));
  writeFileWhole(path.join(dir, 'summary.tex'), toLatex(summaryRows(r), caption(r)));
  // The corruption list with its severity constants, next to the tables that average over it.
  writeFileWhole(
    path.join(dir, 'corruptions.csv'),
    toCsv(
      r.corruptions.flatMap((c) =>
        c.severities.map((sev) => ({
          corruption: c.name,
          held_out: String(isHeldOut(r.suite, c.name)),
          severity: sev,
          constant: JSON.stringify(
            r.suite === 'c' ? CORRUPTIONS[c.name]!.constants[sev - 1] : MNIST_C[c.name]!.constant,
          ),
        })),
      ),
    ),
  );
  const severities = [...new Set(r.per_set.map((x) => x.severity))].sort((a, b) => a - b);
  for (const metric of ['accuracy', 'nll', 'ece'] as const) {
    const groups = severities.flatMap((s) =>
      r.models.map((m) => ({
        name: `s${s} ${m.label}`,
        series: m.label,
        cluster: String(s),
        values: r.per_set.filter((x) => x.severity === s && x.model === m.label).map((x) => x[metric]),
      })),
    );
    writeFigure(
      dir,
      `${metric}-vs-severity`,
      boxPlotSvg({
        title: `${r.dataset}: ${metric} per severity (boxes over corruptions)`,
        yLabel: metric,
        xLabel: 'severity',
        groups,
      }),
    );
  }
}
