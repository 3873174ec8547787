import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CHECKPOINT_FORMAT_VERSION,
  type CheckpointContent,
  type CheckpointFs,
  checkpointHash,
  compareShapes,
  latestCheckpoint,
  loadCheckpoint,
  type NamedArray,
  saveCheckpoint,
} from '../../src/checkpoint/format.js';
import { Rng } from '../../src/util/rng.js';
import { CheckpointError } from '../../src/util/errors.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-ckpt-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest();

function f32(shape: number[], values: number[]): NamedArray {
  return { dtype: 'float32', shape, data: Float32Array.from(values) };
}
function i32(shape: number[], values: number[]): NamedArray {
  return { dtype: 'int32', shape, data: Int32Array.from(values) };
}

/** Bitwise equality of typed arrays (NaN payloads and -0 included). */
function expectSameBits(loaded: NamedArray | undefined, expected: NamedArray): void {
  expect(loaded, 'tensor missing from the loaded checkpoint').toBeDefined();
  const actual = loaded!;
  expect(actual.dtype).toBe(expected.dtype);
  expect(actual.shape).toEqual(expected.shape);
  expect(actual.data).toBeInstanceOf(expected.dtype === 'float32' ? Float32Array : Int32Array);
  expect(actual.data.length).toBe(expected.data.length);
  const a = new Uint32Array(actual.data.buffer, actual.data.byteOffset, actual.data.length);
  const b = new Uint32Array(expected.data.buffer, expected.data.byteOffset, expected.data.length);
  expect(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
  ).toBe(true);
}

function smallContent(step = 7): CheckpointContent {
  return {
    meta: { step, config: { hidden: 8, name: 'tiny' }, rng: [1, 2, 3, 4] },
    tensors: {
      'params/block0/attn/q/kernel': f32([2, 3], [0.5, -1.25, 3, 1e-30, -0, 7]),
      'params/head/bias': f32([2], [0.1, 0.2]),
      'opt/count': i32([], [42]),
    },
  };
}

/**
 * Builds a checkpoint file straight from the documented layout (independently of saveCheckpoint),
 * with a correct trailer, so header validation can be tested on files whose checksum is intact.
 */
function craftFile(header: unknown, payload: Uint8Array, version = 1, headerText?: string): Buffer {
  const json = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(16);
  prefix.write('VMOECKPT', 0, 'ascii');
  prefix.writeUInt32LE(version, 8);
  prefix.writeUInt32LE(json.length, 12);
  const pad = Buffer.alloc((4 - ((16 + json.length) % 4)) % 4);
  const body = Buffer.concat([prefix, json, pad, payload]);
  return Buffer.concat([body, sha256(body)]);
}

