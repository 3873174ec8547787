import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeIdx, readIdx, writeIdx } from '../../src/data/idx.js';
import { DataError } from '../../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'vmoe-idx-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Hand-built IDX bytes: magic word, big-endian dims, then the body. */
function idxBytes(magic: number, dims: number[], body: number[]): Buffer {
  const buf = Buffer.alloc(4 + 4 * dims.length + body.length);
  buf.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => buf.writeUInt32BE(d, 4 + 4 * i));
  Buffer.from(body).copy(buf, 4 + 4 * dims.length);
  return buf;
}

function write(name: string, bytes: Uint8Array): string {
  const p = join(tmp, name);
  writeFileSync(p, bytes);
  return p;
}

function expectDataError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DataError);
  for (const part of parts) expect((err as Error).message).toMatch(part);
}

describe('writeIdx / readIdx round trip', () => {
  const dims = [3, 2, 4];
  const data = Uint8Array.from({ length: 24 }, (_, i) => (i * 37) % 256);

  it.each(['plain-idx3-ubyte', 'zipped-idx3-ubyte.gz'])('%s reads back the same dims and bytes', (name) => {
    const path = join(tmp, 'rt', name);
    writeIdx(path, dims, data);
    const back = readIdx(path);
    expect(back.dims).toEqual(dims);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });

  it('writes the documented header layout (raw) and gzip when the name ends in .gz', () => {
    writeIdx(join(tmp, 'h-idx3-ubyte'), dims, data);
    const raw = readFileSync(join(tmp, 'h-idx3-ubyte'));
    // 0x00000803, then 3, 2, 4 as big-endian uint32, then 24 data bytes
    expect(Array.from(raw.subarray(0, 16))).toEqual([0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4]);
    expect(raw.length).toBe(16 + 24);
    writeIdx(join(tmp, 'h-idx3-ubyte.gz'), dims, data);
    const gz = readFileSync(join(tmp, 'h-idx3-ubyte.gz'));
    expect([gz[0], gz[1]]).toEqual([0x1f, 0x8b]);
  });

  it('labels are 1-D with magic 0x00000801', () => {
    const enc = encodeIdx([5], Uint8Array.of(1, 2, 3, 4, 9));
    expect(Array.from(enc.subarray(0, 8))).toEqual([0, 0, 8, 1, 0, 0, 0, 5]);
    const p = write('labels-idx1-ubyte', enc);
    expect(readIdx(p, { ndim: 1 })).toEqual({ dims: [5], data: Uint8Array.of(1, 2, 3, 4, 9) });
  });

  it('refuses data whose length does not match dims', () => {
    expectDataError(() => writeIdx(join(tmp, 'bad'), [2, 3], new Uint8Array(5)), 'hold 6 values but data has 5');
    expectDataError(() => writeIdx(join(tmp, 'bad'), [], new Uint8Array(1)), 'number of dims');
    expectDataError(() => writeIdx(join(tmp, 'bad'), [2.5], new Uint8Array(2)), 'dims[0] = 2.5');
  });
});

describe('readIdx on corrupt files', () => {
  const body = [1, 2, 3, 4, 5, 6];
  const cases: { name: string; bytes: Uint8Array; opts?: { ndim: number | number[] }; msg: (string | RegExp)[] }[] = [
    {
      name: 'nonzero-magic',
      bytes: idxBytes(0x01000803, [2, 3], body),
      msg: ['bad magic number 0x01000803', 'first two bytes must be zero'],
    },
    { name: 'float-type', bytes: idxBytes(0x00000d02, [2, 3], body), msg: ['data type 0x0d (float32)', 'only 0x08'] },
    { name: 'signed-type', bytes: idxBytes(0x00000902, [2, 3], body), msg: ['0x09 (signed byte)'] },
    { name: 'zero-dims', bytes: idxBytes(0x00000800, [], body), msg: ['0 dimensions'] },
    {
      name: 'truncated-data',
      bytes: idxBytes(0x00000802, [2, 3], body.slice(0, 5)),
      msg: ['truncated', 'need 6 data bytes', 'only 5'],
    },
    {
      name: 'extra-bytes',
      bytes: idxBytes(0x00000802, [2, 3], [...body, 7, 8]),
      msg: ['2 extra bytes', 'need 6 data bytes'],
    },
    {
      name: 'truncated-header',
      bytes: idxBytes(0x00000803, [2, 3], []),
      msg: ['inside its header', 'need 16 header bytes', 'has 12'],
    },
    { name: 'too-short', bytes: Uint8Array.of(0, 0), msg: ['too short'] },
    {
      name: 'wrong-dims-count',
      bytes: idxBytes(0x00000802, [2, 3], body),
      opts: { ndim: 1 },
      msg: ['has 2 dimension', '1 expected'],
    },
    {
      name: 'wrong-dims-count-images',
      bytes: idxBytes(0x00000802, [2, 3], body),
      opts: { ndim: [3, 4] },
      msg: ['3 or 4 expected'],
    },
  ];
  it.each(cases)('$name → DataError naming the file and the fault', ({ name, bytes, opts, msg }) => {
    const p = write(name, bytes);
    expectDataError(() => readIdx(p, opts), p, ...msg);
    // the same fault inside gzip gives the same error
    const pz = write(name + '.gz', gzipSync(bytes));
    expectDataError(() => readIdx(pz, opts), pz, ...msg);
  });

  it('a truncated gzip stream and a missing file are DataErrors', () => {
    const gz = gzipSync(idxBytes(0x00000802, [2, 3], body));
    const p = write('cut.gz', gz.subarray(0, gz.length - 6));
    expectDataError(() => readIdx(p), p, 'not valid gzip');
    expectDataError(() => readIdx(join(tmp, 'nope')), 'cannot read IDX file', join(tmp, 'nope'));
  });
});
