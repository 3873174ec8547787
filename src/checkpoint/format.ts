/**
 * Checkpoint files: parameters, optimizer slots and JSON metadata in one checksummed binary file.
 *
 * Directory layout: one file per save, `<dir>/checkpoint-<step>.vmoe`, where step is `meta.step`
 * (a non-negative integer; 0 when absent). There is no pointer file: the latest checkpoint is the
 * one with the highest step. Temp files are named `.checkpoint-<step>.vmoe.<pid>.<rand>.tmp`, so a
 * crash mid-write can leave one behind, but never under a name that `latestCheckpoint` picks up.
 *
 * File layout (format version 1, all integers little-endian):
 *
 *   offset 0   8 bytes   magic, ASCII "VMOECKPT"
 *   offset 8   uint32    format version
 *   offset 12  uint32    header length H in bytes
 *   offset 16  H bytes   UTF-8 JSON header:
 *                          { meta, payloadByteLength,
 *                            tensors: [{ name, dtype, shape, offset, byteLength }] }
 *                        offsets are relative to the payload start
 *              0–3 zero bytes so the payload starts 4-byte aligned
 *              payload   tensors concatenated in name order, little-endian float32 / int32
 *   last 32 bytes        SHA-256 of every byte before it
 *
 * The trailing SHA-256 over the whole rest of the file is part of every format version, so a file
 * is checksum-verified before its version is interpreted: any flipped byte (header, payload,
 * version field) or truncation is reported as corruption, and a "too new" version error is only
 * raised for files that are intact.
 *
 * Writes are atomic: temp file in the same directory, fsync, rename over the final name, fsync the
 * directory where the platform allows it. Loads validate everything before returning anything.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { endianness } from 'node:os';
import * as path from 'node:path';
import { CheckpointError } from '../util/errors.js';
import { pidAlive } from '../util/run-lock.js';

/** Element type of a checkpoint array. */
export type CheckpointDtype = 'float32' | 'int32';

/** One array in a checkpoint: dtype, shape and the flat row-major data. */
export interface NamedArray {
  dtype: CheckpointDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}

/** What a checkpoint holds: caller-owned JSON metadata and named arrays (parameters, optimizer slots). */
export interface CheckpointContent {
  /** JSON metadata owned by the caller: config, step, RNG state, engine, … */
  meta: Record<string, unknown>;
  /** Parameters and optimizer slots by name, e.g. "params/block0/attn/q/kernel", "opt/m/…". */
  tensors: Record<string, NamedArray>;
}

/** A checkpoint read by `loadCheckpoint`: its content, file path, SHA-256 and format version. */
export interface LoadedCheckpoint extends CheckpointContent {
  path: string;
  /** Hex SHA-256 of the whole file (same as `checkpointHash`). */
  sha256: string;
  formatVersion: number;
}

/** The file-system calls a save uses; replaceable so tests can simulate a crash mid-write. */
export interface CheckpointFs {
  openSync(file: string, flags: string): number;
  writeSync(fd: number, data: Uint8Array): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  unlinkSync(file: string): void;
}

/** Options of `saveCheckpoint`: how many checkpoint files to keep. */
export interface SaveCheckpointOptions {
  /** How many checkpoint files to keep in `dir` after a successful save (default 3; Infinity keeps all). */
  keep?: number;
  /** @internal Overrides for the file-system calls (testing). */
  fs?: Partial<CheckpointFs>;
}

/** The checkpoint format version this build writes (and the newest it reads). */
export const CHECKPOINT_FORMAT_VERSION = 1;
/** File extension of checkpoint files (`checkpoint-<step>.vmoe`). */
export const CHECKPOINT_EXTENSION = '.vmoe';
const MAGIC = Buffer.from('VMOECKPT', 'ascii');
const PREFIX_BYTES = 16; // magic (8) + version (4) + header length (4)
const TRAILER_BYTES = 32; // SHA-256
const BYTES_PER_ELEMENT = 4; // both dtypes
const DEFAULT_KEEP = 3;
const CHECKPOINT_NAME = /^checkpoint-(\d+)\.vmoe$/;
const HOST_IS_LE = endianness() === 'LE';

interface TensorEntry {
  name: string;
  dtype: CheckpointDtype;
  shape: number[];
  offset: number;
  byteLength: number;
}

