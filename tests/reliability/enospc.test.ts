/**
 * A full disk, end to end: training into a small tmpfs that fills up at the third checkpoint (each is ~355 KB
 * for this tiny model; the tmpfs holds two). Needs root to mount a tmpfs; skipped with a message elsewhere.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { common, errorLines, tmpDir, vmoe } from './helpers.js';

function mountTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const mnt = tmpDir('enospc');
const mounted = process.platform === 'linux' && mountTmpfs(mnt, '900k');
if (!mounted) console.warn(`[enospc] skipped: cannot mount a tmpfs at ${mnt} (needs root on Linux)`);
afterAll(() => {
  if (mounted) execFileSync('umount', [mnt]);
  fs.rmSync(mnt, { recursive: true, force: true });
});

describe.skipIf(!mounted)('ENOSPC on a real (tmpfs) file system', () => {
  it('a checkpoint that does not fit: one line naming it, the previous checkpoint intact, no temp file, whole log lines', () => {
    const out = path.join(mnt, 'run');
    const r = vmoe('train', ...common, '--set', 'train.steps=6', '--set', 'train.checkpointEvery=2', '--out', out);
    // exit 2, no stack trace, one error line (the training's own progress lines come before it)
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).not.toMatch(/^ {4}at /m);
    const [line, ...more] = errorLines(r.stderr);
    expect(more).toEqual([]);
    expect(line).toMatch(/checkpoint-6\.vmoe/);
    expect(line).toMatch(/no space left on device|ENOSPC/i);
    const ckpts = fs.readdirSync(path.join(out, 'checkpoints'));
    expect(ckpts.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(ckpts).toContain('checkpoint-4.vmoe');
    // the last checkpoint written before the disk filled still loads and evaluates
    const e = vmoe(
      'eval',
      '--checkpoint',
      path.join(out, 'checkpoints', 'checkpoint-4.vmoe'),
      '--limit',
      '16',
      '--backend',
      'wasm',
    );
    expect(e.status, e.stderr).toBe(0);
    expect(JSON.parse(e.stdout).checkpoint.step).toBe(4);
    // every log line is a whole JSON record
    const log = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8');
    expect(log.endsWith('\n')).toBe(true);
    for (const l of log.trim().split('\n')) expect(() => JSON.parse(l)).not.toThrow();
  });
});
