import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatPredictionsCsv, parsePredictionsCsv, readPredictionsCsv } from '../../src/metrics/predictions-csv.js';
import { Rng } from '../../src/util/rng.js';
import { randomLabels, randomLogits } from './helpers.js';

describe('parsePredictionsCsv', () => {
  it('single model, columns in any order, blank lines and CRLF', () => {
    const t = parsePredictionsCsv('logit1,label,logit0\r\n0.5,1,-1\r\n\r\n2,0,3\r\n', 'a.csv');
    expect(t.kind).toBe('logits');
    expect(t.scores).toMatchObject({ n: 2, k: 2 });
    expect(t.scores.m).toBeUndefined();
    expect(Array.from(t.scores.data)).toEqual([-1, 0.5, 3, 2]);
    expect(Array.from(t.labels)).toEqual([1, 0]);
    expect(Array.from(t.lines)).toEqual([2, 4]);
  });

  it('ensemble rows in any order land at (member j, example i)', () => {
    const text = 'id,member,label,p0,p1\nb,m2,1,0.3,0.7\na,m1,0,0.9,0.1\nb,m1,1,0.4,0.6\na,m2,0,0.8,0.2\n';
    const t = parsePredictionsCsv(text);
    expect(t.kind).toBe('probs');
    expect(t.ids).toEqual(['b', 'a']);
    expect(t.memberNames).toEqual(['m2', 'm1']);
    expect(t.scores).toMatchObject({ n: 2, k: 2, m: 2 });
    // member m2: b, a; member m1: b, a
    expect(Array.from(t.scores.data)).toEqual([0.3, 0.7, 0.8, 0.2, 0.4, 0.6, 0.9, 0.1]);
    expect(Array.from(t.labels)).toEqual([1, 0]);
  });

  it.each([
    { name: 'single model logits', m: undefined },
    { name: 'ensemble of 3', m: 3 },
  ])('round-trips formatPredictionsCsv ($name)', ({ m }) => {
    const rng = new Rng(1);
    const z = randomLogits(rng, 20, 4, m);
    const y = randomLabels(rng, 20, 4);
    const t = parsePredictionsCsv(formatPredictionsCsv(z, y));
    expect(Array.from(t.scores.data)).toEqual(Array.from(z.data));
    expect(t.scores.m).toBe(m);
    expect(Array.from(t.labels)).toEqual(Array.from(y));
  });

  it.each([
    { name: 'quoted cells (pandas QUOTE_ALL)', text: '"label","logit0","logit1"\n"1","0.5","-1"\n"0","2","3"\n' },
    { name: 'a UTF-8 BOM and CRLF', text: '\uFEFFlabel,logit0,logit1\r\n1,0.5,-1\r\n0,2,3\r\n' },
    { name: 'CR-only line endings', text: 'label,logit0,logit1\r1,0.5,-1\r\r0,2,3' },
  ])('reads $name', ({ text }) => {
    const t = parsePredictionsCsv(text, 'q.csv');
    expect(Array.from(t.scores.data)).toEqual([0.5, -1, 2, 3]);
    expect(Array.from(t.labels)).toEqual([1, 0]);
    expect(t.lines[1]).toBe(text.includes('\r\r') ? 4 : 3);
  });

  it('a quoted id holding a line break moves the next lines on', () => {
    expect(() => parsePredictionsCsv('id,label,logit0\n"a\r\nb",0,1\nc,0,x\n', 'q.csv')).toThrow(
      /q\.csv line 4, column 3 \(logit0\): 'x'/,
    );
  });

  it('readPredictionsCsv streams a file through the same parser', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-pcsv-'));
    const rng = new Rng(2);
    const z = randomLogits(rng, 3000, 3);
    const y = randomLabels(rng, 3000, 3);
    const file = path.join(dir, 'p.csv');
    fs.writeFileSync(file, formatPredictionsCsv(z, y));
    const t = await readPredictionsCsv(file);
    expect(Array.from(t.scores.data)).toEqual(Array.from(z.data));
    expect(Array.from(t.labels)).toEqual(Array.from(y));
    expect(t.lines[2999]).toBe(3001);
    await expect(readPredictionsCsv(path.join(dir, 'nope.csv'))).rejects.toThrow(/cannot read predictions file .*nope/);
    fs.writeFileSync(file, 'label,logit0\n0,1\n0,"2\n');
    await expect(readPredictionsCsv(file)).rejects.toThrow(/p\.csv line 3: malformed CSV: Quote Not Closed/);
  });

  it('OOD files may use label −1 when allowed', () => {
    expect(
      Array.from(parsePredictionsCsv('label,logit0,logit1\n-1,0,1\n', 'o.csv', { allowUnknownLabel: true }).labels),
    ).toEqual([-1]);
  });
});

