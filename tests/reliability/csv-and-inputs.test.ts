/**
 * Inputs of every format the toolkit reads (docs/reliability.md): CSVs as other tools write them (CR-only line
 * endings, quoted headers, a BOM) and of any size (a ~1 GB predictions file through `vmoe metrics` with a 512 MB
 * heap); truncated or corrupt IDX files, checkpoints, predictions and features CSVs and config JSON, each through
 * the CLI: exit 2, one `error:` line naming the file (and line / column / field), no stack trace, nothing printed
 * on stdout and no `--out` folder left behind.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeIdx } from '../../src/data/idx.js';
import { cli, common, ensureBuilt, refusal, root, tmpDir, vmoe } from './helpers.js';

beforeAll(ensureBuilt);

const dir = tmpDir('inputs');
function file(name: string, text: string | Uint8Array): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

/** `vmoe metrics --input <file>` as JSON. */
function metrics(input: string, ...more: string[]) {
  return vmoe('metrics', '--input', input, ...more);
}

describe('CSV as other tools write it', () => {
  const expected = { n: 3, k: 2, accuracy: 2 / 3 };
  it.each([
    ['CR-only line endings (classic Mac)', 'label,logit0,logit1\r0,2,1\r1,0,3\r\r1,4,0\r'],
    [
      'a quoted header and cells (pandas quoting=QUOTE_ALL)',
      '"label","logit0","logit1"\n"0","2","1"\n"1","0","3"\n"1","4","0"\n',
    ],
    ['a UTF-8 BOM and CRLF (Excel)', '\uFEFFlabel,logit0,logit1\r\n0,2,1\r\n1,0,3\r\n1,4,0\r\n'],
  ])('vmoe metrics reads %s', (name, text) => {
    const r = metrics(file(`ok-${name.replace(/\W+/g, '-')}.csv`, text));
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject(expected);
  });

  it('vmoe probe reads features with a BOM, quotes and CR-only line endings', () => {
    const train = file('f-train.csv', '\uFEFF"label","f0"\r0,-2\r0,-1.5\r1,2\r1,1.5\r');
    const test = file('f-test.csv', '"label","f0"\r\n"0","-1"\r\n"1","1"\r\n');
    const r = vmoe('probe', '--train', train, '--test', test, '--l2', '1');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/accuracy/);
  });
});

