/**
 * Worker thread of CorruptionPrefetcher (prefetch.ts): corrupts the listed batches in order into the shared ring,
 * waiting while the ring is full, and publishes each through the PRODUCED control word. A failure is written to
 * the shared error buffer (the main thread may be blocked in Atomics.wait, so no message could reach it).
 */
import { workerData } from 'node:worker_threads';
import { corruptBatch } from './batch.js';
import { CONSUMED, ERROR_LENGTH, FAILED, PRODUCED, type CorruptionWorkerData } from './prefetch.js';

const d = workerData as CorruptionWorkerData;
const images = new Uint8Array(d.images);
const ring = new Uint8Array(d.ring);
const control = new Int32Array(d.control);
const px = d.shape.h * d.shape.w * d.shape.c;

try {
  for (let k = 0; k < d.jobs.length; k++) {
    // Ring full: wait until the caller has taken batch k − slots.
    for (let consumed = Atomics.load(control, CONSUMED); k - consumed >= d.slots; ) {
      Atomics.wait(control, CONSUMED, consumed);
      consumed = Atomics.load(control, CONSUMED);
    }
    const job = d.jobs[k]!;
    const out = corruptBatch(
      images.subarray(job.start * px, (job.start + job.n) * px),
      { n: job.n, ...d.shape },
      job.name,
      job.severity,
      d.seed,
      { suite: d.suite, startIndex: job.start },
    );
    ring.set(out, (k % d.slots) * d.slotBytes);
    Atomics.store(control, PRODUCED, k + 1);
    Atomics.notify(control, PRODUCED);
  }
} catch (e) {
  const bytes = new TextEncoder().encode(e instanceof Error ? e.message : String(e)).subarray(0, d.error.byteLength);
  new Uint8Array(d.error).set(bytes);
  Atomics.store(control, ERROR_LENGTH, bytes.length);
  Atomics.store(control, FAILED, 1);
  Atomics.notify(control, PRODUCED);
}
