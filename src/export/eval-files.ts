/**
 * What an evaluation becomes on disk and on stdout: the report as JSON, one CSV row (with provenance
 * columns), a LaTeX table (provenance in caption and comments), a text table, the per-example
 * predictions CSV, the conformal prediction sets (prediction_sets.csv, with --conformal) and the
 * figures (reliability, risk–coverage, OOD histograms, conformal set sizes and coverage; SVG + PNG).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { EvalRun } from '../eval/harness.js';
import { reportJson } from '../eval/report.js';
import { formatPredictionsCsv } from '../metrics/index.js';
import { conformalFigures } from './conformal-figures.js';
import { evalFigures } from './eval-figures.js';
import { conformalRows } from './metrics-format.js';
import { writeFigure } from './png.js';
import { eceWords, provenanceColumns, provenanceOf, runWords } from './provenance.js';
import { toCsv, toLatex, toTextTable, type Row } from './tables.js';
import { writeFileWhole } from '../util/output-dir.js';

export type EvalFormat = 'json' | 'table' | 'csv' | 'latex';
export const EVAL_FORMATS: readonly EvalFormat[] = ['json', 'table', 'csv', 'latex'];

/** The headline row of an evaluation: what a paper table shows. */
export function evalRow(run: EvalRun): Row {
  const r = run.report;
  return {
    dataset: r.dataset,
    split: r.split,
    n: r.n,
    members: r.members,
    accuracy: r.accuracy,
    nll: r.nll,
    brier: r.brier,
    ece: r.ece,
    ...(r.gibbs_nll !== undefined
      ? { gibbs_nll: r.gibbs_nll, disagreement: r.disagreement ?? null, ambiguity: r.ambiguity ?? null }
      : {}),
    ...(r.temperature_scaled
      ? { temperature_scaled_nll: r.temperature_scaled.nll, temperature_scaled_ece: r.temperature_scaled.ece }
      : {}),
    ...Object.fromEntries((r.ood ?? []).map((o) => [`auroc_${o.dataset}`, o.scores.msp?.ood_positive.auroc ?? null])),
    ...Object.fromEntries(
      conformalRows(r.conformal).flatMap((c) => [
        [`conformal_${c.method}_${c.alpha}_coverage`, c.coverage],
        [`conformal_${c.method}_${c.alpha}_mean_set_size`, c.mean_set_size],
      ]),
    ),
    flops_per_image: r.flops_per_image,
    images_per_s: Math.round(r.images_per_s),
  };
}

function latexParts(run: EvalRun): { caption: string; comments: string[] } {
  const r = run.report;
  const prov = provenanceOf(r);
  const caption = [
    `${r.dataset} ${r.split}, checkpoint ${prov.checkpoints.map((c) => c.slice(0, 12)).join('+')}`,
    eceWords(prov.ece),
    ...(r.ood ? ['AUROC of MSP with OOD as the positive class'] : []),
    `not temperature scaled${r.temperature_scaled ? ` (temperature_scaled_* columns: fitted on ${r.temperature_scaled.fit_split})` : ''}`,
    runWords(prov),
  ].join('; ');
  const comments = [
    `vmoe eval results: ${r.dataset} ${r.split}, n=${r.n}`,
    `checkpoint sha256: ${prov.checkpoints.join(' + ')}`,
    runWords(prov),
  ];
  return { caption, comments };
}

/** CSV is read by programs: every row carries its provenance. */
function csvText(run: EvalRun): string {
  return toCsv([{ ...evalRow(run), ...provenanceColumns(provenanceOf(run.report)) }]);
}

/** The evaluation as stdout text in one format. */
export function formatEval(run: EvalRun, format: EvalFormat): string {
  if (format === 'json') return reportJson(run.report);
  if (format === 'csv') return csvText(run);
  if (format === 'latex') {
    const { caption, comments } = latexParts(run);
    return toLatex([evalRow(run)], caption, comments);
  }
  return toTextTable([evalRow(run)]);
}

/**
 * The conformal prediction sets as CSV: index (row of predictions.csv, per example), label, then one
 * column per method and α (set_<method>_<alpha>) holding the set's class indices, ascending, joined
 * by spaces (empty for an empty set). A file of its own, so predictions.csv stays `vmoe metrics` input.
 */
export function predictionSetsCsv(run: EvalRun): string {
  const cols = run.predictionSets;
  const records: (string | number)[][] = [['index', 'label', ...cols.map((c) => c.column)]];
  for (let i = 0; i < run.outputs.n; i++)
    records.push([i, run.outputs.labels[i]!, ...cols.map((c) => c.sets[i]!.join(' '))]);
  return records.map((r) => r.join(',')).join('\n') + '\n';
}

/** Writes results.json, results.csv, table.tex, predictions.csv, prediction_sets.csv (conformal) and figures/ into `dir`; returns the files written. */
export function writeEvalResults(dir: string, run: EvalRun, opts: { bins: number }): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const { caption, comments } = latexParts(run);
  const o = run.outputs;
  const files: [string, string][] = [
    ['results.json', reportJson(run.report)],
    ['results.csv', csvText(run)],
    ['table.tex', toLatex([evalRow(run)], caption, comments)],
    [
      'predictions.csv',
      formatPredictionsCsv(
        { data: o.logits, n: o.n, k: o.numClasses, ...(o.members > 1 ? { m: o.members } : {}) },
        o.labels,
      ),
    ],
  ];
  if (run.predictionSets.length) files.push(['prediction_sets.csv', predictionSetsCsv(run)]);
  const written: string[] = [];
  for (const [name, text] of files) {
    const file = path.join(dir, name);
    writeFileWhole(file, text);
    written.push(file);
  }
  for (const f of evalFigures({
    out: o,
    bins: opts.bins,
    label: run.label,
    dataset: `${run.dataset.name} ${run.dataset.split}`,
    oodSets: run.oodSets,
    subtitle: `${run.dataset.name} ${run.dataset.split}, n=${o.n}, checkpoint ${run.checkpoints[0]!.slice(0, 12)}`,
  }))
    written.push(...writeFigure(path.join(dir, 'figures'), f.name, f.svg));
  const conformal = Object.values(run.report.conformal ?? {}).flatMap((reports) => reports ?? []);
  const calibration = String(
    (run.report.conventions.conformal as { calibration?: string } | undefined)?.calibration ?? 'held-out data',
  );
  for (const f of conformalFigures(
    conformal,
    `${run.label}: ${run.dataset.name} ${run.dataset.split}, calibrated on ${calibration}`,
  )) {
    written.push(...writeFigure(path.join(dir, 'figures'), f.name, f.svg));
  }
  return written;
}
