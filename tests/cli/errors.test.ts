/**
 * Bad input through the built CLI: one `error: …` line (plus at most one `hint: …` line) that names the
 * file / flag at fault, exit status 2, no stack trace. And the other side: a bug exits 1, stack only with --debug.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeIdx } from '../../src/data/idx.js';
import { reportError } from '../../src/cli/common.js';
import { CheckpointError, DataError, UsageError } from '../../src/util/errors.js';

import { oneLineError as badInput, cli, vmoe } from '../helpers/cli.js';

/** A folder of IDX test files (8 images of size×size, label `maxLabel` at index 5), an `idx:<folder>` data set. */
function idxFolder(dir: string, size: number, maxLabel: number): string {
  fs.mkdirSync(dir, { recursive: true });
  const n = 8;
  writeIdx(path.join(dir, 't10k-images-idx3-ubyte'), [n, size, size], new Uint8Array(n * size * size).fill(7));
  writeIdx(
    path.join(dir, 't10k-labels-idx1-ubyte'),
    [n],
    Uint8Array.from({ length: n }, (_, i) => (i === 5 ? maxLabel : i % 3)),
  );
  return dir;
}

describe('vmoe CLI: bad input is one line and exit 2', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-errors-'));
  const run = path.join(dir, 'run');
  const common = [
    '--set',
    'data.dataset="mnist"',
    '--set',
    'data.trainLimit=32',
    '--set',
    'data.valSize=16',
    '--set',
    'model.patchSize=14',
    '--set',
    'model.hidden=16',
    '--set',
    'model.mlpDim=32',
    '--set',
    'model.depth=2',
    '--set',
    'model.heads=2',
    '--set',
    'model.moe.layers.placement="list"',
    '--set',
    'model.moe.layers.list=[1]',
    '--set',
    'model.moe.numExperts=4',
    '--set',
    'model.moe.groupImages=4',
    '--set',
    'train.batchSize=16',
    '--set',
    'train.evalEvery=0',
    '--set',
    'train.evalLimit=16',
    '--set',
    'train.steps=1',
  ];

  beforeAll(() => {
    if (!fs.existsSync(cli)) throw new Error('dist/ is missing: run `npm run build`');
    const t = vmoe('train', ...common, '--out', run, '--backend', 'wasm');
    expect(t.status, t.stderr).toBe(0);
  });

  // Another image size is no longer an error (issue 17): the set is resized to the model's. The images are constant
  // (all 7), and a resized constant image is the same constant, so the 14×14 set must evaluate exactly as 28×28.
  it('eval --ood and --dataset with another image size: resized to the model, same results as the 28×28 set', () => {
    const small = idxFolder(path.join(dir, 'small'), 14, 2);
    const same = idxFolder(path.join(dir, 'same28'), 28, 2);
    const ev = (...a: string[]) => {
      const r = vmoe('eval', '--checkpoint', run, '--limit', '8', '--backend', 'wasm', '--mahalanobis-fit', '0', ...a);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout);
    };
    const ood = (set: string) => JSON.stringify(ev('--ood', `idx:${set}`).ood).replaceAll(set, 'SET');
    expect(ood(small)).toBe(ood(same));
    const a = ev('--dataset', `idx:${small}`);
    const b = ev('--dataset', `idx:${same}`);
    expect([a.n, a.nll, a.accuracy]).toEqual([b.n, b.nll, b.accuracy]);
  });

  it("eval on an IDX set whose labels exceed the model's classes names the labels file", () => {
    const big = idxFolder(path.join(dir, 'biglabel'), 28, 11);
    const { error, hint } = badInput(
      vmoe('eval', '--checkpoint', run, '--limit', '8', '--backend', 'wasm', '--dataset', `idx:${big}`),
    );
    expect(error).toContain(path.join(big, 't10k-labels-idx1-ubyte'));
    expect(error).toMatch(/labels up to 11.*predicts 10/);
    expect(hint).toMatch(/model\.numClasses=12/);
  });

  it('--backend bogus names the flag and the choices', () => {
    const { error, hint } = badInput(vmoe('eval', '--checkpoint', run, '--backend', 'bogus'));
    expect(error).toMatch(/--backend: unknown backend "bogus"; expected auto, .*wasm/);
    expect(hint).toMatch(/--backend auto/);
  });

  it('vmoe report on a missing folder names it', () => {
    const missing = path.join(dir, 'no-such-run');
    const { error } = badInput(vmoe('report', missing));
    expect(error).toContain(`no results found at ${missing}`);
  });

  it('vmoe readme --from a missing folder names the flag and the folder', () => {
    const missing = path.join(dir, 'no-such-run');
    const readme = path.join(dir, 'README.md');
    fs.writeFileSync(readme, '<!-- vmoe:x -->\n<!-- /vmoe:x -->\n');
    const { error } = badInput(vmoe('readme', '--section', 'x', '--from', missing, '--readme', readme));
    expect(error).toContain(`--from ${missing}: no such folder`);
    const { error: noResults } = badInput(vmoe('readme', '--section', 'x', '--from', run, '--readme', readme));
    expect(noResults).toContain(`no results.md in that folder (looked for ${path.join(run, 'results.md')})`);
  });

  it('finetune --from a checkpoint whose body does not fit the config names each parameter and both shapes', () => {
    const { error, hint } = badInput(
      vmoe(
        'finetune',
        '--from',
        run,
        ...common,
        '--set',
        'model.mlpDim=64',
        '--out',
        path.join(dir, 'ft-mlp'),
        '--backend',
        'wasm',
      ),
    );
    expect(error).toMatch(/checkpoint-1\.vmoe: 6 parameters do not fit the model config: /);
    expect(error).toContain('block0/mlp/fc1/kernel is [16,32] in the checkpoint but [16,64] in the config');
    expect(error).toContain('block1/moe/w1 is [4,16,32] in the checkpoint but [4,16,64] in the config');
    expect(hint).toMatch(/model settings/);
    expect(fs.existsSync(path.join(dir, 'ft-mlp', 'checkpoints'))).toBe(false);
  });

  it('finetune --no-reinit-head onto another class count names the head and --reinit-head', () => {
    const args = ['finetune', '--from', run, ...common, '--set', 'model.numClasses=12'];
    const { error, hint } = badInput(
      vmoe(...args, '--no-reinit-head', '--out', path.join(dir, 'ft-keep'), '--backend', 'wasm'),
    );
    expect(error).toContain('head/kernel is [16,10] in the checkpoint but [16,12] in the config');
    expect(error).toContain('head/bias is [10] in the checkpoint but [12] in the config');
    expect(hint).toMatch(/--reinit-head/);
    // without --no-reinit-head the head of another shape starts afresh
    const ok = vmoe(...args, '--out', path.join(dir, 'ft-auto'), '--backend', 'wasm');
    expect(ok.status, ok.stderr).toBe(0);
  });

  it('an unknown option is bad input too (exit 2)', () => {
    const r = vmoe('eval', '--no-such-flag');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--no-such-flag'/);
  });
});

