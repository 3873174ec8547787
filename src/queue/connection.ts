/**
 * Reaching the queue: the Redis URL checked with a PING that must answer within seconds (a clear
 * one-line error naming the URL otherwise), BullMQ clients over resp.ts, and the run-root marker that
 * tells a worker it sees the same shared folder as the submitter.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createBunRedisClient } from 'bullmq';
import { VmoeError, describeWriteError } from '../util/errors.js';
import { writeFileWhole } from '../util/output-dir.js';
import { RespClient, parseRedisUrl, pingRedis, type RedisAddress } from './resp.js';

/** The BullMQ queue every submitter and worker of a Redis database shares. */
export const QUEUE_NAME = 'vmoe-jobs';

/** The queue cannot be used: Redis unreachable, or a run root a worker cannot see (exit 2, one line). */
export class QueueError extends VmoeError {}

/** An open link to the queue's Redis: BullMQ clients made on demand, all closed by `close`. */
export interface QueueConnection {
  url: string;
  address: RedisAddress;
  /** A new BullMQ client (each Queue / Worker takes its own). */
  client(): ReturnType<typeof createBunRedisClient>;
  close(): void;
}

/**
 * Checks that Redis at `url` answers (within `timeoutMs`, default 5 s) and returns a connection;
 * throws a QueueError naming the URL when it does not.
 */
export async function connectQueue(url: string, opts: { timeoutMs?: number } = {}): Promise<QueueConnection> {
  const address = parseRedisUrl(url);
  try {
    await pingRedis(address, opts.timeoutMs ?? 5000);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new QueueError(`cannot reach Redis at ${url}: ${e.code ?? e.message}`, {
      hint: 'start redis-server there (see docs/queue.md), or check the host and port given to --queue',
    });
  }
  const clients: ReturnType<typeof createBunRedisClient>[] = [];
  return {
    url,
    address,
    client() {
      const c = createBunRedisClient(new RespClient(address));
      // Connection errors surface through the commands that fail; an 'error' event without a listener would throw.
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    close() {
      for (const c of clients) c.disconnect();
    },
  };
}

/** The marker file at the top of a run root (see RunRootMarker). */
export const RUN_ROOT_MARKER = '.vmoe-run-root';

/** Who made a run root's marker, and its random id, which the submitter sends with every job. */
export interface RunRootMarker {
  id: string;
  host: string;
  path: string;
  created: string;
}

/**
 * The run root's marker, written once (random id) when missing: a worker finds the same id in its own
 * run root only when it sees the same folder as the submitter.
 */
export function ensureRunRootMarker(runRoot: string): RunRootMarker {
  const file = path.join(runRoot, RUN_ROOT_MARKER);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as RunRootMarker;
  } catch {
    const m: RunRootMarker = {
      id: randomBytes(12).toString('hex'),
      host: os.hostname(),
      path: path.resolve(runRoot),
      created: new Date().toISOString(),
    };
    writeFileWhole(file, JSON.stringify(m) + '\n');
    return m;
  }
}

/** Throws a QueueError when `runRoot` does not hold the marker the submitter wrote (another folder, or not mounted). */
export function checkRunRootMarker(runRoot: string, expected: RunRootMarker): void {
  const file = path.join(runRoot, RUN_ROOT_MARKER);
  let found: RunRootMarker | null = null;
  let why = '';
  try {
    found = JSON.parse(fs.readFileSync(file, 'utf8')) as RunRootMarker;
  } catch (err) {
    why = describeWriteError(err);
  }
  if (found?.id === expected.id) return;
  throw new QueueError(
    `worker on ${os.hostname()} cannot see the run root the submitter named (${expected.path} on ${expected.host}): ` +
      (found ? `${file} belongs to another run root (${found.path} on ${found.host})` : `no ${file} (${why})`),
    { hint: 'mount the shared run root on every worker and pass its local path with --run-root (docs/queue.md)' },
  );
}
