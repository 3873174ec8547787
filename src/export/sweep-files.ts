/**
 * What an adaptive-compute sweep (eval/sweep.ts, `vmoe sweep`) becomes on stdout and on disk: the report as JSON,
 * the rows as CSV, LaTeX (caption: data set, split, n, checkpoint), Markdown or a text table, and the
 * accuracy- and NLL-vs-processed figures (SVG + PNG).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { SweepReport } from '../eval/sweep.js';
import { writeFigure } from './png.js';
import { sweepFigures } from './sweep-figures.js';
import { toCsv, toLatex, toMarkdown, toTextTable } from './tables.js';
import { writeFileWhole } from '../util/output-dir.js';

export type SweepFormat = 'json' | 'table' | 'csv' | 'latex' | 'markdown';
export const SWEEP_FORMATS: readonly SweepFormat[] = ['json', 'table', 'csv', 'latex', 'markdown'];

const caption = (r: SweepReport) =>
  `${r.dataset} ${r.split} (n=${r.n}), checkpoint ${r.checkpoint.sha256.slice(0, 12)}`;
const reportText = (r: SweepReport) => JSON.stringify(r, null, 2) + '\n';

/** The sweep as stdout text in one format (JSON: the whole report; the others: the rows). */
export function formatSweep(r: SweepReport, format: SweepFormat): string {
  if (format === 'json') return reportText(r);
  if (format === 'csv') return toCsv(r.rows);
  if (format === 'latex') return toLatex(r.rows, caption(r));
  if (format === 'markdown') return toMarkdown(r.rows);
  return toTextTable(r.rows);
}

/**
 * Writes sweep.{csv,tex,md}, accuracy-vs-processed and nll-vs-processed (SVG + PNG) and, last, sweep.json into
 * `dir`; sets `r.files` to every file written (sweep.json included, so the JSON lists itself) and returns it.
 */
export function writeSweepFiles(dir: string, r: SweepReport): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const figs = sweepFigures(r.rows, `${r.dataset} ${r.split}`);
  const files: [string, string][] = [
    ['sweep.csv', toCsv(r.rows)],
    ['sweep.tex', toLatex(r.rows, caption(r))],
    ['sweep.md', toMarkdown(r.rows)],
  ];
  for (const [f, body] of files) writeFileWhole(path.join(dir, f), body);
  r.files = [
    ...files.map(([f]) => path.join(dir, f)),
    ...writeFigure(dir, 'accuracy-vs-processed', figs.accuracy),
    ...writeFigure(dir, 'nll-vs-processed', figs.nll),
    path.join(dir, 'sweep.json'),
  ];
  writeFileWhole(path.join(dir, 'sweep.json'), reportText(r));
  return r.files;
}
