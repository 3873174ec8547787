/** Shared by the reliability tests: the built CLI on a tiny MNIST V-MoE (a few steps a second). */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';

export const root = path.resolve(__dirname, '../..');
export const cli = path.join(root, 'dist/cli/main.js');

/** The overrides of tests/cli/cli.test.ts: a tiny model on 256 MNIST images. */
export const common = [
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
  '--set',
  'train.logEvery=1000',
  '--backend',
  'wasm',
];

const env = { ...process.env, VMOE_THREADS: '1', VMOE_DEBUG: '' };

export function vmoe(...args: string[]) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, seconds: (performance.now() - t0) / 1000 };
}

/** Starts the CLI in the background; `done` resolves with its exit status and output. */
export function vmoeAsync(...args: string[]): {
  child: ChildProcess;
  done: Promise<{ status: number | null; signal: string | null; stderr: string; stdout: string }>;
} {
  const child = spawn(process.execPath, [cli, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '',
    stdout = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  child.stdout!.on('data', (d) => (stdout += String(d)));
  const done = new Promise<{ status: number | null; signal: string | null; stderr: string; stdout: string }>(
    (resolve) => {
      child.on('close', (status, signal) => resolve({ status, signal, stderr, stdout }));
    },
  );
  return { child, done };
}

export const tmpDir = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `vmoe-rel-${tag}-`));

/** The `error:` lines of a command's stderr. */
export const errorLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('error:'));

/**
 * A clear refusal: exit 2, no stack trace, stdout empty (no half-printed report), and stderr — apart from
 * `[vmoe] …` progress lines — exactly one `error:` line, then at most one `hint:` line; returns the error line.
 */
export function refusal(r: { status: number | null; stdout: string; stderr: string }): string {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stderr).not.toMatch(/^ {4}at /m);
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('[vmoe] '));
  expect(lines[0], r.stderr).toMatch(/^error: \S/);
  expect(lines.length, r.stderr).toBeLessThanOrEqual(2);
  if (lines[1] !== undefined) expect(lines[1], r.stderr).toMatch(/^hint: \S/);
  return lines[0]!;
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
