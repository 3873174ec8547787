/**
 * `vmoe robustness --queue` and `vmoe sweep --queue`: the evaluation split into one job per model ×
 * corruption × severity, or per routing setting, run by the workers, and the jobs' partial reports
 * merged into the report a local run returns — rows in the local order, summaries recomputed from the
 * per-set numbers (summariseShift), checkpoint paths as this machine names them — so the same tables
 * and files are written. Job results live under `<run root>/.vmoe-queue/results/<job>` and are reused
 * by any later submission of the same evaluation.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../checkpoint/format.js';
import { resolveCheckpoint } from '../checkpoint/load.js';
import type { ExperimentConfig } from '../config/experiment.js';
import type { ClassificationMetrics } from '../eval/harness.js';
import {
  defaultModelLabel,
  isHeldOut,
  mergeThroughput,
  robustnessConventions,
  summariseShift,
  type RobustnessOptions,
  type RobustnessReport,
  type ShiftRow,
} from '../eval/robustness.js';
import { sweepSettings, type SweepOptions, type SweepReport } from '../eval/sweep.js';
import { UsageError, VmoeError } from '../util/errors.js';
import { relativeToRunRoot } from './experiment.js';
import { jobCheckpoint } from './grid.js';
import { describeJob, jobId, type JobSpec, type RobustnessJob, type SweepJob } from './jobs.js';
import { runGridOnQueue, type GridStatus } from './submit.js';

/** Where the jobs go and where their results live. */
export interface QueueTarget {
  url: string;
  runRoot: string;
  onStatus?: (s: GridStatus) => void;
}

/** The job with its output folder set from its own id: the same evaluation always lands in the same place. */
function placed<T extends JobSpec>(job: T): T {
  const key = jobId({ ...job, out: '' });
  return { ...job, out: path.join('.vmoe-queue', 'results', key) };
}

async function runAll(jobs: JobSpec[], q: QueueTarget): Promise<void> {
  const r = await runGridOnQueue(jobs, { url: q.url, runRoot: q.runRoot, onStatus: q.onStatus });
  const failed = r.jobs.filter((j) => j.state === 'failed');
  if (failed.length)
    throw new VmoeError(
      `${failed.length} of ${r.jobs.length} jobs failed; first: ${describeJob(failed[0]!.spec)}: ${failed[0]!.error}`,
    );
}

const readJson = <T>(q: QueueTarget, job: JobSpec, file: string): T =>
  JSON.parse(fs.readFileSync(path.join(q.runRoot, job.out, file), 'utf8')) as T;

function refuseDataChoice(data: { dataset?: string; dataDir?: string }): void {
  if (data.dataset !== undefined || data.dataDir !== undefined)
    throw new UsageError('--dataset and --data-dir are not supported with --queue yet', {
      hint: "with --queue each job evaluates on the checkpoint's own data set",
    });
}

/** `vmoe robustness` over the queue: one job per model × corruption × severity, merged into the local report. */
export async function robustnessOnQueue(opts: RobustnessOptions, q: QueueTarget): Promise<RobustnessReport> {
  refuseDataChoice(opts.data);
  const models = opts.checkpoints.map((spec, i) => ({
    label: opts.labels[i] ?? defaultModelLabel(spec),
    files: spec.split('+').map((p) => resolveCheckpoint(p)),
  }));
  const jobs: RobustnessJob[][] = models.map((m) =>
    opts.corruptions.flatMap((c) =>
      c.severities.map((severity) =>
        placed<RobustnessJob>({
          kind: 'robustness',
          checkpoints: m.files.map((f) => jobCheckpoint(q.runRoot, relativeToRunRoot(q.runRoot, f, '--checkpoint'))),
          label: m.label,
          suite: opts.suite,
          corruption: c.name,
          severity,
          seed: opts.seed,
          split: opts.data.split ?? 'test',
          limit: opts.data.limit ?? null,
          batchSize: opts.batchSize,
          bins: opts.bins,
          out: '',
        }),
      ),
    ),
  );
  await runAll(jobs.flat(), q);
  const parts = jobs.map((js) => js.map((j) => readJson<RobustnessReport>(q, j, 'robustness.json')));
  const first = parts[0]![0]!;
  // Local order: each set (corruption, then severity), every model within it.
  const perSet: RobustnessReport['per_set'] = [];
  const n = parts[0]!.length;
  for (let s = 0; s < n; s++) for (const p of parts) perSet.push(p[s]!.per_set[0]!);
  const asRows = perSet.map(
    (r): ShiftRow => ({
      model: r.model,
      corruption: r.corruption,
      severity: r.severity,
      metrics: { accuracy: r.accuracy, nll: r.nll, ece: r.ece } as ClassificationMetrics,
    }),
  );
  const clean = Object.fromEntries(models.map((m, i) => [m.label, parts[i]![0]!.clean[m.label]!]));
  return {
    ...first,
    models: models.map((m, i) => ({
      label: m.label,
      checkpoints: m.files.map((f, k) => ({ path: f, sha256: parts[i]![0]!.models[0]!.checkpoints[k]!.sha256 })),
    })),
    clean,
    summary: models.map((m) => summariseShift(m.label, clean[m.label] as ClassificationMetrics, asRows, opts.suite)),
    per_set: perSet,
    corruptions: opts.corruptions.map((c) => ({
      name: c.name,
      severities: c.severities,
      held_out: isHeldOut(opts.suite, c.name),
    })),
    severity_constants: Object.assign({}, ...parts[0]!.map((p) => p.severity_constants)) as Record<string, unknown[]>,
    conventions: robustnessConventions(opts.suite, opts.bins, opts.seed),
    throughput: mergeThroughput(
      parts.flat().map((p) => p.throughput as RobustnessReport['throughput'] | undefined),
      models.length,
    ),
  };
}

/** `vmoe sweep` over the queue: one job per routing setting, merged into the local report. */
export async function sweepOnQueue(opts: SweepOptions, q: QueueTarget): Promise<SweepReport> {
  refuseDataChoice(opts.data);
  const file = resolveCheckpoint(opts.checkpoint);
  const config = loadCheckpoint(file).meta.config as ExperimentConfig;
  const settings = sweepSettings({
    capacityFactors: opts.capacityFactors,
    ks: opts.ks ?? [config.model.moe.k],
    batchPriority: opts.batchPriority,
  });
  const checkpoint = jobCheckpoint(q.runRoot, relativeToRunRoot(q.runRoot, file, '--checkpoint'));
  const jobs = settings.map((s) =>
    placed<SweepJob>({
      kind: 'sweep',
      checkpoint,
      capacityFactor: s.capacityFactor,
      k: s.k,
      batchPriority: s.batchPriority,
      split: opts.data.split ?? 'test',
      limit: opts.data.limit ?? null,
      batchSize: opts.batchSize,
      bins: opts.bins,
      out: '',
    }),
  );
  await runAll(jobs, q);
  const parts = jobs.map((j) => readJson<SweepReport>(q, j, 'sweep.json'));
  parts.forEach((p, i) => opts.onRow?.(p.rows[0]!, i, parts.length));
  const first = parts[0]!;
  return {
    ...first,
    checkpoint: { ...first.checkpoint, path: file },
    rows: parts.map((p) => p.rows[0]!),
    per_layer: parts.map((p) => p.per_layer[0]!),
  };
}
