/**
 * Labelled feature files for `vmoe probe`: a header `label,f0,f1,…,f{D-1}` then one example per
 * line, an integer class index ≥ 0 and D decimal numbers. No quoting; blank lines are skipped;
 * CRLF is accepted. Errors (DataError: the CLI prints the message and exits 2) name the source,
 * the 1-based line and column, and the column's name.
 */
import { readFile } from 'node:fs/promises';
import { DataError } from '../util/errors.js';
import type { Features } from './features.js';

/** A parsed features CSV: features (N, D), labels (N), the class counts, and each row's source line. */
export interface LabelledFeatures {
  x: Features;
  y: Int32Array;
  /** 1 + the largest label present. */
  numClasses: number;
  /** Number of distinct labels present. */
  distinctClasses: number;
  /** 1-based line number of each row in the source, for error messages. */
  lines: Int32Array;
  source: string;
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^\+?\d+$/;

/**
 * Parse a features CSV (`label,f0,…,f{D-1}`, one example per line) into `LabelledFeatures`; errors name `source`,
 * the line and the column.
 */
export function parseFeaturesCsv(text: string, source = '<string>'): LabelledFeatures {
  const lines = text.split(/\r?\n/);
  let headerLine = -1;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '') {
      headerLine = i;
      break;
    }
  }
  if (headerLine < 0) throw new DataError(`${source}: the file is empty; expected a header 'label,f0,f1,…'`);
  const header = lines[headerLine]!.split(',').map((h) => h.trim());
  const where = (line: number, col: number): string =>
    `${source} line ${line + 1}, column ${col + 1} (${header[col] ?? '?'})`;
  if (header[0] !== 'label') {
    throw new DataError(`${where(headerLine, 0)}: the first header cell must be 'label', got '${header[0]}'`);
  }
  const dim = header.length - 1;
  if (dim < 1)
    throw new DataError(
      `${source} line ${headerLine + 1}: the header has no feature columns; expected 'label,f0,f1,…'`,
    );
  for (let j = 1; j <= dim; j++) {
    if (header[j] !== `f${j - 1}`) {
      throw new DataError(`${where(headerLine, j)}: expected header cell 'f${j - 1}', got '${header[j]}'`);
    }
  }

  const labels: number[] = [];
  const rowLines: number[] = [];
  const values: number[] = [];
  for (let i = headerLine + 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const cells = line.split(',');
    if (cells.length !== dim + 1) {
      throw new DataError(
        `${source} line ${i + 1}: ${cells.length} cells, the header has ${dim + 1} (label + ${dim} features)`,
      );
    }
    const label = cells[0]!.trim();
    if (!INTEGER.test(label)) {
      throw new DataError(`${where(i, 0)}: label '${label}' is not a non-negative integer class index`);
    }
    labels.push(Number(label));
    rowLines.push(i + 1);
    for (let j = 1; j <= dim; j++) {
      const cell = cells[j]!.trim();
      const v = Number(cell);
      if (!DECIMAL.test(cell) || !Number.isFinite(v)) {
        throw new DataError(`${where(i, j)}: '${cell}' is not a finite decimal number`);
      }
      values.push(v);
    }
  }
  if (labels.length === 0) throw new DataError(`${source}: no data rows after the header`);
  const numClasses = labels.reduce((a, b) => Math.max(a, b), 0) + 1;
  return {
    x: { rows: labels.length, cols: dim, data: Float64Array.from(values) },
    y: Int32Array.from(labels),
    numClasses,
    distinctClasses: new Set(labels).size,
    lines: Int32Array.from(rowLines),
    source,
  };
}

/** Read and parse a features CSV file (see `parseFeaturesCsv`). */
export async function readFeaturesCsv(path: string): Promise<LabelledFeatures> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read features file ${path}: ${(e as Error).message}`);
  }
  return parseFeaturesCsv(text, path);
}