describe('reportError', () => {
  const capture = (err: unknown, debug: boolean) => {
    let out = '';
    const code = reportError(err, { debug }, (s) => {
      out += s;
    });
    return { code, out };
  };

  it('a VmoeError: its exit code, the message and the hint, no stack', () => {
    const { code, out } = capture(
      new UsageError('--bins: expected a positive integer, got "x"', { hint: 'e.g. --bins 15' }),
      false,
    );
    expect(code).toBe(2);
    expect(out).toBe('error: --bins: expected a positive integer, got "x"\nhint: e.g. --bins 15\n');
    expect(capture(new DataError('a.csv: row 3: bad'), false).out).toBe('error: a.csv: row 3: bad\n');
    expect(capture(new CheckpointError('c.vmoe: truncated', { file: 'c.vmoe', exitCode: 3 }), false).code).toBe(3);
  });

  it('any other error is a bug: exit 1, the stack only with debug', () => {
    const bug = new TypeError('cannot read properties of undefined');
    const plain = capture(bug, false);
    expect(plain.code).toBe(1);
    expect(plain.out.split('\n')[0]).toBe('error: cannot read properties of undefined');
    expect(plain.out).not.toMatch(/^\s+at /m);
    expect(plain.out).toMatch(/--debug/);
    const debug = capture(bug, true);
    expect(debug.code).toBe(1);
    expect(debug.out).toMatch(/^\s+at /m);
    expect(capture('a thrown string', false)).toMatchObject({ code: 1 });
  });

  it('a missing or unreadable path from the file system is bad input (exit 2), no stack', () => {
    let enoent: unknown;
    try {
      fs.readFileSync(path.join(os.tmpdir(), 'vmoe-no-such-file.md'));
    } catch (e) {
      enoent = e;
    }
    const { code, out } = capture(enoent, false);
    expect(code).toBe(2);
    expect(out).toMatch(/^error: ENOENT: no such file or directory, open '.*vmoe-no-such-file\.md'\n$/);
  });
});
