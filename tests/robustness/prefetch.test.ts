/**
 * Corruption on a worker thread (src/robustness/prefetch.ts): the batches it hands out are byte for byte what
 * corruptBatch makes on the main thread, in the listed order, over more batches than its ring holds; a failing
 * corruption reaches the caller as one error; asking out of order is refused. The worker is the compiled one, so
 * the module is loaded from dist/ (built before the tests, as the CLI tests need).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { corruptBatch } from '../../src/robustness/batch.js';
import type * as Prefetch from '../../src/robustness/prefetch.js';

const dist = (await import(
  pathToFileURL(path.resolve(__dirname, '../../dist/robustness/prefetch.js')).href
)) as typeof Prefetch;

const shape = { h: 8, w: 8, c: 3 };
const N = 12;
const images = Uint8Array.from({ length: N * 8 * 8 * 3 }, (_, i) => (i * 37 + (i >> 5) * 11) & 255);

function jobsFor(sets: [string, number][], batch: number): Prefetch.CorruptionJob[] {
  const jobs: Prefetch.CorruptionJob[] = [];
  for (const [name, severity] of sets)
    for (let start = 0; start < N; start += batch) jobs.push({ name, severity, start, n: Math.min(batch, N - start) });
  return jobs;
}

let open: Prefetch.CorruptionPrefetcher | null = null;
afterEach(() => open?.close());

describe('CorruptionPrefetcher', () => {
  it('hands out exactly the serial corruptBatch bytes, in order, through a ring of 2 slots', () => {
    const sets: [string, number][] = [
      ['gaussian_noise', 1],
      ['gaussian_noise', 5],
      ['glass_blur', 3],
      ['jpeg_compression', 2],
      ['fog', 4],
    ];
    const jobs = jobsFor(sets, 5); // batches of 5, 5, 2: 15 batches through 2 slots
    open = new dist.CorruptionPrefetcher(images, shape, jobs, 7, 'c', 2);
    for (const job of jobs) {
      const got = open.next(job);
      const px = 8 * 8 * 3;
      const want = corruptBatch(
        images.subarray(job.start * px, (job.start + job.n) * px),
        { n: job.n, ...shape },
        job.name,
        job.severity,
        7,
        { suite: 'c', startIndex: job.start },
      );
      expect(got.length, `${job.name} ${job.severity} @${job.start}`).toBe(want.length);
      expect(Buffer.from(got).equals(Buffer.from(want)), `${job.name} ${job.severity} @${job.start}`).toBe(true);
    }
  });

  it("a corruption that fails in the worker is one error at the caller, with the worker's message", () => {
    const jobs = jobsFor(
      [
        ['gaussian_noise', 1],
        ['no_such_corruption', 1],
      ],
      6,
    );
    open = new dist.CorruptionPrefetcher(images, shape, jobs, 0, 'c');
    expect(open.next(jobs[0]!).length).toBe(6 * 8 * 8 * 3);
    expect(open.next(jobs[1]!).length).toBe(6 * 8 * 8 * 3);
    expect(() => open!.next(jobs[2]!)).toThrow(/no_such_corruption/);
  });

  it('refuses a batch asked out of the listed order', () => {
    const jobs = jobsFor([['gaussian_noise', 2]], 4);
    open = new dist.CorruptionPrefetcher(images, shape, jobs, 0, 'c');
    expect(() => open!.next(jobs[1]!)).toThrow(/out of the listed order/);
  });

  it('VMOE_CORRUPTION_WORKER=0 turns the worker off; the compiled module finds its worker otherwise', () => {
    const before = process.env.VMOE_CORRUPTION_WORKER;
    try {
      process.env.VMOE_CORRUPTION_WORKER = '0';
      expect(dist.corruptionWorkerAvailable()).toBe(false);
      delete process.env.VMOE_CORRUPTION_WORKER;
      expect(dist.corruptionWorkerAvailable()).toBe(true);
    } finally {
      if (before === undefined) delete process.env.VMOE_CORRUPTION_WORKER;
      else process.env.VMOE_CORRUPTION_WORKER = before;
    }
  });
});