function writeCrafted(bytes: Buffer, name = 'checkpoint-1.vmoe'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

function loadError(file: string): CheckpointError {
  try {
    loadCheckpoint(file);
  } catch (err) {
    expect(err).toBeInstanceOf(CheckpointError);
    return err as CheckpointError;
  }
  throw new Error(`expected loading ${file} to fail`);
}

describe('round trip', () => {
  it('restores meta and every tensor bit-exactly, including special floats, scalars and empty tensors', () => {
    const content: CheckpointContent = {
      meta: {
        step: 12,
        config: { layers: [1, 3], moe: { E: 8, K: 2 } },
        rng: [4294967295, 0, 1, 2],
        engine: 'cpu',
        note: 'ü→✓',
      },
      tensors: {
        'params/a/b/c/kernel': f32([2, 2, 2], [1, -1, 0.1, -0, Infinity, -Infinity, NaN, 1.401298464324817e-45]),
        'params/scalar': f32([], [3.5]),
        'params/empty': f32([0, 5], []),
        'opt/ints': i32([4], [2147483647, -2147483648, 0, -1]),
        'opt/empty-int': i32([3, 0], []),
        'opt/int-scalar': i32([], [-7]),
      },
    };
    const file = saveCheckpoint(dir, content);
    expect(file).toBe(path.join(dir, 'checkpoint-12.vmoe'));
    const loaded = loadCheckpoint(file);
    expect(loaded.meta).toEqual(content.meta);
    expect(Object.keys(loaded.tensors).sort()).toEqual(Object.keys(content.tensors).sort());
    for (const [name, t] of Object.entries(content.tensors)) expectSameBits(loaded.tensors[name], t);
    expect(loaded.path).toBe(file);
    expect(loaded.formatVersion).toBe(CHECKPOINT_FORMAT_VERSION);
  });

  it('round-trips a 1e6-element tensor of seeded normals exactly', () => {
    const rng = new Rng(123);
    const big = new Float32Array(1_000_000);
    for (let i = 0; i < big.length; i++) big[i] = rng.normal();
    const labels = new Int32Array(1000);
    for (let i = 0; i < labels.length; i++) labels[i] = rng.int(1 << 30) - (1 << 29);
    const content: CheckpointContent = {
      meta: { step: 3 },
      tensors: {
        'params/big': { dtype: 'float32', shape: [1000, 1000], data: big },
        'x/labels': { dtype: 'int32', shape: [1000], data: labels },
      },
    };
    const loaded = loadCheckpoint(saveCheckpoint(dir, content));
    expectSameBits(loaded.tensors['params/big'], content.tensors['params/big']!);
    expectSameBits(loaded.tensors['x/labels'], content.tensors['x/labels']!);
  });

  it('saves typed-array views at a byte offset correctly', () => {
    const backing = Float32Array.from([9, 9, 1, 2, 3, 9]);
    const view = backing.subarray(2, 5);
    const loaded = loadCheckpoint(
      saveCheckpoint(dir, { meta: {}, tensors: { v: { dtype: 'float32', shape: [3], data: view } } }),
    );
    expect(Array.from(loaded.tensors.v!.data)).toEqual([1, 2, 3]);
  });

  it('stores a tensor named "__proto__" as data', () => {
    const file = writeCrafted(
      craftFile(
        {
          meta: {},
          payloadByteLength: 4,
          tensors: [{ name: '__proto__', dtype: 'int32', shape: [1], offset: 0, byteLength: 4 }],
        },
        Buffer.from(Int32Array.from([5]).buffer),
      ),
    );
    const loaded = loadCheckpoint(file);
    expect(Object.keys(loaded.tensors)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(loaded.tensors)).toBe(Object.prototype);
  });

  it('names the file by meta.step, or 0 without one', () => {
    expect(path.basename(saveCheckpoint(dir, { meta: {}, tensors: {} }))).toBe('checkpoint-0.vmoe');
    expect(path.basename(saveCheckpoint(dir, { meta: { step: 1234 }, tensors: {} }))).toBe('checkpoint-1234.vmoe');
  });

  it('produces the same bytes whatever the insertion order of tensors', () => {
    const a = smallContent();
    const reversed: CheckpointContent = {
      meta: a.meta,
      tensors: Object.fromEntries(Object.entries(a.tensors).reverse()),
    };
    const h1 = checkpointHash(saveCheckpoint(path.join(dir, 'a'), a));
    const h2 = checkpointHash(saveCheckpoint(path.join(dir, 'b'), reversed));
    expect(h1).toBe(h2);
  });
});

describe('file layout (as documented at the top of checkpoint.ts)', () => {
  it('has magic, version, JSON header, 4-byte-aligned little-endian payload and a SHA-256 trailer', () => {
    const file = saveCheckpoint(dir, smallContent());
    const bytes = fs.readFileSync(file);
    expect(bytes.subarray(0, 8).toString('ascii')).toBe('VMOECKPT');
    expect(bytes.readUInt32LE(8)).toBe(1);
    const headerLength = bytes.readUInt32LE(12);
    const header = JSON.parse(bytes.subarray(16, 16 + headerLength).toString('utf8'));
    expect(header.meta).toEqual(smallContent().meta);
    const payloadStart = Math.ceil((16 + headerLength) / 4) * 4;
    // 6 + 2 + 1 elements of 4 bytes
    expect(header.payloadByteLength).toBe(36);
    expect(bytes.length).toBe(payloadStart + 36 + 32);
    expect(bytes.subarray(bytes.length - 32).equals(sha256(bytes.subarray(0, bytes.length - 32)))).toBe(true);
    const q = header.tensors.find((t: { name: string }) => t.name === 'params/block0/attn/q/kernel');
    expect(q).toMatchObject({ dtype: 'float32', shape: [2, 3], byteLength: 24 });
    expect(q.offset % 4).toBe(0);
    const start = payloadStart + q.offset;
    expect(bytes.readFloatLE(start)).toBe(0.5);
    expect(bytes.readFloatLE(start + 4)).toBe(-1.25);
    const count = header.tensors.find((t: { name: string }) => t.name === 'opt/count');
    expect(bytes.readInt32LE(payloadStart + count.offset)).toBe(42);
  });

  it('loads a file crafted by hand from the documented layout', () => {
    const payload = Buffer.alloc(12);
    payload.writeFloatLE(1.5, 0);
    payload.writeFloatLE(-2, 4);
    payload.writeInt32LE(-9, 8);
    const file = writeCrafted(
      craftFile(
        {
          meta: { step: 1, hello: 'x' },
          payloadByteLength: 12,
          tensors: [
            { name: 'p/w', dtype: 'float32', shape: [2], offset: 0, byteLength: 8 },
            { name: 'p/n', dtype: 'int32', shape: [], offset: 8, byteLength: 4 },
          ],
        },
        payload,
      ),
    );
    const loaded = loadCheckpoint(file);
    expect(loaded.meta).toEqual({ step: 1, hello: 'x' });
    expect(Array.from(loaded.tensors['p/w']!.data)).toEqual([1.5, -2]);
    expect(Array.from(loaded.tensors['p/n']!.data)).toEqual([-9]);
  });
});

describe('hashes', () => {
  it('sha256 and checkpointHash are the SHA-256 of the file bytes, for a file or its directory', () => {
    const file = saveCheckpoint(dir, smallContent());
    const expected = sha256(fs.readFileSync(file)).toString('hex');
    expect(loadCheckpoint(file).sha256).toBe(expected);
    expect(checkpointHash(file)).toBe(expected);
    expect(checkpointHash(dir)).toBe(expected);
  });

  it('differs when a single parameter changes', () => {
    const a = smallContent();
    const b = smallContent();
    (b.tensors['params/head/bias']!.data as Float32Array)[1] = 0.25;
    expect(checkpointHash(saveCheckpoint(path.join(dir, 'a'), a))).not.toBe(
      checkpointHash(saveCheckpoint(path.join(dir, 'b'), b)),
    );
  });
});

describe('corruption is refused', () => {
  it('a flipped bit at every byte position (header, payload, trailer) gives a checksum/corruption error', () => {
    const file = saveCheckpoint(dir, smallContent());
    const good = fs.readFileSync(file);
    const bad = path.join(dir, 'bad.vmoe');
    for (let i = 0; i < good.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const copy = Buffer.from(good);
        copy[i]! ^= bit;
        fs.writeFileSync(bad, copy);
        const err = loadError(bad);
        expect(err.message, `byte ${i}`).toMatch(/checksum|corrupt/);
        expect(err.message).toContain(bad);
      }
    }
  });

  it('the checksum message says what to do', () => {
    const file = saveCheckpoint(dir, smallContent());
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 40]! ^= 0xff;
    fs.writeFileSync(file, bytes);
    expect(loadError(file).message).toMatch(
      /checksum mismatch.*corrupt or was truncated.*delete it to resume from the previous checkpoint/,
    );
  });

  it('every truncation (0 .. size-1 bytes) is refused', () => {
    const good = fs.readFileSync(saveCheckpoint(dir, smallContent()));
    const bad = path.join(dir, 'truncated.vmoe');
    for (let n = 0; n < good.length; n++) {
      fs.writeFileSync(bad, good.subarray(0, n));
      expect(loadError(bad).message, `length ${n}`).toMatch(/corrupt|truncated/);
    }
  });

  it('trailing garbage is refused', () => {
    const file = saveCheckpoint(dir, smallContent());
    fs.appendFileSync(file, Buffer.from([1, 2, 3, 4]));
    expect(loadError(file).message).toMatch(/checksum|corrupt/);
  });

  it('wrong magic says it is not a vmoe checkpoint', () => {
    const file = path.join(dir, 'weights.bin');
    fs.writeFileSync(file, Buffer.concat([Buffer.from('PK\u0003\u0004notours'), Buffer.alloc(100)]));
    const err = loadError(file);
    expect(err.message).toMatch(/not a vmoe checkpoint/);
    expect(err.message).toContain(file);
  });

  it('an intact file with a newer format version asks to upgrade', () => {
    const good = fs.readFileSync(saveCheckpoint(dir, smallContent()));
    const body = Buffer.from(good.subarray(0, good.length - 32));
    body.writeUInt32LE(CHECKPOINT_FORMAT_VERSION + 1, 8);
    const file = writeCrafted(Buffer.concat([body, sha256(body)]), 'future.vmoe');
    const err = loadError(file);
    expect(err.message).toMatch(new RegExp(`format version ${CHECKPOINT_FORMAT_VERSION + 1} is newer.*upgrade`));
  });

  it('version 0 is refused', () => {
    const file = writeCrafted(craftFile({ meta: {}, payloadByteLength: 0, tensors: [] }, Buffer.alloc(0), 0));
    expect(loadError(file).message).toMatch(/unknown format version 0/);
  });

  const entry = (over: Record<string, unknown> = {}) => ({
    name: 'p/w',
    dtype: 'float32',
    shape: [2],
    offset: 0,
    byteLength: 8,
    ...over,
  });
  // Each header is internally wrong while the checksum is intact; expected message fragment.
  const badHeaders: [string, unknown, number, RegExp][] = [
    [
      'duplicate names',
      { meta: {}, payloadByteLength: 16, tensors: [entry(), entry({ offset: 8 })] },
      16,
      /"p\/w" appears twice/,
    ],
    [
      'unknown dtype',
      { meta: {}, payloadByteLength: 8, tensors: [entry({ dtype: 'float16' })] },
      8,
      /unknown dtype "float16"/,
    ],
    [
      'byteLength ≠ product(shape)·4',
      { meta: {}, payloadByteLength: 8, tensors: [entry({ shape: [3] })] },
      8,
      /byteLength 8 but shape \[3\] needs 12/,
    ],
    [
      'offset beyond payload',
      { meta: {}, payloadByteLength: 8, tensors: [entry({ offset: 4 })] },
      8,
      /runs past the 8-byte payload/,
    ],
    ['misaligned offset', { meta: {}, payloadByteLength: 12, tensors: [entry({ offset: 2 })] }, 12, /invalid offset 2/],
    [
      'negative dimension',
      { meta: {}, payloadByteLength: 8, tensors: [entry({ shape: [-2] })] },
      8,
      /invalid shape \[-2\]/,
    ],
    [
      'overlapping tensors',
      { meta: {}, payloadByteLength: 12, tensors: [entry(), entry({ name: 'p/v', offset: 4 })] },
      12,
      /overlap/,
    ],
    [
      'payload length mismatch',
      { meta: {}, payloadByteLength: 4, tensors: [] },
      8,
      /payload has 4 bytes but the file holds 8/,
    ],
    ['meta not an object', { meta: [1], payloadByteLength: 0, tensors: [] }, 0, /meta is not a JSON object/],
    ['tensors not an array', { meta: {}, payloadByteLength: 0, tensors: {} }, 0, /tensors is not an array/],
    [
      'empty name',
      { meta: {}, payloadByteLength: 8, tensors: [entry({ name: '' })] },
      8,
      /name is not a non-empty string/,
    ],
  ];
  it.each(badHeaders)('header with %s is refused', (_label, header, payloadBytes, message) => {
    const file = writeCrafted(craftFile(header, Buffer.alloc(payloadBytes)));
    const err = loadError(file);
    expect(err.message).toMatch(message);
    expect(err.message).toContain(file);
  });

  it('a header that is not JSON is refused', () => {
    const file = writeCrafted(craftFile(null, Buffer.alloc(0), 1, '{"meta": {'));
    expect(loadError(file).message).toMatch(/header is not valid JSON/);
  });

  it('missing paths and empty directories give clear errors', () => {
    expect(loadError(path.join(dir, 'nope.vmoe')).message).toMatch(/does not exist/);
    expect(loadError(dir).message).toMatch(/no checkpoint files .* in directory/);
  });
});

