/**
 * google-research/vmoe's partitioned checkpoints, read and written (docs/spec/reference-checkpoints.md).
 *
 * A checkpoint is `PREFIX.index` plus shards `PREFIX.data-NNNNN-of-NNNNN`, each one msgpack document:
 *
 *   index  { shard_count: n, index: tree of IndexInfo, version?: '20220622' }  (no version: written before 2022-06)
 *   shard  { '__msgpack_array_chunk_a87ca2__': true, '<leaf>': [[[subchunk ndarray, …], SliceNd], …], … }
 *
 * Leaves are numbered in the order a depth-first walk of the index tree visits them with map keys sorted (how JAX
 * flattens dicts); a leaf's array may be cut into chunks (each a SliceNd of the global array) spread over shards,
 * and each chunk's flat data into sub-chunks. msgpack extension types (the reference's serialization module):
 *
 *   1 ndarray       msgpack (shape, dtype name, raw little-endian C-order bytes)
 *   3 npscalar      an ndarray of shape ()
 *   4 ShapedArray   msgpack (shape, dtype name, weak_type, {})
 *   5 Slice         msgpack (start, stop, step), each an int or nil
 *   6 SliceNd       msgpack array of Slice payloads (bytes)
 *   7 SliceNdArray  msgpack (shape, array of SliceNd payloads)
 *   8 IndexInfo     msgpack (ShapedArray payload, array of SliceNd payloads, array of shard numbers)
 *
 * msgpack itself is decoded by @msgpack/msgpack; this module only gives the extension payloads their meaning.
 */
import fs from 'node:fs';
import path from 'node:path';
import { decode, encode, ExtensionCodec } from '@msgpack/msgpack';
import { CheckpointError } from '../util/errors.js';
import { NPY_ITEMSIZE, type NpyDtype } from '../util/npy.js';

/** Checkpoint index version written by the reference since 2022-06-22 (`Version.V1`). */
export const REFERENCE_INDEX_VERSION = '20220622';
const CHUNKS_MAGIC = '__msgpack_array_chunk_a87ca2__';

/** An array as the reference stores it: dtype name, shape, raw little-endian C-order bytes. */
export interface RefArray {
  dtype: NpyDtype;
  shape: number[];
  bytes: Uint8Array;
}

/** A Python slice (start, stop, step); null for None. */
export class RefSlice {
  constructor(
    readonly start: number | null,
    readonly stop: number | null,
    readonly step: number | null = null,
  ) {}
}

/** Where one chunk of an array sits: one RefSlice per leading axis (trailing axes are whole). */
export class RefSliceNd {
  constructor(readonly slices: RefSlice[]) {}
}

/** The index entry of one leaf: its global shape and dtype, the chunks' slices and the shard holding each. */
export class RefIndexInfo {
  constructor(
    readonly shape: number[],
    readonly dtype: string,
    readonly slices: RefSliceNd[],
    readonly shards: number[],
    readonly weakType = false,
  ) {}
}

/** An ndarray leaf (ext 1) as decoded: kept raw until its dtype is known to be supported. */
export class RefNdarray {
  constructor(
    readonly shape: number[],
    readonly dtype: string,
    readonly bytes: Uint8Array,
  ) {}
}

const DTYPES: Record<string, NpyDtype> = {
  float32: 'float32',
  float64: 'float64',
  float16: 'float16',
  bfloat16: 'bfloat16',
  uint8: 'uint8',
  int8: 'int8',
  uint16: 'uint16',
  int16: 'int16',
  uint32: 'uint32',
  int32: 'int32',
  int64: 'int64',
  uint64: 'uint64',
  bool: 'bool',
};

function text(x: unknown): string {
  return x instanceof Uint8Array ? new TextDecoder().decode(x) : String(x);
}

function intOrNull(x: unknown): number | null {
  if (x === null || x === undefined) return null;
  if (typeof x === 'number') return x;
  if (typeof x === 'bigint') return Number(x);
  throw new Error(`expected an integer or nil, got ${typeof x}`);
}

function shapeOf(x: unknown): number[] {
  if (!Array.isArray(x)) throw new Error('a shape must be an array');
  return x.map((d) => {
    const v = intOrNull(d);
    if (v === null || v < 0) throw new Error('a shape holds a negative or nil dimension');
    return v;
  });
}

