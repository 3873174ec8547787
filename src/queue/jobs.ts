/**
 * Jobs of an experiment grid: what one job is (a training run, or one evaluation of checkpoints), the
 * id that names it (a hash of everything that determines its result), where its result lives under the
 * run root, and how a result is committed (written aside, then renamed into place in one step).
 *
 * Paths inside a job are relative to the run root, a folder every worker sees (docs/queue.md); the
 * submitter resolves configs and hashes checkpoints, so a worker needs nothing but the job and the run
 * root. A job whose result already exists is done: running it again returns at once.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { ExperimentConfig } from '../config/experiment.js';
import { UsageError } from '../util/errors.js';

/** Evaluation settings shared by eval, robustness and sweep jobs (the flags of `vmoe eval`). */
export interface EvalSettings {
  split: string;
  /** evaluate the first n images only */
  limit: number | null;
  batchSize: number;
  bins: number;
}

/** A training run: the whole resolved config (seed included) and the run folder it trains into. */
export interface TrainJob {
  kind: 'train';
  config: ExperimentConfig;
  /** run folder, relative to the run root */
  out: string;
}

/** A checkpoint named by a job: its path under the run root and the SHA-256 of its bytes at submission. */
export interface JobCheckpoint {
  path: string;
  sha256: string;
}

/** `vmoe eval` of one model (several checkpoints = a deep ensemble): results.json and the rest in `out`. */
export interface EvalJob extends EvalSettings {
  kind: 'eval';
  checkpoints: JobCheckpoint[];
  ood: string[];
  out: string;
}

/** One corruption at one severity for one model (checkpoints joined = a deep ensemble). */
export interface RobustnessJob extends EvalSettings {
  kind: 'robustness';
  checkpoints: JobCheckpoint[];
  label: string;
  suite: 'c' | 'mnist-c';
  corruption: string;
  severity: number;
  /** corruption seed */
  seed: number;
  out: string;
}

/** One routing setting of an adaptive-compute sweep of one checkpoint. */
export interface SweepJob extends EvalSettings {
  kind: 'sweep';
  checkpoint: JobCheckpoint;
  capacityFactor: number;
  k: number;
  batchPriority: boolean;
  out: string;
}

/** The few-shot linear-probe evaluation of one model (`vmoe fewshot`): every data set, shot count and seed. */
export interface FewshotJob {
  kind: 'fewshot';
  checkpoints: JobCheckpoint[];
  datasets: string[];
  shots: number[];
  seeds: number;
  probe: 'lsr' | 'logreg';
  selectBy: 'accuracy' | 'nll' | null;
  trainPool: number;
  testLimit: number | null;
  batchSize: number;
  out: string;
}

/** Any job of a grid. */
export type JobSpec = TrainJob | EvalJob | RobustnessJob | SweepJob | FewshotJob;

/** The file whose presence says a job's result is committed, relative to its `out` folder. */
export function resultFileOf(job: JobSpec): string {
  switch (job.kind) {
    case 'train':
      return 'train_summary.json';
    case 'eval':
      return 'results.json';
    case 'robustness':
      return 'robustness.json';
    case 'sweep':
      return 'sweep.json';
    case 'fewshot':
      return 'fewshot.json';
  }
}

/** JSON with object keys sorted at every level: equal values give equal text, whatever the key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v as Record<string, unknown>)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * The job's id: `<kind>-` and 32 hex digits of the SHA-256 of its canonical JSON — the resolved config
 * (seed included), the checkpoints' SHA-256 (not their paths: the bytes decide the result), the setting,
 * and the output folder (two grids writing to two folders are two jobs). Submitting the same job again
 * gives the same id, which the queue keeps once.
 */
export function jobId(job: JobSpec): string {
  const forHash = JSON.parse(JSON.stringify(job)) as Record<string, unknown>;
  const strip = (c: JobCheckpoint) => ({ sha256: c.sha256 });
  if (job.kind === 'eval' || job.kind === 'robustness' || job.kind === 'fewshot')
    forHash.checkpoints = job.checkpoints.map(strip);
  if (job.kind === 'sweep') forHash.checkpoint = strip(job.checkpoint);
  const hex = createHash('sha256').update(canonicalJson(forHash)).digest('hex');
  return `${job.kind}-${hex.slice(0, 32)}`;
}

