/**
 * kill -9 in a loop, end to end: a training (a checkpoint every step, a few MB each) is killed with SIGKILL again
 * and again — half of the times the instant a checkpoint temp file appears (mid-write: no handler, no cleanup
 * runs), half at a random moment — and resumed each time. After every kill every checkpoint left loads (size,
 * header and SHA-256 checked) and holds finite weights; each resume removes the temp files the killed write left
 * and takes over the dead lock; the last resume finishes with every step logged once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { findNonFinite, loadCheckpoint } from '../../src/checkpoint/format.js';
import { common, ensureBuilt, loggedSteps, tmpDir, vmoe, vmoeAsync } from './helpers.js';

beforeAll(ensureBuilt);

const STEPS = 100;
// wider than the tiny model so that a checkpoint (parameters + Adam slots, ≈ 3 MB) takes a while to write
const args = (run: string, ...extra: string[]) => [
  'train',
  ...common,
  '--set',
  'model.hidden=96',
  '--set',
  'model.mlpDim=384',
  '--set',
  `train.steps=${STEPS}`,
  '--set',
  'train.checkpointEvery=1',
  '--set',
  'train.keepCheckpoints=3',
  '--out',
  run,
  ...extra,
];

const temps = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')) : []);

function checkEveryCheckpoint(dir: string): number[] {
  const steps: number[] = [];
  if (!fs.existsSync(dir)) return steps;
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.vmoe'))) {
    const ck = loadCheckpoint(path.join(dir, f)); // throws on a torn or damaged file
    expect(findNonFinite(ck.tensors), f).toBeNull();
    expect(f).toBe(`checkpoint-${ck.meta.step as number}.vmoe`);
    steps.push(ck.meta.step as number);
  }
  return steps.sort((a, b) => a - b);
}

describe('kill -9 in a loop during checkpoint writes', () => {
  it('every checkpoint left loads, each resume cleans up, the last resume completes the run', async () => {
    const run = path.join(tmpDir('kill-loop'), 'run');
    const ckDir = path.join(run, 'checkpoints');
    let rounds = 0;
    let midWrite = 0; // kills that left a temp file: the write was cut
    let lastStep = 0;
    // six rounds, more (up to twelve) until a kill has cut a write: where it lands is up to the scheduler
    for (let round = 0; round < 12 && (round < 6 || midWrite === 0); round++) {
      rounds++;
      const t = vmoeAsync(...args(run, ...(round > 0 ? ['--resume'] : [])));
      const exited = t.done.then(() => true);
      let ended = false;
      void exited.then(() => (ended = true));
      const before = new Set(temps(ckDir));
      if (round % 2 === 0) {
        // the instant a new checkpoint temp file shows up (after at least one more step than last time)
        for (;;) {
          if (ended) break;
          const fresh = temps(ckDir).filter((f) => !before.has(f));
          if (fresh.length > 0 && (checkEveryCheckpointSteps(ckDir).at(-1) ?? 0) > lastStep) break;
          await new Promise((r) => setImmediate(r));
        }
      } else {
        // at a random moment once training has started
        while (!ended && !t.stderr().includes('resumed checkpoint-')) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, Math.random() * 1500));
      }
      t.child.kill('SIGKILL');
      const r = await t.done;
      expect(r.signal, r.stderr).toBe('SIGKILL'); // killed, not finished
      if (round > 0) {
        expect(r.stderr).toContain('took over a stale lock');
        for (const f of before) expect(r.stderr).toContain(f); // the previous round's temp file, named and removed
      }
      if (temps(ckDir).length > 0) midWrite++;
      const steps = checkEveryCheckpoint(ckDir);
      expect(steps.length).toBeGreaterThan(0);
      lastStep = steps.at(-1)!;
      expect(lastStep).toBeLessThan(STEPS);
      loggedSteps(run, true); // every complete line parses
    }
    console.info(`kill-loop: ${midWrite} of ${rounds} SIGKILLs cut a checkpoint write (a temp file left)`);
    expect(midWrite).toBeGreaterThan(0); // at least one kill did land in the middle of a write

    const left = temps(ckDir);
    const res = vmoe(...args(run, '--resume'));
    expect(res.status, res.stderr).toBe(0);
    expect(res.stderr).toContain(`resumed checkpoint-${lastStep}.vmoe at step ${lastStep}`);
    for (const f of left) expect(res.stderr).toContain(f);
    expect(temps(ckDir)).toEqual([]);
    expect(checkEveryCheckpoint(ckDir)).toEqual([STEPS - 2, STEPS - 1, STEPS]);
    expect(loggedSteps(run)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1)); // every step once
    expect(fs.existsSync(path.join(run, '.vmoe.lock'))).toBe(false);
  }, 600_000);
});

/** Steps of the checkpoints present, without loading them (the writer may be replacing one right now). */
function checkEveryCheckpointSteps(dir: string): number[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((f) => /^checkpoint-(\d+)\.vmoe$/.exec(f))
    .filter((m) => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}
