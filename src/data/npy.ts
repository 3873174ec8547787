/**
 * NumPy `.npy` arrays and `.npz` archives, read and written without numpy.
 *
 * `.npy` (format versions 1–3, https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html): the magic
 * `\x93NUMPY`, a major and a minor version byte, the header length (uint16 LE in version 1, uint32 LE in 2 and 3),
 * then an ASCII Python dict literal `{'descr': '<u1', 'fortran_order': False, 'shape': (n, 32, 32, 3), }` padded
 * with spaces to a multiple of 64 bytes, then the raw C-order data. `.npz` is a zip of `.npy` members, stored or
 * deflated (read with fflate). Only the dtypes an image data set needs are read: unsigned/signed integers of
 * 1, 2, 4 and 8 bytes, little-endian.
 */
import { readFileSync } from 'node:fs';
import { unzipSync, zipSync } from 'fflate';
import { DataError } from '../util/errors.js';

/** One array read from a `.npy` member: its dtype descriptor (e.g. `<u1`), shape, and values. */
export interface NpyArray {
  /** NumPy dtype string as written, e.g. `|u1`, `<i8`. */
  descr: string;
  shape: number[];
  /** Integer values; uint8 arrays stay bytes, other integer dtypes are widened to float64 (exact up to 2^53). */
  data: Uint8Array | Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Parses one `.npy` buffer; `where` names the file (and member) in errors. */
export function parseNpy(buf: Uint8Array, where: string): NpyArray {
  const bad = (what: string) => new DataError(`${where}: not a valid .npy array: ${what}`);
  if (buf.length < 10 || MAGIC.some((b, i) => buf[i] !== b)) throw bad('missing the \\x93NUMPY magic');
  const major = buf[6]!;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw bad('header cut short');
    headerLen = view.getUint32(8, true);
    start = 12;
  } else throw bad(`unknown format version ${major}`);
  if (start + headerLen > buf.length) throw bad('header cut short');
  const header = new TextDecoder().decode(buf.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw bad(`header lacks descr, fortran_order or shape: ${header.trim()}`);
  }
  if (fortran === 'True') throw bad('Fortran-order arrays are not read; save with np.ascontiguousarray');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw bad(`bad shape (${shapeText})`);
  const m = /^([<>|=]?)([uib])(\d+)$/.exec(descr);
  if (!m || (m[2] === 'b' && m[3] !== '1')) {
    throw new DataError(`${where}: dtype '${descr}' is not an integer dtype (images must be uint8, labels integers)`);
  }
  const size = Number(m[3]);
  if (![1, 2, 4, 8].includes(size)) throw new DataError(`${where}: unsupported dtype '${descr}'`);
  if (m[1] === '>' && size > 1) throw new DataError(`${where}: big-endian dtype '${descr}' is not read`);
  const count = shape.reduce((a, d) => a * d, 1);
  const dataStart = start + headerLen;
  if (buf.length - dataStart < count * size) {
    throw bad(
      `data cut short: shape (${shape.join(', ')}) of ${descr} needs ${count * size} bytes, the file holds ${buf.length - dataStart}`,
    );
  }
  const raw = buf.subarray(dataStart, dataStart + count * size);
  if (size === 1 && m[2] !== 'i') return { descr, shape, data: raw.slice() };
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const data = new Float64Array(count);
  const signed = m[2] === 'i';
  for (let i = 0; i < count; i++) {
    const o = i * size;
    if (size === 1) data[i] = dv.getInt8(o);
    else if (size === 2) data[i] = signed ? dv.getInt16(o, true) : dv.getUint16(o, true);
    else if (size === 4) data[i] = signed ? dv.getInt32(o, true) : dv.getUint32(o, true);
    else data[i] = Number(signed ? dv.getBigInt64(o, true) : dv.getBigUint64(o, true));
  }
  return { descr, shape, data };
}

/** Encodes a C-order uint8 (`|u1`) or int64 (`<i8`) array as a version-1 `.npy` buffer. */
export function encodeNpy(
  data: Uint8Array | Int32Array | number[],
  shape: number[],
  dtype: 'u1' | 'i8' = 'u1',
): Uint8Array {
  const descr = dtype === 'u1' ? '|u1' : '<i8';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const size = dtype === 'u1' ? 1 : 8;
  const out = new Uint8Array(10 + header.length + data.length * size);
  out.set(MAGIC);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  const dv = new DataView(out.buffer, 10 + header.length);
  for (let i = 0; i < data.length; i++) {
    if (size === 1) dv.setUint8(i, data[i]!);
    else dv.setBigInt64(i * 8, BigInt(data[i]!), true);
  }
  return out;
}

/** A `.npz` archive as bytes: each array as `<name>.npy`, deflated unless `store` (numpy's `savez` stores). */
export function encodeNpz(arrays: Record<string, Uint8Array>, opts: { store?: boolean } = {}): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  for (const [name, npy] of Object.entries(arrays)) files[`${name}.npy`] = npy;
  return zipSync(files, { level: opts.store ? 0 : 6 });
}

/** Reads every array of a `.npz` file, keyed by member name without `.npy`. */
export function readNpz(file: string): Map<string, NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new DataError(`cannot read ${file}: ${(e as Error).message}`);
  }
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(bytes);
  } catch (e) {
    throw new DataError(`${file}: not a readable .npz (zip) archive: ${(e as Error).message}`);
  }
  const out = new Map<string, NpyArray>();
  for (const [name, buf] of Object.entries(members)) {
    if (!name.endsWith('.npy')) continue;
    const key = name.slice(0, -4);
    out.set(key, parseNpy(buf, `${file} (${name})`));
  }
  return out;
}
