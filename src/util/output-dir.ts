/**
 * Output folders checked before any work starts, and files written whole.
 *
 * `checkOutputDir` refuses, in one line naming the path, a folder that cannot hold results: one under a
 * regular file, on a pseudo-filesystem (/proc, /sys — Node's recursive mkdir never returns under /proc),
 * or whose nearest existing ancestor is not writable; asked to, it creates the folder. It touches
 * nothing else, so a command can call it before loading data or a model.
 *
 * `writeFileWhole` writes a file atomically (temp file + rename), so a reader never sees half of it and
 * a full disk leaves the previous version in place; the failure is an OutputError naming the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OutputError, describeWriteError } from './errors.js';
import { SUPERVISOR_ENV, WORKER_ENV } from './signals.js';

/** Linux pseudo-filesystems that hold no files of ours (statfs f_type). */
const PSEUDO_FS = new Map<number, string>([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x74726163, 'tracefs'],
  [0x6e736673, 'nsfs'],
  [0x42494e4d, 'binfmt_misc'],
  [0x50495045, 'pipefs'],
]);
/** Path prefixes refused even where statfs is unavailable. */
const PSEUDO_ROOTS = ['/proc', '/sys'];

function underRoot(p: string, root: string): boolean {
  return p === root || p.startsWith(root + '/');
}

/** The pseudo-filesystem `p` lies on, or null. */
function pseudoFilesystem(p: string): string | null {
  if (process.platform !== 'linux') return null;
  for (const root of PSEUDO_ROOTS) if (underRoot(p, root)) return root === '/proc' ? 'procfs' : 'sysfs';
  try {
    return PSEUDO_FS.get(Number(fs.statfsSync(p).type)) ?? null;
  } catch {
    return null;
  }
}

/**
 * Checks that `dir` can be (or is) a writable folder, and with `create` creates it; throws an OutputError
 * (exit 2) naming `flag` and the offending path otherwise. Returns the absolute path.
 */
export function checkOutputDir(dir: string, flag = '--out', opts: { create?: boolean } = {}): string {
  const abs = path.resolve(dir);
  const fail = (why: string, file: string, hint?: string): never => {
    throw new OutputError(`${flag} ${dir}: ${why}`, { file, hint });
  };
  // The nearest part of the path that exists, resolved through symlinks.
  let existing = abs;
  let st: fs.Stats | null = null;
  for (;;) {
    try {
      st = fs.statSync(existing);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') {
        // some ancestor is a file: keep walking up to name it
      } else if (code !== 'ENOENT') {
        fail(`cannot look at ${existing}: ${describeWriteError(err)}`, existing);
      }
      const up = path.dirname(existing);
      if (up === existing) fail('no part of the path exists', abs);
      existing = up;
    }
  }
  let real = existing;
  try {
    real = fs.realpathSync(existing);
  } catch {
    // keep the path as given
  }
  const pseudo = pseudoFilesystem(abs) ?? pseudoFilesystem(real);
  if (pseudo)
    fail(`${real} is on ${pseudo}, a pseudo-filesystem that cannot hold files; choose a folder on a disk`, real);
  if (!st.isDirectory()) {
    fail(
      existing === abs ? 'is a file, not a folder' : `${existing} is a file, not a folder`,
      existing,
      'choose a folder that is not inside a file',
    );
  }
  try {
    fs.accessSync(existing, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    fail(`${existing} is not writable: ${describeWriteError(err)}`, existing);
  }
  if (opts.create) {
    try {
      fs.mkdirSync(abs, { recursive: true });
    } catch (err) {
      fail(`cannot create it: ${describeWriteError(err)}`, abs);
    }
  }
  return abs;
}

/**
 * Writes `text` to `file` atomically (temp file in the same folder, fsync, rename). On failure the
 * temp file is removed, the old `file` (if any) is unchanged, and an OutputError names `file`.
 */
export function writeFileWhole(file: string, text: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    fs.writeFileSync(fd, text);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    if (deferred) {
      // inside writeOutputsWhole: renamed with the command's other files once all are written
      if (!deferred.some((d) => d.tmp === tmp)) deferred.push({ tmp, file });
      return;
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // the write error is the one worth reporting
      }
    }
    fs.rmSync(tmp, { force: true });
    throw new OutputError(
      `cannot write ${file}: ${describeWriteError(err)}; the previous version (if any) is unchanged`,
      { file, cause: err },
    );
  }
}

/** Temp files written inside `writeOutputsWhole`, renamed into place when all are written. */
let deferred: { tmp: string; file: string }[] | null = null;

