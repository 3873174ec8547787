/**
 * The predictions CSV that `vmoe metrics` reads and the harness writes: a header with `label` and
 * either `logit0..logit{K-1}` or `p0..p{K-1}`; ensembles add `id` and `member` columns, one row per
 * (example, member). No quoting; blank lines skipped; CRLF accepted. Every error names the source,
 * the 1-based line and column, and the column's name.
 */
import { stringify } from 'csv-stringify/sync';
import type { ClassScores } from './types.js';
import { DataError, UsageError } from '../util/errors.js';

/** Whether a predictions table holds logits or probabilities. */
export type ScoreKind = 'logits' | 'probs';

/** A parsed predictions CSV: scores (N, K) or member scores (M, N, K), labels (N), and example ids when present. */
export interface PredictionsTable {
  kind: ScoreKind;
  /** member scores (M, N, K); `m` is set only for ensembles */
  scores: ClassScores;
  labels: Int32Array; // (N,)
  /** example ids in first-appearance order (ensembles, or when an id column is present) */
  ids?: string[];
  /** member names in first-appearance order (ensembles) */
  memberNames?: string[];
  /** 1-based line of each example's first row */
  lines: Int32Array; // (N,)
  source: string;
}

/** Options of `parsePredictionsCsv`: accept unknown labels (−1), the probability-sum tolerance. */
export interface ParseOptions {
  /** accept label −1 (unknown, e.g. OOD data); default false */
  allowUnknownLabel?: boolean;
  /** |Σ_k p_k − 1| allowed for probability rows (default 1e-3) */
  probSumTolerance?: number;
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;
const NON_FINITE = /^[+-]?(nan|inf|infinity)$/i;

/**
 * Parse a predictions CSV (`label,logit0,…` or `label,prob0,…`, optionally with `id` and `member` columns for
 * ensembles) into a `PredictionsTable`; `source` names the file in error messages.
 */
export function parsePredictionsCsv(text: string, source = '<string>', opts: ParseOptions = {}): PredictionsTable {
  const tolerance = opts.probSumTolerance ?? 1e-3;
  const lines = text.split(/\r?\n/);
  const headerLine = lines.findIndex((l) => l.trim() !== '');
  if (headerLine < 0)
    throw new DataError(`${source}: the file is empty; expected a header such as 'label,logit0,logit1'`);
  const header = lines[headerLine]!.split(',').map((h) => h.trim());
  const at = (line: number, col: number) => `${source} line ${line + 1}, column ${col + 1} (${header[col] ?? '?'})`;

  const seen = new Map<string, number>();
  header.forEach((h, c) => {
    if (seen.has(h))
      throw new DataError(`${at(headerLine, c)}: duplicate column '${h}' (first at column ${seen.get(h)! + 1})`);
    seen.set(h, c);
  });
  const labelCol = seen.get('label');
  if (labelCol === undefined) throw new DataError(`${source} line ${headerLine + 1}: missing column 'label'`);
  const idCol = seen.get('id');
  const memberCol = seen.get('member');
  if (memberCol !== undefined && idCol === undefined) {
    throw new DataError(`${source} line ${headerLine + 1}: a 'member' column needs an 'id' column naming each example`);
  }
  const logitCols = new Map<number, number>();
  const probCols = new Map<number, number>();
  header.forEach((h, c) => {
    const lm = /^logit(\d+)$/.exec(h);
    const pm = /^p(\d+)$/.exec(h);
    if (lm) logitCols.set(Number(lm[1]), c);
    else if (pm) probCols.set(Number(pm[1]), c);
    else if (h !== 'label' && h !== 'id' && h !== 'member') {
      throw new DataError(
        `${at(headerLine, c)}: unknown column '${h}'; expected label, logit0..logit{K-1} or p0..p{K-1}, id, member`,
      );
    }
  });
  if (logitCols.size > 0 && probCols.size > 0) {
    throw new DataError(`${source} line ${headerLine + 1}: has both logit and p columns; give one kind only`);
  }
  const kind: ScoreKind = logitCols.size > 0 ? 'logits' : 'probs';
  const scoreCols = kind === 'logits' ? logitCols : probCols;
  const prefix = kind === 'logits' ? 'logit' : 'p';
  const k = scoreCols.size;
  if (k === 0)
    throw new DataError(
      `${source} line ${headerLine + 1}: no score columns; expected logit0..logit{K-1} or p0..p{K-1}`,
    );
  for (let c = 0; c < k; c++) {
    if (!scoreCols.has(c)) {
      throw new DataError(
        `${source} line ${headerLine + 1}: column '${prefix}${c}' is missing (found ${k} ${prefix} columns, expected ${prefix}0..${prefix}${k - 1})`,
      );
    }
  }
  const colOfClass = Array.from({ length: k }, (_, c) => scoreCols.get(c)!);

  interface Row {
    line: number;
    label: number;
    scores: Float64Array;
    id?: string;
    member?: string;
  }
  const rows: Row[] = [];
  for (let li = headerLine + 1; li < lines.length; li++) {
    const raw = lines[li]!;
    if (raw.trim() === '') continue;
    const cells = raw.split(',').map((s) => s.trim());
    if (cells.length !== header.length) {
      throw new DataError(
        `${source} line ${li + 1}: ${cells.length} cells, but the header has ${header.length} columns`,
      );
    }
    const labelText = cells[labelCol]!;
    const label = Number(labelText);
    const minLabel = opts.allowUnknownLabel ? -1 : 0;
    if (!INTEGER.test(labelText) || label < minLabel || label >= k) {
      throw new DataError(
        `${at(li, labelCol)}: '${labelText}' is not a class index in ${minLabel === -1 ? '{−1} ∪ ' : ''}[0, ${k})`,
      );
    }
    const scores = new Float64Array(k);
    let sum = 0;
    for (let c = 0; c < k; c++) {
      const col = colOfClass[c]!;
      const t = cells[col]!;
      if (NON_FINITE.test(t)) throw new DataError(`${at(li, col)}: '${t}' is not finite; NaN and Inf are not allowed`);
      if (!DECIMAL.test(t)) throw new DataError(`${at(li, col)}: '${t}' is not a decimal number`);
      const v = Number(t);
      if (!Number.isFinite(v)) throw new DataError(`${at(li, col)}: '${t}' overflows to a non-finite number`);
      if (kind === 'probs' && (v < 0 || v > 1 + tolerance)) {
        throw new DataError(`${at(li, col)}: probability ${t} is outside [0, 1]`);
      }
      scores[c] = v;
      sum += v;
    }
    if (kind === 'probs' && Math.abs(sum - 1) > tolerance) {
      throw new DataError(
        `${source} line ${li + 1}, columns ${colOfClass[0]! + 1}..${colOfClass[k - 1]! + 1} (p0..p${k - 1}): ` +
          `probabilities sum to ${sum}, not 1 (tolerance ${tolerance})`,
      );
    }
    const row: Row = { line: li + 1, label, scores };
    if (idCol !== undefined) {
      row.id = cells[idCol]!;
      if (row.id === '') throw new DataError(`${at(li, idCol)}: empty id`);
    }
    if (memberCol !== undefined) {
      row.member = cells[memberCol]!;
      if (row.member === '') throw new DataError(`${at(li, memberCol)}: empty member`);
    }
    rows.push(row);
  }
  if (rows.length === 0) throw new DataError(`${source}: no data rows after the header`);

  if (memberCol === undefined) {
    const n = rows.length;
    const data = new Float64Array(n * k);
    rows.forEach((r, i) => data.set(r.scores, i * k));
    const table: PredictionsTable = {
      kind,
      scores: { data, n, k },
      labels: Int32Array.from(rows, (r) => r.label),
      lines: Int32Array.from(rows, (r) => r.line),
      source,
    };
    if (idCol !== undefined) {
      const ids = rows.map((r) => r.id!);
      const first = new Map<string, number>();
      ids.forEach((id, i) => {
        if (first.has(id)) {
          throw new DataError(
            `${at(rows[i]!.line - 1, idCol)}: id '${id}' repeats line ${first.get(id)}; add a 'member' column for ensembles`,
          );
        }
        first.set(id, rows[i]!.line);
      });
      table.ids = ids;
    }
    return table;
  }
  return groupEnsemble(rows, kind, k, source, at, labelCol, memberCol);
}

function groupEnsemble(
  rows: { line: number; label: number; scores: Float64Array; id?: string; member?: string }[],
  kind: ScoreKind,
  k: number,
  source: string,
  at: (line: number, col: number) => string,
  labelCol: number,
  memberCol: number,
): PredictionsTable {
  const exampleOf = new Map<string, number>();
  const memberOf = new Map<string, number>();
  const ids: string[] = [];
  const memberNames: string[] = [];
  const labels: number[] = [];
  const lines: number[] = [];
  for (const r of rows) {
    if (!exampleOf.has(r.id!)) {
      exampleOf.set(r.id!, ids.length);
      ids.push(r.id!);
      labels.push(r.label);
      lines.push(r.line);
    }
    if (!memberOf.has(r.member!)) {
      memberOf.set(r.member!, memberNames.length);
      memberNames.push(r.member!);
    }
  }
  const n = ids.length;
  const m = memberNames.length;
  const data = new Float64Array(m * n * k);
  const filledAt = new Int32Array(m * n); // line of the row that filled (member, example), 0 if none
  for (const r of rows) {
    const i = exampleOf.get(r.id!)!;
    const j = memberOf.get(r.member!)!;
    if (filledAt[j * n + i]! !== 0) {
      throw new DataError(
        `${at(r.line - 1, memberCol)}: example '${r.id}' already has member '${r.member}' at line ${filledAt[j * n + i]}`,
      );
    }
    if (r.label !== labels[i]) {
      throw new DataError(
        `${at(r.line - 1, labelCol)}: example '${r.id}' has label ${r.label} here but ${labels[i]} at line ${lines[i]}`,
      );
    }
    filledAt[j * n + i] = r.line;
    data.set(r.scores, (j * n + i) * k);
  }
  for (let i = 0; i < n; i++) {
    const missing = memberNames.filter((_, j) => filledAt[j * n + i] === 0);
    if (missing.length > 0) {
      throw new DataError(
        `${source} line ${lines[i]}: example '${ids[i]}' is missing member(s) ${missing.map((s) => `'${s}'`).join(', ')} ` +
          `(every example needs all ${m} members: ${memberNames.join(', ')})`,
      );
    }
  }
  return {
    kind,
    scores: { data, n, k, m },
    labels: Int32Array.from(labels),
    ids,
    memberNames,
    lines: Int32Array.from(lines),
    source,
  };
}

/**
 * Predictions as CSV in the format `parsePredictionsCsv` reads. Ensembles (m set) get `id` and
 * `member` columns; ids default to the example index and member names to the member index.
 */
export function formatPredictionsCsv(
  scores: ClassScores,
  labels: ArrayLike<number>,
  opts: { kind?: ScoreKind; ids?: readonly string[]; memberNames?: readonly string[] } = {},
): string {
  const kind = opts.kind ?? 'logits';
  const { n, k } = scores;
  const ensemble = scores.m !== undefined;
  const m = scores.m ?? 1;
  const prefix = kind === 'logits' ? 'logit' : 'p';
  const header = [
    ...(ensemble ? ['id', 'member'] : []),
    'label',
    ...Array.from({ length: k }, (_, c) => `${prefix}${c}`),
  ];
  for (const name of [...(opts.ids ?? []), ...(opts.memberNames ?? [])]) {
    if (/[,"\r\n]/.test(name) || name.trim() !== name || name === '') {
      throw new UsageError(
        `id or member name '${name}' must be non-empty without commas, quotes, newlines or edge spaces`,
      );
    }
  }
  const records: (string | number)[][] = [header];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const row: (string | number)[] = [];
      if (ensemble) row.push(opts.ids?.[i] ?? String(i), opts.memberNames?.[j] ?? String(j));
      row.push(labels[i]!);
      for (let c = 0; c < k; c++) row.push(scores.data[(j * n + i) * k + c]!);
      records.push(row);
    }
  }
  return stringify(records);
}