/** A short name of the job for progress lines and summaries: its kind and output folder. */
export function describeJob(job: JobSpec): string {
  switch (job.kind) {
    case 'train':
      return `train ${job.out} (seed ${job.config.seed}, ${job.config.train.steps} steps)`;
    case 'eval':
      return `eval ${job.out}`;
    case 'robustness':
      return `robustness ${job.label} ${job.corruption}@${job.severity}`;
    case 'sweep':
      return `sweep ${job.checkpoint.path} ${job.batchPriority ? 'bpr' : 'vanilla'} K=${job.k} c=${job.capacityFactor}`;
    case 'fewshot':
      return `fewshot ${job.out} (${job.datasets.join(', ')}; shots ${job.shots.join(', ')})`;
  }
}

/** Whether a relative path stays inside the run root (no absolute path, no `..` escaping it). */
function insideRoot(p: string): boolean {
  if (path.isAbsolute(p)) return false;
  const n = path.normalize(p);
  return n !== '..' && !n.startsWith(`..${path.sep}`) && n !== '.';
}

/** Throws a UsageError when a path of the job is absolute or leaves the run root. */
export function checkJobPaths(job: JobSpec, where: string): void {
  const paths = [job.out];
  if (job.kind === 'eval' || job.kind === 'robustness' || job.kind === 'fewshot')
    paths.push(...job.checkpoints.map((c) => c.path));
  if (job.kind === 'sweep') paths.push(job.checkpoint.path);
  for (const p of paths)
    if (!insideRoot(p))
      throw new UsageError(`${where}: path "${p}" must be relative to the run root and stay inside it`, {
        hint: 'workers see the run root at their own mount point, so a job names its files relative to it',
      });
}

/**
 * Commits a result folder: `staging` (filled completely, on the same file system) is renamed to `final`
 * in one step, so a reader sees no result or a whole one. When `final` already exists (another worker
 * committed the same job first — delivery is at least once), the staging folder is removed and the
 * existing result kept; returns whether this call committed.
 */
export function commitResultDir(staging: string, final: string): boolean {
  fs.mkdirSync(path.dirname(final), { recursive: true });
  try {
    fs.renameSync(staging, final);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && fs.existsSync(final)) {
      fs.rmSync(staging, { recursive: true, force: true });
      return false;
    }
    throw err;
  }
}

/** A staging folder beside `final` for this process: `.<name>.staging-<pid>`, emptied first. */
export function stagingDirFor(final: string): string {
  const dir = path.join(path.dirname(final), `.${path.basename(final)}.staging-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** The fields every evaluating job shares: split, example limit, batch size, ECE bins, output folder. */
const EVAL_FIELDS = {
  split: z.string().default('test'),
  limit: z.number().int().min(1).nullable().default(null),
  batchSize: z.number().int().min(1).default(256),
  bins: z.number().int().min(1).default(15),
  out: z.string(),
};

/** One entry of a grid file (`vmoe grid FILE`), before configs are resolved and checkpoints hashed. */
export const GridEntrySchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('train'),
    /** config file, relative to the grid file's folder (or absolute); omitted = the defaults */
    config: z.string().optional(),
    seed: z.number().int().min(0).optional(),
    set: z.array(z.string()).default([]),
    out: z.string(),
  }),
  z.strictObject({
    kind: z.literal('eval'),
    checkpoints: z.array(z.string()).min(1),
    ood: z.array(z.string()).default([]),
    ...EVAL_FIELDS,
  }),
  z.strictObject({
    kind: z.literal('robustness'),
    checkpoints: z.array(z.string()).min(1),
    label: z.string().optional(),
    suite: z.enum(['c', 'mnist-c']).default('c'),
    corruption: z.string(),
    severity: z.number().int().min(0).max(5),
    seed: z.number().int().min(0).default(0),
    ...EVAL_FIELDS,
  }),
  z.strictObject({
    kind: z.literal('sweep'),
    checkpoint: z.string(),
    capacityFactor: z.number().positive(),
    k: z.number().int().min(1),
    batchPriority: z.boolean().default(true),
    ...EVAL_FIELDS,
  }),
  z.strictObject({
    kind: z.literal('fewshot'),
    checkpoints: z.array(z.string()).min(1),
    datasets: z.array(z.string()).min(1),
    shots: z.array(z.number().int().min(1)).min(1).default([1, 5, 10, 25]),
    seeds: z.number().int().min(1).default(3),
    probe: z.enum(['lsr', 'logreg']).default('lsr'),
    selectBy: z.enum(['accuracy', 'nll']).nullable().default(null),
    trainPool: z.number().int().min(1).default(10000),
    testLimit: z.number().int().min(1).nullable().default(null),
    batchSize: z.number().int().min(1).default(256),
    out: z.string(),
  }),
]);

/** One entry of a grid file as written. */
export type GridEntry = z.input<typeof GridEntrySchema>;
