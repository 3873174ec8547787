import { describe, expect, it } from 'vitest';
import { parseFeaturesCsv } from '../../src/fewshot/features-csv.js';

describe('parseFeaturesCsv', () => {
  it('parses header, rows, CRLF, blank lines and scientific notation', () => {
    const text = 'label,f0,f1\r\n2,1.5,-3e-2\r\n\r\n0, .25 ,+4\n';
    const r = parseFeaturesCsv(text, 'x.csv');
    expect(r.x).toEqual({ rows: 2, cols: 2, data: new Float64Array([1.5, -0.03, 0.25, 4]) });
    expect(Array.from(r.y)).toEqual([2, 0]);
    expect(r.numClasses).toBe(3);
    expect(r.distinctClasses).toBe(2);
    expect(Array.from(r.lines)).toEqual([2, 4]);
  });

  it.each([
    ['"label","f0"\n"1","2.5"\n', 'quoted cells'],
    ['\uFEFFlabel,f0\r\n1,2.5\r\n', 'a BOM and CRLF'],
    ['label,f0\r\r1,2.5\r', 'CR-only line endings'],
  ])('reads %j (%s)', (text) => {
    const r = parseFeaturesCsv(text, 'x.csv');
    expect(Array.from(r.x.data)).toEqual([2.5]);
    expect(Array.from(r.y)).toEqual([1]);
    expect(r.lines[0]).toBe(text.includes('\r\r') ? 3 : 2);
  });

  it.each([
    ['', /x\.csv: the file is empty/],
    ['label,f0\n0,"1', /x\.csv line 2: malformed CSV: Quote Not Closed/],
    ['y,f0\n0,1', /x\.csv line 1, column 1 \(y\): the first header cell must be 'label'/],
    ['label\n0', /line 1: the header has no feature columns/],
    ['label,f0,f2\n0,1,2', /line 1, column 3 \(f2\): expected header cell 'f1', got 'f2'/],
    ['label,f0,f1\n0,1,2\n1,2', /x\.csv line 3: 2 cells, the header has 3/],
    ['label,f0,f1\n0,1,2\n1,2,abc', /x\.csv line 3, column 3 \(f1\): 'abc' is not a finite decimal number/],
    ['label,f0,f1\n0,,2', /line 2, column 2 \(f0\): '' is not a finite decimal number/],
    ['label,f0,f1\n0,1,Infinity', /line 2, column 3 \(f1\): 'Infinity'/],
    ['label,f0,f1\n0,0x1f,2', /line 2, column 2 \(f0\): '0x1f'/],
    ['label,f0\n1.5,2', /line 2, column 1 \(label\): label '1.5' is not a non-negative integer/],
    ['label,f0\n-1,2', /line 2, column 1 \(label\): label '-1'/],
    ['label,f0\n\n', /x\.csv: no data rows after the header/],
  ])('%j → clear error', (text, message) => {
    expect(() => parseFeaturesCsv(text, 'x.csv')).toThrow(message);
  });
});
