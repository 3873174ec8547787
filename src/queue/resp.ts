/**
 * A minimal Redis connection (RESP2 over TCP) that BullMQ drives through its own client adapter.
 *
 * BullMQ talks to Redis through an `IRedisClient` adapter; it ships adapters for ioredis, node-redis and
 * Bun's built-in client. The ioredis driver is not among this project's dependencies, so this file
 * provides the small raw surface that BullMQ's Bun adapter (`createBunRedisClient`) needs — `connect`,
 * `send(command, args)`, `close`, `duplicate`, `connected` and the `onconnect` / `onclose` callbacks —
 * and BullMQ's adapter does the rest (Lua scripts via EVALSHA, MULTI/EXEC, reconnecting with backoff,
 * reply shapes). Replies: simple strings and bulk strings as UTF-8 strings (as ioredis returns them),
 * integers as numbers, arrays as arrays, nil as null; an error reply rejects `send`, and inside an
 * array (EXEC's results) it is an Error element.
 */
import net from 'node:net';
import { UsageError } from '../util/errors.js';

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

type Reply = string | number | null | Error | Reply[];

/** Incremental RESP2 parser: feed bytes, take whole replies. */
class RespParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;

  feed(chunk: Buffer): void {
    this.buf = this.pos < this.buf.length ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
    this.pos = 0;
  }

  /** The next whole reply, or undefined when more bytes are needed. */
  next(): Reply | undefined {
    const start = this.pos;
    const r = this.parse();
    if (r === undefined) this.pos = start;
    return r;
  }

  private line(): string | undefined {
    const end = this.buf.indexOf('\r\n', this.pos);
    if (end < 0) return undefined;
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 2;
    return s;
  }

  private parse(): Reply | undefined {
    if (this.pos >= this.buf.length) return undefined;
    const type = String.fromCharCode(this.buf[this.pos]!);
    this.pos += 1;
    const l = this.line();
    if (l === undefined) return undefined;
    switch (type) {
      case '+':
        return l;
      case '-':
        return new Error(l);
      case ':':
        return Number(l);
      case '$': {
        const n = Number(l);
        if (n < 0) return null;
        if (this.pos + n + 2 > this.buf.length) return undefined;
        const s = this.buf.toString('utf8', this.pos, this.pos + n);
        this.pos += n + 2;
        return s;
      }
      case '*': {
        const n = Number(l);
        if (n < 0) return null;
        const out: Reply[] = [];
        for (let i = 0; i < n; i++) {
          const r = this.parse();
          if (r === undefined) return undefined;
          out.push(r);
        }
        return out;
      }
      default:
        throw new Error(`Redis protocol error: unexpected reply type "${type}"`);
    }
  }
}

/** One command as RESP2 bytes: an array of bulk strings. */
function encode(command: string, args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length + 1}\r\n$${Buffer.byteLength(command)}\r\n${command}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Options of a connection: the address and how long connecting may take. */
export interface RespClientOptions extends RedisAddress {
  /** Give up connecting after this many ms (default 5000). */
  connectTimeoutMs?: number;
}

/**
 * One TCP connection to Redis in the raw shape BullMQ's Bun adapter expects (see the file header).
 * Commands are pipelined: replies come back in order, each settling the oldest pending command.
 */
export class RespClient {
  connected = false;
  onconnect: () => void = () => {};
  onclose: (err?: Error) => void = () => {};
  onerror: (err: Error) => void = () => {};
  private socket: net.Socket | null = null;
  private pending: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private parser = new RespParser();
  private closedByUs = false;

  constructor(readonly opts: RespClientOptions) {}

  /** Opens the connection (AUTH and SELECT included); rejects with the socket's error or a timeout. */
  connect(): Promise<void> {
    const { host, port } = this.opts;
    return new Promise<void>((resolve, reject) => {
      const socket = net.createConnection({ host, port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy(new Error(`connecting to ${host}:${port} timed out`));
      }, this.opts.connectTimeoutMs ?? 5000);
      let opened = false;
      socket.once('connect', () => {
        clearTimeout(timer);
        opened = true;
        this.socket = socket;
        this.connected = true;
        const setup: Promise<unknown>[] = [];
        if (this.opts.password !== undefined)
          setup.push(
            this.send('AUTH', this.opts.username ? [this.opts.username, this.opts.password] : [this.opts.password]),
          );
        if (this.opts.db) setup.push(this.send('SELECT', [String(this.opts.db)]));
        Promise.all(setup).then(
          () => {
            resolve();
            this.onconnect();
          },
          (err: Error) => {
            this.close();
            reject(err);
          },
        );
      });
      socket.on('data', (chunk) => this.onData(chunk));
      socket.on('error', (err) => {
        clearTimeout(timer);
        if (!opened) reject(err);
        else this.onerror(err);
      });
      socket.on('close', () => {
        clearTimeout(timer);
        const wasConnected = this.connected;
        this.connected = false;
        this.socket = null;
        this.failPending(new Error('Connection closed'));
        if (wasConnected) this.onclose(this.closedByUs ? undefined : new Error('Connection closed by the server'));
      });
    });
  }

  private onData(chunk: Buffer): void {
    this.parser.feed(chunk);
    for (;;) {
      let r: Reply | undefined;
      try {
        r = this.parser.next();
      } catch (err) {
        this.socket?.destroy(err as Error);
        return;
      }
      if (r === undefined) return;
      const p = this.pending.shift();
      if (!p) continue;
      if (r instanceof Error) p.reject(r);
      else p.resolve(r);
    }
  }

  private failPending(err: Error): void {
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) p.reject(err);
  }

  /** Sends one command; resolves with its reply, rejects on an error reply or a closed connection. */
  send<T = Reply>(command: string, args: (string | Buffer)[]): Promise<T> {
    const socket = this.socket;
    if (!socket || !this.connected) return Promise.reject(new Error('Connection closed'));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ resolve: resolve as (r: Reply) => void, reject });
      socket.write(encode(command, args));
    });
  }

  /** Closes the connection; pending commands reject with "Connection closed". */
  close(): void {
    this.closedByUs = true;
    this.socket?.destroy();
  }

  /** Same as close (BullMQ tells a raw client from options by connect / disconnect / duplicate). */
  disconnect(): void {
    this.close();
  }

  /** GET, SMEMBERS, INCR: the typed commands of the raw-client shape (the adapter sends the rest with `send`). */
  get(key: string): Promise<string | null> {
    return this.send('GET', [key]);
  }

  smembers(key: string): Promise<string[] | null> {
    return this.send('SMEMBERS', [key]);
  }

  incr(key: string): Promise<number> {
    return this.send('INCR', [key]);
  }

  /** A new, unconnected client for the same server. */
  async duplicate(): Promise<RespClient> {
    return new RespClient(this.opts);
  }
}

/** Sends PING on a fresh connection and closes it: throws the socket's error when Redis is not reachable. */
export async function pingRedis(address: RedisAddress, timeoutMs: number): Promise<void> {
  const c = new RespClient({ ...address, connectTimeoutMs: timeoutMs });
  try {
    await c.connect();
    await c.send('PING', []);
  } finally {
    c.close();
  }
}
