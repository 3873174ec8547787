/**
 * Merging results of several runs / seeds into one table: mean ± sample std
 * per group of every numeric metric the runs share.
 */
import fs from 'node:fs';
import path from 'node:path';
import { eceWords, provenanceOf, type Provenance } from './provenance.js';
import { toCsv, toLatex, toMarkdown, toTextTable, type Row } from './tables.js';
import { DataError } from '../util/errors.js';
import { writeFileWhole } from '../util/output-dir.js';

export interface ResultRecord {
  source: string;
  group: string;
  values: Record<string, number>;
  /** Where the numbers came from and under which conventions (results.json). */
  provenance: Provenance;
}

/** Flattens the numbers of an eval results.json that a paper table wants (OOD: AUROC per set and score). */
export function flattenEvalResult(r: Record<string, any>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of [
    'accuracy',
    'nll',
    'brier',
    'ece',
    'aurc',
    'gibbs_nll',
    'flops_per_image',
    'images_per_s',
    'train_seconds',
  ]) {
    if (typeof r[k] === 'number') out[k] = r[k];
  }
  // The ECE variants sit nested (next to the reliability bins) in results.json; a table wants them as columns.
  for (const k of ['ece_equal_mass', 'classwise_ece', 'rmsce', 'mce', 'signed_ece']) {
    if (typeof r.calibration?.[k] === 'number') out[k] = r.calibration[k];
  }
  // Ensembles (deep, E³, MC dropout): the members' own quality, averaged over members.
  for (const k of ['member_accuracy', 'member_nlls']) {
    const v = r[k];
    if (Array.isArray(v) && v.length && v.every((x) => typeof x === 'number'))
      out[`${k}_mean`] = v.reduce((a: number, b: number) => a + b, 0) / v.length;
  }
  for (const k of ['disagreement', 'normalized_disagreement', 'pairwise_kl', 'mutual_information', 'ambiguity']) {
    if (typeof r[k] === 'number' && Number.isFinite(r[k])) out[k] = r[k];
  }
  // results.json written before the one report schema (stop 23) nested these under `diversity`, camelCase, and said member_nll
  if (r.diversity) {
    for (const [k, v] of Object.entries(r.diversity)) {
      if (typeof v === 'number' && Number.isFinite(v)) out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
    }
  }
  if (Array.isArray(r.member_nll) && r.member_nll.length)
    out.member_nlls_mean = r.member_nll.reduce((a: number, b: number) => a + b, 0) / r.member_nll.length;
  if (r.temperature_scaled) {
    out.ts_nll = r.temperature_scaled.nll;
    out.ts_ece = r.temperature_scaled.ece;
  }
  for (const o of r.ood ?? []) {
    for (const [score, m] of Object.entries(o.scores as Record<string, any>)) {
      out[`ood_${o.dataset}_${score}_auroc`] = m.ood_positive.auroc;
    }
  }
  // Conformal prediction (--conformal): per method and α, coverage and mean set size.
  for (const [method, reports] of Object.entries((r.conformal ?? {}) as Record<string, any>)) {
    for (const c of Array.isArray(reports) ? reports : []) {
      for (const k of ['coverage', 'mean_set_size'])
        if (typeof c?.[k] === 'number') out[`conformal_${method}_${c.alpha}_${k}`] = c[k];
    }
  }
  return out;
}

