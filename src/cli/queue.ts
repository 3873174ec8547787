/** `vmoe worker` and `vmoe grid`: flags → the queue layer (src/queue), and the grid's status line on stderr. */
import type { Command } from 'commander';
import { loadGridFile } from '../queue/grid.js';
import {
  formatGridStatus,
  formatGridSummary,
  runGridLocally,
  runGridOnQueue,
  type GridResult,
  type GridStatus,
} from '../queue/submit.js';
import { runWorker } from '../queue/worker.js';
import { VmoeError } from '../util/errors.js';
import { addEngineOptions, parsePositiveInt, startEngine } from './common.js';

/**
 * Prints a grid's status on stderr: redrawn in place on a terminal, otherwise a line when the counts
 * change or every 10 s.
 */
export function gridStatusPrinter(): (s: GridStatus) => void {
  const tty = Boolean(process.stderr.isTTY);
  let last = '';
  let lastAt = 0;
  return (s) => {
    const line = formatGridStatus(s);
    if (tty) {
      process.stderr.write(`\r\x1b[K${line}${s.done + s.failed === s.total ? '\n' : ''}`);
      return;
    }
    const counts = `${s.done}/${s.running}/${s.failed}`;
    if (counts !== last || Date.now() - lastAt > 10_000) {
      process.stderr.write(`[queue] ${line}\n`);
      last = counts;
      lastAt = Date.now();
    }
  };
}

/** `--queue URL` for the commands that can submit their work to workers (commander option arguments). */
export const QUEUE_OPTION = [
  '--queue <url>',
  'run the jobs on the workers of this Redis queue, redis://HOST:PORT[/DB] (docs/queue.md)',
] as const;

/** `--run-root DIR`: the shared folder the workers see (commander option arguments). */
export const RUN_ROOT_OPTION = [
  '--run-root <dir>',
  'with --queue: the shared folder the workers see; outputs must lie inside it',
  '.',
] as const;

/** `--queue URL` and `--run-root DIR` on `cmd`. */
export function addQueueOptions(cmd: Command): Command {
  return cmd.option(...QUEUE_OPTION).option(...RUN_ROOT_OPTION);
}

export function registerQueueCommands(program: Command): void {
  addEngineOptions(
    program
      .command('worker')
      .description('take jobs from a Redis queue and run each in a child process until SIGTERM (docs/queue.md)')
      .requiredOption('--queue <url>', 'Redis URL, redis://HOST:PORT[/DB]')
      .option('--concurrency <n>', 'jobs at a time, each its own process', '1')
      .option('--run-root <dir>', "this machine's path of the shared run root", '.')
      .option(
        '--stalled-interval <ms>',
        "how long a dead worker's job waits before another worker takes it (lock duration and stall check)",
        '30000',
      ),
  ).action(
    async (flags: {
      queue: string;
      concurrency: string;
      runRoot: string;
      stalledInterval: string;
      backend?: string;
      threads?: string;
    }) => {
      await runWorker({
        url: flags.queue,
        concurrency: parsePositiveInt(flags.concurrency, '--concurrency'),
        runRoot: flags.runRoot,
        stalledIntervalMs: parsePositiveInt(flags.stalledInterval, '--stalled-interval'),
        backend: flags.backend ?? 'auto',
        threads: flags.threads ? parsePositiveInt(flags.threads, '--threads') : undefined,
      });
    },
  );

  addEngineOptions(
    addQueueOptions(
      program
        .command('grid')
        .description(
          'run a JSON list of jobs (trainings, evaluations) on a queue with --queue, or here one after another',
        )
        .argument('<file>', 'grid file: a JSON list of jobs (docs/queue.md)'),
    ),
  ).action(async (file: string, flags: { queue?: string; runRoot: string; backend?: string; threads?: string }) => {
    const jobs = loadGridFile(file, flags.runRoot);
    let r: GridResult;
    if (flags.queue) {
      r = await runGridOnQueue(jobs, { url: flags.queue, runRoot: flags.runRoot, onStatus: gridStatusPrinter() });
    } else {
      await startEngine(flags);
      r = await runGridLocally(jobs, { runRoot: flags.runRoot, log: (s) => process.stderr.write(`[grid] ${s}\n`) });
    }
    process.stdout.write(formatGridSummary(r));
    const failed = r.jobs.filter((j) => j.state === 'failed');
    if (failed.length)
      throw new VmoeError(`${failed.length} of ${r.jobs.length} jobs failed; first: ${failed[0]!.error}`);
  });
}
