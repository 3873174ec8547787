/**
 * Run folders owned by one process (docs/reliability.md): concurrent trainings, resume on a finished run,
 * a fresh run into an old run's folder, a stale lock, orphaned checkpoint temp files, a cut log line —
 * each with its exit code, its one-line message, and proof that nothing was lost or half-written.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/checkpoint/format.js';
import {
  common,
  deadPid,
  ensureBuilt,
  errorLines,
  loggedSteps,
  snapshot,
  tmpDir,
  vmoe,
  vmoeAsync,
  waitFor,
} from './helpers.js';

beforeAll(ensureBuilt);

describe('one writer per run folder', () => {
  it('a second training on the same --out is refused naming the owner; the first run is intact', async () => {
    const run = path.join(tmpDir('concurrent'), 'run');
    const a = vmoeAsync('train', ...common, '--set', 'train.steps=80', '--set', 'seed=0', '--out', run);
    const lock = path.join(run, '.vmoe.lock');
    await waitFor(() => fs.existsSync(lock) && loggedSteps(run, true).length >= 1);
    // a fresh run and a --resume, both while A trains
    const [b, c] = await Promise.all([
      vmoeAsync('train', ...common, '--set', 'train.steps=80', '--set', 'seed=1', '--out', run).done,
      vmoeAsync('train', ...common, '--set', 'train.steps=80', '--out', run, '--resume').done,
    ]);
    expect(a.child.exitCode).toBeNull(); // A was still training when both were refused
    expect(b.status).toBe(2);
    const errs = errorLines(b.stderr);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toContain(`run folder ${run} is in use`);
    expect(errs[0]).toContain(`pid ${a.child.pid} on ${os.hostname()}`);
    expect(b.stderr).toContain(lock);
    expect(c.status).toBe(2);
    expect(errorLines(c.stderr)[0]).toContain(`pid ${a.child.pid} on ${os.hostname()}`);

    const ra = await a.done;
    expect(ra.status, ra.stderr).toBe(0);
    expect(loggedSteps(run)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1)); // every step once
    expect(JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')).seed).toBe(0);
    const ck = loadCheckpoint(path.join(run, 'checkpoints', 'checkpoint-80.vmoe'));
    expect((ck.meta.config as { seed: number }).seed).toBe(0);
    expect(ra.stdout).toContain(ck.path);
    expect(fs.existsSync(lock)).toBe(false); // released at the end
  });

  it('a stale lock from a dead pid on this host is taken over with a note', () => {
    const run = path.join(tmpDir('stale'), 'run');
    fs.mkdirSync(run);
    const pid = deadPid();
    fs.writeFileSync(
      path.join(run, '.vmoe.lock'),
      JSON.stringify({ pid, host: os.hostname(), started: '2026-01-01T00:00:00.000Z', command: 'vmoe train' }),
    );
    const r = vmoe('train', ...common, '--set', 'train.steps=2', '--out', run);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`took over a stale lock of pid ${pid} on ${os.hostname()}`);
    expect(fs.existsSync(path.join(run, '.vmoe.lock'))).toBe(false);
    expect(loggedSteps(run)).toEqual([1, 2]);
  });

  it('a lock held by another host is never taken over', () => {
    const run = path.join(tmpDir('otherhost'), 'run');
    fs.mkdirSync(run);
    const lock = JSON.stringify({ pid: 1, host: 'elsewhere.example', started: 'x', command: 'vmoe train' });
    fs.writeFileSync(path.join(run, '.vmoe.lock'), lock);
    const r = vmoe('train', ...common, '--set', 'train.steps=2', '--out', run);
    expect(r.status).toBe(2);
    expect(errorLines(r.stderr)[0]).toMatch(/in use: locked by pid 1 on elsewhere\.example.*another host/);
    expect(fs.readdirSync(run)).toEqual(['.vmoe.lock']);
    expect(fs.readFileSync(path.join(run, '.vmoe.lock'), 'utf8')).toBe(lock);
  });
});

describe('finished and old runs', () => {
  it('--resume on a finished run says so and changes nothing, byte for byte', () => {
    const run = path.join(tmpDir('finished'), 'run');
    expect(vmoe('train', ...common, '--set', 'train.steps=3', '--out', run).status).toBe(0);
    const before = snapshot(run);
    const r = vmoe('train', ...common, '--set', 'train.steps=3', '--out', run, '--resume');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${run} is already finished (step 3 of 3); nothing was changed`);
    expect(errorLines(r.stderr)).toEqual([]);
    expect(snapshot(run)).toEqual(before);
    const summary = JSON.parse(fs.readFileSync(path.join(run, 'train_summary.json'), 'utf8'));
    expect(Number.isFinite(summary.final_loss)).toBe(true);
  });

  it('a fresh train into an old run folder (checkpoints deleted) is refused; --overwrite moves the old run aside intact', () => {
    const parent = tmpDir('old');
    const run = path.join(parent, 'run');
    expect(vmoe('train', ...common, '--set', 'train.steps=2', '--out', run).status).toBe(0);
    fs.rmSync(path.join(run, 'checkpoints'), { recursive: true });
    fs.writeFileSync(path.join(run, 'results.json'), '{"accuracy": 0.5}\n');
    const before = snapshot(run);

    const r = vmoe('train', ...common, '--set', 'train.steps=2', '--set', 'seed=5', '--out', run);
    expect(r.status).toBe(2);
    const errs = errorLines(r.stderr);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toContain(
      `${run} already holds a run (config.json, metrics.jsonl, train_summary.json, results.json)`,
    );
    expect(errs[0]).toMatch(/pass --resume to continue it, or --overwrite to move it aside/);
    expect(snapshot(run)).toEqual(before);

    // --resume cannot continue it (no checkpoint): refused too, rather than a silent fresh start
    const res = vmoe('train', ...common, '--set', 'train.steps=2', '--out', run, '--resume');
    expect(res.status).toBe(2);
    expect(errorLines(res.stderr)).toEqual([
      `error: nothing to resume in ${run}: ${path.join(run, 'checkpoints')} holds no checkpoint, and train_summary.json, results.json belong to a run that cannot be continued`,
    ]);
    expect(snapshot(run)).toEqual(before);

    const o = vmoe('train', ...common, '--set', 'train.steps=2', '--set', 'seed=5', '--out', run, '--overwrite');
    expect(o.status, o.stderr).toBe(0);
    const aside = fs.readdirSync(parent).filter((n) => n.startsWith('run.old-'));
    expect(aside).toHaveLength(1);
    expect(o.stderr).toContain(
      `moved the old run (config.json, metrics.jsonl, train_summary.json, results.json) aside to ${path.join(parent, aside[0]!)}`,
    );
    expect(snapshot(path.join(parent, aside[0]!))).toEqual(before); // never deleted, nothing changed
    expect(fs.existsSync(path.join(run, 'results.json'))).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')).seed).toBe(5);
    expect(loggedSteps(run)).toEqual([1, 2]);
  });

  it('orphaned checkpoint temp files are removed at the next resume; a cut last log line is ignored and reported', () => {
    const run = path.join(tmpDir('orphan'), 'run');
    expect(
      vmoe('train', ...common, '--set', 'train.steps=4', '--set', 'train.checkpointEvery=2', '--out', run).status,
    ).toBe(0);
    // a checkpoint write killed part-way (a dead pid) and a log line cut by a crash
    const tmp = path.join(run, 'checkpoints', `.checkpoint-5.vmoe.${deadPid()}.0badf00d.tmp`);
    fs.writeFileSync(tmp, Buffer.alloc(1 << 20));
    fs.appendFileSync(path.join(run, 'metrics.jsonl'), '{"step": 5, "loss": 2.3');
    const r = vmoe(
      'train',
      ...common,
      '--set',
      'train.steps=6',
      '--set',
      'train.checkpointEvery=2',
      '--out',
      run,
      '--resume',
    );
    expect(r.status, r.stderr).toBe(0);
    expect(fs.existsSync(tmp)).toBe(false);
    expect(r.stderr).toContain(
      `removed 1 unfinished checkpoint temp file(s) left by a killed run: ${path.basename(tmp)}`,
    );
    expect(r.stderr).toContain(`ignored a cut last line of ${path.join(run, 'metrics.jsonl')}`);
    expect(loggedSteps(run)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(fs.readdirSync(path.join(run, 'checkpoints')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('output folders checked before any work', () => {
  it('--out under a regular file: exit 2, one line naming the file, nothing done', () => {
    const dir = tmpDir('underfile');
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'x');
    const r = vmoe('train', ...common, '--out', path.join(file, 'run'));
    expect(r.status).toBe(2);
    expect(errorLines(r.stderr)).toEqual([`error: --out ${path.join(file, 'run')}: ${file} is a file, not a folder`]);
    expect(r.stderr).not.toContain('backend'); // refused before the engine started
    expect(fs.readdirSync(dir)).toEqual(['file']);
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
  });

  it.runIf(process.platform === 'linux')('--out under /proc or /sys: exit 2 at once instead of spinning', () => {
    for (const out of ['/proc/vmoe-test/run', '/sys/vmoe-test/run']) {
      const r = vmoe('train', ...common, '--out', out);
      expect(r.status).toBe(2);
      expect(errorLines(r.stderr)).toHaveLength(1);
      expect(errorLines(r.stderr)[0]).toMatch(
        new RegExp(`^error: --out ${out}: /(proc|sys) is on (procfs|sysfs), a pseudo-filesystem`),
      );
      expect(r.seconds).toBeLessThan(30);
    }
  });

  it.each([
    ['sweep', '--checkpoint', '/nonexistent'],
    ['robustness', '--checkpoint', '/nonexistent'],
    ['fewshot', '--checkpoint', '/nonexistent'],
    ['routing', '--checkpoint', '/nonexistent'],
    ['report', '/nonexistent'],
    ['corrupt'],
    ['experiment', 'e3'],
    ['quickstart'],
    ['eval', '--checkpoint', '/nonexistent'],
  ])('%s --out under a file or /proc: the same one line before any work', (...cmd: string[]) => {
    const file = path.join(tmpDir('cmd'), 'file');
    fs.writeFileSync(file, 'x');
    const r = vmoe(...cmd, '--out', path.join(file, 'x'));
    expect(r.status).toBe(2);
    expect(errorLines(r.stderr)).toEqual([`error: --out ${path.join(file, 'x')}: ${file} is a file, not a folder`]);
    if (process.platform === 'linux') {
      const p = vmoe(...cmd, '--out', '/proc/vmoe-test/x');
      expect(p.status).toBe(2);
      expect(errorLines(p.stderr)[0]).toMatch(/^error: --out \/proc\/vmoe-test\/x: \/proc is on procfs/);
    }
  });
});
