/**
 * NumPy `.npy` arrays: the header (magic, version, a Python-literal dict with `descr`, `fortran_order`, `shape`)
 * and the raw C-order data, read and written without NumPy. Format: numpy.lib.format (versions 1.0, 2.0, 3.0).
 *
 * Element types kept here are the ones models and images use: float32/64, float16, bfloat16 (NumPy has no name for
 * it, so writers store it as the 2-byte void type `|V2` — the top half of a float32), and (u)int8/16/32/64 and bool.
 */
import fs from 'node:fs';
import { unzipSync, zipSync } from 'fflate';
import { DataError } from './errors.js';

/** NumPy element types this reader understands. */
export type NpyDtype =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'uint32'
  | 'int32'
  | 'int64'
  | 'uint64'
  | 'bool';

/** One array from a `.npy` file: its type, shape and raw little-endian C-order bytes. */
export interface NpyArray {
  dtype: NpyDtype;
  /** The dtype descriptor as the file writes it, e.g. `|u1`, `<f4` (for messages). */
  descr: string;
  shape: number[];
  /** Raw element bytes, little-endian, C order (a view into the file's bytes). */
  bytes: Uint8Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const DESCR: Record<string, NpyDtype> = {
  '<f4': 'float32',
  '<f8': 'float64',
  '<f2': 'float16',
  '|u1': 'uint8',
  '<u1': 'uint8',
  '|i1': 'int8',
  '<i1': 'int8',
  '<u2': 'uint16',
  '<i2': 'int16',
  '<u4': 'uint32',
  '<i4': 'int32',
  '<i8': 'int64',
  '<u8': 'uint64',
  '|b1': 'bool',
  '|V2': 'bfloat16',
  '<V2': 'bfloat16',
  '<bf16': 'bfloat16',
};

const DESCR_OF: Record<NpyDtype, string> = {
  float32: '<f4',
  float64: '<f8',
  float16: '<f2',
  bfloat16: '|V2',
  uint8: '|u1',
  int8: '|i1',
  uint16: '<u2',
  int16: '<i2',
  uint32: '<u4',
  int32: '<i4',
  int64: '<i8',
  uint64: '<u8',
  bool: '|b1',
};

/** Bytes per element of each type. */
export const NPY_ITEMSIZE: Record<NpyDtype, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  int64: 8,
  uint64: 8,
  bool: 1,
};

/** Parses the header dict, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`. */
function parseHeader(text: string, where: string): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /'descr':\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    // Structured dtypes (a list for descr) land here too.
    throw new DataError(`${where}: not a plain .npy array header: ${text.trim().slice(0, 120)}`);
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => Number(s.replace(/L$/, '')));
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new DataError(`${where}: bad shape (${shapeText})`);
  return { descr, fortran: fortran === 'True', shape };
}

/** Reads one `.npy` file's bytes; `where` names it in errors. */
export function parseNpy(buf: Uint8Array, where: string): NpyArray {
  if (buf.length < 10 || MAGIC.some((b, i) => buf[i] !== b))
    throw new DataError(`${where}: not a .npy file (bad magic)`);
  const major = buf[6]!;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let headerLen: number, start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new DataError(`${where}: truncated .npy header`);
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    throw new DataError(`${where}: unsupported .npy version ${major}`);
  }
  if (start + headerLen > buf.length) throw new DataError(`${where}: truncated .npy header`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(buf.subarray(start, start + headerLen));
  const { descr, fortran, shape } = parseHeader(header, where);
  const dtype = DESCR[descr];
  if (!dtype) {
    throw new DataError(
      `${where}: unsupported dtype '${descr}' (supported: ${Object.keys(DESCR_OF)
        .map((k) => k)
        .join(', ')}; big-endian and structured types are not)`,
    );
  }
  const n = shape.reduce((a, b) => a * b, 1);
  if (fortran && shape.filter((d) => d > 1).length > 1) {
    throw new DataError(`${where}: Fortran-order arrays are not supported (save with numpy's default C order)`);
  }
  const dataStart = start + headerLen;
  const byteLength = n * NPY_ITEMSIZE[dtype];
  if (buf.length < dataStart + byteLength) {
    throw new DataError(
      `${where}: truncated: shape (${shape.join(', ')}) of ${dtype} needs ${byteLength} data bytes, the file has ${buf.length - dataStart}`,
    );
  }
  return { dtype, descr, shape, bytes: buf.subarray(dataStart, dataStart + byteLength) };
}

