/** Shared by the reliability tests: the built CLI on a tiny MNIST V-MoE (a few steps a second). */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { TINY_TRAIN, cli, cliEnv, errorLines, oneLineError, root, vmoe } from '../helpers/cli.js';

export { cli, errorLines, root, vmoe };

/** The tiny training of tests/helpers/cli.ts, logging rarely, on plain wasm. */
export const common = [...TINY_TRAIN, '--set', 'train.logEvery=1000', '--backend', 'wasm'];

/** Starts the CLI in the background; `done` resolves with its exit status and output. */
export function vmoeAsync(...args: string[]): {
  child: ChildProcess;
  done: Promise<{ status: number | null; signal: string | null; stderr: string; stdout: string }>;
  /** stderr so far */
  stderr: () => string;
} {
  const child = spawn(process.execPath, [cli, ...args], { cwd: root, env: cliEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '',
    stdout = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  child.stdout!.on('data', (d) => (stdout += String(d)));
  const done = new Promise<{ status: number | null; signal: string | null; stderr: string; stdout: string }>(
    (resolve) => {
      child.on('close', (status, signal) => resolve({ status, signal, stderr, stdout }));
    },
  );
  return { child, done, stderr: () => stderr };
}

export const tmpDir = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `vmoe-rel-${tag}-`));

/**
 * A clear refusal: exit 2, no stack trace, stdout empty (no half-printed report), and stderr — apart from
 * `[vmoe] …` progress lines — exactly one `error:` line, then at most one `hint:` line; returns the error line.
 */
export function refusal(r: { status: number | null; stdout: string; stderr: string }): string {
  return oneLineError(r, { stdoutEmpty: true }).error;
}

/**
 * Training steps logged in a run's metrics.jsonl: every line must parse and the file end with a newline;
 * `live` (a run still writing) leaves out a last line whose write has not finished yet.
 */
export function loggedSteps(run: string, live = false): number[] {
  const file = path.join(run, 'metrics.jsonl');
  if (!fs.existsSync(file)) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const last = lines.pop();
  if (last !== '' && !live) throw new Error(`${file} ends in a cut line: ${last}`);
  return lines
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { step: number; split?: string })
    .filter((r) => !r.split)
    .map((r) => r.step);
}

/** Polls until `cond` holds (or throws after `ms`). */
export async function waitFor(cond: () => boolean, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Path → SHA-256 of every file under `dir` (relative paths), to check that nothing changed. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** A pid that is not running: a child that has already exited. */
export function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

export function ensureBuilt(): void {
  if (!fs.existsSync(cli)) throw new Error('dist/ is missing: run `npm run build`');
}
