/**
 * Jobs of a grid without Redis: the id is a hash of exactly the inputs that decide a result (config,
 * checkpoint bytes, setting, output folder), results are committed whole by one rename, the run-root
 * marker tells a worker whether it sees the submitter's folder, and Redis URLs parse.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseExperiment } from '../../src/config/experiment.js';
import { checkRunRootMarker, ensureRunRootMarker, parseRedisUrl } from '../../src/queue/connection.js';
import {
  canonicalJson,
  checkJobPaths,
  commitResultDir,
  jobId,
  type JobSpec,
  type TrainJob,
} from '../../src/queue/jobs.js';
import { JOB_ID_FILE, runJob } from '../../src/queue/run-job.js';
import { VmoeError } from '../../src/util/errors.js';

const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `vmoe-queue-${tag}-`));
const trainJob = (seed: number, out = 'runs/a'): TrainJob => ({
  kind: 'train',
  config: parseExperiment({ seed, train: { steps: 10 } }),
  out,
});
const evalJob = (sha: string, p = 'runs/a/checkpoints/ckpt-000010.vmoe'): JobSpec => ({
  kind: 'eval',
  checkpoints: [{ path: p, sha256: sha }],
  ood: [],
  split: 'test',
  limit: null,
  batchSize: 256,
  bins: 15,
  out: 'runs/a/eval_test',
});

describe('job ids', () => {
  it('are the SHA-256 of the canonical JSON of the job, with checkpoints by their bytes', () => {
    const job = evalJob('ab'.repeat(32));
    // By hand: the job with the checkpoint's path left out, keys sorted at every level.
    const text =
      '{"batchSize":256,"bins":15,"checkpoints":[{"sha256":"' +
      'ab'.repeat(32) +
      '"}],"kind":"eval","limit":null,"ood":[],"out":"runs/a/eval_test","split":"test"}';
    expect(canonicalJson({ ...job, checkpoints: [{ sha256: 'ab'.repeat(32) }] })).toBe(text);
    expect(jobId(job)).toBe(`eval-${createHash('sha256').update(text).digest('hex').slice(0, 32)}`);
  });

  it('are equal for equal inputs whatever the key order, and differ when any input differs', () => {
    const a = trainJob(0);
    const reordered = JSON.parse(JSON.stringify({ out: a.out, config: a.config, kind: a.kind })) as JobSpec;
    expect(jobId(reordered)).toBe(jobId(a));
    expect(jobId(trainJob(1))).not.toBe(jobId(a)); // seed
    expect(jobId(trainJob(0, 'runs/b'))).not.toBe(jobId(a)); // output folder
    const lr = { ...a, config: { ...a.config, optim: { ...a.config.optim, lr: a.config.optim.lr * 2 } } } as JobSpec;
    expect(jobId(lr)).not.toBe(jobId(a)); // any config field
    expect(jobId(evalJob('cd'.repeat(32)))).not.toBe(jobId(evalJob('ab'.repeat(32)))); // checkpoint bytes
    // the same bytes under another path are the same evaluation
    expect(jobId(evalJob('ab'.repeat(32), 'elsewhere/x.vmoe'))).toBe(jobId(evalJob('ab'.repeat(32))));
  });

  it('refuse paths outside the run root', () => {
    expect(() => checkJobPaths(trainJob(0, '../escape'), 'grid')).toThrow(/relative to the run root/);
    expect(() => checkJobPaths(trainJob(0, '/abs/run'), 'grid')).toThrow(VmoeError);
    expect(() => checkJobPaths(trainJob(0, 'runs/ok'), 'grid')).not.toThrow();
  });
});

describe('result commit', () => {
  it('renames a whole staging folder into place; a second commit of the same job keeps the first result', () => {
    const root = tmp('commit');
    const final = path.join(root, 'out', 'eval_test');
    const s1 = path.join(root, 's1');
    fs.mkdirSync(s1);
    fs.writeFileSync(path.join(s1, 'results.json'), '{"first":true}');
    expect(commitResultDir(s1, final)).toBe(true);
    expect(fs.existsSync(s1)).toBe(false);
    const s2 = path.join(root, 's2');
    fs.mkdirSync(s2);
    fs.writeFileSync(path.join(s2, 'results.json'), '{"first":false}');
    expect(commitResultDir(s2, final)).toBe(false);
    expect(fs.readFileSync(path.join(final, 'results.json'), 'utf8')).toBe('{"first":true}');
    expect(fs.existsSync(s2)).toBe(false);
  });
});

describe('a result already there', () => {
  it("completes its own job at once and refuses another job's (same out, other inputs)", async () => {
    const root = tmp('owner');
    const mine = evalJob('ab'.repeat(32));
    const out = path.join(root, mine.out);
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'results.json'), '{}');
    fs.writeFileSync(path.join(out, JOB_ID_FILE), `${jobId(mine)}\n`);
    // No checkpoint exists under root: returning at once proves nothing was evaluated.
    expect(await runJob(mine, { runRoot: root })).toMatchObject({ ran: false });
    const other = evalJob('cd'.repeat(32)); // same out, retrained checkpoint
    await expect(runJob(other, { runRoot: root })).rejects.toThrow(
      `runs/a/eval_test holds the result of another job (${jobId(mine)}), not of ${jobId(other)}`,
    );
  });
});

describe('run-root marker', () => {
  it('is written once and found by a worker that sees the same folder, refused in another', () => {
    const a = tmp('root-a');
    const b = tmp('root-b');
    const m = ensureRunRootMarker(a);
    expect(ensureRunRootMarker(a).id).toBe(m.id); // stable across submissions
    expect(() => checkRunRootMarker(a, m)).not.toThrow();
    expect(() => checkRunRootMarker(b, m)).toThrow(/cannot see the run root the submitter named/);
    ensureRunRootMarker(b);
    expect(() => checkRunRootMarker(b, m)).toThrow(/belongs to another run root/);
  });
});

describe('Redis URLs', () => {
  it('parse host, port and database; anything else is a usage error naming the flag', () => {
    expect(parseRedisUrl('redis://10.0.0.5:6380/3')).toEqual({ host: '10.0.0.5', port: 6380, db: 3 });
    expect(parseRedisUrl('redis://localhost')).toEqual({ host: 'localhost', port: 6379, db: 0 });
    expect(parseRedisUrl('redis://u:p%40ss@h:1/0')).toMatchObject({ username: 'u', password: 'p@ss' });
    expect(() => parseRedisUrl('http://h:1')).toThrow(/--queue: "http:\/\/h:1" is not a redis:\/\/ URL/);
    expect(() => parseRedisUrl('h:1:2')).toThrow(VmoeError);
  });
});
