/**
 * Submitting a grid and waiting for it: each job is added under its id (jobs.ts), so a job the queue
 * already holds is not added twice (a failed one is retried); the grid's state is polled and reported
 * as one status (done / running / failed, each worker's images/s, ETA) until every job has completed or
 * failed. `runGridLocally` runs the same jobs in this process, one after another, for a local run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Queue, type Job } from 'bullmq';
import { VmoeError } from '../util/errors.js';
import { QUEUE_NAME, connectQueue, ensureRunRootMarker } from './connection.js';
import { describeJob, jobId, resultFileOf, type JobSpec } from './jobs.js';
import { runJob } from './run-job.js';
import type { QueuedJobData, QueuedJobProgress, QueuedJobResult } from './worker.js';

/** One job's end in a grid. */
export interface GridJobResult {
  id: string;
  spec: JobSpec;
  state: 'completed' | 'failed';
  /** the failure's message (failed jobs) */
  error?: string;
  /** whether it ran during this submission (false: its result was there already) */
  ran: boolean;
}

/** What a grid run returns: every job's end, how many ran now, the wall time. */
export interface GridResult {
  jobs: GridJobResult[];
  ranNow: number;
  failed: number;
  seconds: number;
}

/** The grid's state at one poll. */
export interface GridStatus {
  total: number;
  done: number;
  running: number;
  failed: number;
  /** per worker: images/s of its running trainings */
  workers: { worker: string; imagesPerSecond: number; jobs: number }[];
  /** seconds left, from the mean time of the jobs done so far; null before the first */
  etaSeconds: number | null;
  elapsedSeconds: number;
}

/** One line for a GridStatus: `grid 3/7 done · 2 running · 0 failed · host:123 41 img/s · ETA 1m20s`. */
export function formatGridStatus(s: GridStatus): string {
  const eta =
    s.etaSeconds === null
      ? '?'
      : `${Math.floor(s.etaSeconds / 60)}m${String(Math.round(s.etaSeconds % 60)).padStart(2, '0')}s`;
  const workers = s.workers.map((w) => `${w.worker} ${w.imagesPerSecond.toFixed(0)} img/s`).join(' · ');
  return `grid ${s.done}/${s.total} done · ${s.running} running · ${s.failed} failed${workers ? ` · ${workers}` : ''} · ETA ${eta}`;
}

/** `p`, or a rejection after `ms` (a command waiting for a Redis that is gone). */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from Redis in ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Options of runGridOnQueue. */
export interface QueueGridOptions {
  url: string;
  /** the run root as the submitter sees it (its marker is written here) */
  runRoot: string;
  onStatus?: (s: GridStatus) => void;
  pollMs?: number;
  /** tries per job for failures that are not a VmoeError (crashes, killed processes); default 3 */
  attempts?: number;
}

/**
 * Submits `jobs` to the queue at `o.url` and waits until each has completed or failed. Throws a
 * QueueError when Redis cannot be reached, and a VmoeError when it is lost for 30 s while waiting.
 */
