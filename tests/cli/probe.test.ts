import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { registerProbeCommand } from '../../src/cli/probe.js';
import { formatProbeResult } from '../../src/export/probe-format.js';
import { runProbe } from '../../src/fewshot/probe.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vmoe-probe-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

// Two classes on a line: class 0 around f0 = −2, class 1 around f0 = +2 (f1 is noise). The test
// rows sit clearly on one side each; the last test row is labelled 0 but lies on the class-1 side,
// so the expected predictions are [0, 1, 0, 1] against labels [0, 1, 0, 0]: accuracy 3/4.
const train = file(
  'train.csv',
  'label,f0,f1\n0,-2.1,0.3\n0,-1.9,-0.2\n0,-2.0,0.1\n1,2.0,0.2\n1,1.8,-0.1\n1,2.2,-0.3\n',
);
const test = file('test.csv', 'label,f0,f1\n0,-1.5,0\n1,2.5,0.1\n0,-3,-0.1\n0,1.7,0.2\n');

describe('runProbe', () => {
  it.each(['lsr', 'logreg'] as const)('%s: predictions in input order and accuracy', async (probe) => {
    const r = await runProbe({ train, test, l2: 1, probe });
    expect(r.predictions).toEqual([0, 1, 0, 1]);
    expect(r.accuracy).toBe(0.75);
    expect(r).toMatchObject({ probe, l2: 1, numTrain: 6, numTest: 4, dim: 2, numClasses: 2 });
    if (probe === 'logreg') {
      expect(r.nll).toBeGreaterThan(0);
      expect(r.ece).toBeGreaterThanOrEqual(0);
      expect(r.eceBins).toBe(15);
      expect(r.converged).toBe(true);
    } else {
      expect(r.nll).toBeUndefined();
    }
  });

  it.each([
    [
      'mismatched dimensions',
      'label,f0,f1\n0,1,2\n1,2,3\n',
      'label,f0\n0,1\n',
      /train[\w-]*\.csv has 2 feature columns \(f0\.\.f1\), .*test[\w-]*\.csv has 1 \(f0\.\.f0\)/,
    ],
    [
      'one class',
      'label,f0\n1,1\n1,2\n',
      'label,f0\n1,1\n',
      /every train row has label 1; a probe needs at least 2 classes/,
    ],
    ['class gap', 'label,f0\n0,1\n2,2\n', 'label,f0\n0,1\n', /class 1 has no train rows/],
    [
      'unseen test class',
      'label,f0\n0,1\n1,2\n',
      'label,f0\n0,1\n\n3,2\n',
      /test[\w-]*\.csv line 4, column 1 \(label\): class 3 does not occur in .*classes are 0\.\.1/,
    ],
    [
      'malformed cell',
      'label,f0\n0,1\n1,x\n',
      'label,f0\n0,1\n',
      /train[\w-]*\.csv line 3, column 2 \(f0\): 'x' is not a finite decimal number/,
    ],
  ])('%s → clear error', async (name, trainText, testText, message) => {
    const tag = name.replace(/\W/g, '');
    const t = file(`train-${tag}.csv`, trainText);
    const s = file(`test-${tag}.csv`, testText);
    await expect(runProbe({ train: t, test: s, l2: 1, probe: 'lsr' })).rejects.toThrow(message);
  });

  it('missing file names the path', async () => {
    await expect(runProbe({ train: path.join(dir, 'nope.csv'), test, l2: 1, probe: 'lsr' })).rejects.toThrow(
      /cannot read features file .*nope\.csv/,
    );
  });
});

describe('vmoe probe command', () => {
  async function run(args: string[]): Promise<string> {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    registerProbeCommand(program);
    const chunks: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      chunks.push(String(c));
      return true;
    });
    try {
      await program.parseAsync(['node', 'vmoe', 'probe', ...args]);
    } finally {
      spy.mockRestore();
    }
    return chunks.join('');
  }

  it('prints JSON by default', async () => {
    const out = JSON.parse(await run(['--train', train, '--test', test, '--l2', '0.5']));
    expect(out.predictions).toEqual([0, 1, 0, 1]);
    expect(out.accuracy).toBe(0.75);
    expect(out.probe).toBe('lsr');
    expect(out.l2).toBe(0.5);
  });

  it('prints a table with --format table and the logreg metrics', async () => {
    const out = await run(['--train', train, '--test', test, '--l2', '1', '--probe', 'logreg', '--format', 'table']);
    expect(out).toMatch(/^probe\s+logreg$/m);
    expect(out).toMatch(/^accuracy\s+0\.7500$/m);
    expect(out).toMatch(/^ece \(15 bins\)\s+\d\.\d{4}$/m);
  });

  it.each([
    [['--l2', '0'], /expected a finite number > 0/],
    [['--l2', 'abc'], /expected a finite number > 0/],
    [['--l2', '1', '--probe', 'svm'], /Allowed choices are lsr, logreg/],
  ])('rejects %j', async (extra, message) => {
    await expect(run(['--train', train, '--test', test, ...extra])).rejects.toThrow(message);
  });

  it('formatProbeResult json round-trips', () => {
    const r = {
      probe: 'lsr' as const,
      l2: 2,
      train: 'a',
      test: 'b',
      numTrain: 2,
      numTest: 1,
      dim: 1,
      numClasses: 2,
      accuracy: 1,
      predictions: [1],
    };
    expect(JSON.parse(formatProbeResult(r, 'json'))).toEqual(r);
  });
});

describe('vmoe probe as a process', () => {
  const cli = path.resolve(__dirname, '../../dist/cli/main.js');
  const vmoe = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

  it.each([
    [
      'too few classes',
      'label,f0\n1,1\n1,2\n',
      'label,f0\n1,1\n',
      /every train row has label 1; a probe needs at least 2 classes/,
    ],
    [
      'malformed cell',
      'label,f0\n0,1\n1,x\n',
      'label,f0\n0,1\n',
      /line 3, column 2 \(f0\): 'x' is not a finite decimal number/,
    ],
    ['mismatched dimensions', 'label,f0,f1\n0,1,2\n1,2,3\n', 'label,f0\n0,1\n', /has 2 feature columns/],
  ])('%s: the message only, exit status 2 (a data error, as the README says)', (name, trainText, testText, message) => {
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build`');
    const tag = 'proc-' + name.replace(/\W/g, '');
    const r = vmoe(
      'probe',
      '--train',
      file(`train-${tag}.csv`, trainText),
      '--test',
      file(`test-${tag}.csv`, testText),
      '--l2',
      '1',
    );
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error: /);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
