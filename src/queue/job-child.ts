/**
 * The child process a worker runs each job in (`node dist/queue/job-child.js`, spawned with an IPC
 * channel): it takes one `{ job, runRoot, backend, threads }` message, runs the job (run-job.ts) and
 * reports over IPC — progress, then `done` or `error` — and exits 0, or the error's exit code (2 for a
 * VmoeError: a real failure that must not be retried). A CPU-bound training here cannot starve the
 * worker's lock renewal. It exits at once when its worker dies (the IPC channel closes), so a job
 * picked up by another worker never has two writers; SIGTERM makes a training save a checkpoint first.
 */
import { initEngine, type BackendName } from '../engine/index.js';
import { stopOnSignals } from '../train/interrupt.js';
import { isVmoeError } from '../util/errors.js';
import type { JobSpec } from './jobs.js';
import { runJob, type JobProgress } from './run-job.js';

/** The message a worker sends its child. */
export interface ChildRequest {
  job: JobSpec;
  runRoot: string;
  backend: string;
  threads?: number;
}

/** Messages a child sends its worker. */
export type ChildMessage =
  | { type: 'progress'; progress: JobProgress }
  | { type: 'done'; ran: boolean; seconds: number; resumedFrom?: number }
  | { type: 'error'; message: string; hint?: string; exitCode: number };

function send(m: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(m, undefined, undefined, () => resolve());
  });
}

async function main(req: ChildRequest): Promise<number> {
  const stop = stopOnSignals(() => {});
  let lastSent = 0;
  try {
    await initEngine({ backend: req.backend as BackendName | 'auto', threads: req.threads });
    const r = await runJob(req.job, {
      runRoot: req.runRoot,
      stop,
      onProgress: (progress) => {
        const now = performance.now();
        if (now - lastSent < 500 && progress.step !== progress.total) return;
        lastSent = now;
        void send({ type: 'progress', progress });
      },
    });
    await send({ type: 'done', ran: r.ran, seconds: r.seconds, resumedFrom: r.resumedFrom });
    return 0;
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    const exitCode = isVmoeError(err) ? err.exitCode : 1;
    await send({ type: 'error', message: e.message, hint: isVmoeError(err) ? err.hint : undefined, exitCode });
    if (!isVmoeError(err)) process.stderr.write(`${e.stack ?? e.message}\n`);
    return exitCode;
  } finally {
    stop.dispose();
  }
}

if (process.send) {
  // The worker is gone (killed): stop now; checkpoints already written are whole, and the run lock is released on exit.
  process.on('disconnect', () => process.exit(137));
  process.once('message', (req: ChildRequest) => {
    main(req).then(
      (code) => process.exit(code),
      () => process.exit(1),
    );
  });
}
