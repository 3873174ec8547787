/**
 * Grids on a real Redis (redis-server started here on a free port, data in a temporary folder, stopped
 * after): 2 `vmoe worker` processes take a grid of tiny trainings; every job completes once, and each
 * run equals the same job run locally in-process bit for bit — also the one whose worker was SIGKILLed
 * mid-training (another worker takes it after the stall interval and resumes from its checkpoint). A
 * finished grid submitted again runs nothing; a bad job fails alone with its message; robustness and
 * sweep with --queue write the local command's files; SIGTERM returns a running training's job to the
 * queue after a checkpoint; an unreachable Redis is one error line naming the URL. Skipped, saying how to install it, where redis-server is missing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, latestCheckpoint } from '../../src/checkpoint/format.js';
import { TINY_TRAIN, cli, cliEnv, oneLineError, runCli } from '../helpers/cli.js';

const REDIS =
  [
    ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'redis-server')),
    '/usr/bin/redis-server',
    '/usr/sbin/redis-server',
  ].find((p) => fs.existsSync(p)) ?? null;
if (!REDIS)
  console.warn(
    'tests/queue/queue.test.ts skipped: redis-server is missing; install it with `sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)',
  );

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
const waitFor = async (what: string, cond: () => boolean, ms = 60_000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

/** The TINY_TRAIN overrides as grid `set` entries. */
const tinySet = TINY_TRAIN.filter((a) => a !== '--set');
const train = (seed: number, steps: number, out: string) => ({
  kind: 'train',
  seed,
  out,
  set: [...tinySet, `train.steps=${steps}`, 'train.checkpointEvery=5', 'train.logEvery=1000'],
});
// Six good jobs (seed 0 long enough to be killed mid-run) and one whose config cannot train (28×28 MNIST, imageSize 56).
const GRID = [
  train(0, 40, 'runs/s0'),
  ...[1, 2, 3, 4, 5].map((s) => train(s, 10, `runs/s${s}`)),
  { kind: 'train', seed: 9, out: 'runs/bad', set: [...tinySet, 'data.dataset="idx:/no/such/folder"', 'train.steps=3'] },
];
const GOOD = GRID.slice(0, 6).map((j) => j.out);

const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `vmoe-queue-${tag}-`));
const params = (run: string) => {
  const ck = loadCheckpoint(latestCheckpoint(path.join(run, 'checkpoints'))!);
  return Object.fromEntries(
    Object.entries(ck.tensors)
      .filter(([k]) => k.startsWith('params/'))
      .map(([k, t]) => [k, Buffer.from((t.data as Float32Array).buffer).toString('base64')]),
  );
};
const losses = (run: string) =>
  fs
    .readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: number; loss?: number })
    .filter((r) => r.loss !== undefined)
    .map((r) => [r.step, r.loss]);

