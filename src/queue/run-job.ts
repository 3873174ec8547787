/**
 * Running one job in this process: a training (resumed from its own latest checkpoint, so a job
 * picked up again after its worker died continues where it stopped) or an evaluation (written to a
 * staging folder and renamed into place). A job whose result exists returns at once (`ran: false`).
 * The worker runs this in a child process per job (job-child.ts); `vmoe grid` without `--queue` runs
 * it in-process, one job after another.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkpointHash, checkpointStepOf, latestCheckpoint } from '../checkpoint/format.js';
import { resolveCheckpoint } from '../checkpoint/load.js';
import { fewShotEvaluation } from '../eval/fewshot.js';
import { evaluateCheckpoints } from '../eval/harness.js';
import { robustnessReport } from '../eval/robustness.js';
import { sweepCheckpoint } from '../eval/sweep.js';
import type { Split } from '../data/index.js';
import { writeEvalResults } from '../export/eval-files.js';
import { writeFewShotFiles } from '../export/fewshot-files.js';
import { train } from '../train/trainer.js';
import type { StopRequest } from '../train/interrupt.js';
import { CheckpointError, OutputError, TrainingError } from '../util/errors.js';
import { writeFileWhole } from '../util/output-dir.js';
import { LOCK_FILE } from '../util/run-lock.js';
import { commitResultDir, jobId, resultFileOf, stagingDirFor, type JobCheckpoint, type JobSpec } from './jobs.js';

/** The file in an evaluation's result folder naming the job that wrote it. */
export const JOB_ID_FILE = '.vmoe-job';

/** The command a worker's training records in its run folder's lock. */
export const WORKER_LOCK_COMMAND = 'vmoe worker';

/** Progress of a running job: training step of train.steps and the last step's images/s. */
export interface JobProgress {
  step: number;
  total: number;
  imagesPerSecond: number;
}

/** What running a job did. */
export interface JobOutcome {
  /** false when the result already existed and nothing ran */
  ran: boolean;
  seconds: number;
  /** a training resumed from this step's checkpoint (a job taken over from a worker that died), else absent */
  resumedFrom?: number;
}

/** Options of runJob: the run root the job's paths are relative to, progress and stop requests. */
export interface RunJobOptions {
  runRoot: string;
  onProgress?: (p: JobProgress) => void;
  stop?: StopRequest;
}

/** The checkpoint file under the run root, refused when its bytes differ from those hashed at submission. */
function checkedCheckpoint(root: string, c: JobCheckpoint): string {
  const file = resolveCheckpoint(path.join(root, c.path));
  const sha = checkpointHash(file);
  if (sha !== c.sha256)
    throw new CheckpointError(
      `checkpoint ${c.path} changed since the grid was submitted (sha256 ${sha.slice(0, 12)}…, expected ${c.sha256.slice(0, 12)}…)`,
      { hint: 'submit the grid again: job ids follow the bytes of the checkpoints' },
    );
  return file;
}

/**
 * A lock left in a run folder by a worker's training whose process is gone: the queue hands a job to
 * one worker at a time, so a lock of another worker's job there is stale even when it names another
 * host (a machine that died) — it is removed. Locks of other commands are left to the trainer's check.
 */
function clearStaleWorkerLock(dir: string): void {
  const file = path.join(dir, LOCK_FILE);
  try {
    const held = JSON.parse(fs.readFileSync(file, 'utf8')) as { command?: string; host?: string; pid?: number };
    if (held.command === WORKER_LOCK_COMMAND && !(held.host === os.hostname() && held.pid === process.pid))
      fs.rmSync(file, { force: true });
  } catch {
    // no lock, or one the trainer's own check will judge
  }
}

async function runTrain(
  job: Extract<JobSpec, { kind: 'train' }>,
  o: RunJobOptions,
): Promise<Omit<JobOutcome, 'seconds'>> {
  const dir = path.join(o.runRoot, job.out);
  const summary = path.join(dir, 'train_summary.json');
  if (fs.existsSync(summary)) {
    // Done already — but only if it is this job's run, not another config's trained into the same folder.
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as unknown;
    if (JSON.stringify(saved) !== JSON.stringify(job.config))
      throw new TrainingError(`${job.out} holds a finished run of another config; choose another "out" for this job`);
    return { ran: false };
  }
  clearStaleWorkerLock(dir);
  const existing = latestCheckpoint(path.join(dir, 'checkpoints'));
  const resumedFrom = existing ? (checkpointStepOf(existing) ?? undefined) : undefined;
  const r = await train({
    config: job.config,
    outDir: dir,
    resume: true,
    quiet: true,
    stop: o.stop,
    command: WORKER_LOCK_COMMAND,
    resumeCommand: 'the same job (submit the grid again)',
    onStep: (step, total, ips) => o.onProgress?.({ step, total, imagesPerSecond: ips }),
  });
  if (r.alreadyFinished) {
    // Killed after its last checkpoint but before the summary: write the summary the run lacks.
    writeFileWhole(
      summary,
      JSON.stringify({ step: r.step, seconds: null, checkpoint: r.checkpoint, note: 'summary written on resume' }) +
        '\n',
    );
  }
  return { ran: true, ...(resumedFrom !== undefined ? { resumedFrom } : {}) };
}

