/**
 * CSV records through csv-parse (the sibling of csv-stringify), for the toolkit's CSV inputs: predictions
 * (metrics/predictions-csv.ts) and features (fewshot/features-csv.ts).
 *
 * Accepted: RFC 4180 quoting (`"label","logit0"` as pandas writes with quoting; `""` inside quotes), a UTF-8 BOM,
 * LF, CRLF and CR-only line endings, also mixed in one file (a file pasted together from several tools), blank
 * lines (skipped), spaces
 * around unquoted cells (trimmed). A reader gives each record to a `CsvSink` as soon as csv-parse has it, so a
 * file is streamed from disk in bounded memory (`readCsvFile`); a string goes through the same sink
 * (`readCsvText`). The sink builds its table in growable typed arrays (`GrowableArray`), never one object per row.
 *
 * Every error is a DataError naming the source and the 1-based line: csv-parse's own (an unclosed quote, a quote
 * inside an unquoted cell, a line longer than `MAX_RECORD_CHARS`), the sink's (which also name the column), and
 * a file that cannot be read.
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { CsvError, type Options, parse } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { DataError } from '../util/errors.js';

/** The longest record accepted, in characters: a binary or newline-free file stops here, not at memory's end. */
export const MAX_RECORD_CHARS = 1 << 26;

/** Receives a CSV's records in order: the first non-blank one as the header, every later non-blank one as a row. */
export interface CsvSink<T> {
  /** the header's cells, trimmed; `line` is 1-based */
  header(cells: string[], line: number): void;
  /** a row's cells, trimmed; `line` is the 1-based line where the row starts */
  row(cells: string[], line: number): void;
  /** after the last row (also when there was no header): the finished table */
  finish(): T;
}

const OPTIONS: Options = {
  bom: true,
  // ragged rows reach the sink, which names the line and the cell counts
  relax_column_count: true,
  // blank lines are skipped by the feeder, which counts them as lines
  skip_empty_lines: false,
  max_record_size: MAX_RECORD_CHARS,
  // any line ending ends a record, also several kinds in one file (CRLF first, so it is one ending, not two)
  record_delimiter: ['\r\n', '\n', '\r'],
};

/** Feeds csv-parse records to a sink: trims cells, skips blank lines, tracks each record's first line. */
class Feeder<T> {
  private line = 1;
  private headerSeen = false;
  constructor(private readonly sink: CsvSink<T>) {}

  record(cells: string[]): void {
    const line = this.line;
    let breaks = 0;
    for (let i = 0; i < cells.length; i++) {
      const c = cells[i]!;
      // a quoted cell may hold line breaks: they move the next record's line on
      if (c.includes('\n') || c.includes('\r')) breaks += c.match(/\r\n|\r|\n/g)!.length;
      cells[i] = c.trim();
    }
    this.line += 1 + breaks;
    if (cells.length === 1 && cells[0] === '') return; // a blank line
    if (this.headerSeen) this.sink.row(cells, line);
    else {
      this.headerSeen = true;
      this.sink.header(cells, line);
    }
  }
}

/** A DataError naming `source` for csv-parse's errors; the sink's DataErrors pass through unchanged. */
function asDataError(e: unknown, source: string): unknown {
  if (e instanceof CsvError) {
    const line = (e as CsvError & { lines?: number }).lines;
    const what =
      e.code === 'CSV_MAX_RECORD_SIZE'
        ? `a line longer than ${MAX_RECORD_CHARS} characters; is this a CSV file?`
        : `malformed CSV: ${e.message}`;
    return new DataError(`${source}${line === undefined ? '' : ` line ${line}`}: ${what}`, { cause: e });
  }
  return e;
}

/** Parses CSV `text` into `sink` (the same sink as `readCsvFile`); `source` names it in errors. */
export function readCsvText<T>(text: string, source: string, sink: CsvSink<T>): T {
  const feeder = new Feeder(sink);
  try {
    // on_record hands each record to the sink and keeps none
    parseSync(text, {
      ...OPTIONS,
      on_record: (cells: string[]) => {
        feeder.record(cells);
        return null;
      },
    });
  } catch (e) {
    throw asDataError(e, source);
  }
  return sink.finish();
}

/**
 * Streams the CSV file `file` into `sink` in bounded memory (1 MiB chunks); `what` names the kind of file when it
 * cannot be read ("cannot read predictions file x.csv: …").
 */
export async function readCsvFile<T>(file: string, what: string, sink: CsvSink<T>): Promise<T> {
  const feeder = new Feeder(sink);
  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  let readError: Error | undefined;
  input.on('error', (e) => {
    readError = e;
  });
  // the sink's own error, kept: pipeline may reject with the AbortError of the streams it then tears down
  let sinkError: unknown;
  try {
    await pipeline(input, parse(OPTIONS), async (records: AsyncIterable<string[]>) => {
      for await (const cells of records) {
        try {
          feeder.record(cells);
        } catch (e) {
          sinkError = e;
          throw e;
        }
      }
    });
  } catch (e) {
    if (sinkError !== undefined) throw sinkError;
    if (readError !== undefined) throw new DataError(`cannot read ${what} file ${file}: ${readError.message}`);
    throw asDataError(e, file);
  }
  return sink.finish();
}

type TypedArray = Float64Array | Int32Array;

const CHUNK_BITS = 20;
const CHUNK = 1 << CHUNK_BITS;

/**
 * An append-only list of numbers in typed-array chunks of 2^20 values: no copy while it grows, and `toArray()` makes
 * the one array of the exact size (letting each chunk go as it is copied), never the 3n of a doubling array.
 */
export class GrowableArray<A extends TypedArray> {
  private readonly chunks: A[] = [];
  private last: A | undefined;
  private inLast = CHUNK;
  length = 0;
  constructor(private readonly make: (length: number) => A) {}

  push(v: number): void {
    if (this.inLast === CHUNK) {
      this.last = this.make(CHUNK);
      this.chunks.push(this.last);
      this.inLast = 0;
    }
    this.last![this.inLast++] = v;
    this.length++;
  }

  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS]![i & (CHUNK - 1)]!;
  }

  /** The values in one array of their own length; the list is left empty (its chunks dropped). */
  toArray(): A {
    // A large typed array's pages become resident as they are written; each chunk is let go once copied, so
    // the collector can return it while the copy goes on, instead of holding the list twice at the end.
    const out = this.make(this.length);
    const chunks = this.chunks.splice(0);
    for (let c = 0; c < chunks.length; c++) {
      const chunk = chunks[c]!;
      const n = Math.min(CHUNK, this.length - c * CHUNK);
      out.set(n === CHUNK ? chunk : chunk.subarray(0, n), c * CHUNK);
      (chunks as (A | undefined)[])[c] = undefined;
    }
    this.last = undefined;
    this.inLast = CHUNK;
    this.length = 0;
    return out;
  }
}

/** A growable Float64Array. */
export const growableFloat64 = () => new GrowableArray((n) => new Float64Array(n));
/** A growable Int32Array. */
export const growableInt32 = () => new GrowableArray((n) => new Int32Array(n));