/** A run folder (its eval_test/results.json or results.json) or a results JSON file. */
export function readResult(p: string, groupBy: 'model' | 'path'): ResultRecord {
  const candidates =
    fs.existsSync(p) && fs.statSync(p).isDirectory()
      ? [path.join(p, 'eval_test', 'results.json'), path.join(p, 'results.json')]
      : [p];
  const file = candidates.find((f) => fs.existsSync(f));
  if (!file) {
    throw new DataError(`no results found at ${p} (looked for ${candidates.join(', ')})`, {
      hint: fs.existsSync(p)
        ? 'evaluate the run first: vmoe eval --checkpoint RUN --out RUN/eval_test'
        : `${p} does not exist; check the path`,
    });
  }
  let r: Record<string, any>;
  try {
    r = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  const model = r.model_label ?? r.config?.name ?? path.basename(path.dirname(file));
  const values = flattenEvalResult(r);
  // A run folder's evaluation sits next to its training summary: the table then shows what the result cost to train.
  const summary = path.join(path.dirname(path.dirname(file)), 'train_summary.json');
  if (path.basename(path.dirname(file)) === 'eval_test' && fs.existsSync(summary)) {
    try {
      const t = JSON.parse(fs.readFileSync(summary, 'utf8')) as Record<string, unknown>;
      if (values.train_seconds === undefined && typeof t.seconds === 'number') values.train_seconds = t.seconds;
      if (typeof t.step === 'number') values.train_steps = t.step;
    } catch (e) {
      throw new DataError(`${summary}: not valid JSON: ${(e as Error).message}`);
    }
  }
  return { source: file, group: groupBy === 'model' ? String(model) : file, values, provenance: provenanceOf(r) };
}

/** What a group's runs were, each list without repeats: the provenance a merged table must keep. */
export interface GroupProvenance {
  /** `dataset/split` */
  datasets: string[];
  checkpoints: string[];
  seeds: number[];
  eval_seeds: number[];
  /** `backend (n threads)` */
  backends: string[];
  /** `vmoe-ts X, tfjs Y, node Z` */
  versions: string[];
}

/** The conventions of a group's numbers. */
export interface GroupConventions {
  ece: string[];
  /** Positive class of the flattened `ood_*_auroc` values (null: no OOD numbers). */
  ood_positive: 'ood' | null;
  /** The numbers are not temperature scaled, except the `ts_*` ones. */
  temperature_scaled: false;
  ts_columns: string | null;
  aggregation: string;
}

export interface GroupSummary {
  group: string;
  runs: number;
  mean: Record<string, number>;
  std: Record<string, number>;
  provenance: GroupProvenance;
  conventions: GroupConventions;
}

const AGGREGATION = 'mean ± sample std (ddof 1) over runs; std 0 for a single run';

function distinct<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

function groupProvenance(rs: ResultRecord[]): { provenance: GroupProvenance; conventions: GroupConventions } {
  const ps = rs.map((r) => r.provenance);
  const known = <T>(xs: (T | null)[]) => xs.filter((x): x is T => x !== null);
  return {
    provenance: {
      datasets: distinct(ps.filter((p) => p.dataset !== null).map((p) => `${p.dataset}/${p.split ?? '?'}`)),
      checkpoints: distinct(ps.flatMap((p) => p.checkpoints)),
      seeds: distinct(ps.flatMap((p) => p.seeds)).sort((a, b) => a - b),
      eval_seeds: distinct(known(ps.map((p) => p.evalSeed))).sort((a, b) => a - b),
      backends: distinct(
        ps
          .filter((p) => p.backend !== null)
          .map((p) => `${p.backend}${p.threads === null ? '' : ` (${p.threads} thread${p.threads === 1 ? '' : 's'})`}`),
      ),
      versions: distinct(
        ps
          .filter((p) => p.versions.vmoeTs !== null)
          .map((p) => `vmoe-ts ${p.versions.vmoeTs}, tfjs ${p.versions.tfjs ?? '?'}, node ${p.versions.node ?? '?'}`),
      ),
    },
    conventions: {
      ece: distinct(ps.map((p) => eceWords(p.ece))),
      ood_positive: ps.some((p) => p.oodPositive) ? 'ood' : null,
      temperature_scaled: false,
      ts_columns: ps.some((p) => p.hasTemperatureScaled)
        ? 'ts_nll, ts_ece: after temperature scaling fitted on the val split'
        : null,
      aggregation: AGGREGATION,
    },
  };
}

/** Mean and sample standard deviation (ddof 1; 0 for a single run) of each metric present in every run of a group. */
export function summarise(records: ResultRecord[]): GroupSummary[] {
  const groups = new Map<string, ResultRecord[]>();
  for (const r of records) groups.set(r.group, [...(groups.get(r.group) ?? []), r]);
  return [...groups.entries()].map(([group, rs]) => {
    const keys = Object.keys(rs[0]!.values).filter((k) => rs.every((r) => typeof r.values[k] === 'number'));
    const mean: Record<string, number> = {},
      std: Record<string, number> = {};
    for (const k of keys) {
      const v = rs.map((r) => r.values[k]!);
      const m = v.reduce((a, b) => a + b, 0) / v.length;
      mean[k] = m;
      std[k] = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0;
    }
    return { group, runs: rs.length, mean, std, ...groupProvenance(rs) };
  });
}

/** A group's provenance as CSV columns (lists joined with '+'), so the CSV stays one row per group. */
export function provenanceCsvColumns(g: GroupSummary): Row {
  const p = g.provenance,
    c = g.conventions;
  return {
    datasets: p.datasets.join('+'),
    seeds: p.seeds.join('+'),
    eval_seeds: p.eval_seeds.join('+'),
    checkpoints: p.checkpoints.join('+'),
    backends: p.backends.join('+'),
    versions: p.versions.join('+'),
    ece: c.ece.join('+'),
    ood_positive: c.ood_positive ?? '',
    temperature_scaled: c.temperature_scaled,
  };
}

/** "x" when every group agrees, else "a: x; b: y" — keeps a note short when groups share their set-up. */
function perGroup(groups: GroupSummary[], value: (g: GroupSummary) => string): string {
  const vs = groups.map(value);
  return distinct(vs).length === 1 ? vs[0]! : groups.map((g, i) => `${g.group}: ${vs[i]}`).join('; ');
}

const listOr = (xs: (string | number)[], none = '?') => (xs.length ? xs.join(', ') : none);

function conventionWords(groups: GroupSummary[]): string {
  const ood = groups.some((g) => g.conventions.ood_positive) ? ['ood_*_auroc with OOD as the positive class'] : [];
  const ts = groups.some((g) => g.conventions.ts_columns) ? ' (ts_* are, fitted on the val split)' : '';
  return [
    perGroup(groups, (g) => g.conventions.ece.join(' / ')),
    ...ood,
    `not temperature scaled${ts}`,
    AGGREGATION,
  ].join('; ');
}

/** One paragraph under a Markdown or text table: data, seeds, checkpoints, backend, versions, conventions. */
export function provenanceNote(groups: GroupSummary[]): string {
  if (!groups.length) return '';
  return (
    [
      `Data: ${perGroup(groups, (g) => listOr(g.provenance.datasets))}.`,
      `Seeds: ${perGroup(groups, (g) => listOr(g.provenance.seeds))}.`,
      `Checkpoints (sha256): ${groups.map((g) => `${g.group}: ${listOr(g.provenance.checkpoints.map((c) => c.slice(0, 8)))}`).join('; ')}.`,
      `Backend: ${perGroup(groups, (g) => listOr(g.provenance.backends))}; ${perGroup(groups, (g) => listOr(g.provenance.versions, 'versions ?'))}.`,
      `Conventions: ${conventionWords(groups)}.`,
    ].join(' ') + '\n'
  );
}

/** A LaTeX caption (without checkpoint hashes, which go into `provenanceComments`). */
export function provenanceCaption(groups: GroupSummary[]): string {
  return [
    perGroup(groups, (g) => listOr(g.provenance.datasets)),
    `seeds ${perGroup(groups, (g) => listOr(g.provenance.seeds))}`,
    conventionWords(groups),
    `backend ${perGroup(groups, (g) => listOr(g.provenance.backends))}`,
    perGroup(groups, (g) => listOr(g.provenance.versions, 'versions ?')),
  ].join('; ');
}

/** `%` lines above a LaTeX table: each group's full checkpoint hashes and seeds. */
export function provenanceComments(groups: GroupSummary[]): string[] {
  return groups.map(
    (g) =>
      `${g.group}: ${g.runs} run(s), seeds ${listOr(g.provenance.seeds)}, checkpoints sha256 ${listOr(g.provenance.checkpoints)}`,
  );
}

const DIGITS: Record<string, number> = {
  accuracy: 4,
  flops_per_image: 0,
  images_per_s: 0,
  train_seconds: 0,
  train_steps: 0,
};

export function formatMeanStd(m: number, s: number, key: string): string {
  const d = DIGITS[key] ?? 4;
  if (key === 'flops_per_image') return `${(m / 1e6).toFixed(2)}M`;
  return s > 0 ? `${m.toFixed(d)} ± ${s.toFixed(d)}` : m.toFixed(d);
}

/** Reads and groups runs (by config name or path): numeric rows for CSV, mean ± std strings for tables. */
export function reportRows(paths: string[], groupBy: 'model' | 'path', metrics?: string[]) {
  const summaries = summarise(paths.map((p) => readResult(p, groupBy)));
  const keys = metrics ?? [...new Set(summaries.flatMap((s) => Object.keys(s.mean)))];
  // every group lists every metric (empty where it has none) so the provenance columns come last in the CSV
  const anyHas = keys.filter((k) => summaries.some((s) => k in s.mean));
  const numeric: Row[] = summaries.map((s) => ({
    model: s.group,
    runs: s.runs,
    ...Object.fromEntries(
      anyHas.flatMap((k) => [
        [`${k}_mean`, s.mean[k] ?? null],
        [`${k}_std`, s.std[k] ?? null],
      ]),
    ),
    ...provenanceCsvColumns(s),
  }));
  const pretty: Row[] = summaries.map((s) => ({
    model: s.group,
    runs: s.runs,
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
    latex: toLatex(
      pretty,
      [caption, provenanceCaption(summaries)].filter(Boolean).join('; '),
      provenanceComments(summaries),
    ),
    markdown: `${toMarkdown(pretty)}\n${note}`,
    table: `${toTextTable(pretty)}\n${note}`,
  };
}

/** Writes report.{csv,json,tex,md} (from reportOutputs) into `dir`. */
export function writeReportFiles(dir: string, outputs: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true });
  writeFileWhole(path.join(dir, 'report.csv'), outputs.csv!);
  writeFileWhole(path.join(dir, 'report.json'), outputs.json!);
  writeFileWhole(path.join(dir, 'report.tex'), outputs.latex!);
  writeFileWhole(path.join(dir, 'report.md'), outputs.markdown!);
}