describe('parsePredictionsCsv errors name the line and column', () => {
  it.each([
    { name: 'empty file', text: '\n\n', msg: /f\.csv: the file is empty/ },
    { name: 'no label column', text: 'logit0,logit1\n1,2\n', msg: /line 1: missing column 'label'/ },
    { name: 'gap in class columns', text: 'label,logit0,logit2\n0,1,2\n', msg: /column 'logit1' is missing/ },
    { name: 'both kinds', text: 'label,logit0,p0\n0,1,1\n', msg: /both logit and p columns/ },
    {
      name: 'unknown column',
      text: 'label,logit0,score\n0,1,1\n',
      msg: /line 1, column 3 \(score\): unknown column 'score'/,
    },
    { name: 'duplicate column', text: 'label,logit0,logit0\n0,1,1\n', msg: /column 3 \(logit0\): duplicate column/ },
    { name: 'no data', text: 'label,logit0\n', msg: /no data rows/ },
    {
      name: 'ragged row',
      text: 'label,logit0,logit1\n0,1,2\n1,2\n',
      msg: /line 3: 2 cells, but the header has 3 columns/,
    },
    {
      name: 'non-numeric',
      text: 'label,logit0,logit1\n0,1,x\n',
      msg: /line 2, column 3 \(logit1\): 'x' is not a decimal number/,
    },
    { name: 'NaN', text: 'label,logit0,logit1\n0,NaN,1\n', msg: /line 2, column 2 \(logit0\): 'NaN' is not finite/ },
    {
      name: 'Inf',
      text: 'label,logit0,logit1\n0,1,-Infinity\n',
      msg: /line 2, column 3 \(logit1\): '-Infinity' is not finite/,
    },
    { name: 'overflow', text: 'label,logit0,logit1\n0,1,1e999\n', msg: /column 3 \(logit1\): '1e999' overflows/ },
    {
      name: 'label out of range',
      text: 'label,logit0,logit1\n2,1,1\n',
      msg: /line 2, column 1 \(label\): '2' is not a class index in \[0, 2\)/,
    },
    {
      name: 'label −1 in a labelled file',
      text: 'label,logit0,logit1\n-1,1,1\n',
      msg: /line 2, column 1 \(label\): '-1'/,
    },
    { name: 'fractional label', text: 'label,logit0,logit1\n0.5,1,1\n', msg: /'0\.5' is not a class index/ },
    {
      name: 'probabilities not summing to 1',
      text: 'label,p0,p1\n0,0.5,0.2\n0,0.5,0.5\n',
      msg: /line 2, columns 2\.\.3 \(p0\.\.p1\): probabilities sum to 0\.7/,
    },
    {
      name: 'negative probability',
      text: 'label,p0,p1\n0,-0.5,1.5\n',
      msg: /column 2 \(p0\): probability -0\.5 is outside \[0, 1\]/,
    },
    { name: 'member without id', text: 'member,label,logit0\n0,0,1\n', msg: /'member' column needs an 'id' column/ },
    {
      name: 'missing member',
      text: 'id,member,label,logit0,logit1\na,0,0,1,2\na,1,0,1,2\nb,0,1,1,2\n',
      msg: /line 4: example 'b' is missing member\(s\) '1'/,
    },
    {
      name: 'repeated member',
      text: 'id,member,label,logit0,logit1\na,0,0,1,2\na,0,0,1,2\n',
      msg: /line 3, column 2 \(member\): example 'a' already has member '0' at line 2/,
    },
    {
      name: 'label differs across members',
      text: 'id,member,label,logit0,logit1\na,0,0,1,2\na,1,1,1,2\n',
      msg: /line 3, column 3 \(label\): example 'a' has label 1 here but 0 at line 2/,
    },
    {
      name: 'repeated id without member column',
      text: 'id,label,logit0\na,0,1\na,0,1\n',
      msg: /line 3, column 1 \(id\): id 'a' repeats line 2/,
    },
    { name: 'empty id', text: 'id,member,label,logit0\n,0,0,1\n', msg: /line 2, column 1 \(id\): empty id/ },
    {
      name: 'quote inside a cell',
      text: 'label,logit0\n0,1"2\n',
      msg: /f\.csv line 2: malformed CSV: Invalid Opening Quote/,
    },
    { name: 'unclosed quote', text: 'label,logit0\n0,"1\n', msg: /f\.csv line 2: malformed CSV: Quote Not Closed/ },
  ])('$name', ({ text, msg }) => {
    expect(() => parsePredictionsCsv(text, 'f.csv')).toThrow(msg);
  });

  it('errors are DataErrors', () => {
    try {
      parsePredictionsCsv('x\n');
    } catch (e) {
      expect((e as Error).name).toBe('DataError');
    }
    expect.assertions(1);
  });
});
