/**
 * Stopping long commands (`vmoe eval`, `robustness`, `sweep`, `fewshot`, `corrupt`, `routing`) cleanly on
 * SIGINT / SIGTERM / SIGHUP.
 *
 * These commands compute synchronously (tfjs forward passes, image corruptions), so a signal handler in the
 * process doing the work would only run after the work is done. Instead the command runs in a worker: the
 * same CLI, re-started as a child process, with the signals at their default action. The supervisor, idle,
 * receives the signal (a terminal's Ctrl-C reaches both: the worker dies of it, and what the supervisor passes
 * on finds it gone), passes it on — the worker dies at once — removes what the worker left in the output folder
 * (its temp files, its lock, folders it created and left empty), prints one line and exits 128 + the signal's
 * number. Output files are written as one set at the end (`writeOutputsWhole`), so a worker killed before that
 * leaves the folder as it was; a worker whose supervisor was SIGKILLed writes nothing either. A second signal
 * kills the worker with SIGKILL and exits at once.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { removeOrphanOutputTemps } from './output-dir.js';
import { removeLockOf } from './run-lock.js';
import { SUPERVISOR_ENV, WORKER_ENV, signalExitCode } from './signals.js';

export { WORKER_ENV };

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** What the supervisor needs to know about the command. */
export interface SuperviseOptions {
  /** The command as users know it, for the message (e.g. "vmoe eval"). */
  command: string;
  /** The output folder (`--out`), cleaned after an interrupted worker; none when the command prints only. */
  out?: string;
  /** Where the one line goes (stderr by default). */
  write?: (line: string) => void;
}

/** Folders under `dir` (to depth 3), to tell afterwards which ones the worker created. */
function foldersUnder(dir: string): Set<string> {
  const out = new Set<string>();
  const walk = (d: string, depth: number) => {
    if (!fs.existsSync(d)) return;
    out.add(d);
    if (depth >= 3) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true }))
      if (e.isDirectory()) walk(path.join(d, e.name), depth + 1);
  };
  walk(dir, 0);
  return out;
}

/** Removes the folders under `dir` (and `dir` itself) that are empty and not in `before`, deepest first. */
function removeNewEmptyFolders(dir: string, before: ReadonlySet<string>): void {
  const visit = (d: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    if (depth < 3) for (const e of entries) if (e.isDirectory()) visit(path.join(d, e.name), depth + 1);
    if (before.has(d)) return;
    try {
      fs.rmdirSync(d); // only when empty
    } catch {
      // it holds files
    }
  };
  visit(dir, 0);
}

/** Whether this process should run the command itself (it is the worker, or supervision is unavailable). */
export function isWorker(): boolean {
  if (process.env[WORKER_ENV] === '1') return true;
  if (process.platform === 'win32') return true; // no process groups; signals differ
  // a debugger flag would make the worker bind the supervisor's inspector port
  return process.execArgv.some((a) => a.startsWith('--inspect'));
}

/**
 * Runs the current command line again in a worker and waits for it; resolves with the exit code this process
 * should exit with. Call it only when `isWorker()` is false.
 */
export function superviseCommand(opts: SuperviseOptions): Promise<number> {
  const write = opts.write ?? ((s: string) => process.stderr.write(s + '\n'));
  const out = opts.out === undefined ? undefined : path.resolve(opts.out);
  const folders = out === undefined ? new Set<string>() : foldersUnder(out);
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, [WORKER_ENV]: '1', [SUPERVISOR_ENV]: String(process.pid) },
  });
  let received: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (received !== null) {
      child.kill('SIGKILL'); // second signal: at once
      return;
    }
    received = sig;
    child.kill(sig);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  return new Promise<number>((resolve) => {
    child.on('error', (err) => {
      for (const s of SIGNALS) process.off(s, onSignal);
      write(`error: cannot start the ${opts.command} worker: ${err.message}`);
      resolve(1);
    });
    child.on('exit', (code, signal) => {
      for (const s of SIGNALS) process.off(s, onSignal);
      if (signal === null) {
        resolve(code ?? 1); // finished (or failed) on its own; it printed its own result or error
        return;
      }
      const sig = received ?? (signal as NodeJS.Signals);
      let where = '';
      if (out !== undefined && child.pid !== undefined) {
        removeLockOf(out, child.pid);
        removeOrphanOutputTemps(out, child.pid, folders);
        removeNewEmptyFolders(out, folders);
        where = fs.existsSync(out) ? `; ${out} is as it was before` : `; ${out} was not created`;
      }
      write(`error: interrupted by ${sig}: ${opts.command} stopped before it finished and wrote no results${where}`);
      resolve(signalExitCode(sig));
    });
  });
}
