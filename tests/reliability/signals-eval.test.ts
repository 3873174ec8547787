/**
 * Signals during long evaluations and concurrent writers of one output folder, end to end on the built CLI:
 * SIGTERM / SIGINT sent mid-run to `vmoe eval --out`, `robustness`, `sweep`, `fewshot` and `corrupt` give one
 * line and exit 143 / 130, leave the output folder exactly as it was (no results of the half-done run, no temp
 * file, no lock, no empty folder) and no worker process behind; a second signal exits at once; a second command
 * writing into a folder in use is refused naming the owner while the first completes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cli, cliEnv, oneLineError, root } from '../helpers/cli.js';
import { common, ensureBuilt, errorLines, refusal, snapshot, tmpDir, vmoe, vmoeAsync, waitFor } from './helpers.js';

beforeAll(ensureBuilt);

let run = '';
let previous = ''; // a folder holding a complete earlier evaluation
beforeAll(() => {
  const base = tmpDir('sigeval');
  run = path.join(base, 'run');
  const t = vmoe('train', ...common, '--set', 'train.steps=2', '--out', run);
  expect(t.status, t.stderr).toBe(0);
  previous = path.join(base, 'previous');
  const e = vmoe('eval', '--checkpoint', run, '--limit', '64', '--backend', 'wasm', '--out', previous);
  expect(e.status, e.stderr).toBe(0);
});

/** A copy of the earlier evaluation's folder, to interrupt a new command in. */
function folderWithResults(tag: string): string {
  const dir = path.join(tmpDir(tag), 'out');
  fs.cpSync(previous, dir, { recursive: true });
  return dir;
}

const workerPid = (out: string): number | null => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(out, '.vmoe.lock'), 'utf8')) as { pid: number }).pid;
  } catch {
    return null;
  }
};

/** Whether `pid` runs (a zombie — exited, not yet reaped, as an orphan may stay in a container — does not). */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // gone meanwhile
  }
};

interface Case {
  command: string;
  args: (out: string) => string[];
  /** stderr shows that the work is under way */
  started: RegExp;
}

