/**
 * The predictions CSV that `vmoe metrics` reads and the harness writes: a header with `label` and
 * either `logit0..logit{K-1}` or `p0..p{K-1}`; ensembles add `id` and `member` columns, one row per
 * (example, member). Read through csv-parse (data/csv-records.ts): RFC 4180 quoting, a UTF-8 BOM, LF / CRLF / CR
 * line endings, blank lines skipped; files streamed. Every error names the source, the 1-based line and column,
 * and the column's name.
 */
import { stringify } from 'csv-stringify/sync';
import type { ClassScores } from './types.js';
import { type CsvSink, growableFloat64, growableInt32, readCsvFile, readCsvText } from '../data/csv-records.js';
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
 * Builds a `PredictionsTable` record by record (the `CsvSink` of `readCsvText` / `readCsvFile`): scores, labels
 * and lines go into growable typed arrays, ids and member names into maps, so memory grows with the numbers
 * held, not with the file's text.
 */
class PredictionsSink implements CsvSink<PredictionsTable> {
  private columns: string[] = [];
  private headerLine = 0;
  private kind: ScoreKind = 'logits';
  private k = 0;
  private colOfClass: number[] = [];
  private labelCol = 0;
  private idCol: number | undefined;
  private memberCol: number | undefined;
  private readonly tolerance: number;
  private readonly minLabel: number;
  // one entry per row
  private readonly scores = growableFloat64();
  private readonly labels = growableInt32();
  private readonly lines = growableInt32();
  // id → first line (single model with an id column); id → example index and member → index (ensembles)
  private readonly idLine = new Map<string, number>();
  private readonly exampleOf = new Map<string, number>();
  private readonly memberOf = new Map<string, number>();
  private readonly rowExample = growableInt32();
  private readonly rowMember = growableInt32();

  constructor(
    private readonly source: string,
    opts: ParseOptions,
  ) {
    this.tolerance = opts.probSumTolerance ?? 1e-3;
    this.minLabel = opts.allowUnknownLabel ? -1 : 0;
  }

  private at(line: number, col: number): string {
    return `${this.source} line ${line}, column ${col + 1} (${this.columns[col] ?? '?'})`;
  }