interface Header {
  meta: Record<string, unknown>;
  payloadByteLength: number;
  tensors: TensorEntry[];
}

export function checkpointFileName(step: number): string {
  return `checkpoint-${step}${CHECKPOINT_EXTENSION}`;
}

// ---------------------------------------------------------------- save

/**
 * Write `content` atomically to `<dir>/checkpoint-<step>.vmoe` (step from `content.meta.step`), then delete all
 * but the newest `opts.keep` checkpoints; returns the file written.
 */
export function saveCheckpoint(dir: string, content: CheckpointContent, opts: SaveCheckpointOptions = {}): string {
  const keep = opts.keep ?? DEFAULT_KEEP;
  if (!(keep === Infinity || (Number.isInteger(keep) && keep >= 1))) {
    throw new CheckpointError(`saveCheckpoint: keep must be an integer >= 1 or Infinity, got ${keep}`);
  }
  const step = stepOf(content.meta);
  const { header, arrays } = buildHeader(content);
  const headerBytes = Buffer.from(jsonOrThrow(header), 'utf8');

  nodeFs.mkdirSync(dir, { recursive: true });
  const finalPath = path.join(dir, checkpointFileName(step));
  const tempPath = path.join(dir, `.${checkpointFileName(step)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const io: CheckpointFs = { ...defaultFs(), ...opts.fs };

  let fd: number | undefined;
  try {
    fd = io.openSync(tempPath, 'wx');
    const hash = createHash('sha256');
    const emit = (bytes: Uint8Array): void => {
      hash.update(bytes);
      writeAll(io, fd as number, bytes);
    };
    const prefix = Buffer.alloc(PREFIX_BYTES);
    MAGIC.copy(prefix, 0);
    prefix.writeUInt32LE(CHECKPOINT_FORMAT_VERSION, 8);
    prefix.writeUInt32LE(headerBytes.length, 12);
    emit(prefix);
    emit(headerBytes);
    emit(Buffer.alloc(alignmentPadding(PREFIX_BYTES + headerBytes.length)));
    for (const array of arrays) emit(littleEndianBytes(array));
    writeAll(io, fd, hash.digest());
    io.fsyncSync(fd);
    io.closeSync(fd);
    fd = undefined;
    io.renameSync(tempPath, finalPath);
  } catch (err) {
    if (fd !== undefined) {
      try {
        io.closeSync(fd);
      } catch {
        // already failing; the original error is the one worth reporting
      }
    }
    try {
      io.unlinkSync(tempPath);
    } catch {
      // the temp file may not exist; it is never picked up as a checkpoint either way
    }
    throw new CheckpointError(
      `could not write checkpoint ${finalPath}: ${(err as Error).message}. ` +
        `Any previous checkpoint in ${dir} is unchanged; check disk space and permissions.`,
      { file: finalPath, cause: err },
    );
  }
  fsyncDirectory(dir);
  pruneCheckpoints(dir, keep, finalPath);
  return finalPath;
}

function defaultFs(): CheckpointFs {
  return {
    openSync: (f, flags) => nodeFs.openSync(f, flags),
    writeSync: (fd, data) => nodeFs.writeSync(fd, data),
    fsyncSync: (fd) => nodeFs.fsyncSync(fd),
    closeSync: (fd) => nodeFs.closeSync(fd),
    renameSync: (a, b) => nodeFs.renameSync(a, b),
    unlinkSync: (f) => nodeFs.unlinkSync(f),
  };
}

function writeAll(io: CheckpointFs, fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    const n = io.writeSync(fd, bytes.subarray(done));
    if (n <= 0) throw new Error(`writeAll: write returned ${n}`);
    done += n;
  }
}

function fsyncDirectory(dir: string): void {
  // Makes the rename durable on POSIX; opening a directory fails on Windows, where it is not needed.
  let fd: number | undefined;
  try {
    fd = nodeFs.openSync(dir, 'r');
    nodeFs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) nodeFs.closeSync(fd);
  }
}

function pruneCheckpoints(dir: string, keep: number, justWritten: string): void {
  if (keep === Infinity) return;
  const others = listCheckpoints(dir).filter((c) => c.path !== justWritten);
  // newest first; the file just written always survives and counts towards `keep`
  for (const stale of others.slice(keep - 1)) {
    try {
      nodeFs.unlinkSync(stale.path);
    } catch {
      // retention is housekeeping; a file we cannot delete must not fail a good save
    }
  }
}

function stepOf(meta: Record<string, unknown>): number {
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) {
    throw new CheckpointError('saveCheckpoint: meta must be a plain JSON object');
  }
  const step = meta.step;
  if (step === undefined) return 0;
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) {
    throw new CheckpointError(`saveCheckpoint: meta.step must be a non-negative integer, got ${JSON.stringify(step)}`);
  }
  return step;
}

function jsonOrThrow(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw new CheckpointError(`saveCheckpoint: meta is not JSON-serialisable: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function buildHeader(content: CheckpointContent): { header: Header; arrays: (Float32Array | Int32Array)[] } {
  if (content.tensors === null || typeof content.tensors !== 'object') {
    throw new CheckpointError('saveCheckpoint: tensors must be an object of named arrays');
  }
  // Name order makes the bytes (and hash) independent of the caller's insertion order.
  const names = Object.keys(content.tensors).sort();
  const entries: TensorEntry[] = [];
  const arrays: (Float32Array | Int32Array)[] = [];
  let offset = 0;
  for (const name of names) {
    const t = content.tensors[name]!; // names are content.tensors' own keys
    const where = `saveCheckpoint: tensor "${name}"`;
    if (name.length === 0) throw new CheckpointError('saveCheckpoint: tensor names must be non-empty');
    if (t.dtype !== 'float32' && t.dtype !== 'int32') {
      throw new CheckpointError(`${where}: dtype must be 'float32' or 'int32', got ${JSON.stringify(t.dtype)}`);
    }
    const expectedType = t.dtype === 'float32' ? Float32Array : Int32Array;
    if (!(t.data instanceof expectedType)) {
      throw new CheckpointError(
        `${where}: dtype is ${t.dtype} but data is a ${t.data?.constructor?.name ?? typeof t.data}`,
      );
    }
    const size = elementCount(t.shape);
    if (size === null) {
      throw new CheckpointError(
        `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(t.shape)}`,
      );
    }
    if (t.data.length !== size) {
      throw new CheckpointError(
        `${where}: shape [${t.shape.join(', ')}] has ${size} elements but data has ${t.data.length}`,
      );
    }
    const byteLength = size * BYTES_PER_ELEMENT;
    entries.push({ name, dtype: t.dtype, shape: [...t.shape], offset, byteLength });
    arrays.push(t.data);
    offset += byteLength;
  }
  return { header: { meta: content.meta, payloadByteLength: offset, tensors: entries }, arrays };
}

function littleEndianBytes(array: Float32Array | Int32Array): Uint8Array {
  if (HOST_IS_LE) return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  const out = new Uint8Array(array.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < array.length; i++) {
    if (array instanceof Float32Array) view.setFloat32(i * 4, array[i]!, true);
    else view.setInt32(i * 4, array[i]!, true);
  }
  return out;
}

/** Product of the shape, or null if the shape is not an array of non-negative safe integers. */
function elementCount(shape: unknown): number | null {
  if (!Array.isArray(shape)) return null;
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return null;
    n *= d;
  }
  return Number.isSafeInteger(n) ? n : null;
}

function alignmentPadding(position: number): number {
  return (BYTES_PER_ELEMENT - (position % BYTES_PER_ELEMENT)) % BYTES_PER_ELEMENT;
}

// ---------------------------------------------------------------- find

interface ListedCheckpoint {
  path: string;
  step: number;
}

/** Checkpoint files in `dir`, highest step first. Temp files and other names are ignored. */
function listCheckpoints(dir: string): ListedCheckpoint[] {
  let names: string[];
  try {
    names = nodeFs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const found: ListedCheckpoint[] = [];
  for (const name of names) {
    const m = CHECKPOINT_NAME.exec(name);
    if (m) found.push({ path: path.join(dir, name), step: Number(m[1]) });
  }
  return found.sort((a, b) => b.step - a.step);
}

/** Path of the checkpoint with the highest step in `dir`, or null when there is none. */
export function latestCheckpoint(dir: string): string | null {
  return listCheckpoints(dir)[0]?.path ?? null;
}

function resolveCheckpointPath(pathOrDir: string): string {
  let stat: nodeFs.Stats;
  try {
    stat = nodeFs.statSync(pathOrDir);
  } catch (err) {
    throw new CheckpointError(`checkpoint ${pathOrDir} does not exist; check the path`, {
      file: pathOrDir,
      cause: err,
    });
  }
  if (!stat.isDirectory()) return pathOrDir;
  const latest = latestCheckpoint(pathOrDir);
  if (latest === null) {
    throw new CheckpointError(
      `no checkpoint files (checkpoint-<step>${CHECKPOINT_EXTENSION}) in directory ${pathOrDir}; ` +
        'train a model first or pass the path of a checkpoint file',
      { file: pathOrDir },
    );
  }
  return latest;
}

function readCheckpointFile(file: string): Buffer {
  try {
    return nodeFs.readFileSync(file);
  } catch (err) {
    throw new CheckpointError(`cannot read checkpoint ${file}: ${(err as Error).message}`, { file, cause: err });
  }
}

/** Hex SHA-256 of the checkpoint file (the latest one when given a directory), for result records. */
export function checkpointHash(pathOrDir: string): string {
  const file = resolveCheckpointPath(pathOrDir);
  return createHash('sha256').update(readCheckpointFile(file)).digest('hex');
}

// ---------------------------------------------------------------- load

/** Loads and fully validates a checkpoint file, or the latest checkpoint in a directory. */
export function loadCheckpoint(pathOrDir: string): LoadedCheckpoint {
  const file = resolveCheckpointPath(pathOrDir);
  const bytes = readCheckpointFile(file);
  const { header, payloadStart, version } = parseAndVerify(file, bytes);
  const tensors: Record<string, NamedArray> = {};
  for (const entry of header.tensors) {
    const start = payloadStart + entry.offset;
    // defineProperty: a tensor named "__proto__" must be stored as data, not change the prototype
    Object.defineProperty(tensors, entry.name, {
      value: {
        dtype: entry.dtype,
        shape: [...entry.shape],
        data: decodeArray(entry.dtype, bytes.subarray(start, start + entry.byteLength)),
      },
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return {
    meta: header.meta,
    tensors,
    path: file,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    formatVersion: version,
  };
}

function decodeArray(dtype: CheckpointDtype, bytes: Uint8Array): Float32Array | Int32Array {
  const n = bytes.length / BYTES_PER_ELEMENT;
  const out = dtype === 'float32' ? new Float32Array(n) : new Int32Array(n);
  // copy: the file buffer may be pooled and unaligned, and callers own the arrays they get
  if (HOST_IS_LE) {
    new Uint8Array(out.buffer).set(bytes);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++)
      out[i] = dtype === 'float32' ? view.getFloat32(i * 4, true) : view.getInt32(i * 4, true);
  }
  return out;
}

function parseAndVerify(file: string, bytes: Buffer): { header: Header; payloadStart: number; version: number } {
  const fail = (what: string, todo: string): never => {
    throw new CheckpointError(`checkpoint ${file}: ${what}; ${todo}`, { file });
  };
  const corrupt = 'the file is corrupt or was truncated; delete it to resume from the previous checkpoint';

  const magicLength = Math.min(bytes.length, MAGIC.length);
  if (!bytes.subarray(0, magicLength).equals(MAGIC.subarray(0, magicLength))) {
    fail(
      `not a vmoe checkpoint (expected magic bytes "VMOECKPT" at offset 0)`,
      'check the path, or the file is corrupt',
    );
  }
  const minimum = PREFIX_BYTES + TRAILER_BYTES;
  if (bytes.length < minimum)
    fail(`file has ${bytes.length} bytes, fewer than the ${minimum} of an empty checkpoint`, corrupt);

  const bodyEnd = bytes.length - TRAILER_BYTES;
  const digest = createHash('sha256').update(bytes.subarray(0, bodyEnd)).digest();
  if (!digest.equals(bytes.subarray(bodyEnd))) fail('checksum mismatch', corrupt);

  const version = bytes.readUInt32LE(8);
  if (version > CHECKPOINT_FORMAT_VERSION) {
    fail(
      `format version ${version} is newer than this vmoe-ts supports (${CHECKPOINT_FORMAT_VERSION})`,
      'upgrade vmoe-ts to load it',
    );
  }
  if (version < 1) fail(`unknown format version ${version}`, corrupt);

  const headerLength = bytes.readUInt32LE(12);
  const headerEnd = PREFIX_BYTES + headerLength;
  if (headerEnd > bodyEnd) fail(`header length ${headerLength} runs past the end of the file`, corrupt);
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.subarray(PREFIX_BYTES, headerEnd).toString('utf8'));
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`, corrupt);
  }
  const payloadStart = headerEnd + alignmentPadding(headerEnd);
  const header = validateHeader(raw, bodyEnd - payloadStart, (what) => fail(what, corrupt));
  return { header, payloadStart, version };
}

function validateHeader(raw: unknown, payloadBytesInFile: number, fail: (what: string) => never): Header {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('header is not a JSON object');
  const h = raw as Record<string, unknown>;
  const meta = h.meta;
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) fail('header.meta is not a JSON object');
  if (h.payloadByteLength !== payloadBytesInFile) {
    fail(`header says the payload has ${String(h.payloadByteLength)} bytes but the file holds ${payloadBytesInFile}`);
  }
  if (!Array.isArray(h.tensors)) fail('header.tensors is not an array');
  const seen = new Set<string>();
  const entries: TensorEntry[] = [];
  for (const [i, e] of (h.tensors as unknown[]).entries()) {
    if (e === null || typeof e !== 'object') fail(`header.tensors[${i}] is not an object`);
    const { name, dtype, shape, offset, byteLength } = e as Record<string, unknown>;
    if (typeof name !== 'string' || name.length === 0) fail(`header.tensors[${i}].name is not a non-empty string`);
    const label = `tensor "${name as string}"`;
    if (seen.has(name as string)) fail(`${label} appears twice`);
    seen.add(name as string);
    if (dtype !== 'float32' && dtype !== 'int32') fail(`${label} has unknown dtype ${JSON.stringify(dtype)}`);
    const size = elementCount(shape);
    if (size === null) fail(`${label} has invalid shape ${JSON.stringify(shape)}`);
    if (byteLength !== (size as number) * BYTES_PER_ELEMENT) {
      fail(
        `${label} has byteLength ${String(byteLength)} but shape ${JSON.stringify(shape)} needs ${(size as number) * BYTES_PER_ELEMENT}`,
      );
    }
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0 || offset % BYTES_PER_ELEMENT !== 0) {
      fail(`${label} has invalid offset ${String(offset)}`);
    }
    if ((offset as number) + (byteLength as number) > payloadBytesInFile) {
      fail(
        `${label} (offset ${String(offset)}, ${String(byteLength)} bytes) runs past the ${payloadBytesInFile}-byte payload`,
      );
    }
    entries.push({
      name,
      dtype,
      shape: shape as number[],
      offset: offset as number,
      byteLength: byteLength as number,
    } as TensorEntry);
  }
  const byOffset = [...entries].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!,
      cur = byOffset[i]!;
    if (cur.offset < prev.offset + prev.byteLength) fail(`tensors "${prev.name}" and "${cur.name}" overlap`);
  }
  return { meta: meta as Record<string, unknown>, payloadByteLength: payloadBytesInFile, tensors: entries };
}

// ---------------------------------------------------------------- compare

const MAX_LISTED = 10;

/**
 * Throws a CheckpointError listing missing, unexpected and mis-shaped tensors when the checkpoint's
 * tensors under `prefix` do not match `expected` (names without the prefix → shape).
 */
export function compareShapes(
  expected: Record<string, number[]>,
  ckpt: CheckpointContent & { path?: string },
  prefix = 'params/',
): void {
  const found = new Map<string, number[]>();
  for (const [name, t] of Object.entries(ckpt.tensors)) {
    if (name.startsWith(prefix)) found.set(name.slice(prefix.length), t.shape);
  }
  const missing: string[] = [];
  const misShaped: string[] = [];
  for (const name of Object.keys(expected).sort()) {
    const shape = found.get(name);
    const want = expected[name]!; // name is one of expected's keys
    if (shape === undefined) missing.push(`${prefix}${name} [${want.join(', ')}]`);
    else if (!sameShape(shape, want)) {
      misShaped.push(`${prefix}${name}: expected [${want.join(', ')}], checkpoint has [${shape.join(', ')}]`);
    }
  }
  const unexpected = [...found.keys()]
    .filter((name) => !Object.hasOwn(expected, name))
    .sort()
    .map((name) => `${prefix}${name} [${(found.get(name) as number[]).join(', ')}]`);
  if (missing.length + unexpected.length + misShaped.length === 0) return;

  const source = ckpt.path === undefined ? 'checkpoint' : `checkpoint ${ckpt.path}`;
  const lines = [
    `${source} does not match the model config: ${missing.length} missing, ${unexpected.length} unexpected, ` +
      `${misShaped.length} mis-shaped tensor(s) under "${prefix}"`,
    ...section('missing (in the model, not in the checkpoint)', missing),
    ...section('unexpected (in the checkpoint, not in the model)', unexpected),
    ...section('mis-shaped', misShaped),
    'Use the config the checkpoint was trained with (see its meta.config), or `vmoe finetune` to change the head or image size.',
  ];
  throw new CheckpointError(lines.join('\n'), { file: ckpt.path });
}

function section(title: string, items: string[]): string[] {
  if (items.length === 0) return [];
  const shown = items.slice(0, MAX_LISTED).map((s) => `    ${s}`);
  if (items.length > MAX_LISTED) shown.push(`    … and ${items.length - MAX_LISTED} more`);
  return [`  ${title}:`, ...shown];
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

// ---------------------------------------------------------------- reliability

/** The step in a checkpoint file name (`checkpoint-<step>.vmoe`), or null for another name. */
export function checkpointStepOf(file: string): number | null {
  const m = CHECKPOINT_NAME.exec(path.basename(file));
  return m ? Number(m[1]) : null;
}

export interface NonFinite {
  /** The first tensor (in name order) holding a NaN or ±Infinity. */
  name: string;
  /** How many of its values are not finite, and how many it has. */
  count: number;
  size: number;
  /** How many tensors hold a non-finite value. */
  tensors: number;
}

/** The first float tensor (optionally only names starting with `prefix`) with a NaN or ±Infinity, or null. */
export function findNonFinite(tensors: Record<string, NamedArray>, prefix = ''): NonFinite | null {
  let first: NonFinite | null = null;
  let bad = 0;
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name]!;
    if (!name.startsWith(prefix) || t.dtype !== 'float32') continue;
    let count = 0;
    for (let i = 0; i < t.data.length; i++) if (!Number.isFinite(t.data[i]!)) count += 1;
    if (count === 0) continue;
    bad += 1;
    first ??= { name, count, size: t.data.length, tensors: 0 };
  }
  return first && { ...first, tensors: bad };
}

/** "params/x holds 12 of 64 non-finite values (and 3 more tensors do)". */
export function describeNonFinite(nf: NonFinite): string {
  return (
    `${nf.name} holds ${nf.count} of ${nf.size} non-finite values (NaN or Infinity)` +
    (nf.tensors > 1 ? ` and ${nf.tensors - 1} more tensor(s) do too` : '')
  );
}

/** Throws a one-line CheckpointError when a loaded checkpoint's tensors under `prefix` are not all finite. */
export function assertFiniteCheckpoint(ck: LoadedCheckpoint, prefix = 'params/'): void {
  const nf = findNonFinite(ck.tensors, prefix);
  if (nf === null) return;
  throw new CheckpointError(
    `checkpoint ${ck.path}: ${describeNonFinite(nf)}; it was saved by a run whose training diverged and cannot be used`,
    { file: ck.path, hint: 'use an earlier checkpoint of that run, or retrain with a lower optim.lr' },
  );
}

const TEMP_NAME = /^\.checkpoint-\d+\.vmoe\.(\d+)\.[0-9a-f]+\.tmp$/;

/**
 * Removes the temp files of checkpoint writes that never finished (a process killed mid-save) from `dir`,
 * except those of a process that is still running; returns the paths removed. Call it while holding the
 * run folder's lock, so no other writer is saving into `dir`.
 */
export function removeOrphanTemps(dir: string): string[] {
  let names: string[];
  try {
    names = nodeFs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && pidAlive(pid)) continue;
    const file = path.join(dir, name);
    try {
      nodeFs.unlinkSync(file);
      removed.push(file);
    } catch {
      // housekeeping: a temp file we cannot remove is never read as a checkpoint
    }
  }
  return removed;
}
