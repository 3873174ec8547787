/**
 * IDX files (the MNIST container format), raw or gzip-compressed.
 *
 * Layout: two zero bytes, a type byte, a dimension-count byte, then one big-endian
 * uint32 per dimension, then the data in row-major order. Only the unsigned-byte
 * type (0x08) is supported: every data set this toolkit uses stores pixels and
 * labels that way, and writing other types would invite silent precision bugs.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DataError } from '../util/errors.js';
import { writeFileWhole } from '../util/output-dir.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export interface ReadIdxOptions {
  /** Allowed number of dimensions (e.g. 1 for labels, [3, 4] for images). */
  ndim?: number | number[];
  /** Bytes read per call (default 64 MiB); a test lowers it to exercise the chunked reads on a small file. */
  chunkBytes?: number;
}

const UBYTE = 0x08;
const TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

/** Default bytes per read: one `readSync` can move at most 2 GiB − 1, and a file may be larger than that. */
const CHUNK_BYTES = 64 << 20;

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Fills `into` from file position `position` in reads of at most `chunk` bytes; returns the bytes read (less at EOF). */
function readInto(fd: number, into: Uint8Array, position: number, chunk: number): number {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, Math.min(chunk, into.length - done), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * Reads and validates an IDX file; gzip is detected from the content, not the name. The file is read through a
 * file handle in chunks (`readFileSync` stops at 2 GiB): the header first, so a truncated or oversized file is
 * refused from its size without reading the data, then the data straight into the array returned. A gzip file is
 * read whole and decompressed (both must fit a typed array: 4 GiB on Node 20).
 */
export function readIdx(path: string, opts: ReadIdxOptions = {}): IdxArray {
  const chunk = Math.max(1, Math.floor(opts.chunkBytes ?? CHUNK_BYTES));
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new DataError(`cannot read IDX file ${path}: ${(e as Error).message}`);
  }
  try {
    let size: number;
    let head: Uint8Array;
    try {
      size = fstatSync(fd).size;
      head = new Uint8Array(Math.min(size, 4 + 4 * 255));
      head = head.subarray(0, readInto(fd, head, 0, chunk));
    } catch (e) {
      throw new DataError(`cannot read IDX file ${path}: ${(e as Error).message}`);
    }
    if (isGzip(head)) {
      const raw = new Uint8Array(size);
      try {
        readInto(fd, raw, 0, chunk);
      } catch (e) {
        throw new DataError(`cannot read IDX file ${path}: ${(e as Error).message}`);
      }
      let bytes: Uint8Array;
      try {
        bytes = gunzipSync(raw);
      } catch (e) {
        throw new DataError(
          `IDX file ${path} is not valid gzip (corrupt or truncated download?): ${(e as Error).message}`,
        );
      }
      return parseIdx(bytes, path, opts);
    }
    // the header alone, checked against the file's size; then the data
    const { dims, headerLen } = parseIdxHeader(head, size, path, opts);
    const data = new Uint8Array(size - headerLen);
    let got: number;
    try {
      got = readInto(fd, data, headerLen, chunk);
    } catch (e) {
      throw new DataError(`cannot read IDX file ${path}: ${(e as Error).message}`);
    }
    if (got < data.length)
      throw new DataError(`IDX file ${path} shrank while it was read: ${got} of ${data.length} data bytes`);
    return { dims, data };
  } finally {
    closeSync(fd);
  }
}

/** Parses IDX bytes (already decompressed); `source` names the file in error messages. */
export function parseIdx(bytes: Uint8Array, source: string, opts: ReadIdxOptions = {}): IdxArray {
  const { dims, headerLen } = parseIdxHeader(bytes, bytes.length, source, opts);
  // A plain Uint8Array view (not a Buffer), so callers see one array type whatever the source.
  return { dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + headerLen, bytes.length - headerLen) };
}

/**
 * Checks the header at the start of `head` (the first bytes of a file of `total` bytes): magic number, type,
 * dimensions, and that the data size they give is exactly what follows the header.
 */
function parseIdxHeader(
  head: Uint8Array,
  total: number,
  source: string,
  opts: ReadIdxOptions,
): { dims: number[]; headerLen: number } {
  const bytes = head;
  if (total < 4) {
    throw new DataError(`IDX file ${source} is too short (${total} bytes) to hold the 4-byte magic number`);
  }
  const magic = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
  const magicHex = '0x' + magic.toString(16).padStart(8, '0');
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataError(
      `IDX file ${source} has a bad magic number ${magicHex}: the first two bytes must be zero ` +
        `(expected e.g. 0x00000803 for images or 0x00000801 for labels)`,
    );
  }
  const type = bytes[2]!;
  if (type !== UBYTE) {
    const what = TYPE_NAMES[type] ?? 'unknown';
    throw new DataError(
      `IDX file ${source} has magic number ${magicHex} with data type 0x${type.toString(16).padStart(2, '0')} (${what}); ` +
        `only 0x08 (unsigned byte) is supported`,
    );
  }
  const ndim = bytes[3]!;
  if (ndim === 0) {
    throw new DataError(`IDX file ${source} has magic number ${magicHex} declaring 0 dimensions`);
  }
  if (opts.ndim !== undefined) {
    const allowed = Array.isArray(opts.ndim) ? opts.ndim : [opts.ndim];
    if (!allowed.includes(ndim)) {
      throw new DataError(
        `IDX file ${source} has ${ndim} dimension(s) (magic ${magicHex}) but ${allowed.join(' or ')} expected`,
      );
    }
  }
  const headerLen = 4 + 4 * ndim;
  if (total < headerLen) {
    throw new DataError(
      `IDX file ${source} is truncated inside its header: ${ndim} dimensions need ${headerLen} header bytes, file has ${total}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let size = 1;
  for (let d = 0; d < ndim; d++) {
    const v = view.getUint32(4 + 4 * d, false);
    dims.push(v);
    size *= v;
  }
  const body = total - headerLen;
  if (body < size) {
    throw new DataError(
      `IDX file ${source} is truncated: header dims [${dims.join(', ')}] need ${size} data bytes ` +
        `but only ${body} follow the ${headerLen}-byte header`,
    );
  }
  if (body > size) {
    throw new DataError(
      `IDX file ${source} has ${body - size} extra bytes: header dims [${dims.join(', ')}] need ${size} data bytes ` +
        `but ${body} follow the ${headerLen}-byte header`,
    );
  }
  return { dims, headerLen };
}

/** Encodes an unsigned-byte IDX file in memory (uncompressed). */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  if (dims.length < 1 || dims.length > 255) {
    throw new DataError(`writeIdx: number of dims must be 1..255, got ${dims.length}`);
  }
  let size = 1;
  for (const [i, d] of dims.entries()) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new DataError(`writeIdx: dims[${i}] = ${d} is not an unsigned 32-bit integer`);
    }
    size *= d;
  }
  if (data.length !== size) {
    throw new DataError(`writeIdx: dims [${dims.join(', ')}] hold ${size} values but data has ${data.length}`);
  }
  const headerLen = 4 + 4 * dims.length;
  const out = new Uint8Array(headerLen + size);
  const view = new DataView(out.buffer);
  view.setUint32(0, (UBYTE << 8) | dims.length, false);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, headerLen);
  return out;
}

/** Writes an unsigned-byte IDX file, gzip-compressed when the path ends in `.gz`. */
export function writeIdx(path: string, dims: readonly number[], data: Uint8Array): void {
  const encoded = encodeIdx(dims, data);
  mkdirSync(dirname(path), { recursive: true });
  writeFileWhole(path, path.endsWith('.gz') ? gzipSync(encoded) : encoded);
}
