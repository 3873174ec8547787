/**
 * Opening a run folder for training: the folder is checked before any work starts (util/output-dir.ts),
 * locked for this process (util/run-lock.ts), refused when it holds another run's files unless the run
 * is resumed or `overwrite` moves the old run aside to `<dir>.old-<timestamp>` (never deleted), and rid
 * of the temp files of checkpoint writes that a killed process left behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { removeOrphanTemps } from '../checkpoint/format.js';
import { TrainingError } from '../util/errors.js';
import { checkOutputDir } from '../util/output-dir.js';
import { LOCK_FILE, acquireRunLock, type RunLock } from '../util/run-lock.js';

/** Files and folders that make a folder "another run's": training, evaluation and report outputs. */
export const RUN_FILES = [
  'config.json',
  'metrics.jsonl',
  'train_summary.json',
  'checkpoints',
  'results.json',
  'results.csv',
  'predictions.csv',
  'table.tex',
  'figures',
  'eval_test',
];

export interface OpenRunFolderOptions {
  /** Continue the run in the folder. */
  resume?: boolean;
  /** Move a run found in the folder aside to `<dir>.old-<timestamp>` and start afresh. */
  overwrite?: boolean;
  /** What the lock records as the owner's command (e.g. "vmoe train"). */
  command?: string;
}

export interface RunFolder {
  dir: string;
  lock: RunLock;
  /** Where an old run was moved by `overwrite`, or null. */
  movedAside: string | null;
  /** Orphaned checkpoint temp files removed. */
  removedTemps: string[];
  /** Lines worth telling the user (a stale lock taken over, a run moved aside, temp files removed). */
  notes: string[];
}

/** The run files present in `dir`. */
export function runFilesIn(dir: string): string[] {
  return RUN_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
}

function asideName(dir: string): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
  let name = `${dir}.old-${stamp}`;
  for (let i = 2; fs.existsSync(name); i++) name = `${dir}.old-${stamp}-${i}`;
  return name;
}

/** Checks, locks and prepares `dir` for a training run; throws (exit 2) with one line when it cannot. */
export function openRunFolder(dir: string, opts: OpenRunFolderOptions = {}): RunFolder {
  const command = opts.command ?? 'vmoe train';
  if (opts.resume && opts.overwrite)
    throw new TrainingError(
      '--resume and --overwrite contradict each other: resume continues the run in the folder, overwrite moves it aside',
    );
  checkOutputDir(dir, '--out', { create: true });
  let lock = acquireRunLock(dir, command);
  const notes: string[] = [];
  if (lock.tookOver) notes.push(`took over ${lock.tookOver}`);
  let movedAside: string | null = null;
  const found = opts.resume ? [] : runFilesIn(dir);
  if (found.length > 0) {
    if (!opts.overwrite) {
      lock.release();
      throw new TrainingError(
        `${dir} already holds a run (${found.join(', ')}); pass --resume to continue it, or --overwrite to move it aside to ${dir}.old-<timestamp> and start afresh`,
        {
          hint: 'or choose another --out: a new run there would replace its logs and config and leave its results beside the new ones',
        },
      );
    }
    movedAside = asideName(dir);
    try {
      fs.renameSync(dir, movedAside);
    } catch (err) {
      lock.release();
      throw new TrainingError(
        `cannot move the old run in ${dir} aside to ${movedAside}: ${(err as Error).message}; nothing was changed`,
      );
    }
    lock.release(); // its file moved with the folder: remove it there
    fs.rmSync(path.join(movedAside, LOCK_FILE), { force: true });
    fs.mkdirSync(dir);
    lock = acquireRunLock(dir, command);
    notes.push(`moved the old run (${found.join(', ')}) aside to ${movedAside}`);
  }
  const removedTemps = removeOrphanTemps(path.join(dir, 'checkpoints'));
  if (removedTemps.length > 0)
    notes.push(
      `removed ${removedTemps.length} unfinished checkpoint temp file(s) left by a killed run: ${removedTemps.map((f) => path.basename(f)).join(', ')}`,
    );
  return { dir, lock, movedAside, removedTemps, notes };
}
