/**
 * Corrupted batches made ahead on a worker thread, so corruption overlaps the model pass (issue #22, item 3).
 *
 * The caller lists every batch it will ask for, in order (`CorruptionJob`: corruption, severity, first image, count);
 * the worker (corrupt-worker.ts) corrupts them in that order into a ring of `slots` shared buffers and the caller
 * takes them one by one with `next()`, which blocks (Atomics.wait) only when the worker has not finished that batch
 * yet. Each batch is `corruptBatch` of the same images with the same startIndex, so the bytes are exactly those a
 * serial run makes: an image's draws depend only on (seed, index).
 *
 * Shared control words (Int32Array): [0] batches produced, [1] batches consumed, [2] error flag (1 = the worker
 * failed; its message is in the error buffer as UTF-8, length in [3]).
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CorruptionError } from '../util/errors.js';
import type { Suite } from './batch.js';

/** One batch to corrupt: images [start, start + n) of the set, with corruption `name` at `severity`. */
export interface CorruptionJob {
  name: string;
  severity: number;
  start: number;
  n: number;
}

/** What the worker receives as workerData. */
export interface CorruptionWorkerData {
  images: SharedArrayBuffer;
  shape: { h: number; w: number; c: number };
  jobs: CorruptionJob[];
  seed: number;
  suite: Suite;
  slots: number;
  slotBytes: number;
  ring: SharedArrayBuffer;
  control: SharedArrayBuffer;
  error: SharedArrayBuffer;
}

export const PRODUCED = 0;
export const CONSUMED = 1;
export const FAILED = 2;
export const ERROR_LENGTH = 3;
const ERROR_BYTES = 4096;

/** The compiled worker next to this module, or null when running from TypeScript sources (tests): then no overlap. */
function workerFile(): string | null {
  const file = fileURLToPath(new URL('./corrupt-worker.js', import.meta.url));
  return fs.existsSync(file) ? file : null;
}

/**
 * Whether corruption can run on a worker here: the compiled worker exists and VMOE_CORRUPTION_WORKER is not 0
 * (set it to 0 to corrupt on the main thread, one batch after another, as before).
 */
export function corruptionWorkerAvailable(): boolean {
  return process.env.VMOE_CORRUPTION_WORKER !== '0' && workerFile() !== null;
}

/** A worker corrupting `jobs` in order, ahead of the caller by up to `slots` batches. */
export class CorruptionPrefetcher {
  private readonly worker: Worker;
  private readonly ring: Uint8Array;
  private readonly control: Int32Array;
  private readonly error: Uint8Array;
  private readonly slotBytes: number;
  private readonly px: number;
  private taken = 0;
  private closed = false;

  /**
   * @param images the clean set, (N, h, w, c) uint8 (copied once into shared memory)
   * @param jobs every batch the caller will ask for, in the order it will ask
   */
  constructor(
    images: Uint8Array,
    shape: { h: number; w: number; c: number },
    private readonly jobs: CorruptionJob[],
    seed: number,
    suite: Suite,
    slots = 2,
  ) {
    const file = workerFile();
    if (!file) throw new Error('CorruptionPrefetcher: the compiled corrupt-worker.js is missing');
    this.px = shape.h * shape.w * shape.c;
    const shared = new SharedArrayBuffer(images.length);
    new Uint8Array(shared).set(images);
    this.slotBytes = Math.max(1, ...jobs.map((j) => j.n)) * this.px;
    const ring = new SharedArrayBuffer(this.slotBytes * slots);
    const control = new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT);
    const error = new SharedArrayBuffer(ERROR_BYTES);
    this.ring = new Uint8Array(ring);
    this.control = new Int32Array(control);
    this.error = new Uint8Array(error);
    const data: CorruptionWorkerData = {
      images: shared,
      shape,
      jobs,
      seed,
      suite,
      slots,
      slotBytes: this.slotBytes,
      ring,
      control,
      error,
    };
    this.worker = new Worker(file, { workerData: data });
    this.worker.unref(); // a worker blocked in Atomics.wait must not keep the process alive after close()
  }

  /** The next batch in job order (a copy the caller owns); checks that it is the one the caller expects. */
  next(expect: CorruptionJob): Uint8Array {
    const k = this.taken;
    const job = this.jobs[k];
    if (
      !job ||
      job.name !== expect.name ||
      job.severity !== expect.severity ||
      job.start !== expect.start ||
      job.n !== expect.n
    ) {
      throw new Error(`CorruptionPrefetcher: batch ${k} asked out of the listed order (${JSON.stringify(expect)})`);
    }
    for (;;) {
      // A batch already published is delivered even when the worker has since failed on a later one: the
      // failure belongs to the job it failed on (the worker runs ahead of the caller by up to the ring's size).
      const produced = Atomics.load(this.control, PRODUCED);
      if (produced > k) break;
      if (Atomics.load(this.control, FAILED) === 1) {
        const len = Atomics.load(this.control, ERROR_LENGTH);
        const msg = new TextDecoder().decode(this.error.slice(0, len));
        this.close();
        throw new CorruptionError(msg);
      }
      // Wakes when the worker publishes a batch or fails (it notifies PRODUCED either way).
      Atomics.wait(this.control, PRODUCED, produced, 1000);
    }
    const off = (k % (this.ring.length / this.slotBytes)) * this.slotBytes;
    const out = this.ring.slice(off, off + job.n * this.px);
    this.taken = k + 1;
    Atomics.store(this.control, CONSUMED, this.taken);
    Atomics.notify(this.control, CONSUMED);
    return out;
  }

  /** Stops the worker (also when the caller stops early). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.worker.terminate();
  }
}