/** Runs `job` (paths relative to `o.runRoot`); returns at once with `ran: false` when its result exists. */
export async function runJob(job: JobSpec, o: RunJobOptions): Promise<JobOutcome> {
  const t0 = performance.now();
  const root = o.runRoot;
  const final = path.join(root, job.out);
  const seconds = () => (performance.now() - t0) / 1000;
  if (job.kind === 'train') return { ...(await runTrain(job, o)), seconds: seconds() };
  const id = jobId(job);
  if (fs.existsSync(path.join(final, resultFileOf(job)))) {
    // Done — if by this job: the same out with other inputs (new checkpoints, another setting) is not this result.
    const owner = fs.existsSync(path.join(final, JOB_ID_FILE))
      ? fs.readFileSync(path.join(final, JOB_ID_FILE), 'utf8').trim()
      : 'none recorded';
    if (owner !== id)
      throw new OutputError(`${job.out} holds the result of another job (${owner}), not of ${id}`, {
        file: final,
        hint: 'remove that folder to replace its result, or give this job another "out"',
      });
    return { ran: false, seconds: seconds() };
  }
  let write: (staging: string) => void;
  switch (job.kind) {
    case 'eval': {
      const checkpoints = job.checkpoints.map((c) => checkedCheckpoint(root, c));
      const run = evaluateCheckpoints({
        checkpoints,
        split: job.split as Split,
        batchSize: job.batchSize,
        bins: job.bins,
        ood: job.ood,
        mahalanobisFit: 0,
        limit: job.limit ?? undefined,
      });
      write = (staging) => writeEvalResults(staging, run, { bins: job.bins });
      break;
    }
    case 'robustness': {
      const files = job.checkpoints.map((c) => checkedCheckpoint(root, c));
      const report = robustnessReport({
        checkpoints: [files.join('+')],
        labels: [job.label],
        data: { split: job.split as Split, limit: job.limit ?? undefined },
        suite: job.suite,
        corruptions: [{ name: job.corruption, severities: [job.severity] }],
        batchSize: job.batchSize,
        seed: job.seed,
        bins: job.bins,
      });
      write = (staging) =>
        writeFileWhole(path.join(staging, 'robustness.json'), JSON.stringify(report, null, 2) + '\n');
      break;
    }
    case 'fewshot': {
      const run = fewShotEvaluation({
        checkpoints: job.checkpoints.map((c) => checkedCheckpoint(root, c)),
        datasets: job.datasets,
        shots: job.shots,
        seeds: job.seeds,
        probe: job.probe,
        selectBy: job.selectBy ?? undefined,
        trainPool: job.trainPool,
        testLimit: job.testLimit ?? undefined,
        batchSize: job.batchSize,
        // pre-logits cached beside the results, in the run root every worker sees
        cacheDir: path.join(root, '.vmoe-cache'),
      });
      write = (staging) => writeFewShotFiles(staging, run);
      break;
    }
    case 'sweep': {
      const report = sweepCheckpoint({
        checkpoint: checkedCheckpoint(root, job.checkpoint),
        data: { split: job.split as Split, limit: job.limit ?? undefined },
        batchSize: job.batchSize,
        bins: job.bins,
        capacityFactors: [job.capacityFactor],
        ks: [job.k],
        batchPriority: job.batchPriority ? 'on' : 'off',
      });
      write = (staging) => writeFileWhole(path.join(staging, 'sweep.json'), JSON.stringify(report, null, 2) + '\n');
      break;
    }
  }
  const staging = stagingDirFor(final);
  try {
    write(staging);
    writeFileWhole(path.join(staging, JOB_ID_FILE), `${id}\n`);
    commitResultDir(staging, final);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  return { ran: true, seconds: seconds() };
}
