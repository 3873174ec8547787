/**
 * Inputs the first reliability round left open: CSV files whose line endings are mixed (LF, CRLF and CR in one
 * file), and config JSON whose error V8 reports without a position (an unexpected token, a text that ends early).
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { jsonErrorOffset } from '../../src/config/json-offset.js';
import { type CsvSink, readCsvFile, readCsvText } from '../../src/data/csv-records.js';
import { Rng } from '../../src/util/rng.js';
import { ensureBuilt, refusal, tmpDir, vmoe } from './helpers.js';

beforeAll(ensureBuilt);

const dir = tmpDir('mixed');
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

/** A sink that keeps every record with its line. */
const collect = (): CsvSink<{ header: string[]; rows: { cells: string[]; line: number }[] }> => {
  const out = { header: [] as string[], rows: [] as { cells: string[]; line: number }[] };
  return {
    header: (cells) => (out.header = cells),
    row: (cells, line) => out.rows.push({ cells, line }),
    finish: () => out,
  };
};

describe('CSV with mixed line endings', () => {
  const rng = new Rng(11);
  const endings = ['\n', '\r\n', '\r'];
  // 3000 rows, each ended by a random one of LF / CRLF / CR, with a quoted cell holding a line break now and then
  const rows = Array.from({ length: 3000 }, (_, i) => [String(i % 10), (i * 0.5).toFixed(1), `"c${i}"`]);
  const lineEnds = rows.map(() => endings[Math.floor(rng.uniform() * 3)]!);
  const text = ['label,x,name', ...rows.map((r) => r.join(','))]
    .map((l, i) => l + (lineEnds[i - 1] ?? '\r\n'))
    .join('');

  it('every row is read, with its own line number, from a string and from a file streamed in chunks', async () => {
    const fromText = readCsvText(text, 'mixed', collect());
    const f = file('mixed.csv', text);
    const fromFile = await readCsvFile(f, 'test', collect());
    for (const got of [fromText, fromFile]) {
      expect(got.header).toEqual(['label', 'x', 'name']);
      expect(got.rows.map((r) => r.cells)).toEqual(rows.map((r) => [r[0], r[1], r[2]!.slice(1, -1)]));
      expect(got.rows.map((r) => r.line)).toEqual(rows.map((_, i) => i + 2)); // one line per row, whatever its ending
    }
  });

  it('a quoted cell with a line break of another kind moves the next lines on by one', () => {
    const got = readCsvText('a,b\n1,"x\r\ny"\r2,z\r\n3,w\n', 'q', collect());
    expect(got.rows).toEqual([
      { cells: ['1', 'x\r\ny'], line: 2 },
      { cells: ['2', 'z'], line: 4 },
      { cells: ['3', 'w'], line: 5 },
    ]);
  });

  it('vmoe metrics reads a predictions file with LF, CRLF and CR mixed as the same file with LF', () => {
    const lf = vmoe('metrics', '--input', file('p-lf.csv', 'label,logit0,logit1\n0,2,1\n1,0,3\n1,4,0\n0,1,1.5\n'));
    const mixed = vmoe(
      'metrics',
      '--input',
      file('p-mixed.csv', 'label,logit0,logit1\r\n0,2,1\n1,0,3\r1,4,0\r\n0,1,1.5\r'),
    );
    expect(lf.status, lf.stderr).toBe(0);
    expect(mixed.status, mixed.stderr).toBe(0);
    const report = (stdout: string) => {
      const { source: _, ...rest } = JSON.parse(stdout) as Record<string, unknown>;
      return rest;
    };
    expect(report(mixed.stdout)).toEqual(report(lf.stdout));
    expect(JSON.parse(mixed.stdout)).toMatchObject({ n: 4, k: 2, accuracy: 0.5 });
  });

  it('a bad cell after mixed line endings is one line naming its true line and column', () => {
    const f = file('p-mixed-bad.csv', 'label,logit0,logit1\r\n0,2,1\r1,0,3\n\r\n1,4,oops\r0,1,1\n');
    const error = refusal(vmoe('metrics', '--input', f));
    // lines: 1 header, 2 "0,2,1", 3 "1,0,3", 4 blank, 5 the bad row
    expect(error).toBe(`error: ${f} line 5, column 3 (logit1): 'oops' is not a decimal number`);
  });
});

describe('config JSON errors without a position from V8', () => {
  it('jsonErrorOffset agrees with JSON.parse on 5000 damaged configs: valid or not, and the position V8 gives', () => {
    const base = JSON.stringify(
      { name: 'x', model: { hidden: 16, moe: { k: 2, e: [1, 2.5, -3e2] } }, ok: true, z: null, s: 'a\\"b\u00e9' },
      null,
      2,
    );
    const rng = new Rng(5);
    const chars = '{}[]:,"\\ \n01-e.atfnux';
    let withPosition = 0;
    for (let t = 0; t < 5000; t++) {
      let s = base;
      for (let e = 0; e < 1 + Math.floor(rng.uniform() * 2); e++) {
        const p = Math.floor(rng.uniform() * s.length);
        const op = rng.uniform();
        if (op < 0.4) s = s.slice(0, p) + s.slice(p + 1);
        else if (op < 0.8) s = s.slice(0, p) + chars[Math.floor(rng.uniform() * chars.length)] + s.slice(p);
        else s = s.slice(0, p);
      }
      let message: string | null = null;
      try {
        JSON.parse(s);
      } catch (err) {
        message = (err as Error).message;
      }
      const offset = jsonErrorOffset(s);
      expect(offset === null, `${JSON.stringify(s)}: ${message}`).toBe(message === null);
      const v8 = message === null ? null : /at position (\d+)/.exec(message);
      if (v8) {
        withPosition++;
        expect(offset, `${JSON.stringify(s)}: ${message}`).toBe(Number(v8[1]));
      }
    }
    expect(withPosition).toBeGreaterThan(1000); // the comparison did happen, and often
  });

  it.each([
    ['an unexpected token', '{\n  "name": "x",\n  "train": { "steps": tru }\n}\n', 3, 26, "Unexpected token ' '"],
    ['NaN', '{\n  "optim": {\n    "lr": NaN\n  }\n}\n', 3, 11, "Unexpected token 'N'"],
    ['a text that ends early', '{\n  "name": "x",\n  "model": ', 3, 12, 'Unexpected end of JSON input'],
  ])('vmoe train --config with %s names the line and column', (_, text, line, column, reason) => {
    const config = file(`cfg-${line}-${column}.json`, text);
    const out = path.join(dir, `out-${line}-${column}`);
    const error = refusal(vmoe('train', '--config', config, '--out', out));
    expect(error).toBe(`error: invalid config: ${config}: not valid JSON at line ${line}, column ${column}: ${reason}`);
    const at = text.split('\n')[line - 1]!.slice(column - 1);
    expect(at === '' || /^[ N]/.test(at)).toBe(true); // the column points at the offending character
    expect(fs.existsSync(out)).toBe(false);
  });
});