describe.skipIf(!REDIS)('grids on a Redis queue with 2 workers', () => {
  let redis: ChildProcess;
  let url = '';
  const workers: { proc: ChildProcess; log: string[] }[] = [];
  const local = tmp('local');
  const shared = tmp('shared');

  const startWorker = () => {
    const proc = spawn(
      process.execPath,
      [cli, 'worker', '--queue', url, '--run-root', shared, '--stalled-interval', '1500'],
      { env: cliEnv, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const w = { proc, log: [] as string[] };
    proc.stderr!.on('data', (d: Buffer) => w.log.push(...d.toString().split('\n').filter(Boolean)));
    workers.push(w);
    return w;
  };

  beforeAll(async () => {
    const port = await freePort();
    const dir = tmp('redis');
    redis = spawn(
      REDIS!,
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    spawnSync('sleep', ['0.3']);
    url = `redis://127.0.0.1:${port}`;
    for (const root of [local, shared]) fs.writeFileSync(path.join(root, 'grid.json'), JSON.stringify(GRID));
    // The reference: the same grid run locally, in-process, one job after another.
    const r = runCli(['grid', path.join(local, 'grid.json'), '--run-root', local]);
    expect(r.status, r.stderr).toBe(2); // the bad job
  });

  afterAll(() => {
    for (const w of workers) w.proc.kill('SIGKILL');
    redis?.kill('SIGTERM');
  });

  it('runs every job once, survives a worker SIGKILLed mid-training, equals the local run bit for bit', async () => {
    const w1 = startWorker();
    const w2 = startWorker();
    await waitFor('2 workers', () => workers.every((w) => w.log.some((l) => l.includes('takes jobs'))));
    const submit = spawn(
      process.execPath,
      [cli, 'grid', path.join(shared, 'grid.json'), '--queue', url, '--run-root', shared],
      {
        env: cliEnv,
      },
    );
    let out = '';
    let err = '';
    submit.stdout.on('data', (d: Buffer) => (out += d));
    submit.stderr.on('data', (d: Buffer) => (err += d));
    const exited = new Promise<number | null>((resolve) => submit.on('exit', resolve));
    // Once the long training has written a checkpoint, kill the worker running it (the lock names its job process).
    const s0 = path.join(shared, 'runs/s0');
    await waitFor(
      'a checkpoint of runs/s0',
      () => fs.existsSync(s0) && latestCheckpoint(path.join(s0, 'checkpoints')) !== null,
    );
    const lock = JSON.parse(fs.readFileSync(path.join(s0, '.vmoe.lock'), 'utf8')) as { pid: number };
    const ppid = Number(/PPid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${lock.pid}/status`, 'utf8'))![1]);
    const victim = [w1, w2].find((w) => w.proc.pid === ppid)!;
    expect(victim, 'the job process belongs to one of the workers').toBeDefined();
    expect(fs.existsSync(path.join(s0, 'train_summary.json'))).toBe(false); // killed mid-training
    victim.proc.kill('SIGKILL');
    const code = await exited;
    expect(code, err).toBe(2);
    // The summary: six done, the bad job failed once with its own message, and the one-line error for it.
    expect(out).toMatch(/grid: 7 jobs, 6 done \(6 ran now\), 1 failed/);
    expect(out).toMatch(/failed train-\w+ train runs\/bad .*data set 'idx:\/no\/such\/folder' not found/);
    const lines = err.split('\n').filter((l) => l.startsWith('error:'));
    expect(lines).toEqual([
      expect.stringMatching(/^error: 1 of 7 jobs failed; first: .*data set 'idx:\/no\/such\/folder' not found/),
    ]);
    const survivor = [w1, w2].find((w) => w !== victim)!;
    // The killed job was taken over by the other worker and resumed from a checkpoint; each job finished exactly once.
    const s0Id = victim.log.find((l) => l.includes(': train runs/s0 '))!.split(':')[0]!;
    const takeover = survivor.log.find((l) => l.startsWith(`${s0Id}: done in `));
    expect(takeover, `${victim.log.join('\n')}\n---\n${survivor.log.join('\n')}`).toMatch(
      /resumed from the checkpoint of step (\d+)/,
    );
    expect(Number(/step (\d+)/.exec(takeover!)![1])).toBeGreaterThanOrEqual(5);
    const finished = workers.flatMap((w) => w.log.filter((l) => / done in /.test(l)).map((l) => l.split(':')[0]));
    expect(finished.length).toBe(6);
    expect(new Set(finished).size).toBe(6);
    const bad = workers.flatMap((w) =>
      w.log.filter((l) => /failed: .*data set 'idx:\/no\/such\/folder' not found/.test(l)),
    );
    expect(bad.length).toBe(1); // failed once, not retried
    // Bit for bit: every run's final parameters and loss curve equal the local in-process run's.
    for (const run of GOOD) {
      expect(params(path.join(shared, run)), run).toEqual(params(path.join(local, run)));
      expect(losses(path.join(shared, run)), run).toEqual(losses(path.join(local, run)));
    }
    // The resumed run's log holds each step once.
    expect(losses(s0).map(([s]) => s)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));

    // Submitting the finished grid again runs nothing (the bad job is tried again, and fails again).
    const mtimes = GOOD.map((r) => fs.statSync(path.join(shared, r, 'train_summary.json')).mtimeMs);
    const again = runCli(['grid', path.join(shared, 'grid.json'), '--queue', url, '--run-root', shared]);
    expect(again.stdout).toMatch(/grid: 7 jobs, 6 done \(0 ran now\), 1 failed/);
    expect(GOOD.map((r) => fs.statSync(path.join(shared, r, 'train_summary.json')).mtimeMs)).toEqual(mtimes);
  });

  it('robustness and sweep with --queue write the same files as the local commands', async () => {
    // Back to two workers (the first test killed one).
    const alive = () => workers.filter((w) => w.proc.exitCode === null && w.proc.signalCode === null);
    while (alive().length < 2) startWorker();
    await waitFor('2 workers', () => alive().every((w) => w.log.some((l) => l.includes('takes jobs'))));
    const q = ['--queue', url, '--run-root', '.'];
    // Two models (one a deep ensemble) × one corruption × two severities: 4 jobs, merged into one report.
    const rob = ['robustness', '--checkpoint', 'runs/s1', '--checkpoint', 'runs/s2+runs/s3'];
    const robSets = ['--corruptions', 'gaussian_noise', '--severities', '1,3', '--limit', '64', '--format', 'csv'];
    const rq = runCli([...rob, ...robSets, '--out', 'rob-q', ...q], shared);
    const rl = runCli([...rob, ...robSets, '--out', 'rob-l'], shared);
    expect(rq.status, rq.stderr).toBe(0);
    expect(rl.status, rl.stderr).toBe(0);
    expect(rq.stdout).toBe(rl.stdout);
    for (const f of ['robustness.csv', 'summary.csv', 'corruptions.csv'])
      expect(fs.readFileSync(path.join(shared, 'rob-q', f), 'utf8'), f).toBe(
        fs.readFileSync(path.join(shared, 'rob-l', f), 'utf8'),
      );
    // Two routing settings, one job each; everything but the measured speed equals the local sweep.
    const sweep = [
      'sweep',
      '--checkpoint',
      'runs/s1',
      '--capacity-factors',
      '0.5,1',
      '--batch-priority',
      'on',
      '--limit',
      '64',
      '--format',
      'json',
    ];
    const sq = runCli([...sweep, '--quiet', ...q], shared);
    const sl = runCli([...sweep, '--quiet'], shared);
    expect(sq.status, sq.stderr).toBe(0);
    const rows = (r: { stdout: string }) =>
      (JSON.parse(r.stdout) as { rows: Record<string, unknown>[] }).rows.map(
        ({ images_per_s: _, seconds: __, ...rest }) => rest,
      );
    expect(rows(sq)).toHaveLength(2);
    expect(rows(sq)).toEqual(rows(sl));
  });

  it('SIGTERM: a running training saves a checkpoint, its job returns to the queue, another worker finishes it', async () => {
    // Idle workers stop at once on SIGTERM, exit 0.
    const alive = workers.filter((w) => w.proc.exitCode === null && w.proc.signalCode === null);
    for (const w of alive) w.proc.kill('SIGTERM');
    const codes = await Promise.all(
      alive.map((w) => new Promise<number | null>((resolve) => w.proc.once('exit', (code) => resolve(code)))),
    );
    expect(codes.every((c) => c === 0)).toBe(true);
    fs.writeFileSync(path.join(shared, 'term.json'), JSON.stringify([train(4, 80, 'runs/term')]));
    const a = startWorker();
    await waitFor('a worker', () => a.log.some((l) => l.includes('takes jobs')));
    const submit = spawn(process.execPath, [cli, 'grid', 'term.json', '--queue', url, '--run-root', '.'], {
      cwd: shared,
      env: cliEnv,
    });
    let out = '';
    submit.stdout.on('data', (d: Buffer) => (out += d));
    const exited = new Promise<number | null>((resolve) => submit.on('exit', resolve));
    const run = path.join(shared, 'runs/term');
    await waitFor('a checkpoint of runs/term', () => latestCheckpoint(path.join(run, 'checkpoints')) !== null);
    a.proc.kill('SIGTERM');
    expect(await new Promise((resolve) => a.proc.once('exit', resolve))).toBe(0);
    expect(a.log.some((l) => l.endsWith(': returned to the queue'))).toBe(true);
    expect(fs.existsSync(path.join(run, 'train_summary.json'))).toBe(false);
    const b = startWorker();
    expect(await exited).toBe(0);
    expect(out).toMatch(/grid: 1 jobs, 1 done \(1 ran now\), 0 failed/);
    expect(b.log.join('\n')).toMatch(/done in .* \(resumed from the checkpoint of step \d+\)/);
    expect(losses(run).map(([step]) => step)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
  });

  it('an unreachable Redis is one error line naming the URL, within seconds', async () => {
    const port = await freePort(); // nothing listens there
    const r = runCli([
      'grid',
      path.join(shared, 'grid.json'),
      '--queue',
      `redis://127.0.0.1:${port}`,
      '--run-root',
      shared,
    ]);
    const { error } = oneLineError(r, { stdoutEmpty: true });
    expect(error).toBe(`error: cannot reach Redis at redis://127.0.0.1:${port}: ECONNREFUSED`);
    expect(r.seconds).toBeLessThan(15);
  });
});