const cases: Case[] = [
  {
    command: 'eval',
    args: (out) => ['eval', '--checkpoint', run, '--backend', 'wasm', '--out', out], // all 10 000 test images
    started: /backend wasm/,
  },
  {
    command: 'robustness',
    args: (out) => ['robustness', '--checkpoint', run, '--limit', '500', '--backend', 'wasm', '--out', out],
    started: /\[vmoe\] 2\/\d+ /,
  },
  {
    command: 'sweep',
    args: (out) => ['sweep', '--checkpoint', run, '--backend', 'wasm', '--out', out],
    started: /\[sweep 1\//,
  },
  {
    command: 'fewshot',
    args: (out) => [
      'fewshot',
      '--checkpoint',
      run,
      '--datasets',
      'mnist',
      '--cache-dir',
      path.join(path.dirname(out), 'cache'),
      '--backend',
      'wasm',
      '--out',
      out,
    ],
    started: /pre-logits of mnist/,
  },
  {
    command: 'corrupt',
    args: (out) => ['corrupt', '--dataset', 'mnist', '--corruption', 'all', '--out', out],
    started: /corrupt: \S+-1 /, // the first set is written (to its temp files) when this line appears
  },
];

describe('a signal during a long evaluation', () => {
  it.each(cases)(
    'SIGTERM during vmoe $command --out: one line, exit 143, the folder exactly as before, no worker left',
    async ({ command, args, started }) => {
      const out = folderWithResults(`sig-${command}`);
      const before = snapshot(out);
      const t = vmoeAsync(...args(out));
      await waitFor(() => started.test(t.stderr()), 120_000);
      const worker = workerPid(out);
      expect(worker, t.stderr()).not.toBeNull();
      await new Promise((r) => setTimeout(r, 300));
      t.child.kill('SIGTERM');
      const r = await t.done;
      expect(r.status, r.stderr).toBe(143);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(errorLines(r.stderr)).toEqual([
        `error: interrupted by SIGTERM: vmoe ${command} stopped before it finished and wrote no results; ${out} is as it was before`,
      ]);
      expect(r.stderr.split('\n').filter((l) => l && !l.startsWith('[') && !l.startsWith('corrupt: '))).toHaveLength(1);
      expect(snapshot(out)).toEqual(before); // no new, changed, half-written or temp file; the lock is gone
      expect(alive(worker!)).toBe(false);
    },
  );

  it.each([
    { signal: 'SIGINT' as const, code: 130 },
    { signal: 'SIGHUP' as const, code: 129 },
  ])('$signal during vmoe eval into a new folder: exit $code and no folder', async ({ signal, code }) => {
    const out = path.join(tmpDir(`${signal}-eval`), 'new');
    const t = vmoeAsync('eval', '--checkpoint', run, '--backend', 'wasm', '--out', out);
    await waitFor(() => /backend wasm/.test(t.stderr()), 120_000);
    t.child.kill(signal);
    const r = await t.done;
    expect(r.status, r.stderr).toBe(code);
    expect(errorLines(r.stderr)).toEqual([
      `error: interrupted by ${signal}: vmoe eval stopped before it finished and wrote no results; ${out} was not created`,
    ]);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('a second signal exits at once and leaves the folder as before', async () => {
    const out = folderWithResults('sig-twice');
    const before = snapshot(out);
    const t = vmoeAsync('eval', '--checkpoint', run, '--backend', 'wasm', '--out', out);
    await waitFor(() => /backend wasm/.test(t.stderr()), 120_000);
    const worker = workerPid(out)!;
    const t0 = Date.now();
    t.child.kill('SIGTERM');
    t.child.kill('SIGTERM');
    const r = await t.done;
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(r.status, r.stderr).toBe(143);
    expect(errorLines(r.stderr)).toHaveLength(1);
    expect(snapshot(out)).toEqual(before);
    expect(alive(worker)).toBe(false);
  });

  it('Ctrl-C on a terminal (SIGINT to the whole process group, supervisor and worker): one line, exit 130', async () => {
    const out = folderWithResults('sig-group');
    const before = snapshot(out);
    // its own process group, as a shell gives a foreground job; the terminal sends Ctrl-C's SIGINT to all of it
    const child = spawn(process.execPath, [cli, 'eval', '--checkpoint', run, '--backend', 'wasm', '--out', out], {
      cwd: root,
      env: cliEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stderr = '';
    child.stderr!.on('data', (b) => (stderr += String(b)));
    const done = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    await waitFor(() => /backend wasm/.test(stderr), 120_000);
    const worker = workerPid(out)!;
    process.kill(-child.pid!, 'SIGINT');
    expect(await done, stderr).toBe(130);
    expect(errorLines(stderr)).toEqual([
      `error: interrupted by SIGINT: vmoe eval stopped before it finished and wrote no results; ${out} is as it was before`,
    ]);
    expect(snapshot(out)).toEqual(before);
    expect(alive(worker)).toBe(false);
  });

  it('SIGKILL of the supervisor (nothing can be passed on): the worker finishes its computation but writes nothing', async () => {
    const out = folderWithResults('sig-kill-supervisor');
    const before = snapshot(out);
    const t = vmoeAsync('eval', '--checkpoint', run, '--backend', 'wasm', '--out', out);
    await waitFor(() => workerPid(out) !== null, 120_000);
    const worker = workerPid(out)!;
    t.child.kill('SIGKILL');
    expect((await t.done).signal).toBe('SIGKILL');
    await waitFor(() => !alive(worker), 120_000); // it runs on to the end of its evaluation, then stops
    expect(snapshot(out)).toEqual(before); // no results of the killed command, no temp file, no lock
  });

  it('without a signal the supervised command is unchanged: results written whole, exit 0', () => {
    const out = path.join(tmpDir('sig-none'), 'out');
    const r = vmoe('eval', '--checkpoint', run, '--limit', '64', '--backend', 'wasm', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).n).toBe(64);
    const names = fs.readdirSync(out).sort();
    expect(names).toEqual(fs.readdirSync(previous).sort()); // the same set of files as the earlier run
    expect(names.some((n) => n.endsWith('.tmp') || n === '.vmoe.lock')).toBe(false);
  });
});

describe('commands that write several files', () => {
  it('vmoe report with a folder in the way of one output: one line, none of its files written', () => {
    const out = path.join(tmpDir('report-set'), 'out');
    fs.mkdirSync(path.join(out, 'report.md'), { recursive: true });
    fs.writeFileSync(path.join(out, 'report.csv'), 'an older report\n');
    const before = snapshot(out);
    const r = vmoe('report', previous, '--out', out);
    const { error } = oneLineError(r); // the table went to stdout before the files
    expect(error).toBe(
      `error: cannot write ${path.join(out, 'report.md')}: a folder of that name is in the way; nothing was written`,
    );
    expect(snapshot(out)).toEqual(before); // report.csv / .json / .tex not written beside the old files
    expect(fs.readdirSync(out).sort()).toEqual(['report.csv', 'report.md']);
  });
});

describe('two writers of one output folder', () => {
  it.each([
    { second: 'eval', args: (out: string) => ['eval', '--checkpoint', run, '--limit', '64', '--out', out] },
    {
      second: 'robustness',
      args: (out: string) => [
        'robustness',
        '--checkpoint',
        run,
        '--limit',
        '64',
        '--corruptions',
        'gaussian_blur',
        '--out',
        out,
      ],
    },
    {
      second: 'sweep',
      args: (out: string) => ['sweep', '--checkpoint', run, '--limit', '64', '--capacity-factors', '1', '--out', out],
    },
  ])(
    'a $second --out into the folder of a running eval is refused naming the owner; the first completes',
    async ({ args }) => {
      const out = path.join(tmpDir('two-writers'), 'out');
      const first = vmoeAsync('eval', '--checkpoint', run, '--backend', 'wasm', '--out', out);
      await waitFor(() => workerPid(out) !== null, 120_000);
      const owner = JSON.parse(fs.readFileSync(path.join(out, '.vmoe.lock'), 'utf8')) as Record<string, string>;
      const r = vmoe(...args(out), '--backend', 'wasm');
      expect(refusal(r)).toBe(
        `error: run folder ${out} is in use: locked by pid ${owner.pid} on ${owner.host} (vmoe eval, started ${owner.started}); two commands writing results into one folder would overwrite each other`,
      );
      const f = await first.done;
      expect(f.status, f.stderr).toBe(0);
      const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')) as { n: number };
      expect(results.n).toBe(10_000); // the first run's results, not the refused one's (--limit 64)
      expect(fs.readdirSync(out).sort()).toEqual(fs.readdirSync(previous).sort());
    },
  );

  it('an eval --out into the folder of a running training is refused', async () => {
    const dir = path.join(tmpDir('eval-into-train'), 'run');
    const t = vmoeAsync('train', ...common, '--set', 'train.steps=400', '--out', dir);
    await waitFor(() => fs.existsSync(path.join(dir, '.vmoe.lock')), 120_000);
    const r = vmoe('eval', '--checkpoint', run, '--limit', '64', '--backend', 'wasm', '--out', dir);
    expect(refusal(r)).toMatch(new RegExp(`^error: run folder ${dir} is in use: locked by pid ${t.child.pid} `));
    t.child.kill('SIGTERM');
    const tr = await t.done;
    expect(tr.status).toBe(143);
    expect(fs.existsSync(path.join(dir, 'results.json'))).toBe(false);
  });
});
