/** The built CLI (dist/cli/main.js) as a user runs it, and the one-line-error check every bad-input test makes. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'vitest';

export const root = path.resolve(__dirname, '../..');
export const cli = path.join(root, 'dist/cli/main.js');

/** One thread; VMOE_DEBUG cleared so a stack trace never comes from the caller's environment. */
export const cliEnv = { ...process.env, VMOE_THREADS: '1', VMOE_DEBUG: '' };

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** wall time of the command */
  seconds: number;
}

/** Runs `vmoe ARGS…` in `cwd` (default: the repository) and waits for it. */
export function runCli(args: string[], cwd = root): CliResult {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', env: cliEnv });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

/** `vmoe ARGS…` from the repository root. */
export const vmoe = (...args: string[]): CliResult => runCli(args);

/** The `error:` lines of a command's stderr. */
export const errorLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('error:'));

/**
 * Bad input as the CLI must report it: exit 2, no stack trace, and stderr — apart from `[vmoe] …` progress
 * lines — exactly one `error:` line, then at most one `hint:` line. `stdoutEmpty` also asks that nothing
 * (no half-printed report) reached stdout.
 */
export function oneLineError(
  r: { status: number | null; stdout: string; stderr: string },
  opts: { stdoutEmpty?: boolean } = {},
): { error: string; hint?: string } {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  if (opts.stdoutEmpty) expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('[vmoe] '));
  expect(lines.length, r.stderr).toBeGreaterThanOrEqual(1);
  expect(lines.length, r.stderr).toBeLessThanOrEqual(2);
  expect(lines[0], r.stderr).toMatch(/^error: \S/);
  if (lines[1] !== undefined) expect(lines[1], r.stderr).toMatch(/^hint: \S/);
  return { error: lines[0]!, hint: lines[1] };
}

/** Config overrides for a tiny V-MoE (16 wide, 14×14 patches) on 256 MNIST images: a CLI training in seconds. */
export const TINY_TRAIN = [
  '--set',
  'data.dataset="mnist"',
  '--set',
  'data.trainLimit=256',
  '--set',
  'data.valSize=64',
  '--set',
  'model.patchSize=14',
  '--set',
  'model.hidden=16',
  '--set',
  'model.mlpDim=32',
  '--set',
  'model.moe.groupImages=4',
  '--set',
  'train.batchSize=16',
  '--set',
  'train.evalEvery=0',
  '--set',
  'train.evalLimit=64',
];