  header(header: string[], line: number): void {
    const source = this.source;
    this.columns = header;
    this.headerLine = line;
    const seen = new Map<string, number>();
    header.forEach((h, c) => {
      if (seen.has(h))
        throw new DataError(`${this.at(line, c)}: duplicate column '${h}' (first at column ${seen.get(h)! + 1})`);
      seen.set(h, c);
    });
    const labelCol = seen.get('label');
    if (labelCol === undefined) throw new DataError(`${source} line ${line}: missing column 'label'`);
    this.labelCol = labelCol;
    this.idCol = seen.get('id');
    this.memberCol = seen.get('member');
    if (this.memberCol !== undefined && this.idCol === undefined) {
      throw new DataError(`${source} line ${line}: a 'member' column needs an 'id' column naming each example`);
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
          `${this.at(line, c)}: unknown column '${h}'; expected label, logit0..logit{K-1} or p0..p{K-1}, id, member`,
        );
      }
    });
    if (logitCols.size > 0 && probCols.size > 0) {
      throw new DataError(`${source} line ${line}: has both logit and p columns; give one kind only`);
    }
    this.kind = logitCols.size > 0 ? 'logits' : 'probs';
    const scoreCols = this.kind === 'logits' ? logitCols : probCols;
    const prefix = this.kind === 'logits' ? 'logit' : 'p';
    const k = scoreCols.size;
    if (k === 0)
      throw new DataError(`${source} line ${line}: no score columns; expected logit0..logit{K-1} or p0..p{K-1}`);
    for (let c = 0; c < k; c++) {
      if (!scoreCols.has(c)) {
        throw new DataError(
          `${source} line ${line}: column '${prefix}${c}' is missing (found ${k} ${prefix} columns, expected ${prefix}0..${prefix}${k - 1})`,
        );
      }
    }
    this.k = k;
    this.colOfClass = Array.from({ length: k }, (_, c) => scoreCols.get(c)!);
  }

  row(cells: string[], line: number): void {
    const { k, columns, labelCol, tolerance } = this;
    if (cells.length !== columns.length) {
      throw new DataError(
        `${this.source} line ${line}: ${cells.length} cells, but the header has ${columns.length} columns`,
      );
    }
    const labelText = cells[labelCol]!;
    const label = Number(labelText);
    if (!INTEGER.test(labelText) || label < this.minLabel || label >= k) {
      throw new DataError(
        `${this.at(line, labelCol)}: '${labelText}' is not a class index in ${this.minLabel === -1 ? '{−1} ∪ ' : ''}[0, ${k})`,
      );
    }
    let sum = 0;
    for (let c = 0; c < k; c++) {
      const col = this.colOfClass[c]!;
      const t = cells[col]!;
      const v = Number(t);
      if (!Number.isFinite(v) || !DECIMAL.test(t)) {
        if (NON_FINITE.test(t))
          throw new DataError(`${this.at(line, col)}: '${t}' is not finite; NaN and Inf are not allowed`);
        if (!DECIMAL.test(t)) throw new DataError(`${this.at(line, col)}: '${t}' is not a decimal number`);
        throw new DataError(`${this.at(line, col)}: '${t}' overflows to a non-finite number`);
      }
      if (this.kind === 'probs' && (v < 0 || v > 1 + tolerance)) {
        throw new DataError(`${this.at(line, col)}: probability ${t} is outside [0, 1]`);
      }
      this.scores.push(v);
      sum += v;
    }
    if (this.kind === 'probs' && Math.abs(sum - 1) > tolerance) {
      throw new DataError(
        `${this.source} line ${line}, columns ${this.colOfClass[0]! + 1}..${this.colOfClass[k - 1]! + 1} (p0..p${k - 1}): ` +
          `probabilities sum to ${sum}, not 1 (tolerance ${tolerance})`,
      );
    }
    this.labels.push(label);
    this.lines.push(line);
    const { idCol, memberCol } = this;
    if (idCol === undefined) return;
    const id = cells[idCol]!;
    if (id === '') throw new DataError(`${this.at(line, idCol)}: empty id`);
    if (memberCol === undefined) {
      const first = this.idLine.get(id);
      if (first !== undefined) {
        throw new DataError(
          `${this.at(line, idCol)}: id '${id}' repeats line ${first}; add a 'member' column for ensembles`,
        );
      }
      this.idLine.set(id, line);
      return;
    }
    const member = cells[memberCol]!;
    if (member === '') throw new DataError(`${this.at(line, memberCol)}: empty member`);
    let i = this.exampleOf.get(id);
    if (i === undefined) this.exampleOf.set(id, (i = this.exampleOf.size));
    let j = this.memberOf.get(member);
    if (j === undefined) this.memberOf.set(member, (j = this.memberOf.size));
    this.rowExample.push(i);
    this.rowMember.push(j);
  }

  finish(): PredictionsTable {
    const { source, kind, k } = this;
    if (this.headerLine === 0)
      throw new DataError(`${source}: the file is empty; expected a header such as 'label,logit0,logit1'`);
    if (this.labels.length === 0) throw new DataError(`${source}: no data rows after the header`);
    if (this.memberCol !== undefined) return this.groupEnsemble();
    const n = this.labels.length;
    const table: PredictionsTable = {
      kind,
      scores: { data: this.scores.toArray(), n, k },
      labels: this.labels.toArray(),
      lines: this.lines.toArray(),
      source,
    };
    if (this.idCol !== undefined) table.ids = [...this.idLine.keys()];
    return table;
  }

  /** Ensemble rows, in any order, placed at (member j, example i); every example needs every member once. */
  private groupEnsemble(): PredictionsTable {
    const { source, kind, k, labelCol, memberCol } = this;
    const ids = [...this.exampleOf.keys()];
    const memberNames = [...this.memberOf.keys()];
    const n = ids.length;
    const m = memberNames.length;
    const rows = this.labels.length;
    const labels = new Int32Array(n);
    const lines = new Int32Array(n); // line of each example's first row
    const data = new Float64Array(m * n * k);
    const filledAt = new Int32Array(m * n); // line of the row that filled (member, example), 0 if none
    for (let r = 0; r < rows; r++) {
      const i = this.rowExample.get(r);
      const j = this.rowMember.get(r);
      const line = this.lines.get(r);
      const label = this.labels.get(r);
      if (lines[i] === 0) {
        lines[i] = line;
        labels[i] = label;
      }
      if (filledAt[j * n + i]! !== 0) {
        throw new DataError(
          `${this.at(line, memberCol!)}: example '${ids[i]}' already has member '${memberNames[j]}' at line ${filledAt[j * n + i]}`,
        );
      }
      if (label !== labels[i]) {
        throw new DataError(
          `${this.at(line, labelCol)}: example '${ids[i]}' has label ${label} here but ${labels[i]} at line ${lines[i]}`,
        );
      }
      filledAt[j * n + i] = line;
      for (let c = 0; c < k; c++) data[(j * n + i) * k + c] = this.scores.get(r * k + c);
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
    return { kind, scores: { data, n, k, m }, labels, ids, memberNames, lines, source };
  }
}

/**
 * Parse a predictions CSV (`label,logit0,…` or `label,prob0,…`, optionally with `id` and `member` columns for
 * ensembles) given as a string into a `PredictionsTable`; `source` names it in error messages. Files are read
 * with `readPredictionsCsv`, which streams them through the same parser.
 */
export function parsePredictionsCsv(text: string, source = '<string>', opts: ParseOptions = {}): PredictionsTable {
  return readCsvText(text, source, new PredictionsSink(source, opts));
}

/**
 * Read a predictions CSV file (see `parsePredictionsCsv`), streamed from disk: memory holds the scores (8 bytes a
 * number), never the file's text, so files of any size are read.
 */
export function readPredictionsCsv(file: string, opts: ParseOptions = {}): Promise<PredictionsTable> {
  return readCsvFile(file, 'predictions', new PredictionsSink(file, opts));
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
