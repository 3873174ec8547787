/**
 * Stopping a training cleanly on SIGINT / SIGTERM: the first signal sets a flag that the training loop
 * checks after every step (it then saves a checkpoint at the current step and stops, see trainer.ts);
 * a second signal exits at once with 128 + the signal number — safe, because checkpoints and summaries
 * are written atomically (temp file + rename) and log lines whole.
 */
import { signalExitCode } from '../util/signals.js';

export { signalExitCode };

/** What the training loop reads: the signal that asked it to stop, or null. */
export interface StopRequest {
  readonly signal: NodeJS.Signals | null;
}

/**
 * Installs SIGINT and SIGTERM handlers for the duration of a training; `dispose` removes them.
 * `write` reports each signal (stderr by default).
 */
export function stopOnSignals(write: (line: string) => void = (s) => process.stderr.write(s + '\n')): StopRequest & {
  /** Removes the handlers (the training is over). */
  dispose(): void;
} {
  const state: { signal: NodeJS.Signals | null } = { signal: null };
  const onSignal = (sig: NodeJS.Signals) => {
    if (state.signal !== null) {
      write(`[vmoe] ${sig} again: exiting now; the last checkpoint written is intact`);
      process.exit(signalExitCode(sig));
    }
    state.signal = sig;
    write(`[vmoe] ${sig}: saving a checkpoint at the current step, then stopping (send it again to exit at once)`);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  for (const s of signals) process.on(s, onSignal);
  return {
    get signal() {
      return state.signal;
    },
    dispose() {
      for (const s of signals) process.off(s, onSignal);
    },
  };
}
