/**
 * The E³ experiment over the queue: its trainings, then its evaluations, submitted as jobs (a grid each)
 * to the workers of a Redis queue; the experiment (experiments/e3.ts) then writes the same tables as a
 * local run. The experiment's folder must lie inside the run root the workers see.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { E3Executor } from '../experiments/e3.js';
import { E3_EVAL } from '../experiments/e3.js';
import { VmoeError } from '../util/errors.js';
import { jobCheckpoint } from './grid.js';
import type { JobSpec } from './jobs.js';
import { describeJob } from './jobs.js';
import { runGridOnQueue, type GridStatus } from './submit.js';

/** Options of queueE3Executor: the queue, the run root (as this machine sees it), status lines. */
export interface QueueExecutorOptions {
  url: string;
  runRoot: string;
  onStatus?: (s: GridStatus) => void;
}

/** Throws a VmoeError when `dir` is not inside `runRoot` (workers could not see it). */
export function relativeToRunRoot(runRoot: string, dir: string, flag = '--out'): string {
  const rel = path.relative(path.resolve(runRoot), path.resolve(dir));
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel))
    throw new VmoeError(`${flag} ${dir} is not inside the run root ${runRoot}, which the workers see`, {
      hint: 'put the output folder inside the shared run root (--run-root, default: the current folder)',
    });
  return rel;
}

/** An E3Executor that runs each step's jobs on the queue's workers and waits for them. */
export function queueE3Executor(o: QueueExecutorOptions): E3Executor {
  const run = async (jobs: JobSpec[]) => {
    if (!jobs.length) return;
    const r = await runGridOnQueue(jobs, { url: o.url, runRoot: o.runRoot, onStatus: o.onStatus });
    const failed = r.jobs.filter((j) => j.state === 'failed');
    if (failed.length)
      throw new VmoeError(
        `${failed.length} of ${r.jobs.length} jobs failed; first: ${describeJob(failed[0]!.spec)}: ${failed[0]!.error}`,
      );
  };
  return {
    train: (runs) => {
      // --fresh: the old runs go, so their jobs find no result and train again (an unfinished run is resumed otherwise).
      for (const r of runs) if (r.fresh) fs.rmSync(r.dir, { recursive: true, force: true });
      return run(runs.map((r) => ({ kind: 'train', config: r.config, out: relativeToRunRoot(o.runRoot, r.dir) })));
    },
    evaluate: (evals) => {
      // An evaluation not kept is done again, as locally: its old result (another job's) goes first.
      for (const e of evals) if (e.fresh) fs.rmSync(e.out, { recursive: true, force: true });
      return run(
        evals.map((e) => ({
          kind: 'eval',
          checkpoints: e.checkpoints.map((c) => jobCheckpoint(o.runRoot, relativeToRunRoot(o.runRoot, c))),
          ood: e.ood,
          split: E3_EVAL.split,
          limit: e.limit,
          batchSize: E3_EVAL.batchSize,
          bins: E3_EVAL.bins,
          out: relativeToRunRoot(o.runRoot, e.out),
        })),
      );
    },
  };
}
