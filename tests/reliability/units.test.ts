/** The building blocks of docs/reliability.md: output-folder checks, whole writes, the run lock, temp cleanup, finiteness. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { findNonFinite, loadCheckpoint, removeOrphanTemps, saveCheckpoint } from '../../src/checkpoint/format.js';
import { initEngine } from '../../src/engine/index.js';
import { parseExperiment } from '../../src/config/experiment.js';
import { train } from '../../src/train/trainer.js';
import { OutputError, TrainingError } from '../../src/util/errors.js';
import { JsonlAppender, checkOutputDir, readJsonl, writeFileWhole } from '../../src/util/output-dir.js';
import { LOCK_FILE, acquireRunLock } from '../../src/util/run-lock.js';
import { deadPid, tmpDir } from './helpers.js';

describe('checkOutputDir', () => {
  it('accepts a missing folder (creating it when asked) and an existing one', () => {
    const d = path.join(tmpDir('out'), 'a', 'b');
    expect(checkOutputDir(d)).toBe(d);
    expect(fs.existsSync(path.dirname(d))).toBe(false); // checked, not created
    expect(checkOutputDir(d, '--out', { create: true })).toBe(d);
    expect(fs.statSync(d).isDirectory()).toBe(true);
    expect(checkOutputDir(d)).toBe(d);
  });
  it('refuses a path under a regular file or that is a file, naming the file', () => {
    const f = path.join(tmpDir('out'), 'f');
    fs.writeFileSync(f, '');
    expect(() => checkOutputDir(path.join(f, 'x', 'y'))).toThrow(
      new OutputError(`--out ${path.join(f, 'x', 'y')}: ${f} is a file, not a folder`, {
        file: f,
        hint: 'choose a folder that is not inside a file',
      }),
    );
    expect(() => checkOutputDir(f, '--dir')).toThrow(`--dir ${f}: is a file, not a folder`);
  });
  it.runIf(process.platform === 'linux')('refuses /proc and /sys without touching them', () => {
    expect(() => checkOutputDir('/proc/self/vmoe')).toThrow(/is on procfs, a pseudo-filesystem/);
    expect(() => checkOutputDir('/sys/kernel/vmoe')).toThrow(/is on sysfs/);
  });
});

describe('whole writes', () => {
  it.runIf(fs.existsSync('/dev/full'))('ENOSPC on a log append is one OutputError naming the file', () => {
    const w = new JsonlAppender('/dev/full');
    try {
      expect(() => w.append({ step: 1 })).toThrow(
        new OutputError('cannot write /dev/full: no space left on device (ENOSPC)', { file: '/dev/full' }),
      );
    } finally {
      w.close();
    }
  });
  it('writeFileWhole replaces a file atomically and leaves the old one when it cannot write', () => {
    const dir = tmpDir('whole');
    const f = path.join(dir, 'a.json');
    writeFileWhole(f, 'one\n');
    writeFileWhole(f, 'two\n');
    expect(fs.readFileSync(f, 'utf8')).toBe('two\n');
    expect(fs.readdirSync(dir)).toEqual(['a.json']);
    fs.mkdirSync(path.join(dir, 'sub.json'));
    expect(() => writeFileWhole(path.join(dir, 'sub.json'), 'x')).toThrow(/cannot write .*sub\.json/);
    expect(fs.readdirSync(dir).sort()).toEqual(['a.json', 'sub.json']);
  });
  it('readJsonl leaves out a cut last line and reports it; a bad line elsewhere names the line', () => {
    const f = path.join(tmpDir('jsonl'), 'm.jsonl');
    const w = new JsonlAppender(f);
    w.append({ step: 1 });
    w.append({ step: 2 });
    w.close();
    expect(readJsonl(f)).toEqual({ records: [{ step: 1 }, { step: 2 }], cutLastLine: null });
    fs.appendFileSync(f, '{"step": 3, "lo');
    expect(readJsonl(f)).toEqual({ records: [{ step: 1 }, { step: 2 }], cutLastLine: '{"step": 3, "lo' });
    fs.writeFileSync(f, '{"step": 1}\nnot json\n{"step": 3}\n');
    expect(() => readJsonl(f)).toThrow(`${f}:2: not valid JSON`);
  });
});

describe('run lock', () => {
  it('a second acquire is refused naming the owner; release frees it', () => {
    const dir = tmpDir('lock');
    const lock = acquireRunLock(dir, 'vmoe train');
    expect(lock.tookOver).toBeNull();
    expect(JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8'))).toMatchObject({
      pid: process.pid,
      host: os.hostname(),
      command: 'vmoe train',
    });
    expect(() => acquireRunLock(dir, 'vmoe finetune')).toThrow(TrainingError);
    expect(() => acquireRunLock(dir, 'vmoe finetune')).toThrow(
      `locked by pid ${process.pid} on ${os.hostname()} (vmoe train`,
    );
    lock.release();
    expect(fs.readdirSync(dir)).toEqual([]);
    acquireRunLock(dir, 'again').release();
  });
  it('takes over a stale lock (dead pid, this host) and an old unreadable one', () => {
    const dir = tmpDir('lock');
    const pid = deadPid();
    fs.writeFileSync(
      path.join(dir, LOCK_FILE),
      JSON.stringify({ pid, host: os.hostname(), started: 's', command: 'c' }),
    );
    const a = acquireRunLock(dir, 'x');
    expect(a.tookOver).toBe(
      `a stale lock of pid ${pid} on ${os.hostname()} (c, started s), which is no longer running`,
    );
    a.release();
    fs.writeFileSync(path.join(dir, LOCK_FILE), '{"pid": 1');
    expect(() => acquireRunLock(dir, 'x')).toThrow(/is being written/); // fresh: maybe being written right now
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(path.join(dir, LOCK_FILE), old, old);
    const b = acquireRunLock(dir, 'x');
    expect(b.tookOver).toMatch(/unreadable lock file/);
    b.release();
  });
});

describe('checkpoint temp files and finiteness', () => {
  it("removeOrphanTemps removes dead writers' temp files, keeps live ones and real checkpoints", () => {
    const dir = tmpDir('temps');
    const file = saveCheckpoint(dir, {
      meta: { step: 1 },
      tensors: { a: { dtype: 'float32', shape: [1], data: new Float32Array([1]) } },
    });
    const dead = path.join(dir, `.checkpoint-2.vmoe.${deadPid()}.abcd1234.tmp`);
    const live = path.join(dir, `.checkpoint-3.vmoe.${process.ppid}.abcd1234.tmp`);
    fs.writeFileSync(dead, 'x');
    fs.writeFileSync(live, 'x');
    expect(removeOrphanTemps(dir)).toEqual([dead]);
    expect(fs.readdirSync(dir).sort()).toEqual([path.basename(live), path.basename(file)].sort());
    expect(removeOrphanTemps(path.join(dir, 'missing'))).toEqual([]);
  });
  it('findNonFinite names the first bad tensor and counts', () => {
    const t = (xs: number[]) => ({ dtype: 'float32' as const, shape: [xs.length], data: new Float32Array(xs) });
    expect(findNonFinite({ a: t([1, 2]) })).toBeNull();
    expect(findNonFinite({ b: t([NaN, Infinity, 1]), a: t([1]), c: t([-Infinity]) })).toEqual({
      name: 'b',
      count: 2,
      size: 3,
      tensors: 2,
    });
    expect(findNonFinite({ 'opt/m/x': t([NaN]) }, 'params/')).toBeNull();
  });
});

describe('trainer (library)', () => {
  beforeAll(async () => {
    await initEngine({ backend: 'wasm', quiet: true, threads: 1 });
  });
  const cfg = (extra: Record<string, unknown> = {}) =>
    parseExperiment({
      name: 'tiny',
      seed: 2,
      model: {
        type: 'vmoe',
        patchSize: 14,
        hidden: 16,
        depth: 2,
        heads: 2,
        mlpDim: 32,
        moe: { numExperts: 4, k: 2, groupImages: 4, layers: { placement: 'list', list: [1] } },
      },
      data: { dataset: 'mnist', valSize: 32, trainLimit: 128 },
      train: {
        batchSize: 16,
        steps: 6,
        evalEvery: 0,
        evalLimit: 32,
        checkpointEvery: 1,
        keepCheckpoints: 100,
        logEvery: 1000,
      },
      ...extra,
    });

  it('never writes a checkpoint with non-finite parameters or optimizer slots', async () => {
    const dir = tmpDir('lib-nan');
    const err = await train({
      config: cfg({ optim: { lr: 1e30, warmupSteps: 0, gradClipNorm: null } }),
      outDir: dir,
      quiet: true,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/at step \d+/);
    const ckDir = path.join(dir, 'checkpoints');
    const files = fs.existsSync(ckDir) ? fs.readdirSync(ckDir) : [];
    for (const f of files) expect(findNonFinite(loadCheckpoint(path.join(ckDir, f)).tensors)).toBeNull();
    expect(msg).toContain(files.length ? 'the last finite checkpoint is' : 'no checkpoint was written before it');
    expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  });

  it("--resume before the first checkpoint restarts the same run at step 0, and refuses another run's config", async () => {
    const dir = tmpDir('lib-restart');
    const config = cfg({
      train: { batchSize: 16, steps: 2, evalEvery: 0, evalLimit: 32, checkpointEvery: 0, logEvery: 1000 },
    });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, seed: 99 }));
    await expect(train({ config, outDir: dir, quiet: true, resume: true })).rejects.toThrow(
      /config\.json is another run's \(its "seed" differs/,
    );
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    fs.writeFileSync(path.join(dir, 'metrics.jsonl'), '{"step": 1}\n{"step": 2, "lo');
    const r = await train({ config, outDir: dir, quiet: true, resume: true });
    expect(r.step).toBe(2);
    const log = readJsonl<{ step: number; split?: string; loss?: number }>(path.join(dir, 'metrics.jsonl'));
    expect(log.cutLastLine).toBeNull();
    expect(log.records.filter((l) => !l.split).map((l) => [l.step, typeof l.loss])).toEqual([
      [1, 'number'],
      [2, 'number'],
    ]);
  });

  it('resume and overwrite together are refused before anything is touched', async () => {
    const dir = path.join(tmpDir('lib-both'), 'run');
    await expect(train({ config: cfg(), outDir: dir, quiet: true, resume: true, overwrite: true })).rejects.toThrow(
      /--resume and --overwrite contradict/,
    );
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('a stop request saves at the current step and throws TrainingInterrupted with 128 + signal', async () => {
    const { TrainingInterrupted } = await import('../../src/train/trainer.js');
    const dir = tmpDir('lib-stop');
    const stop = { signal: null as NodeJS.Signals | null };
    setTimeout(() => (stop.signal = 'SIGTERM'), 0);
    const err = await train({
      config: cfg({
        train: { batchSize: 16, steps: 50, evalEvery: 0, evalLimit: 32, checkpointEvery: 100, logEvery: 1000 },
      }),
      outDir: dir,
      quiet: true,
      stop,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingInterrupted);
    const e = err as InstanceType<typeof TrainingInterrupted>;
    expect(e.exitCode).toBe(143);
    expect(e.step).toBeGreaterThanOrEqual(1);
    expect(e.step).toBeLessThan(50);
    expect(loadCheckpoint(e.checkpoint!).meta.step).toBe(e.step);
  });
});