describe('atomic writes', () => {
  /** A file system whose writes fail once `limit` bytes have been written. */
  function failingWriter(limit: number): Partial<CheckpointFs> {
    let written = 0;
    return {
      writeSync: (fd, data) => {
        const allowed = Math.min(data.length, limit - written);
        if (allowed <= 0) throw new Error('ENOSPC: no space left on device (simulated)');
        const n = fs.writeSync(fd, data.subarray(0, allowed));
        written += n;
        return n;
      },
    };
  }

  function previousThenFailedSave(failure: Partial<CheckpointFs>): { before: Buffer; file: string } {
    const file = saveCheckpoint(dir, smallContent(5));
    const before = fs.readFileSync(file);
    const replacement = smallContent(5);
    (replacement.tensors['params/head/bias']!.data as Float32Array)[0] = 99;
    expect(() => saveCheckpoint(dir, replacement, { fs: failure })).toThrow(CheckpointError);
    return { before, file };
  }

  // size of the file smallContent(5) produces, measured once in a scratch directory
  const size = (() => {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vmoe-ckpt-size-'));
    try {
      return fs.statSync(saveCheckpoint(scratch, smallContent(5))).size;
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  })();
  it.each([0, 1, 16, Math.floor(size / 2), size - 33, size - 1])(
    'a write failing after %i bytes leaves the previous checkpoint intact and no temp file',
    (limit) => {
      const { before, file } = previousThenFailedSave(failingWriter(limit));
      expect(fs.readFileSync(file).equals(before)).toBe(true);
      expect(loadCheckpoint(dir).tensors['params/head/bias']!.data[0]).toBeCloseTo(0.1, 6);
      expect(fs.readdirSync(dir)).toEqual(['checkpoint-5.vmoe']);
    },
  );

  it('a failing fsync or rename leaves the previous checkpoint intact', () => {
    for (const failure of [
      {
        fsyncSync: () => {
          throw new Error('EIO (simulated)');
        },
      },
      {
        renameSync: () => {
          throw new Error('EXDEV (simulated)');
        },
      },
    ] as Partial<CheckpointFs>[]) {
      const { before, file } = previousThenFailedSave(failure);
      expect(fs.readFileSync(file).equals(before)).toBe(true);
      expect(fs.readdirSync(dir)).toEqual(['checkpoint-5.vmoe']);
    }
  });

  it('a crash with no cleanup leaves only a hidden temp file that is never taken for a checkpoint', () => {
    const file = saveCheckpoint(dir, smallContent(5));
    const before = fs.readFileSync(file);
    const crash = {
      ...failingWriter(50),
      unlinkSync: () => {
        throw new Error('process died (simulated)');
      },
    };
    expect(() => saveCheckpoint(dir, smallContent(6), { fs: crash })).toThrow(
      /could not write checkpoint .*checkpoint-6\.vmoe.*unchanged/,
    );
    const leftovers = fs.readdirSync(dir).filter((n) => n !== 'checkpoint-5.vmoe');
    expect(leftovers).toHaveLength(1);
    expect(leftovers[0]).toMatch(/^\.checkpoint-6\.vmoe\..*\.tmp$/);
    expect(fs.statSync(path.join(dir, leftovers[0]!)).size).toBe(50);
    expect(latestCheckpoint(dir)).toBe(file);
    expect(loadCheckpoint(dir).sha256).toBe(sha256(before).toString('hex'));
  });

  it('saving over an existing step replaces it whole', () => {
    saveCheckpoint(dir, smallContent(5));
    const replacement = smallContent(5);
    (replacement.tensors['params/head/bias']!.data as Float32Array)[0] = 99;
    saveCheckpoint(dir, replacement);
    expect(loadCheckpoint(dir).tensors['params/head/bias']!.data[0]).toBe(99);
    expect(fs.readdirSync(dir)).toEqual(['checkpoint-5.vmoe']);
  });
});

describe('retention and latest', () => {
  const stepsIn = (d: string) =>
    fs
      .readdirSync(d)
      .map((n) => /^checkpoint-(\d+)\.vmoe$/.exec(n)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b);

  it.each([
    [undefined, [3, 4, 5]],
    [1, [5]],
    [2, [4, 5]],
    [10, [1, 2, 3, 4, 5]],
    [Infinity, [1, 2, 3, 4, 5]],
  ] as [number | undefined, number[]][])('keep=%s after saving steps 1..5 leaves %j', (keep, expected) => {
    for (let step = 1; step <= 5; step++) saveCheckpoint(dir, smallContent(step), keep === undefined ? {} : { keep });
    expect(stepsIn(dir)).toEqual(expected);
  });

  it('the checkpoint just written survives retention even when older steps are higher', () => {
    saveCheckpoint(dir, smallContent(10), { keep: 2 });
    saveCheckpoint(dir, smallContent(20), { keep: 2 });
    saveCheckpoint(dir, smallContent(5), { keep: 2 });
    expect(stepsIn(dir)).toEqual([5, 20]);
  });

  it('retention leaves other files alone', () => {
    fs.writeFileSync(path.join(dir, 'metrics.jsonl'), '{}\n');
    fs.writeFileSync(path.join(dir, 'checkpoint.json'), '{}');
    for (let step = 1; step <= 3; step++) saveCheckpoint(dir, smallContent(step), { keep: 1 });
    expect(fs.readdirSync(dir).sort()).toEqual(['checkpoint-3.vmoe', 'checkpoint.json', 'metrics.jsonl']);
  });

  it.each([0, -1, 1.5, NaN])('keep=%s is refused', (keep) => {
    expect(() => saveCheckpoint(dir, smallContent(), { keep })).toThrow(/keep must be an integer >= 1/);
  });

  it('latestCheckpoint picks the highest step numerically and ignores other names', () => {
    for (const step of [2, 10, 9]) saveCheckpoint(dir, smallContent(step), { keep: Infinity });
    fs.writeFileSync(path.join(dir, 'checkpoint-abc.vmoe'), 'x');
    fs.writeFileSync(path.join(dir, '.checkpoint-99.vmoe.1.ab.tmp'), 'x');
    fs.writeFileSync(path.join(dir, 'checkpoint-100.vmoe.bak'), 'x');
    expect(latestCheckpoint(dir)).toBe(path.join(dir, 'checkpoint-10.vmoe'));
    expect(loadCheckpoint(dir).meta.step).toBe(10);
  });

  it('latestCheckpoint is null for an empty or missing directory', () => {
    expect(latestCheckpoint(dir)).toBeNull();
    expect(latestCheckpoint(path.join(dir, 'missing'))).toBeNull();
  });

  it('saveCheckpoint creates the directory', () => {
    const nested = path.join(dir, 'runs', 'x');
    expect(saveCheckpoint(nested, smallContent(1))).toBe(path.join(nested, 'checkpoint-1.vmoe'));
  });
});

describe('save-time validation', () => {
  const bad: [string, CheckpointContent, RegExp][] = [
    [
      'dtype/data mismatch',
      { meta: {}, tensors: { w: { dtype: 'int32', shape: [1], data: new Float32Array(1) } } },
      /"w": dtype is int32 but data is a Float32Array/,
    ],
    [
      'length ≠ product(shape)',
      { meta: {}, tensors: { w: f32([2, 2], [1, 2, 3]) } },
      /"w": shape \[2, 2\] has 4 elements but data has 3/,
    ],
    [
      'fractional dimension',
      { meta: {}, tensors: { w: f32([1.5], [1]) } },
      /"w": shape must be an array of non-negative integers/,
    ],
    [
      'unknown dtype',
      { meta: {}, tensors: { w: { dtype: 'float64' as 'float32', shape: [1], data: new Float32Array(1) } } },
      /dtype must be 'float32' or 'int32'/,
    ],
    ['negative step', { meta: { step: -1 }, tensors: {} }, /meta.step must be a non-negative integer/],
    ['fractional step', { meta: { step: 2.5 }, tensors: {} }, /meta.step must be a non-negative integer/],
    ['string step', { meta: { step: '3' }, tensors: {} }, /meta.step must be a non-negative integer/],
    ['BigInt in meta', { meta: { big: 1n }, tensors: {} }, /meta is not JSON-serialisable/],
  ];
  it.each(bad)('%s is refused before anything is written', (_label, content, message) => {
    expect(() => saveCheckpoint(dir, content)).toThrow(message);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('compareShapes', () => {
  const ckpt = (shapes: Record<string, number[]>, extra: Record<string, number[]> = {}): CheckpointContent => ({
    meta: {},
    tensors: Object.fromEntries(
      Object.entries({ ...shapes, ...extra }).map(([name, shape]) => [
        name,
        { dtype: 'float32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) } as NamedArray,
      ]),
    ),
  });
  const model = { 'embed/kernel': [4, 4, 1, 8], 'head/kernel': [8, 10], 'head/bias': [10] };
  const message = (fn: () => void): string => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(CheckpointError);
      return (err as Error).message;
    }
    throw new Error('expected compareShapes to throw');
  };

  it('accepts a matching checkpoint and ignores tensors outside the prefix', () => {
    const c = ckpt(
      { 'params/embed/kernel': [4, 4, 1, 8], 'params/head/kernel': [8, 10], 'params/head/bias': [10] },
      { 'opt/m/head/bias': [3] },
    );
    expect(() => compareShapes(model, c)).not.toThrow();
  });

  it('lists missing, unexpected and mis-shaped tensors with their shapes', () => {
    const c = ckpt({
      'params/embed/kernel': [4, 4, 1, 8],
      'params/head/kernel': [8, 100],
      'params/pos/embedding': [1, 49, 8],
    });
    const text = message(() => compareShapes(model, { ...c, path: '/runs/x/checkpoint-3.vmoe' } as CheckpointContent));
    expect(text).toContain(
      'checkpoint /runs/x/checkpoint-3.vmoe does not match the model config: 1 missing, 1 unexpected, 1 mis-shaped',
    );
    expect(text).toMatch(/missing[^\n]*:\n\s+params\/head\/bias \[10\]/);
    expect(text).toMatch(/unexpected[^\n]*:\n\s+params\/pos\/embedding \[1, 49, 8\]/);
    expect(text).toMatch(/mis-shaped:\n\s+params\/head\/kernel: expected \[8, 10\], checkpoint has \[8, 100\]/);
    expect(text).toMatch(/meta\.config/);
  });

  it('uses a custom prefix', () => {
    const c = ckpt({ 'opt/m/head/bias': [9] });
    expect(message(() => compareShapes({ 'head/bias': [10] }, c, 'opt/m/'))).toMatch(
      /opt\/m\/head\/bias: expected \[10\], checkpoint has \[9\]/,
    );
  });

  it('lists at most 10 of each kind and counts the rest', () => {
    const expected = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`w${String(i).padStart(2, '0')}`, [2]]));
    const text = message(() => compareShapes(expected, ckpt({})));
    expect(text).toContain('15 missing, 0 unexpected, 0 mis-shaped');
    expect(text).toContain('params/w09 [2]');
    expect(text).not.toContain('params/w10');
    expect(text).toContain('… and 5 more');
    expect(text).not.toMatch(/unexpected \(/);
  });

  it('treats a scalar and a [1] tensor as different shapes', () => {
    expect(message(() => compareShapes({ s: [] }, ckpt({ 'params/s': [1] })))).toMatch(
      /params\/s: expected \[\], checkpoint has \[1\]/,
    );
  });
});
