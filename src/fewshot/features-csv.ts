/**
 * Labelled feature files for `vmoe probe`: a header `label,f0,f1,…,f{D-1}` then one example per
 * line, an integer class index ≥ 0 and D decimal numbers. Read through csv-parse (data/csv-records.ts):
 * RFC 4180 quoting, a UTF-8 BOM, LF / CRLF / CR line endings, blank lines skipped; files are streamed.
 * Errors (DataError: the CLI prints the message and exits 2) name the source, the 1-based line and
 * column, and the column's name.
 */
import { type CsvSink, growableFloat64, growableInt32, readCsvFile, readCsvText } from '../data/csv-records.js';
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

/** Builds `LabelledFeatures` record by record, the values in growable typed arrays. */
class FeaturesSink implements CsvSink<LabelledFeatures> {
  private columns: string[] = [];
  private dim = 0;
  private readonly values = growableFloat64();
  private readonly labels = growableInt32();
  private readonly lines = growableInt32();
  private readonly classes = new Set<number>();
  constructor(private readonly source: string) {}

  private where(line: number, col: number): string {
    return `${this.source} line ${line}, column ${col + 1} (${this.columns[col] ?? '?'})`;
  }

  header(header: string[], line: number): void {
    this.columns = header;
    if (header[0] !== 'label') {
      throw new DataError(`${this.where(line, 0)}: the first header cell must be 'label', got '${header[0]}'`);
    }
    const dim = header.length - 1;
    if (dim < 1)
      throw new DataError(`${this.source} line ${line}: the header has no feature columns; expected 'label,f0,f1,…'`);
    for (let j = 1; j <= dim; j++) {
      if (header[j] !== `f${j - 1}`) {
        throw new DataError(`${this.where(line, j)}: expected header cell 'f${j - 1}', got '${header[j]}'`);
      }
    }
    this.dim = dim;
  }

  row(cells: string[], line: number): void {
    const dim = this.dim;
    if (cells.length !== dim + 1) {
      throw new DataError(
        `${this.source} line ${line}: ${cells.length} cells, the header has ${dim + 1} (label + ${dim} features)`,
      );
    }
    const label = cells[0]!;
    if (!INTEGER.test(label)) {
      throw new DataError(`${this.where(line, 0)}: label '${label}' is not a non-negative integer class index`);
    }
    for (let j = 1; j <= dim; j++) {
      const cell = cells[j]!;
      const v = Number(cell);
      if (!Number.isFinite(v) || !DECIMAL.test(cell)) {
        throw new DataError(`${this.where(line, j)}: '${cell}' is not a finite decimal number`);
      }
      this.values.push(v);
    }
    this.labels.push(Number(label));
    this.classes.add(Number(label));
    this.lines.push(line);
  }

  finish(): LabelledFeatures {
    const source = this.source;
    if (this.dim === 0) throw new DataError(`${source}: the file is empty; expected a header 'label,f0,f1,…'`);
    const rows = this.labels.length;
    if (rows === 0) throw new DataError(`${source}: no data rows after the header`);
    return {
      x: { rows, cols: this.dim, data: this.values.toArray() },
      y: this.labels.toArray(),
      numClasses: Math.max(...this.classes) + 1,
      distinctClasses: this.classes.size,
      lines: this.lines.toArray(),
      source,
    };
  }
}

/**
 * Parse a features CSV (`label,f0,…,f{D-1}`, one example per line) given as a string into `LabelledFeatures`;
 * errors name `source`, the line and the column.
 */
export function parseFeaturesCsv(text: string, source = '<string>'): LabelledFeatures {
  return readCsvText(text, source, new FeaturesSink(source));
}

/** Read a features CSV file (see `parseFeaturesCsv`), streamed from disk. */
export function readFeaturesCsv(path: string): Promise<LabelledFeatures> {
  return readCsvFile(path, 'features', new FeaturesSink(path));
}
