/**
 * What a few-shot evaluation (eval/fewshot.ts, `vmoe fewshot`) becomes on stdout and on disk: the result as JSON,
 * one CSV row per data set and shot (both λ selections), a readable table (accuracy % mean ± std, log2 λ) as
 * text, LaTeX or Markdown, and the accuracy-vs-shots figure (SVG + PNG).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FewShotRun, FewShotResult } from '../eval/fewshot.js';
import { fewShotFigure } from './eval-figures.js';
import { writeFigure } from './png.js';
import { toCsv, toLatex, toMarkdown, toTextTable, type Row } from './tables.js';
import { writeFileWhole } from '../util/output-dir.js';

export type FewShotFormat = 'json' | 'table' | 'csv' | 'latex';
export const FEWSHOT_FORMATS: readonly FewShotFormat[] = ['json', 'table', 'csv', 'latex'];

const fmt = (m: number, s: number) => `${(100 * m).toFixed(1)} ± ${(100 * s).toFixed(1)}`;

/** fewshot.csv: one row per data set and shot with both λ selections (NLL and ECE for the logreg probe). */
export function fewShotRows(r: FewShotResult): Row[] {
  return r.results.map((x) => ({
    dataset: x.dataset,
    shot: x.shot,
    accuracy_mean: x.meanRank.accuracy.mean,
    accuracy_std: x.meanRank.accuracy.std,
    l2_mean_rank: x.meanRank.l2,
    accuracy_leave_self_out: x.leaveSelfOut.accuracy.mean,
    accuracy_leave_self_out_std: x.leaveSelfOut.accuracy.std,
    l2_leave_self_out: x.leaveSelfOut.l2,
    ...(x.meanRank.nll ? { nll_mean: x.meanRank.nll.mean, ece_mean: x.meanRank.ece!.mean } : {}),
  }));
}

/** The readable table: accuracy in % (mean ± std over seeds) at both λ selections, and log2 of the mean-rank λ. */
export function fewShotPrettyRows(r: FewShotResult): Row[] {
  return r.results.map((x) => ({
    dataset: x.dataset,
    shot: x.shot,
    'accuracy % (mean rank λ)': fmt(x.meanRank.accuracy.mean, x.meanRank.accuracy.std),
    'log2 λ': Math.log2(x.meanRank.l2),
    'accuracy % (leave-self-out λ)': fmt(x.leaveSelfOut.accuracy.mean, x.leaveSelfOut.accuracy.std),
  }));
}

const caption = (r: FewShotResult) => `few-shot ${r.probe} probe, ${r.seeds.length} seeds`;
const resultText = (r: FewShotResult) => JSON.stringify(r, null, 2) + '\n';

/** The result as stdout text: JSON, the CSV rows, or the readable table as LaTeX or text. */
export function formatFewShot(r: FewShotResult, format: FewShotFormat): string {
  if (format === 'json') return resultText(r);
  if (format === 'csv') return toCsv(fewShotRows(r));
  if (format === 'latex') return toLatex(fewShotPrettyRows(r), caption(r));
  return toTextTable(fewShotPrettyRows(r));
}

/** Writes fewshot.{json,csv,tex,md} and fewshot.{svg,png} (accuracy against shots, ± std over seeds, chance marked) into `dir`. */
export function writeFewShotFiles(dir: string, run: FewShotRun): void {
  const r = run.result;
  fs.mkdirSync(dir, { recursive: true });
  writeFileWhole(path.join(dir, 'fewshot.json'), resultText(r));
  writeFileWhole(path.join(dir, 'fewshot.csv'), toCsv(fewShotRows(r)));
  writeFileWhole(path.join(dir, 'fewshot.tex'), toLatex(fewShotPrettyRows(r), caption(r)));
  writeFileWhole(path.join(dir, 'fewshot.md'), toMarkdown(fewShotPrettyRows(r)));
  writeFigure(
    dir,
    'fewshot',
    fewShotFigure(r.results, {
      subtitle: `${r.probe} probe on ${r.representation}, ${r.seeds.length} seeds, checkpoint ${r.checkpoints[0]!.sha256.slice(0, 12)}`,
      chance: Object.fromEntries(Object.entries(run.numClasses).map(([name, k]) => [name, 1 / k])),
    }),
  );
}
