/**
 * Reaching the queue: the Redis URL parsed and checked with a PING that must answer within seconds (a
 * clear one-line error naming the URL otherwise), the connection options BullMQ opens its ioredis
 * clients with, and the run-root marker that tells a worker it sees the same shared folder as the
 * submitter.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { UsageError, VmoeError, describeWriteError } from '../util/errors.js';
import { writeFileWhole } from '../util/output-dir.js';

/** The BullMQ queue every submitter and worker of a Redis database shares. */
export const QUEUE_NAME = 'vmoe-jobs';

/** The queue cannot be used: Redis unreachable, or a run root a worker cannot see (exit 2, one line). */
export class QueueError extends VmoeError {}

/** Where a Redis server is: parsed from `redis://[user:password@]HOST[:PORT][/DB]`. */
export interface RedisAddress {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
}

/** Parses a `redis://HOST:PORT[/DB]` URL; anything else is a UsageError naming `flag`. */
export function parseRedisUrl(url: string, flag = '--queue'): RedisAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`${flag}: "${url}" is not a URL; expected redis://HOST:PORT[/DB]`);
  }
  if (u.protocol !== 'redis:') throw new UsageError(`${flag}: "${url}" is not a redis:// URL`);
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0)
    throw new UsageError(`${flag}: "${url}": database "${u.pathname}" is not a number`);
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
  };
}

/** The queue's Redis: its URL, and the options each BullMQ Queue / Worker opens its own connections with. */
export interface QueueConnection {
  url: string;
  address: RedisAddress;
  options: ConnectionOptions;
}

/**
 * Checks that Redis at `url` answers a PING within `timeoutMs` (default 5 s) and returns the connection
 * options; throws a QueueError naming the URL when it does not.
 */
export async function connectQueue(url: string, opts: { timeoutMs?: number } = {}): Promise<QueueConnection> {
  const address = parseRedisUrl(url);
  const probe = new Redis({
    ...address,
    lazyConnect: true,
    connectTimeout: opts.timeoutMs ?? 5000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null, // one try: the answer is wanted now
  });
  let socketError: NodeJS.ErrnoException | null = null;
  probe.on('error', (err: NodeJS.ErrnoException) => {
    socketError ??= err; // the cause; connect() itself rejects with "Connection is closed."
  });
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    const e = (socketError ?? err) as NodeJS.ErrnoException;
    throw new QueueError(`cannot reach Redis at ${url}: ${e.code ?? e.message}`, {
      hint: 'start redis-server there (see docs/queue.md), or check the host and port given to --queue',
    });
  } finally {
    probe.disconnect();
  }
  // BullMQ's blocking commands need maxRetriesPerRequest null (ioredis then waits out a reconnect).
  return { url, address, options: { ...address, maxRetriesPerRequest: null } };
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
