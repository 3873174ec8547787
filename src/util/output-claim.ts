/**
 * One writer per output folder for the commands that write results (`vmoe eval / robustness / sweep / fewshot /
 * corrupt --out`): the folder is checked (util/output-dir.ts), created when missing, and locked with the run
 * lock (util/run-lock.ts) before any work starts, so a second command writing into the same folder — or into
 * the folder of a training that is running — is refused at once with one line naming the owner, instead of
 * both writing `results.json` and the later one silently winning. A folder the command created and left empty
 * (it failed before writing anything) is removed when the process exits.
 */
import fs from 'node:fs';
import { checkOutputDir } from './output-dir.js';
import { acquireRunLock, type RunLock } from './run-lock.js';

/** An output folder held by this process. */
export interface OutputClaim {
  /** The folder, absolute. */
  dir: string;
  /** Whether this process created it. */
  created: boolean;
  /** The lock; `lock.tookOver` says whose stale lock was taken over, if any. */
  lock: RunLock;
  /** Releases the lock and removes the folder if this process created it and it is empty. */
  release(): void;
}

/**
 * Checks, creates and locks output folder `dir` (named `flag` in messages) for `command`; throws one-line
 * errors (exit 2) when it cannot be used or another process holds it.
 */
export function claimOutputDir(dir: string, command: string, flag = '--out'): OutputClaim {
  const abs = checkOutputDir(dir, flag);
  const created = !fs.existsSync(abs);
  if (created) checkOutputDir(dir, flag, { create: true });
  const removeIfEmpty = () => {
    if (!created) return;
    try {
      fs.rmdirSync(abs); // fails unless empty
    } catch {
      // it holds results
    }
  };
  let lock: RunLock;
  try {
    lock = acquireRunLock(abs, command, 'two commands writing results into one folder would overwrite each other');
  } catch (err) {
    removeIfEmpty();
    throw err;
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    lock.release();
    removeIfEmpty();
  };
  process.on('exit', release);
  return { dir: abs, created, lock, release };
}

/**
 * Runs `work` holding output folder `dir` (`claimOutputDir`; nothing to hold when `dir` is undefined) and
 * releases it afterwards, whether `work` succeeds or fails — so a process that runs several commands (a test, a
 * job queue) does not keep the folder locked.
 */
export async function withOutputDir<T>(dir: string | undefined, command: string, work: () => Promise<T>): Promise<T> {
  const claim = dir === undefined ? null : claimOutputDir(dir, command);
  try {
    return await work();
  } finally {
    claim?.release();
  }
}