describe('a ~1 GB predictions CSV in bounded memory', () => {
  it('vmoe metrics with a 512 MB heap reads every row (streamed, never one string)', async (ctx) => {
    const free = fs.statfsSync(os.tmpdir());
    if (free.bavail * free.bsize < 3 * 2 ** 30) {
      console.warn(`skipped: less than 3 GB free in ${os.tmpdir()} for the 1 GB predictions file`);
      ctx.skip();
    }
    const big = tmpDir('big');
    const csv = path.join(big, 'predictions.csv');
    // 997 different rows of 10 full-precision logits (~210 bytes each), repeated to ~1 GB
    const k = 10;
    let s = 1;
    const rnd = () => ((s = (s * 16807) % 2147483647) - 1) / 2147483646;
    const pool: string[] = [];
    let correct = 0;
    for (let i = 0; i < 997; i++) {
      const logits = Array.from({ length: k }, () => (rnd() - 0.5) * 8);
      const label = Math.floor(rnd() * k);
      if (logits.indexOf(Math.max(...logits)) === label) correct++;
      pool.push(`${label},${logits.join(',')}\n`);
    }
    const chunk = pool.join('');
    const repeats = Math.ceil(1e9 / chunk.length);
    const out = fs.createWriteStream(csv);
    out.write(`label,${Array.from({ length: k }, (_, c) => `logit${c}`).join(',')}\n`);
    for (let r = 0; r < repeats; r++) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
    await new Promise<void>((resolve) => out.end(() => resolve()));
    const bytes = fs.statSync(csv).size;
    expect(bytes).toBeGreaterThan(1e9);

    // the child records its peak RSS at exit
    const rssFile = path.join(big, 'maxrss');
    const preload = path.join(big, 'maxrss.mjs');
    fs.writeFileSync(
      preload,
      `import fs from 'node:fs';\nprocess.on('exit', () => fs.writeFileSync(${JSON.stringify(rssFile)}, String(process.resourceUsage().maxRSS)));\n`,
    );
    const t0 = performance.now();
    const child = spawn(
      process.execPath,
      ['--max-old-space-size=512', '--import', preload, cli, 'metrics', '--input', csv],
      { cwd: root, env: { ...process.env, VMOE_DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const seconds = (performance.now() - t0) / 1000;
    try {
      expect(status, stderr).toBe(0);
      const report = JSON.parse(stdout) as { n: number; k: number; accuracy: number };
      expect(report.n).toBe(997 * repeats);
      expect(report.k).toBe(k);
      expect(report.accuracy).toBeCloseTo(correct / 997, 9);
      const maxRssMb = Number(fs.readFileSync(rssFile, 'utf8')) / 1024;
      console.log(
        `vmoe metrics on ${(bytes / 1e9).toFixed(2)} GB (${report.n} rows × ${k} logits): ${seconds.toFixed(0)} s, ` +
          `peak RSS ${maxRssMb.toFixed(0)} MB with --max-old-space-size=512`,
      );
      // the scores alone take n × k × 8 bytes (0.4 GB); the text is never held
      expect(maxRssMb).toBeLessThan(3 * 1024);
    } finally {
      fs.rmSync(big, { recursive: true, force: true });
    }
  }, 900_000);
});

describe('corrupt predictions and features CSVs: one line naming the file, line and column', () => {
  const header = 'label,logit0,logit1\n';
  it.each([
    ['ragged row', 'ragged.csv', `${header}0,1,2\n1,2\n`, /ragged\.csv line 3: 2 cells, but the header has 3 columns/],
    [
      'non-numeric cell',
      'text.csv',
      `${header}0,1,2\n1,abc,2\n`,
      /text\.csv line 3, column 2 \(logit0\): 'abc' is not a/,
    ],
    ['NaN cell', 'nan.csv', `${header}0,NaN,2\n1,1,2\n`, /nan\.csv line 2, column 2 \(logit0\): 'NaN' is not finite/],
    ['Infinity cell', 'inf.csv', `${header}0,1,Infinity\n`, /inf\.csv line 2, column 3 \(logit1\): 'Infinity' is not/],
    [
      'probabilities not summing to 1',
      'probs.csv',
      'label,p0,p1\n0,0.5,0.5\n1,0.5,0.6\n',
      /probs\.csv line 3, columns 2\.\.3 \(p0\.\.p1\): probabilities sum to 1\.1/,
    ],
    [
      'an unclosed quote',
      'quote.csv',
      `${header}0,1,2\n1,"2,3\n`,
      /quote\.csv line 3: malformed CSV: Quote Not Closed/,
    ],
    [
      'a binary file',
      'binary.csv',
      new Uint8Array([0, 1, 2, 0xff, 10, 3]),
      /binary\.csv line 1: missing column 'label'/,
    ],
    ['an empty file', 'empty.csv', '', /empty\.csv: the file is empty/],
  ])('vmoe metrics --input with %s', (_, name, text, message) => {
    expect(refusal(metrics(file(name, text)))).toMatch(message);
  });

  it('the same for --ood-input and --calib files', () => {
    const good = file('good.csv', `${header}0,2,1\n1,0,3\n`);
    const ood = file('ood-bad.csv', `${header}-1,1\n`);
    expect(refusal(metrics(good, '--ood-input', ood))).toMatch(/ood-bad\.csv line 2: 2 cells/);
    const calib = file('calib-bad.csv', `${header}0,1,-inf\n`);
    expect(refusal(metrics(good, '--calib', calib, '--conformal', 'lac'))).toMatch(
      /calib-bad\.csv line 2, column 3 \(logit1\): '-inf' is not finite/,
    );
  });

  it.each([
    ['ragged row', 'f-ragged.csv', 'label,f0,f1\n0,1,2\n1,2\n', /f-ragged\.csv line 3: 2 cells, the header has 3/],
    [
      'non-numeric cell',
      'f-text.csv',
      'label,f0\n0,1\n1,x\n',
      /f-text\.csv line 3, column 2 \(f0\): 'x' is not a finite/,
    ],
    ['NaN cell', 'f-nan.csv', 'label,f0\n0,NaN\n1,1\n', /f-nan\.csv line 2, column 2 \(f0\): 'NaN'/],
    [
      'an unclosed quote',
      'f-quote.csv',
      'label,f0\n0,1\n1,"2\n',
      /f-quote\.csv line 3: malformed CSV: Quote Not Closed/,
    ],
  ])('vmoe probe --train with %s', (_, name, text, message) => {
    const test = file('f-test-ok.csv', 'label,f0\n0,-1\n1,1\n');
    expect(refusal(vmoe('probe', '--train', file(name, text), '--test', test, '--l2', '1'))).toMatch(message);
  });
});

describe('corrupt IDX files and checkpoints: one line naming the file, no --out folder', () => {
  const run = path.join(dir, 'run');
  beforeAll(() => {
    const t = vmoe('train', ...common, '--set', 'train.steps=2', '--out', run);
    expect(t.status, t.stderr).toBe(0);
  });

  /** A t10k IDX folder of 8 MNIST-sized images; `edit` damages it. */
  function idxFolder(name: string, edit: (images: string, labels: string) => void): string {
    const d = path.join(dir, name);
    const images = path.join(d, 't10k-images-idx3-ubyte');
    const labels = path.join(d, 't10k-labels-idx1-ubyte');
    writeIdx(images, [8, 28, 28], new Uint8Array(8 * 28 * 28).fill(9));
    writeIdx(
      labels,
      [8],
      Uint8Array.from({ length: 8 }, (_, i) => i % 10),
    );
    edit(images, labels);
    return d;
  }

  /** `vmoe eval` of the tiny run on `--dataset`, into an `--out` folder that must not appear. */
  function evalRefused(args: string[]): string {
    const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}`);
    const error = refusal(vmoe('eval', '--checkpoint', run, '--limit', '8', ...args, '--out', out));
    expect(fs.existsSync(out)).toBe(false);
    return error;
  }

  it('a truncated IDX image file', () => {
    const d = idxFolder('idx-truncated', (images) => fs.truncateSync(images, 16 + 8 * 28 * 28 - 100));
    const error = evalRefused(['--dataset', `idx:${d}`]);
    expect(error).toContain(path.join(d, 't10k-images-idx3-ubyte'));
    expect(error).toMatch(/is truncated: header dims \[8, 28, 28\] need 6272 data bytes but only 6172 follow/);
  });

  it('an IDX file with a wrong magic number', () => {
    const d = idxFolder('idx-magic', (images) => {
      const b = fs.readFileSync(images);
      b[0] = 0x1f; // not zero: not an IDX file
      fs.writeFileSync(images, b);
    });
    const error = evalRefused(['--dataset', `idx:${d}`]);
    expect(error).toContain(path.join(d, 't10k-images-idx3-ubyte'));
    expect(error).toMatch(/bad magic number 0x1f000803/);
  });

  it('IDX labels that do not match the images in count', () => {
    const d = idxFolder('idx-count', (_, labels) => writeIdx(labels, [7], new Uint8Array(7)));
    const error = evalRefused(['--dataset', `idx:${d}`]);
    expect(error).toContain(`${path.join(d, 't10k-images-idx3-ubyte')} holds 8 images`);
    expect(error).toContain(`${path.join(d, 't10k-labels-idx1-ubyte')} holds 7 labels`);
  });

  const checkpoint = () => path.join(run, 'checkpoints', 'checkpoint-2.vmoe');

  it('a truncated checkpoint', () => {
    const bad = file('truncated.vmoe', fs.readFileSync(checkpoint()).subarray(0, 5000));
    const out = path.join(dir, 'out-ck-truncated');
    const error = refusal(vmoe('eval', '--checkpoint', bad, '--limit', '8', '--out', out));
    expect(error).toMatch(new RegExp(`^error: checkpoint ${bad}: .*(truncated|checksum)`));
    expect(fs.existsSync(out)).toBe(false);
  });

  it('a checkpoint with one flipped byte', () => {
    const bytes = fs.readFileSync(checkpoint());
    bytes[Math.floor(bytes.length / 2)]! ^= 0x10;
    const bad = file('flipped.vmoe', bytes);
    const out = path.join(dir, 'out-ck-flipped');
    const error = refusal(vmoe('eval', '--checkpoint', bad, '--limit', '8', '--out', out));
    expect(error).toMatch(new RegExp(`^error: checkpoint ${bad}: .*checksum`));
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('config JSON: one line naming the file and the line or field', () => {
  it.each([
    [
      'invalid JSON',
      'bad-json',
      '{\n  "name": "x",\n  "model": {\n',
      /bad-json\.json: not valid JSON at line 4, column 1/,
    ],
    [
      'an unknown field',
      'unknown-field',
      '{\n  "name": "x",\n  "model": { "hiden": 16 }\n}\n',
      /unknown-field\.json: model: unknown field\(s\) "hiden"/,
    ],
    [
      'an empty file',
      'empty-config',
      '',
      /empty-config\.json: not valid JSON at line 1, column 1: Unexpected end of JSON input/,
    ],
  ])('vmoe train --config with %s', (_, tag, text, message) => {
    const config = file(`${tag}.json`, text);
    const out = path.join(dir, `out-${tag}`);
    const error = refusal(vmoe('train', '--config', config, '--out', out));
    expect(error).toMatch(/^error: invalid config: /);
    expect(error).toMatch(message);
    expect(fs.existsSync(out)).toBe(false);
  });
});