/** Encodes an array as a version-1.0 `.npy` file (header padded to a multiple of 64 bytes, as numpy does). */
export function encodeNpy(dtype: NpyDtype, shape: number[], bytes: Uint8Array): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== n * NPY_ITEMSIZE[dtype]) {
    throw new DataError(`encodeNpy: ${bytes.length} bytes do not fit shape (${shape.join(', ')}) of ${dtype}`);
  }
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${DESCR_OF[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + bytes.length);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(bytes, 10 + header.length);
  return out;
}

/** True for the integer element types (and bool). */
export function isIntegerDtype(dtype: NpyDtype): boolean {
  return !['float32', 'float64', 'float16', 'bfloat16'].includes(dtype);
}

/** An integer array's values as float64 (exact up to 2^53): labels, counts. */
export function toNumbers(a: NpyArray): Float64Array {
  if (!isIntegerDtype(a.dtype)) return Float64Array.from(toFloat32(a.dtype, a.bytes));
  const n = a.bytes.length / NPY_ITEMSIZE[a.dtype];
  const out = new Float64Array(n);
  const view = new DataView(a.bytes.buffer, a.bytes.byteOffset, a.bytes.byteLength);
  for (let i = 0; i < n; i++) {
    switch (a.dtype) {
      case 'int64':
        out[i] = Number(view.getBigInt64(8 * i, true));
        break;
      case 'uint64':
        out[i] = Number(view.getBigUint64(8 * i, true));
        break;
      case 'int32':
        out[i] = view.getInt32(4 * i, true);
        break;
      case 'uint32':
        out[i] = view.getUint32(4 * i, true);
        break;
      case 'int16':
        out[i] = view.getInt16(2 * i, true);
        break;
      case 'uint16':
        out[i] = view.getUint16(2 * i, true);
        break;
      case 'int8':
        out[i] = view.getInt8(i);
        break;
      default:
        out[i] = a.bytes[i]!;
    }
  }
  return out;
}

/** A `.npz` archive as bytes: each `.npy` buffer as `<name>.npy`, deflated unless `store` (numpy's `savez` stores). */
export function encodeNpz(arrays: Record<string, Uint8Array>, opts: { store?: boolean } = {}): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  for (const [name, npy] of Object.entries(arrays)) files[`${name}.npy`] = npy;
  return zipSync(files, { level: opts.store ? 0 : 6 });
}

/**
 * Every array of a `.npz` file (a zip of `.npy` members, stored or deflated), keyed by member name without `.npy`;
 * errors (DataError) name the file and the member.
 */
