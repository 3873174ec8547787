/**
 * One writer per run folder: a lock file `<dir>/.vmoe.lock` holding the owner's pid, host, start time
 * and command. It is created atomically (written to a temp file, then hard-linked to the lock name, which
 * fails when a lock exists), so a second process either gets the whole lock or is refused with the
 * owner's details. A lock left by a process that died (same host, pid no longer running) is stale: it is
 * taken over with a note. A lock from another host cannot be checked and is never taken over.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TrainingError } from './errors.js';

export const LOCK_FILE = '.vmoe.lock';

export interface LockOwner {
  pid: number;
  host: string;
  started: string;
  command: string;
}

export interface RunLock {
  file: string;
  owner: LockOwner;
  /** Set when a stale lock was taken over: says whose. */
  tookOver: string | null;
  release(): void;
}

/** Whether process `pid` runs on this host (EPERM: it exists but belongs to another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid !== 'number' || typeof o.host !== 'string') return null;
    return { pid: o.pid, host: o.host, started: String(o.started ?? '?'), command: String(o.command ?? '?') };
  } catch {
    return null;
  }
}

function describe(o: LockOwner): string {
  return `pid ${o.pid} on ${o.host} (${o.command}, started ${o.started})`;
}

/**
 * Takes the lock of run folder `dir` (which must exist) for this process, or throws a TrainingError
 * (exit 2) naming the process that holds it. The lock is released by `release()` and, failing that,
 * when the process exits.
 */
export function acquireRunLock(
  dir: string,
  command: string,
  clash = "a second run would mix its logs and checkpoints with the first's",
): RunLock {
  const file = path.join(dir, LOCK_FILE);
  const owner: LockOwner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command };
  const tmp = path.join(dir, `${LOCK_FILE}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(owner) + '\n');
  let tookOver: string | null = null;
  try {
    try {
      fs.linkSync(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const held = readOwner(file);
      const inUse = (why: string) =>
        new TrainingError(`run folder ${dir} is in use: ${why}; ${clash}`, {
          hint: `wait for it to finish or stop it, or choose another --out; if no such run exists, delete ${file}`,
        });
      if (held === null) {
        // a lock file we cannot read: being written this instant, or damaged; an old one is stale
        const age = Date.now() - fs.statSync(file).mtimeMs;
        if (age < 10_000) throw inUse(`its lock file ${file} is being written`);
        tookOver = `an unreadable lock file ${file}`;
      } else if (held.host !== os.hostname()) {
        throw inUse(`locked by ${describe(held)}, another host whose processes cannot be checked from here`);
      } else if (held.pid === process.pid || pidAlive(held.pid)) {
        throw inUse(`locked by ${describe(held)}`);
      } else {
        tookOver = `a stale lock of ${describe(held)}, which is no longer running`;
      }
      fs.renameSync(tmp, file); // replaces the stale lock in one step
      const now = readOwner(file);
      if (now?.pid !== process.pid)
        throw inUse(`another process took it over at the same moment${now ? `: ${describe(now)}` : ''}`);
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    if (readOwner(file)?.pid === process.pid) fs.rmSync(file, { force: true });
  };
  process.on('exit', release);
  return { file, owner, tookOver, release };
}

/** Removes the lock of `dir` when process `pid` holds it (a supervisor cleaning up after its killed worker). */
export function removeLockOf(dir: string, pid: number): boolean {
  const file = path.join(dir, LOCK_FILE);
  if (readOwner(file)?.pid !== pid) return false;
  fs.rmSync(file, { force: true });
  return true;
}