export async function runGridOnQueue(jobs: JobSpec[], o: QueueGridOptions): Promise<GridResult> {
  const t0 = Date.now();
  const conn = await connectQueue(o.url);
  const queue = new Queue<QueuedJobData, QueuedJobResult>(QUEUE_NAME, { connection: conn.options });
  try {
    const marker = ensureRunRootMarker(o.runRoot);
    const byId = new Map<string, JobSpec>();
    for (const spec of jobs) byId.set(jobId(spec), spec);
    for (const [id, spec] of byId) {
      const existing = await queue.getJob(id);
      if (existing) {
        const state = await existing.getState();
        if (state === 'failed') {
          await existing.retry('failed');
          continue;
        }
        // Completed, but its result is gone from the run root (deleted, or another run root): run it again.
        if (!(state === 'completed' && !fs.existsSync(path.join(o.runRoot, spec.out, resultFileOf(spec))))) continue;
        await existing.remove();
      }
      await queue.add(
        spec.kind,
        { spec, runRoot: marker },
        {
          jobId: id,
          attempts: o.attempts ?? 3,
          backoff: { type: 'exponential', delay: 2000 },
          removeOnComplete: false,
          removeOnFail: false,
        },
      );
    }
    const ids = [...byId.keys()];
    const pollMs = o.pollMs ?? 1000;
    let lostSince: number | null = null;
    for (;;) {
      let states: { job: Job<QueuedJobData, QueuedJobResult> | undefined; state: string }[];
      try {
        states = await withTimeout(
          Promise.all(
            ids.map(async (id) => {
              const job = await queue.getJob(id);
              return { job, state: job ? await job.getState() : 'unknown' };
            }),
          ),
          10_000,
        );
        lostSince = null;
      } catch (err) {
        lostSince ??= Date.now();
        if (Date.now() - lostSince > 30_000)
          throw new VmoeError(`lost Redis at ${o.url} while waiting for the grid: ${(err as Error).message}`, {
            hint: 'the jobs stay queued; submit the same grid again to wait for them',
          });
        await new Promise((r) => setTimeout(r, pollMs));
        continue;
      }
      const done = states.filter((s) => s.state === 'completed');
      const failed = states.filter((s) => s.state === 'failed');
      const running = states.filter((s) => s.state === 'active');
      const workers = new Map<string, { worker: string; imagesPerSecond: number; jobs: number }>();
      for (const { job } of running) {
        const p = job?.progress as QueuedJobProgress | number | undefined;
        if (!p || typeof p !== 'object') continue;
        const w = workers.get(p.worker) ?? { worker: p.worker, imagesPerSecond: 0, jobs: 0 };
        w.imagesPerSecond += p.imagesPerSecond;
        w.jobs += 1;
        workers.set(p.worker, w);
      }
      const ranNow = done.filter((s) => s.job?.returnvalue?.ran && (s.job.finishedOn ?? 0) >= t0);
      const elapsed = (Date.now() - t0) / 1000;
      const remaining = ids.length - done.length - failed.length;
      o.onStatus?.({
        total: ids.length,
        done: done.length,
        running: running.length,
        failed: failed.length,
        workers: [...workers.values()],
        etaSeconds: ranNow.length > 0 ? (elapsed / ranNow.length) * remaining : remaining === 0 ? 0 : null,
        elapsedSeconds: elapsed,
      });
      if (remaining === 0) {
        const results: GridJobResult[] = states.map((s, i) => ({
          id: ids[i]!,
          spec: byId.get(ids[i]!)!,
          state: s.state === 'completed' ? 'completed' : 'failed',
          ...(s.state === 'failed' ? { error: s.job?.failedReason ?? 'failed' } : {}),
          ran: ranNow.includes(s),
        }));
        return { jobs: results, ranNow: ranNow.length, failed: failed.length, seconds: elapsed };
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  } finally {
    await queue.close().catch(() => {});
  }
}

/** Runs `jobs` in this process, one after another (no queue): the local counterpart of runGridOnQueue. */
export async function runGridLocally(
  jobs: JobSpec[],
  o: { runRoot: string; log?: (line: string) => void },
): Promise<GridResult> {
  const t0 = Date.now();
  const results: GridJobResult[] = [];
  const seen = new Set<string>();
  for (const spec of jobs) {
    const id = jobId(spec);
    if (seen.has(id)) continue;
    seen.add(id);
    o.log?.(`${id}: ${describeJob(spec)}`);
    try {
      const r = await runJob(spec, { runRoot: o.runRoot });
      results.push({ id, spec, state: 'completed', ran: r.ran });
    } catch (err) {
      if (!(err instanceof VmoeError)) throw err;
      results.push({ id, spec, state: 'failed', error: err.message, ran: true });
    }
  }
  return {
    jobs: results,
    ranNow: results.filter((r) => r.ran && r.state === 'completed').length,
    failed: results.filter((r) => r.state === 'failed').length,
    seconds: (Date.now() - t0) / 1000,
  };
}

/** A plain-text summary of a grid: one line per failed job with its message, and the counts. */
export function formatGridSummary(r: GridResult): string {
  const lines = [
    `grid: ${r.jobs.length} jobs, ${r.jobs.length - r.failed} done (${r.ranNow} ran now), ${r.failed} failed, ${r.seconds.toFixed(1)} s`,
  ];
  for (const j of r.jobs) if (j.state === 'failed') lines.push(`failed ${j.id} ${describeJob(j.spec)}: ${j.error}`);
  return lines.join('\n') + '\n';
}
