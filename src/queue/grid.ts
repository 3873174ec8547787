/**
 * Grid files (`vmoe grid FILE`): a JSON list of jobs as a user writes them — config files and `--set`
 * overrides, checkpoint paths — resolved into jobs as the queue keeps them: the whole config (seed
 * included), and each checkpoint's file and SHA-256, all paths relative to the run root.
 */
import fs from 'node:fs';
import path from 'node:path';
import { checkpointHash } from '../checkpoint/format.js';
import { resolveCheckpoint } from '../checkpoint/load.js';
import { loadExperiment } from '../config/experiment.js';
import { UsageError } from '../util/errors.js';
import { GridEntrySchema, checkJobPaths, type GridEntry, type JobCheckpoint, type JobSpec } from './jobs.js';

/** A checkpoint path (file, checkpoints folder or run folder, relative to the run root) as a job names it. */
export function jobCheckpoint(runRoot: string, p: string): JobCheckpoint {
  const file = resolveCheckpoint(path.join(runRoot, p));
  return { path: path.relative(runRoot, file), sha256: checkpointHash(file) };
}

/**
 * Resolves grid entries into jobs: configs loaded (relative to `baseDir`) with `seed` and `set` applied,
 * checkpoints resolved and hashed under `runRoot`. A malformed entry is a UsageError naming its index (a bad
 * config a ConfigError, as for `vmoe train`).
 */
export function resolveGrid(entries: unknown, runRoot: string, baseDir: string, where = 'grid'): JobSpec[] {
  if (!Array.isArray(entries)) throw new UsageError(`${where}: expected a JSON list of jobs`);
  return entries.map((raw, i) => {
    const at = `${where}: job ${i}`;
    const parsed = GridEntrySchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new UsageError(`${at}${issue.path.length ? ` (${issue.path.join('.')})` : ''}: ${issue.message}`);
    }
    const e = parsed.data;
    let job: JobSpec;
    switch (e.kind) {
      case 'train': {
        const set = [...e.set, ...(e.seed !== undefined ? [`seed=${e.seed}`] : [])];
        const file = e.config ? path.resolve(baseDir, e.config) : null;
        job = { kind: 'train', config: loadExperiment(file, set), out: e.out };
        break;
      }
      case 'eval':
        job = { ...e, checkpoints: e.checkpoints.map((c) => jobCheckpoint(runRoot, c)) };
        break;
      case 'robustness':
        job = {
          ...e,
          label: e.label ?? e.checkpoints.map((c) => path.basename(c)).join('+'),
          checkpoints: e.checkpoints.map((c) => jobCheckpoint(runRoot, c)),
        };
        break;
      case 'sweep':
        job = { ...e, checkpoint: jobCheckpoint(runRoot, e.checkpoint) };
        break;
      case 'fewshot':
        job = { ...e, checkpoints: e.checkpoints.map((c) => jobCheckpoint(runRoot, c)) };
        break;
    }
    checkJobPaths(job, at);
    return job;
  });
}

/** Reads and resolves a grid file; jobs' config files are relative to the grid file's folder. */
export function loadGridFile(file: string, runRoot: string): JobSpec[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read grid file ${file}: ${(err as Error).message}`);
  }
  let entries: unknown;
  try {
    entries = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  return resolveGrid(entries, runRoot, path.dirname(path.resolve(file)), file);
}

/** The entries of a grid file, typed (for writing one). */
export type { GridEntry };