const codec = new ExtensionCodec();

function decodeSlice(data: Uint8Array): RefSlice {
  const [start, stop, step] = decode(data) as unknown[];
  return new RefSlice(intOrNull(start), intOrNull(stop), intOrNull(step));
}
function decodeSliceNd(data: Uint8Array): RefSliceNd {
  return new RefSliceNd((decode(data) as Uint8Array[]).map(decodeSlice));
}
function decodeShaped(data: Uint8Array): { shape: number[]; dtype: string; weakType: boolean } {
  const [shape, dtype, weak] = decode(data) as unknown[];
  return { shape: shapeOf(shape), dtype: text(dtype), weakType: weak === true };
}
function decodeNdarray(data: Uint8Array): RefNdarray {
  const [shape, dtype, bytes] = decode(data) as unknown[];
  if (!(bytes instanceof Uint8Array)) throw new Error('ndarray data must be bytes');
  return new RefNdarray(shapeOf(shape), text(dtype), bytes);
}

function encodeSlice(s: RefSlice): Uint8Array {
  return encode([s.start, s.stop, s.step]);
}
function encodeSliceNd(s: RefSliceNd): Uint8Array {
  return encode(s.slices.map(encodeSlice));
}

codec.register({
  type: 1,
  encode: (x) => (x instanceof RefNdarray ? encode([x.shape, x.dtype, x.bytes]) : null),
  decode: decodeNdarray,
});
codec.register({ type: 3, encode: () => null, decode: decodeNdarray });
codec.register({ type: 4, encode: () => null, decode: decodeShaped });
codec.register({ type: 5, encode: (x) => (x instanceof RefSlice ? encodeSlice(x) : null), decode: decodeSlice });
codec.register({
  type: 6,
  encode: (x) => (x instanceof RefSliceNd ? encodeSliceNd(x) : null),
  decode: decodeSliceNd,
});
codec.register({
  type: 7,
  encode: () => null,
  decode: (data) => {
    const [shape, slices] = decode(data) as unknown[];
    return { shape: shapeOf(shape), slices: (slices as Uint8Array[]).map(decodeSliceNd) };
  },
});
codec.register({
  type: 8,
  encode: (x) =>
    x instanceof RefIndexInfo
      ? encode([encode([x.shape, x.dtype, x.weakType, {}]), x.slices.map(encodeSliceNd), x.shards])
      : null,
  decode: (data) => {
    const [shaped, slices, shards] = decode(data) as unknown[];
    const s = decodeShaped(shaped as Uint8Array);
    return new RefIndexInfo(
      s.shape,
      s.dtype,
      (slices as Uint8Array[]).map(decodeSliceNd),
      (shards as unknown[]).map((v) => intOrNull(v) ?? 0),
      s.weakType,
    );
  },
});

