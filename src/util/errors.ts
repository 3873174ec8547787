/**
 * The toolkit's one error hierarchy.
 *
 * Every error a user can cause — a bad flag, config field, data file, checkpoint, CSV row — is a
 * `VmoeError` (or a subclass): its message names the file / field / row that was wrong, `exitCode` is
 * what the CLI exits with (2 for bad input), and `hint` says what to do about it. The CLI prints
 * `error: <message>` (and `hint: <hint>`) on one line each and exits with `exitCode`, no stack trace.
 * Anything that is not a `VmoeError` is a bug: the CLI exits 1 and prints a stack only with `--debug`
 * or `VMOE_DEBUG=1`.
 */

/** Exit code for bad input (flags, configs, data, checkpoints). */
export const EXIT_BAD_INPUT = 2;
/** Exit code for an unexpected failure (a bug). */
export const EXIT_INTERNAL = 1;

/** Options every toolkit error takes. */
export interface VmoeErrorOptions {
  /** What to do about it, printed on its own `hint:` line. */
  hint?: string;
  /** Process exit code the CLI uses; default 2 (bad input). */
  exitCode?: number;
  /** The lower-level error this one explains. */
  cause?: unknown;
}

/** Base class of every error the toolkit raises on purpose; `exitCode` 2 unless stated. */
export class VmoeError extends Error {
  readonly exitCode: number;
  readonly hint?: string;
  constructor(message: string, options: VmoeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? EXIT_BAD_INPUT;
    this.hint = options.hint;
  }
}

/** A command-line flag or argument that is missing, malformed or out of range. */
export class UsageError extends VmoeError {}

/** An invalid config: `problems` lists every bad field, one per entry (one problem: a one-line message). */
export class ConfigError extends VmoeError {
  readonly problems: string[];
  constructor(problems: string[] | string, options: VmoeErrorOptions = {}) {
    const list = Array.isArray(problems) ? problems : [problems];
    super(list.length === 1 ? `invalid config: ${list[0]}` : `invalid config:\n  ${list.join('\n  ')}`, options);
    this.problems = list;
  }
}

/** A missing, unreadable or malformed data file or data set (IDX, CSV, npz, image folder …). */
export class DataError extends VmoeError {}

/** A missing, damaged or incompatible checkpoint; `file` names it when known. */
export class CheckpointError extends VmoeError {
  readonly file?: string;
  constructor(message: string, options: VmoeErrorOptions & { file?: string } = {}) {
    super(message, options);
    this.file = options.file;
  }
}

/** An unknown corruption name or a severity outside the allowed range. */
export class CorruptionError extends VmoeError {}

/** Training cannot go on as asked (non-finite loss, nothing to resume, a run folder in use). */
export class TrainingError extends VmoeError {}

/** True for errors the CLI reports as one line (no stack trace). */
export function isVmoeError(e: unknown): e is VmoeError {
  return e instanceof VmoeError;
}

/**
 * An output folder or file that cannot be written: not creatable, under a regular file or a
 * pseudo-filesystem (/proc, /sys), not writable, the disk full (ENOSPC); `file` names it.
 */
export class OutputError extends VmoeError {
  readonly file?: string;
  constructor(message: string, options: VmoeErrorOptions & { file?: string } = {}) {
    super(message, options);
    this.file = options.file;
  }
}

/** Why a write failed, in words, from a Node error code (ENOSPC → "no space left on device (ENOSPC)"). */
export function describeWriteError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const words: Record<string, string> = {
    ENOSPC: 'no space left on device',
    EDQUOT: 'disk quota exceeded',
    EROFS: 'read-only file system',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOTDIR: 'a part of the path is a file, not a folder',
    EISDIR: 'it is a folder',
    EFBIG: 'file too large',
    EIO: 'input/output error',
  };
  const w = e?.code ? words[e.code] : undefined;
  return w ? `${w} (${e.code})` : (e?.message ?? String(err));
}
