/**
 * `vmoe worker`: takes jobs from the queue and runs each in a child process (job-child.ts), reporting
 * its progress (step, images/s) through the BullMQ job. A job that fails for a real reason (the child
 * exits 2: a VmoeError such as a bad config) fails once, without retries, its message kept by the
 * queue; any other failure (a crash, a killed child) is retried with backoff. A worker that dies stops
 * renewing its jobs' locks: after the stall interval another worker takes them and, for a training,
 * resumes from the run's latest checkpoint. SIGTERM / SIGINT: running trainings save a checkpoint and
 * their jobs go back to the queue, then the worker exits; a second signal exits at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { EXIT_BAD_INPUT, UsageError } from '../util/errors.js';
import { QUEUE_NAME, checkRunRootMarker, connectQueue, type RunRootMarker } from './connection.js';
import type { ChildMessage, ChildRequest } from './job-child.js';
import { describeJob, type JobSpec } from './jobs.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'job-child.js');

/** What a job carries in the queue: the job and the marker of the run root its paths are relative to. */
export interface QueuedJobData {
  spec: JobSpec;
  runRoot: RunRootMarker;
}

/** A job's progress as the worker reports it (job.progress). */
export interface QueuedJobProgress {
  worker: string;
  step: number;
  total: number;
  imagesPerSecond: number;
}

/** What a completed job returns (job.returnvalue). */
export interface QueuedJobResult {
  ran: boolean;
  seconds: number;
  worker: string;
}

/** Options of runWorker. */
export interface WorkerOptions {
  url: string;
  /** jobs at a time (each its own process) */
  concurrency: number;
  /** this machine's path of the shared run root */
  runRoot: string;
  /** tensor backend and threads for the jobs' processes */
  backend: string;
  threads?: number;
  /**
   * Lock duration and stall-check interval in ms (default 30000): a dead worker's job is taken by
   * another after about this long. Locks are renewed at half of it.
   */
  stalledIntervalMs?: number;
  log?: (line: string) => void;
  /** Resolved once the worker takes jobs (tests wait for it). */
  onReady?: () => void;
}

/** Runs a worker until SIGTERM / SIGINT; resolves when it has shut down. */
export async function runWorker(o: WorkerOptions): Promise<void> {
  const log = o.log ?? ((s: string) => process.stderr.write(`[worker] ${s}\n`));
  const runRoot = path.resolve(o.runRoot);
  if (!fs.existsSync(runRoot) || !fs.statSync(runRoot).isDirectory())
    throw new UsageError(`--run-root ${o.runRoot}: no such folder`, {
      hint: 'mount the shared run root here and name it with --run-root',
    });
  const conn = await connectQueue(o.url);
  const name = `${os.hostname()}:${process.pid}`;
  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const interval = o.stalledIntervalMs ?? 30_000;

  const processor = async (job: Job<QueuedJobData>, token?: string): Promise<QueuedJobResult> => {
    const { spec } = job.data;
    try {
      checkRunRootMarker(runRoot, job.data.runRoot);
    } catch (err) {
      log(`${job.id}: ${(err as Error).message}`);
      throw new UnrecoverableError((err as Error).message);
    }
    log(`${job.id}: ${describeJob(spec)} (attempt ${job.attemptsMade + 1})`);
    const child = spawn(process.execPath, [CHILD], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    children.set(String(job.id), child);
    let stderrTail = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderrTail = (stderrTail + d.toString('utf8')).slice(-2000);
    });
    let result: { ran: boolean; seconds: number; resumedFrom?: number } | null = null;
    let error: { message: string; hint?: string; exitCode: number } | null = null;
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'progress') {
        const p: QueuedJobProgress = { worker: name, ...m.progress };
        job.updateProgress(p as unknown as object).catch(() => {});
      } else if (m.type === 'done') result = { ran: m.ran, seconds: m.seconds, resumedFrom: m.resumedFrom };
      else error = m;
    });
    const req: ChildRequest = { job: spec, runRoot, backend: o.backend, threads: o.threads };
    child.send(req);
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', () => resolve({ code: null, signal: null }));
    });
    children.delete(String(job.id));
    if (exit.code === 0 && result) {
      const r = result as { ran: boolean; seconds: number; resumedFrom?: number };
      const resumed = r.resumedFrom !== undefined ? ` (resumed from the checkpoint of step ${r.resumedFrom})` : '';
      log(
        `${job.id}: ${r.ran ? `done in ${r.seconds.toFixed(1)} s${resumed}` : 'result already there: nothing to run'}`,
      );
      return { ran: r.ran, seconds: r.seconds, worker: name };
    }
    if (stopping && token) {
      // Shutting down: the training saved a checkpoint; the job goes back to the queue, no attempt spent.
      await job.moveToWait(token);
      log(`${job.id}: returned to the queue`);
      throw new WaitingError();
    }
    const e = error as { message: string; hint?: string; exitCode: number } | null;
    if (e && exit.code === EXIT_BAD_INPUT) {
      log(`${job.id}: failed: ${e.message}`);
      throw new UnrecoverableError(e.hint ? `${e.message} (hint: ${e.hint})` : e.message);
    }
    const why = e?.message ?? (exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`);
    const tail = stderrTail.trim().split('\n').slice(-1)[0] ?? '';
    log(`${job.id}: job process failed (${why}); it will be retried`);
    throw new Error(`job process failed: ${why}${tail && !e ? ` (${tail})` : ''}`);
  };

  const worker = new Worker<QueuedJobData, QueuedJobResult>(QUEUE_NAME, processor, {
    connection: conn.options,
    concurrency: o.concurrency,
    lockDuration: interval,
    stalledInterval: interval,
    maxStalledCount: 3,
    name,
  });
  worker.on('error', (err) => log(`queue error: ${err.message}`));
  await worker.waitUntilReady();
  log(`${name} takes jobs from ${o.url} (concurrency ${o.concurrency}, run root ${runRoot})`);
  o.onReady?.();

  await new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) {
        log(`${sig} again: exiting now; running jobs return to the queue after the stall interval`);
        for (const c of children.values()) c.kill('SIGKILL');
        process.exit(128 + (os.constants.signals[sig] ?? 0));
      }
      stopping = true;
      log(
        `${sig}: ${children.size} running job(s) stop (a training saves a checkpoint) and return to the queue; send it again to exit at once`,
      );
      for (const c of children.values()) c.kill('SIGTERM');
      worker
        .close()
        .catch((err: Error) => log(`closing: ${err.message}`))
        .finally(() => {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
          resolve();
        });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  log('stopped');
}
