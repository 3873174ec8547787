/**
 * Signal numbers as exit codes, shared by the training loop (train/interrupt.ts) and the supervisor of long
 * commands (util/supervise.ts): a process stopped by a signal exits 128 + its number, as a shell reports it.
 */
import os from 'node:os';

/** 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (os.constants.signals[signal] ?? 0);
}

/** Set in the environment of a command's worker process by its supervisor (util/supervise.ts). */
export const WORKER_ENV = 'VMOE_SUPERVISED_WORKER';

/** Set in the worker's environment too: the supervisor's pid, so the worker can tell that it was killed. */
export const SUPERVISOR_ENV = 'VMOE_SUPERVISOR_PID';