/** A checkpoint file's bytes; a missing or unreadable file is a CheckpointError naming it. */
function readCheckpointBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file}: ${code ?? e}`);
  }
}

function readMsgpack(file: string): unknown {
  const buf = readCheckpointBytes(file);
  try {
    return decode(buf, { extensionCodec: codec });
  } catch (e) {
    throw new CheckpointError(
      `${file} is not a valid msgpack checkpoint file (truncated or corrupt): ${(e as Error).message}`,
    );
  }
}

type Tree = { [key: string]: Tree } | Tree[] | unknown;

/** Depth-first leaves with their '/'-joined paths; map keys sorted as JAX sorts dict keys. */
export function flattenTree<T>(tree: Tree, isLeaf: (x: unknown) => x is T, prefix = ''): { path: string; leaf: T }[] {
  const out: { path: string; leaf: T }[] = [];
  const walk = (node: unknown, p: string) => {
    if (isLeaf(node)) out.push({ path: p, leaf: node });
    else if (Array.isArray(node)) node.forEach((v, i) => walk(v, p ? `${p}/${i}` : String(i)));
    else if (node !== null && typeof node === 'object' && !(node instanceof Uint8Array)) {
      for (const k of Object.keys(node).sort()) walk((node as Record<string, unknown>)[k], p ? `${p}/${k}` : k);
    }
    // Scalars (None, numbers) are not array leaves of a params tree: they carry no data and are skipped.
  };
  walk(tree, prefix);
  return out;
}

/** The index file of a checkpoint: shard count, version (null = written before 2022-06) and the leaves in order. */
export interface RefIndex {
  file: string;
  shardCount: number;
  version: string | null;
  leaves: { path: string; info: RefIndexInfo }[];
}

/** `PREFIX.data-0000i-of-0000n` */
export function shardFileName(prefix: string, shard: number, count: number): string {
  return `${prefix}.data-${String(shard).padStart(5, '0')}-of-${String(count).padStart(5, '0')}`;
}

/** `CKPT` may be the prefix or the `.index` file itself. */
export function referencePrefix(ckpt: string): string {
  return ckpt.endsWith('.index') ? ckpt.slice(0, -'.index'.length) : ckpt;
}

/** True when `ckpt` names a reference checkpoint (its `.index` file exists). */
export function isReferenceCheckpoint(ckpt: string): boolean {
  return fs.existsSync(`${referencePrefix(ckpt)}.index`) && fs.statSync(`${referencePrefix(ckpt)}.index`).isFile();
}

/** Reads and checks `PREFIX.index`. */
export function readReferenceIndex(prefix: string): RefIndex {
  const file = `${prefix}.index`;
  const raw = readMsgpack(file) as Record<string, unknown>;
  if (raw === null || typeof raw !== 'object' || !('index' in raw) || !('shard_count' in raw)) {
    throw new CheckpointError(`${file}: not a vmoe checkpoint index (expected the keys 'index' and 'shard_count')`);
  }
  const shardCount = intOrNull(raw.shard_count);
  if (shardCount === null || shardCount < 1) throw new CheckpointError(`${file}: shard_count must be ≥ 1`);
  const version = raw.version === undefined || raw.version === null ? null : text(raw.version);
  if (version !== null && version !== REFERENCE_INDEX_VERSION) {
    throw new CheckpointError(
      `${file}: unsupported checkpoint version '${version}' (this build reads ${REFERENCE_INDEX_VERSION} and older unversioned ones)`,
    );
  }
  const leaves = flattenTree(raw.index, (x): x is RefIndexInfo => x instanceof RefIndexInfo).map(({ path, leaf }) => ({
    path,
    info: leaf,
  }));
  if (leaves.length === 0) throw new CheckpointError(`${file}: the index holds no arrays`);
  for (const { path: p, info } of leaves) {
    if (!DTYPES[info.dtype]) throw new CheckpointError(`${file}: ${p} has unsupported dtype '${info.dtype}'`);
    if (info.slices.length !== info.shards.length)
      throw new CheckpointError(`${file}: ${p}: slices and shards differ in number`);
    const bad = info.shards.find((s) => s < 0 || s >= shardCount);
    if (bad !== undefined) throw new CheckpointError(`${file}: ${p} names shard ${bad} of ${shardCount}`);
  }
  return { file, shardCount, version, leaves };
}

/** [start, stop) of every axis for a chunk of an array of `shape`. */
function chunkBox(s: RefSliceNd, shape: number[], where: string): { start: number[]; stop: number[] } {
  if (s.slices.length > shape.length) throw new CheckpointError(`${where}: a chunk has more axes than the array`);
  const start: number[] = [],
    stop: number[] = [];
  for (let a = 0; a < shape.length; a++) {
    const sl = s.slices[a];
    const lo = sl?.start ?? 0,
      hi = sl?.stop ?? shape[a]!;
    if ((sl?.step ?? 1) !== 1 || lo < 0 || hi > shape[a]! || lo > hi) {
      throw new CheckpointError(`${where}: chunk slice ${lo}:${hi} does not fit axis ${a} of size ${shape[a]}`);
    }
    start.push(lo);
    stop.push(hi);
  }
  return { start, stop };
}

/** Copies a C-order chunk (the box start..stop) into the global C-order array. */
function placeChunk(
  dst: Uint8Array,
  shape: number[],
  src: Uint8Array,
  box: { start: number[]; stop: number[] },
  item: number,
) {
  const nd = shape.length;
  if (nd === 0) {
    dst.set(src.subarray(0, item));
    return;
  }
  const ext = box.stop.map((s, a) => s - box.start[a]!);
  const strides = new Array<number>(nd).fill(1);
  for (let a = nd - 2; a >= 0; a--) strides[a] = strides[a + 1]! * shape[a + 1]!;
  const rowLen = ext[nd - 1]! * item;
  const rows = ext.slice(0, -1).reduce((x, y) => x * y, 1);
  const idx = new Array<number>(nd - 1).fill(0);
  for (let r = 0; r < rows; r++) {
    let off = box.start[nd - 1]!;
    for (let a = 0; a < nd - 1; a++) off += (box.start[a]! + idx[a]!) * strides[a]!;
    dst.set(src.subarray(r * rowLen, (r + 1) * rowLen), off * item);
    for (let a = nd - 2; a >= 0; a--) {
      if (++idx[a]! < ext[a]!) break;
      idx[a] = 0;
    }
  }
}

/** A reference checkpoint read whole: the arrays by '/'-joined path, in leaf order, and the index it came from. */
export interface RefCheckpoint {
  prefix: string;
  index: RefIndex;
  arrays: Map<string, RefArray>;
}

/**
 * Reads a reference checkpoint (`PREFIX` or `PREFIX.index`): every leaf assembled from its chunks in every shard;
 * a missing shard, a missing or overlapping chunk, or a chunk whose size does not fit is an error naming the file
 * and the array.
 */
export function readReferenceCheckpoint(ckpt: string): RefCheckpoint {
  const prefix = referencePrefix(ckpt);
  const index = readReferenceIndex(prefix);
  const buffers = index.leaves.map(({ info }) => {
    const n = info.shape.reduce((a, b) => a * b, 1);
    return { data: new Uint8Array(n * NPY_ITEMSIZE[DTYPES[info.dtype]!]), filled: 0, n };
  });
  const needed = new Set(index.leaves.flatMap(({ info }) => info.shards));
  for (const shard of [...needed].sort((a, b) => a - b)) {
    const file = shardFileName(prefix, shard, index.shardCount);
    const raw = readMsgpack(file) as Record<string, unknown>;
    if (raw === null || typeof raw !== 'object' || raw[CHUNKS_MAGIC] !== true) {
      throw new CheckpointError(`${file}: not a vmoe checkpoint shard (no array-chunks marker)`);
    }
    for (const [key, chunks] of Object.entries(raw)) {
      if (key === CHUNKS_MAGIC) continue;
      const leaf = Number(key);
      const entry = index.leaves[leaf];
      if (!Number.isInteger(leaf) || !entry)
        throw new CheckpointError(`${file}: chunk for leaf '${key}', which the index does not have`);
      const { info, path: p } = entry;
      const dtype = DTYPES[info.dtype]!;
      const item = NPY_ITEMSIZE[dtype];
      for (const pair of chunks as unknown[][]) {
        const [subchunks, slice] = pair as [RefNdarray[], RefSliceNd];
        const where = `${file}: ${p}`;
        if (!(slice instanceof RefSliceNd) || !Array.isArray(subchunks))
          throw new CheckpointError(`${where}: malformed chunk`);
        const box = chunkBox(slice, info.shape, where);
        const elems = box.stop.reduce((a, s, i) => a * (s - box.start[i]!), 1);
        const flat = new Uint8Array(elems * item);
        let off = 0;
        for (const sub of subchunks) {
          if (!(sub instanceof RefNdarray)) throw new CheckpointError(`${where}: a sub-chunk is not an ndarray`);
          if (DTYPES[sub.dtype] !== dtype)
            throw new CheckpointError(`${where}: a sub-chunk is ${sub.dtype}, the index says ${info.dtype}`);
          if (off + sub.bytes.length > flat.length)
            throw new CheckpointError(`${where}: chunk data is larger than its slice`);
          flat.set(sub.bytes, off);
          off += sub.bytes.length;
        }
        if (off !== flat.length)
          throw new CheckpointError(`${where}: chunk holds ${off / item} values, its slice needs ${elems}`);
        placeChunk(buffers[leaf]!.data, info.shape, flat, box, item);
        buffers[leaf]!.filled += elems;
      }
    }
  }
  const arrays = new Map<string, RefArray>();
  index.leaves.forEach(({ path: p, info }, i) => {
    const b = buffers[i]!;
    if (b.filled !== b.n) {
      throw new CheckpointError(
        `${prefix}: ${p} has ${b.filled} of its ${b.n} values in the shards (a chunk is missing or repeated)`,
      );
    }
    arrays.set(p, { dtype: DTYPES[info.dtype]!, shape: info.shape, bytes: b.data });
  });
  return { prefix, index, arrays };
}

/** Nests '/'-joined paths back into a tree of plain objects. */
function unflatten<T>(entries: [string, T][]): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [p, v] of entries) {
    const parts = p.split('/');
    let node = root;
    for (const k of parts.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]!] = v;
  }
  return root;
}

/** Options of `writeReferenceCheckpoint`: number of shards and the largest chunk (in elements) an array is cut into. */
export interface WriteReferenceOptions {
  shards?: number;
  /** Arrays with more elements than this along their first axis are cut into chunks of whole leading rows. */
  maxChunkElements?: number;
}

/**
 * Writes `arrays` (paths '/'-joined) as a reference checkpoint `PREFIX.index` + `PREFIX.data-…`: leaves numbered in
 * sorted-path order, arrays cut along their first axis into chunks of at most `maxChunkElements` elements, chunks
 * dealt to the least-filled shard. Each file is written whole (temp file + rename) — the index last, so a crash
 * never leaves an index that names missing data.
 */
export function writeReferenceCheckpoint(
  prefix: string,
  arrays: Map<string, RefArray>,
  opts: WriteReferenceOptions = {},
): string[] {
  const shards = opts.shards ?? 1;
  const maxChunk = opts.maxChunkElements ?? 1 << 28;
  const paths = [...arrays.keys()].sort();
  // Number leaves the way the reader (and JAX) will: depth-first over the nested tree with sorted keys.
  const ordered = flattenTree(
    unflatten(paths.map((p) => [p, arrays.get(p)!])),
    (x): x is RefArray => typeof x === 'object' && x !== null && 'bytes' in x && 'shape' in x,
  );
  const shardChunks: Record<string, unknown>[] = Array.from({ length: shards }, () => ({ [CHUNKS_MAGIC]: true }));
  const shardBytes = new Array<number>(shards).fill(0);
  const infos: [string, RefIndexInfo][] = [];
  ordered.forEach(({ path: p, leaf: a }, i) => {
    const item = NPY_ITEMSIZE[a.dtype];
    const rows = a.shape[0] ?? 1;
    const perRow = a.shape.slice(1).reduce((x, y) => x * y, 1);
    const rowsPerChunk = a.shape.length === 0 ? 1 : Math.max(1, Math.floor(maxChunk / Math.max(1, perRow)));
    const slices: RefSliceNd[] = [],
      owners: number[] = [];
    for (let r = 0; r < Math.max(rows, 1); r += rowsPerChunk) {
      const hi = Math.min(rows, r + rowsPerChunk);
      const slice = new RefSliceNd(
        a.shape.map((d, ax) => (ax === 0 ? new RefSlice(r, hi, null) : new RefSlice(0, d, null))),
      );
      const bytes = a.shape.length === 0 ? a.bytes : a.bytes.subarray(r * perRow * item, hi * perRow * item);
      const shard = shardBytes.indexOf(Math.min(...shardBytes));
      shardBytes[shard]! += bytes.length;
      const chunkShape = [a.shape.length === 0 ? 1 : (hi - r) * perRow]; // sub-chunks are flat, as the reference writes them
      const list = ((shardChunks[shard]![String(i)] as unknown[][]) ??= []);
      list.push([[new RefNdarray(chunkShape, a.dtype, bytes)], slice]);
      slices.push(slice);
      owners.push(shard);
      if (a.shape.length === 0) break;
    }
    infos.push([p, new RefIndexInfo(a.shape, a.dtype, slices, owners)]);
  });
  const written: string[] = [];
  const writeWhole = (file: string, data: Uint8Array) => {
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
    written.push(file);
  };
  shardChunks.forEach((chunks, s) =>
    writeWhole(shardFileName(prefix, s, shards), encode(chunks, { extensionCodec: codec })),
  );
  const index = { index: unflatten(infos), shard_count: shards, version: REFERENCE_INDEX_VERSION };
  writeWhole(`${prefix}.index`, encode(index, { extensionCodec: codec }));
  return written;
}
