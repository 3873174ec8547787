/**
 * IDX files read through a file handle in chunks (readFileSync stops at 2 GiB): the chunked path with a lowered
 * chunk size against the whole-bytes parser, and files over 2 GiB as sparse files — a wrong size is refused from
 * the header without reading the data, and (where the machine has the memory) a 2.1 GB file is read whole.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeIdx, parseIdx, readIdx } from '../../src/data/idx.js';
import { DataError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { tmpDir } from './helpers.js';

const dir = tmpDir('idx-large');

/** IDX header bytes for unsigned-byte data of `dims`. */
function header(dims: number[]): Buffer {
  const b = Buffer.alloc(4 + 4 * dims.length);
  b.writeUInt32BE((0x08 << 8) | dims.length, 0);
  dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
  return b;
}

/** A sparse file: `head` at offset 0, `size` bytes in all (holes read as zeros, no disk used). */
function sparse(name: string, head: Uint8Array, size: number): string {
  const p = path.join(dir, name);
  const fd = fs.openSync(p, 'w');
  fs.writeSync(fd, head, 0, head.length, 0);
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
  return p;
}

describe('readIdx in chunks', () => {
  const rng = new Rng(3);
  const data = Uint8Array.from({ length: 7 * 9 * 11 }, () => Math.floor(rng.uniform() * 256));
  const bytes = encodeIdx([7, 9, 11], data);
  const file = path.join(dir, 'small-idx3-ubyte');
  fs.writeFileSync(file, bytes);

  it.each([1, 7, 64, 1000, 1 << 20])('chunks of %i bytes give what parsing the whole bytes gives', (chunkBytes) => {
    const got = readIdx(file, { chunkBytes });
    expect(got.dims).toEqual([7, 9, 11]);
    expect(got.data).toEqual(data);
    expect(got).toEqual(parseIdx(new Uint8Array(bytes), file));
  });

  it('a gzip file is read in chunks too', () => {
    const gz = path.join(dir, 'small-idx3-ubyte.gz');
    fs.writeFileSync(gz, gzipSync(bytes));
    expect(readIdx(gz, { chunkBytes: 5 }).data).toEqual(data);
  });

  it('truncated, oversized and header-truncated files name the file and the sizes, as before', () => {
    const cut = path.join(dir, 'cut');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 5));
    expect(() => readIdx(cut, { chunkBytes: 3 })).toThrow(
      new DataError(
        `IDX file ${cut} is truncated: header dims [7, 9, 11] need 693 data bytes but only 688 follow the 16-byte header`,
      ),
    );
    const long = path.join(dir, 'long');
    fs.writeFileSync(long, Buffer.concat([bytes, Buffer.alloc(2)]));
    expect(() => readIdx(long)).toThrow(/has 2 extra bytes/);
    const headCut = path.join(dir, 'head-cut');
    fs.writeFileSync(headCut, bytes.subarray(0, 10));
    expect(() => readIdx(headCut)).toThrow(
      /truncated inside its header: 3 dimensions need 16 header bytes, file has 10/,
    );
    const tiny = path.join(dir, 'tiny');
    fs.writeFileSync(tiny, bytes.subarray(0, 2));
    expect(() => readIdx(tiny)).toThrow(/too short \(2 bytes\)/);
    expect(() => readIdx(dir)).toThrow(new RegExp(`cannot read IDX file ${dir}: .*EISDIR`));
  });
});

describe('IDX files over 2 GiB (sparse files)', () => {
  const GB = 2 ** 30;

  it('a 3 GB file whose header does not match its size is refused from the header, without reading the data', () => {
    const h = header([10, 28, 28]);
    const p = sparse('big-wrong-idx3-ubyte', h, 3 * GB);
    const t0 = performance.now();
    expect(() => readIdx(p)).toThrow(
      new DataError(
        `IDX file ${p} has ${3 * GB - h.length - 7840} extra bytes: header dims [10, 28, 28] need 7840 data bytes but ${3 * GB - h.length} follow the 16-byte header`,
      ),
    );
    const q = sparse('big-short-idx1-ubyte', header([4_000_000_000]), 3 * GB);
    expect(() => readIdx(q)).toThrow(/is truncated: header dims \[4000000000\] need 4000000000 data bytes but only/);
    expect(performance.now() - t0).toBeLessThan(2000); // 3 GB were not read
  });

  it('a 2.1 GB IDX file is read whole through chunked reads (skipped without 6 GB of free memory)', (ctx) => {
    if (os.freemem() < 6 * GB) {
      console.warn(`skipped: ${(os.freemem() / GB).toFixed(1)} GB free memory, 6 GB wanted for a 2.1 GB array`);
      ctx.skip();
    }
    const n = 2 * GB + 4096; // past the 2 GiB where readFileSync gives up
    const h = header([n]);
    const p = sparse('big-idx1-ubyte', h, h.length + n);
    // known bytes at the start, across the 2 GiB boundary and at the very end
    const marks: [number, number][] = [
      [0, 11],
      [2 * GB - 1, 22],
      [2 * GB, 33],
      [n - 1, 44],
    ];
    const fd = fs.openSync(p, 'r+');
    for (const [i, v] of marks) fs.writeSync(fd, Uint8Array.of(v), 0, 1, h.length + i);
    fs.closeSync(fd);
    expect(() => fs.readFileSync(p)).toThrow(/greater than 2 GiB|ERR_FS_FILE_TOO_LARGE/); // why chunks are needed
    const got = readIdx(p);
    expect(got.dims).toEqual([n]);
    expect(got.data.length).toBe(n);
    for (const [i, v] of marks) expect(got.data[i]).toBe(v);
    expect(got.data[12345]).toBe(0);
    fs.rmSync(p);
  }, 120_000);
});
