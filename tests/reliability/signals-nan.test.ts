/**
 * SIGINT / SIGTERM mid-training (a checkpoint at the current step, exit 130 / 143, --resume reaches the
 * uninterrupted final loss exactly) and non-finite numbers (no non-finite checkpoint, the message names the
 * step, eval on a diverged checkpoint is one line).
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { findNonFinite, loadCheckpoint, saveCheckpoint } from '../../src/checkpoint/format.js';
import { common, ensureBuilt, errorLines, loggedSteps, tmpDir, vmoe, vmoeAsync, waitFor } from './helpers.js';

beforeAll(ensureBuilt);

const STEPS = 40;
const args = (run: string, ...extra: string[]) => [
  'train',
  ...common,
  '--set',
  `train.steps=${STEPS}`,
  '--set',
  'train.checkpointEvery=15',
  '--set',
  'seed=4',
  '--set',
  'model.dropout=0.1',
  '--out',
  run,
  ...extra,
];
const finalLoss = (run: string) =>
  JSON.parse(fs.readFileSync(path.join(run, 'train_summary.json'), 'utf8')).final_loss as number;

describe('signals during training', () => {
  let reference = NaN;
  beforeAll(() => {
    const run = path.join(tmpDir('sig-ref'), 'run');
    const r = vmoe(...args(run));
    expect(r.status, r.stderr).toBe(0);
    reference = finalLoss(run);
  });

  it.each([
    { signal: 'SIGTERM' as const, code: 143 },
    { signal: 'SIGINT' as const, code: 130 },
  ])(
    '$signal saves a checkpoint at the current step, exits $code, and --resume reaches the same final loss',
    async ({ signal, code }) => {
      const run = path.join(tmpDir(`sig-${signal}`), 'run');
      const t = vmoeAsync(...args(run));
      await waitFor(() => loggedSteps(run, true).length >= 3);
      t.child.kill(signal);
      const r = await t.done;
      expect(r.status, r.stderr).toBe(code);
      const errs = errorLines(r.stderr);
      expect(errs).toHaveLength(1);
      const m = new RegExp(
        `^error: interrupted by ${signal} at step (\\d+) of ${STEPS}; checkpoint (\\S+) holds step (\\d+)`,
      ).exec(errs[0]!);
      expect(m, errs[0]).not.toBeNull();
      const step = Number(m![1]);
      expect(step).toBeGreaterThanOrEqual(3);
      expect(step).toBeLessThan(STEPS);
      expect(Number(m![3])).toBe(step);
      expect(m![2]).toBe(path.join(run, 'checkpoints', `checkpoint-${step}.vmoe`));
      const ck = loadCheckpoint(m![2]!); // loads: checksum, header, sizes all verified
      expect(ck.meta.step).toBe(step);
      expect(findNonFinite(ck.tensors)).toBeNull();
      expect(loggedSteps(run)).toEqual(Array.from({ length: step }, (_, i) => i + 1)); // logs flushed up to it
      expect(r.stderr).toMatch(new RegExp(`hint: continue with: vmoe train .*--out ${run} --resume`));
      expect(fs.existsSync(path.join(run, '.vmoe.lock'))).toBe(false);
      expect(fs.readdirSync(path.join(run, 'checkpoints')).filter((f) => f.endsWith('.tmp'))).toEqual([]);

      const res = vmoe(...args(run, '--resume'));
      expect(res.status, res.stderr).toBe(0);
      expect(res.stderr).toContain(`resumed checkpoint-${step}.vmoe at step ${step}`);
      expect(loggedSteps(run)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
      expect(finalLoss(run)).toBe(reference); // exact: same data order, RNG streams and optimizer state
    },
  );

  it('SIGKILL (no handler runs): --resume takes over the dead lock and still reaches the same final loss', async () => {
    const run = path.join(tmpDir('sig-kill'), 'run');
    const t = vmoeAsync(...args(run, '--set', 'train.checkpointEvery=5'));
    await waitFor(() => loggedSteps(run, true).length >= 8);
    t.child.kill('SIGKILL');
    const r = await t.done;
    expect(r.signal).toBe('SIGKILL');
    expect(fs.existsSync(path.join(run, '.vmoe.lock'))).toBe(true); // left behind by the killed process
    const res = vmoe(...args(run, '--set', 'train.checkpointEvery=5', '--resume'));
    expect(res.status, res.stderr).toBe(0);
    expect(res.stderr).toContain(`took over a stale lock of pid ${t.child.pid}`);
    expect(loggedSteps(run)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(finalLoss(run)).toBe(reference);
    expect(fs.existsSync(path.join(run, '.vmoe.lock'))).toBe(false);
  });

  it('a second signal exits at once and leaves only whole files', async () => {
    const run = path.join(tmpDir('sig-twice'), 'run');
    const t = vmoeAsync(...args(run));
    await waitFor(() => loggedSteps(run, true).length >= 2);
    t.child.kill('SIGTERM');
    t.child.kill('SIGTERM');
    const r = await t.done;
    expect(r.status, r.stderr).toBe(143);
    const dir = path.join(run, 'checkpoints');
    const files = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    for (const f of files) expect(() => loadCheckpoint(path.join(dir, f))).not.toThrow();
    loggedSteps(run); // every line parses
    expect(fs.existsSync(path.join(run, '.vmoe.lock'))).toBe(false);
  });
});

describe('non-finite numbers', () => {
  it('a diverging run writes no non-finite checkpoint and names the step and the last finite checkpoint', () => {
    const run = path.join(tmpDir('nan'), 'run');
    const r = vmoe(
      'train',
      ...common,
      '--set',
      'train.steps=20',
      '--set',
      'train.checkpointEvery=1',
      '--set',
      'train.keepCheckpoints=100',
      '--set',
      'optim.lr=1e6',
      '--set',
      'optim.warmupSteps=0',
      '--out',
      run,
    );
    expect(r.status).toBe(2);
    const errs = errorLines(r.stderr);
    expect(errs).toHaveLength(1);
    const m = /at step (\d+)\b.*the last finite checkpoint is (\S+?\.vmoe)/.exec(errs[0]!);
    expect(m, errs[0]).not.toBeNull();
    const failed = Number(m![1]);
    const files = fs.readdirSync(path.join(run, 'checkpoints')).filter((f) => f.endsWith('.vmoe'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const ck = loadCheckpoint(path.join(run, 'checkpoints', f));
      expect(findNonFinite(ck.tensors), f).toBeNull();
      expect(ck.meta.step as number).toBeLessThan(failed);
    }
    expect(m![2]).toBe(
      path.join(run, 'checkpoints', `checkpoint-${Math.max(...files.map((f) => Number(/\d+/.exec(f)![0])))}.vmoe`),
    );

    // eval of the diverged run: one line, exit 2, no stack
    const e = vmoe('eval', '--checkpoint', run, '--limit', '32', '--backend', 'wasm');
    expect(e.status).toBe(2);
    expect(errorLines(e.stderr)).toHaveLength(1);
    expect(e.stderr).not.toMatch(/\bat \S+ \(/);
  });

  it('eval of a checkpoint holding NaN weights is one CheckpointError line naming the file and tensor', () => {
    const run = path.join(tmpDir('nanck'), 'run');
    expect(vmoe('train', ...common, '--set', 'train.steps=2', '--out', run).status).toBe(0);
    const good = loadCheckpoint(run + '/checkpoints');
    const w = good.tensors['params/head/kernel']!;
    w.data[3] = Number.NaN;
    const dir = tmpDir('nanck-out');
    const file = saveCheckpoint(dir, { meta: good.meta, tensors: good.tensors });
    const e = vmoe('eval', '--checkpoint', file, '--limit', '32', '--backend', 'wasm');
    expect(e.status).toBe(2);
    expect(errorLines(e.stderr)).toEqual([
      `error: checkpoint ${file}: params/head/kernel holds 1 of ${w.data.length} non-finite values (NaN or Infinity); it was saved by a run whose training diverged and cannot be used`,
    ]);
  });
});