export function readNpz(file: string): Map<string, NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file}: ${code ?? e}`);
  }
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(bytes);
  } catch (e) {
    throw new DataError(`${file}: not a readable .npz (zip) archive (truncated or corrupt): ${(e as Error).message}`);
  }
  const out = new Map<string, NpyArray>();
  for (const [name, buf] of Object.entries(members)) {
    if (name.endsWith('.npy')) out.set(name.slice(0, -4), parseNpy(buf, `${file} (${name})`));
  }
  return out;
}

/** float16 bits → float32 value (subnormals, infinities and NaN included). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * An array's values as float32: float32 copied, bfloat16 widened exactly (its bits are the top half of a float32),
 * float16 converted exactly, float64 and integers rounded to the nearest float32.
 */
export function toFloat32(dtype: NpyDtype, bytes: Uint8Array, where = 'array'): Float32Array {
  const n = bytes.length / NPY_ITEMSIZE[dtype];
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'float32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 'bfloat16': {
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u32[i] = view.getUint16(2 * i, true) << 16;
      break;
    }
    case 'float16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      break;
    case 'float64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    case 'uint8':
    case 'bool':
      for (let i = 0; i < n; i++) out[i] = bytes[i]!;
      break;
    case 'int8':
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i);
      break;
    case 'uint16':
      for (let i = 0; i < n; i++) out[i] = view.getUint16(2 * i, true);
      break;
    case 'int16':
      for (let i = 0; i < n; i++) out[i] = view.getInt16(2 * i, true);
      break;
    case 'uint32':
      for (let i = 0; i < n; i++) out[i] = view.getUint32(4 * i, true);
      break;
    case 'int32':
      for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true);
      break;
    case 'int64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(8 * i, true));
      break;
    case 'uint64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigUint64(8 * i, true));
      break;
    default:
      throw new DataError(`${where}: cannot convert ${dtype as string} to float32`);
  }
  return out;
}

/** float32 values → bfloat16 bits, rounded to nearest even (NaN stays NaN), as numpy/ml_dtypes round. */
export function floatToBfloat16Bits(values: Float32Array): Uint16Array {
  const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = u32[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && x & 0x007fffff) out[i] = (x >>> 16) | 0x0040;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Little-endian bytes of a float32 array (a copy on big-endian hosts would be needed; Node targets are LE). */
export function float32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** An opened `.npy` file whose rows are read on demand (`readNpyRows`), so large inputs need not fit in memory. */
export interface NpyFile {
  file: string;
  dtype: NpyDtype;
  shape: number[];
  /** Byte offset of the first element. */
  dataOffset: number;
}

/** Reads only the header of `file` (and checks the file is long enough for its data). */
export function openNpy(file: string): NpyFile {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file}: ${code ?? e}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = new Uint8Array(Math.min(size, 1 << 16));
    fs.readSync(fd, head, 0, head.length, 0);
    // parseNpy on the header alone: give it a fake data length by checking sizes here instead.
    if (head.length < 10 || MAGIC.some((b, i) => head[i] !== b))
      throw new DataError(`${file}: not a .npy file (bad magic)`);
    const major = head[6]!;
    const view = new DataView(head.buffer);
    const start = major === 1 ? 10 : 12;
    const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
    if (start + headerLen > head.length) throw new DataError(`${file}: truncated .npy header`);
    const header = new TextDecoder('latin1').decode(head.subarray(start, start + headerLen));
    const { descr, fortran, shape } = parseHeader(header, file);
    const dtype = DESCR[descr];
    if (!dtype) throw new DataError(`${file}: unsupported dtype '${descr}'`);
    if (fortran && shape.filter((d) => d > 1).length > 1)
      throw new DataError(`${file}: Fortran-order arrays are not supported`);
    const need = shape.reduce((a, b) => a * b, 1) * NPY_ITEMSIZE[dtype];
    const dataOffset = start + headerLen;
    if (size < dataOffset + need) {
      throw new DataError(
        `${file}: truncated: shape (${shape.join(', ')}) of ${dtype} needs ${need} data bytes, the file has ${size - dataOffset}`,
      );
    }
    return { file, dtype, shape, dataOffset };
  } finally {
    fs.closeSync(fd);
  }
}

/** Rows [start, start + count) along the first axis of an opened `.npy` file, as raw bytes. */
export function readNpyRows(f: NpyFile, start: number, count: number): Uint8Array {
  const rowBytes = f.shape.slice(1).reduce((a, b) => a * b, 1) * NPY_ITEMSIZE[f.dtype];
  const out = new Uint8Array(rowBytes * count);
  const fd = fs.openSync(f.file, 'r');
  try {
    let done = 0;
    while (done < out.length) {
      const n = fs.readSync(fd, out, done, out.length - done, f.dataOffset + start * rowBytes + done);
      if (n === 0) throw new DataError(`${f.file}: ended early (changed while being read?)`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}