/** Signals held off while a set of outputs is renamed into place (a few milliseconds). */
const HELD_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Writes a command's set of output files all or nothing: every `writeFileWhole` inside `write` goes to its
 * temp file (fsync'd) and the renames wait until `write` returns; then all files are renamed into place
 * while SIGINT / SIGTERM / SIGHUP are held off, so a signal never leaves half the set (say `results.json`
 * without its tables). If `write` throws, every temp file is removed and the previous files are unchanged.
 * Orphaned temp files of processes that died mid-write are removed first (`removeOrphanOutputTemps`).
 */
export function writeOutputsWhole<T>(dir: string, write: () => T): T {
  if (deferred) return write(); // nested: the outer call commits
  if (fs.existsSync(dir)) removeOrphanOutputTemps(dir);
  deferred = [];
  const pending = deferred;
  let result: T;
  try {
    result = write();
  } catch (err) {
    for (const d of pending) fs.rmSync(d.tmp, { force: true });
    throw err;
  } finally {
    deferred = null;
  }
  // Listeners make Node catch these signals instead of dying; the renames are synchronous, so a signal
  // that arrives meanwhile is only seen after the listeners are gone and is dropped: the set completes.
  const supervisor = process.env[WORKER_ENV] === '1' ? Number(process.env[SUPERVISOR_ENV]) : NaN;
  if (supervisor > 0 && process.ppid !== supervisor) {
    // a worker whose supervisor is gone (SIGKILLed, so it could not pass the signal on): the command was
    // stopped by whoever killed it, and its results must not appear as if it had finished
    for (const r of pending) fs.rmSync(r.tmp, { force: true });
    process.stderr.write(`error: the supervisor (pid ${supervisor}) of this command was killed; nothing was written\n`);
    process.exit(137);
  }
  // a target that is a folder would fail its rename half-way through the set: refuse before any rename
  for (const d of pending) {
    let isDir = false;
    try {
      isDir = fs.lstatSync(d.file).isDirectory();
    } catch {
      // missing: fine
    }
    if (isDir) {
      for (const r of pending) fs.rmSync(r.tmp, { force: true });
      throw new OutputError(`cannot write ${d.file}: a folder of that name is in the way; nothing was written`, {
        file: d.file,
      });
    }
  }
  const hold = () => {};
  for (const s of HELD_SIGNALS) process.on(s, hold);
  try {
    for (const d of pending) {
      try {
        fs.renameSync(d.tmp, d.file);
      } catch (err) {
        for (const r of pending) fs.rmSync(r.tmp, { force: true });
        throw new OutputError(`cannot write ${d.file}: ${describeWriteError(err)}`, { file: d.file, cause: err });
      }
    }
  } finally {
    // A supervised worker keeps holding them: its results are written, and a signal its supervisor passes on
    // now must not turn the finished command into one reported as "interrupted, nothing written".
    if (process.env[WORKER_ENV] !== '1') for (const s of HELD_SIGNALS) process.off(s, hold);
  }
  return result;
}

/** `.<name>.<pid>.tmp`: the temp file `writeFileWhole` writes before its rename. */
const OUTPUT_TEMP = /^\..+\.(\d+)\.tmp$/;

/**
 * Removes, under `dir` (and its subfolders, to a depth of 3), the temp files of `writeFileWhole` left by
 * processes that no longer run (killed mid-write), or by process `pid` when given; folders left empty by
 * that are removed too unless listed in `keep`. Returns the files removed.
 */
export function removeOrphanOutputTemps(dir: string, pid?: number, keep: ReadonlySet<string> = new Set()): string[] {
  const removed: string[] = [];
  const walk = (d: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (depth < 3) {
          walk(p, depth + 1);
          if (!keep.has(p) && removed.some((r) => r.startsWith(p + path.sep))) {
            try {
              fs.rmdirSync(p); // only when empty
            } catch {
              // it holds other files
            }
          }
        }
        continue;
      }
      const m = OUTPUT_TEMP.exec(e.name);
      if (!m || e.name.startsWith('.vmoe.lock.') || e.name.startsWith('.checkpoint-')) continue; // those have their own cleanup
      const owner = Number(m[1]);
      if (pid === undefined ? owner === process.pid || processRuns(owner) : owner !== pid) continue;
      fs.rmSync(p, { force: true });
      removed.push(p);
    }
  };
  walk(dir, 0);
  return removed;
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Appends JSON lines whole: each record is one write of one complete line. A write that fails part-way
 * (a full disk) is cut back to the last complete line, so the file never ends in half a record, and the
 * failure is an OutputError naming the file.
 */
export class JsonlAppender {
  private fd: number;
  constructor(readonly file: string) {
    try {
      this.fd = fs.openSync(file, 'a');
    } catch (err) {
      throw new OutputError(`cannot open ${file} for writing: ${describeWriteError(err)}`, { file, cause: err });
    }
  }

  append(record: unknown): void {
    const bytes = Buffer.from(JSON.stringify(record) + '\n', 'utf8');
    let size = 0;
    try {
      size = fs.fstatSync(this.fd).size;
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done);
    } catch (err) {
      try {
        if (fs.fstatSync(this.fd).isFile()) fs.ftruncateSync(this.fd, size);
      } catch {
        // cutting back is best effort; a reader ignores a cut last line anyway (readJsonl)
      }
      throw new OutputError(`cannot write ${this.file}: ${describeWriteError(err)}`, { file: this.file, cause: err });
    }
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

export interface JsonlContents<T> {
  records: T[];
  /** A last line without its newline or not valid JSON (a write cut by a crash): left out of records. */
  cutLastLine: string | null;
}

/**
 * Reads a JSON-lines file written by JsonlAppender; a cut last line (a crash mid-write) is left out and
 * returned in `cutLastLine`. A bad line elsewhere is an OutputError naming the file and line.
 */
export function readJsonl<T = unknown>(file: string): JsonlContents<T> {
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const last = lines.pop() ?? '';
  const records: T[] = [];
  let cutLastLine: string | null = last.length > 0 ? last : null;
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    try {
      records.push(JSON.parse(line) as T);
    } catch (err) {
      if (i === lines.length - 1 && cutLastLine === null) {
        cutLastLine = line;
        return;
      }
      throw new OutputError(`${file}:${i + 1}: not valid JSON (${(err as Error).message})`, { file });
    }
  });
  return { records, cutLastLine };
}
