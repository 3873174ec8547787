/** Options and error handling shared by the commands. */
import type { Command } from 'commander';
import { BACKEND_ORDER, initEngine, type BackendName, type EngineInfo } from '../engine/index.js';
import { EXIT_BAD_INPUT, EXIT_INTERNAL, UsageError, isVmoeError } from '../util/errors.js';

export function addEngineOptions(cmd: Command): Command {
  return cmd
    .option('--backend <name>', 'tensor backend: auto, node-gpu, node, wasm-blas, wasm, cpu', 'auto')
    .option('--threads <n>', 'threads for the wasm backend (default 1)');
}

export async function startEngine(opts: { backend?: string; threads?: string }): Promise<EngineInfo> {
  const backend = opts.backend ?? 'auto';
  if (backend !== 'auto' && !(BACKEND_ORDER as readonly string[]).includes(backend)) {
    throw new UsageError(`--backend: unknown backend "${backend}"; expected auto, ${BACKEND_ORDER.join(', ')}`, {
      hint: 'use --backend auto to pick the fastest backend that is installed',
    });
  }
  return initEngine({
    backend: backend as BackendName | 'auto',
    threads: opts.threads ? parsePositiveInt(opts.threads, '--threads') : undefined,
  });
}

export function parsePositiveInt(s: string, flag: string): number {
  const v = Number(s);
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`${flag}: expected a positive integer, got "${s}"`);
  return v;
}

export function parsePositiveNumber(s: string, flag: string): number {
  const v = Number(s);
  if (!Number.isFinite(v) || v <= 0) throw new UsageError(`${flag}: expected a positive number, got "${s}"`);
  return v;
}

/** Node file-system error codes that mean a path the user gave is missing, unreadable or of the wrong kind. */
const USER_FS_CODES = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM']);

/**
 * Prints an error the way every command does and returns the exit code: a VmoeError (bad input) as
 * `error: <message>` plus `hint: <hint>` and its exitCode (2), no stack; anything else is a bug:
 * `error: <message>` and exit 1, the stack only with `debug` (--debug or VMOE_DEBUG=1).
 */
export function reportError(
  err: unknown,
  opts: { debug: boolean },
  write: (s: string) => void = (s) => process.stderr.write(s),
): number {
  if (isVmoeError(err)) {
    write(`error: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
    if (opts.debug && err.stack) write(`${err.stack}\n`);
    return err.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  const fsCode = (e as NodeJS.ErrnoException).code;
  if (fsCode !== undefined && USER_FS_CODES.has(fsCode) && typeof (e as NodeJS.ErrnoException).path === 'string') {
    // A file or folder named on the command line that is missing or unreadable: bad input, not a bug.
    write(`error: ${e.message}\n`);
    if (opts.debug && e.stack) write(`${e.stack}\n`);
    return EXIT_BAD_INPUT;
  }
  write(`error: ${e.message}\n`);
  write(
    opts.debug
      ? `${e.stack ?? ''}\n`
      : 'this is a bug in vmoe-ts, not in your input; rerun with --debug (or VMOE_DEBUG=1) for the stack trace\n',
  );
  return EXIT_INTERNAL;
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The data-selection options every model-running command shares. */
export function addDataOptions(cmd: Command): Command {
  return cmd
    .option('--dataset <name>', 'data set (default: the one it was trained on)')
    .option('--split <split>', 'train, val, test or train_full', 'test')
    .option('--data-dir <dir>', 'folder holding the data set')
    .option('--limit <n>', 'use only the first n examples')
    .option('--batch-size <n>', 'evaluation batch size', '256');
}
