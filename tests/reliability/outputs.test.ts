/**
 * Output sets written all or nothing (writeOutputsWhole), orphaned output temp files, and readers that read a
 * results file or a checkpoint while another process keeps replacing it: they never see a partial file.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../../src/checkpoint/format.js';
import { OutputError } from '../../src/util/errors.js';
import { claimOutputDir, withOutputDir } from '../../src/util/output-claim.js';
import { LOCK_FILE } from '../../src/util/run-lock.js';
import { removeOrphanOutputTemps, writeFileWhole, writeOutputsWhole } from '../../src/util/output-dir.js';
import { deadPid, ensureBuilt, root, snapshot, tmpDir } from './helpers.js';

describe('writeOutputsWhole', () => {
  it('renames every file into place only when all are written', () => {
    const dir = tmpDir('set');
    fs.mkdirSync(path.join(dir, 'figures'));
    const seen: string[][] = [];
    const r = writeOutputsWhole(dir, () => {
      writeFileWhole(path.join(dir, 'results.json'), '{"n":1}\n');
      writeFileWhole(path.join(dir, 'figures', 'a.svg'), '<svg/>');
      seen.push(fs.readdirSync(dir).sort(), fs.readdirSync(path.join(dir, 'figures')).sort());
      return 7;
    });
    expect(r).toBe(7);
    // while writing: only temp files, no results.json
    expect(seen[0]).toEqual(['.results.json.' + process.pid + '.tmp', 'figures']);
    expect(seen[1]).toEqual(['.a.svg.' + process.pid + '.tmp']);
    expect(fs.readFileSync(path.join(dir, 'results.json'), 'utf8')).toBe('{"n":1}\n');
    expect(fs.readdirSync(dir).sort()).toEqual(['figures', 'results.json']);
    expect(fs.readdirSync(path.join(dir, 'figures'))).toEqual(['a.svg']);
  });

  it('a write that fails half-way leaves the previous files and no temp file', () => {
    const dir = tmpDir('set-fail');
    fs.writeFileSync(path.join(dir, 'results.json'), 'old results');
    fs.writeFileSync(path.join(dir, 'table.tex'), 'old table');
    const before = snapshot(dir);
    expect(() =>
      writeOutputsWhole(dir, () => {
        writeFileWhole(path.join(dir, 'results.json'), 'new results');
        writeFileWhole(path.join(dir, 'no-such-folder', 'table.tex'), 'new table'); // fails: ENOENT
      }),
    ).toThrow(OutputError);
    expect(snapshot(dir)).toEqual(before);
  });

  it('a folder in the way of one file stops the set before any rename', () => {
    const dir = tmpDir('set-dir');
    fs.writeFileSync(path.join(dir, 'a.json'), 'old a');
    fs.mkdirSync(path.join(dir, 'b.json'));
    const before = snapshot(dir);
    expect(() =>
      writeOutputsWhole(dir, () => {
        writeFileWhole(path.join(dir, 'a.json'), 'new a');
        writeFileWhole(path.join(dir, 'b.json'), 'new b');
      }),
    ).toThrow(`cannot write ${path.join(dir, 'b.json')}: a folder of that name is in the way; nothing was written`);
    expect(snapshot(dir)).toEqual(before); // a.json not replaced, no temp file
    expect(fs.readdirSync(dir).sort()).toEqual(['a.json', 'b.json']);
  });

  it('the same file written twice in one set holds the second text', () => {
    const dir = tmpDir('set-twice');
    writeOutputsWhole(dir, () => {
      writeFileWhole(path.join(dir, 'a.json'), 'first');
      writeFileWhole(path.join(dir, 'a.json'), 'second');
    });
    expect(snapshot(dir)).toEqual(snapshot(writeDir('second')));
  });
});

function writeDir(text: string): string {
  const d = tmpDir('ref');
  fs.writeFileSync(path.join(d, 'a.json'), text);
  return d;
}

describe('withOutputDir', () => {
  it('holds the folder (a second claim is refused naming this process) and releases it after success or failure', async () => {
    const base = tmpDir('claim');
    const out = path.join(base, 'out');
    await withOutputDir(out, 'vmoe eval', async () => {
      expect(JSON.parse(fs.readFileSync(path.join(out, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
      expect(() => claimOutputDir(out, 'vmoe sweep')).toThrow(
        new RegExp(`^run folder ${out} is in use: locked by pid ${process.pid} on .*\\(vmoe eval, started`),
      );
      fs.writeFileSync(path.join(out, 'results.json'), '{}');
    });
    expect(fs.readdirSync(out)).toEqual(['results.json']); // lock gone, results kept
    // a failing command: the folder it created and left empty is removed, the error passes through
    const other = path.join(base, 'other');
    await expect(
      withOutputDir(other, 'vmoe eval', async () => {
        throw new Error('bad checkpoint');
      }),
    ).rejects.toThrow('bad checkpoint');
    expect(fs.existsSync(other)).toBe(false);
    // and the folder can be claimed again at once
    await withOutputDir(out, 'vmoe eval', async () => undefined);
    expect(fs.readdirSync(out)).toEqual(['results.json']);
  });
});

describe('removeOrphanOutputTemps', () => {
  it("removes dead processes' temp files (and folders they leave empty), keeps live ones and other files", () => {
    const dir = tmpDir('orphans');
    const dead = deadPid();
    fs.mkdirSync(path.join(dir, 'set-1'));
    fs.writeFileSync(path.join(dir, `.results.json.${dead}.tmp`), 'half');
    fs.writeFileSync(path.join(dir, 'set-1', `.images.gz.${dead}.tmp`), 'half');
    fs.writeFileSync(path.join(dir, `.results.csv.${process.pid}.tmp`), 'mine, being written');
    fs.writeFileSync(path.join(dir, `.checkpoint-3.vmoe.${dead}.00ab.tmp`), 'the checkpoint cleanup owns these');
    fs.writeFileSync(path.join(dir, 'results.json'), 'whole');
    const removed = removeOrphanOutputTemps(dir).sort();
    expect(removed).toEqual(
      [path.join(dir, `.results.json.${dead}.tmp`), path.join(dir, 'set-1', `.images.gz.${dead}.tmp`)].sort(),
    );
    expect(fs.readdirSync(dir).sort()).toEqual(
      [`.checkpoint-3.vmoe.${dead}.00ab.tmp`, `.results.csv.${process.pid}.tmp`, 'results.json'].sort(),
    );
  });
});

/** Runs `code` (an ES module body importing from dist/) in a separate node process. */
function nodeScript(code: string): { done: Promise<number | null>; stop(): void } {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: root, stdio: 'inherit' });
  return {
    done: new Promise((resolve) => child.on('close', (c) => resolve(c))),
    stop: () => child.kill('SIGTERM'),
  };
}

describe('signals after an output set is written', () => {
  beforeAll(ensureBuilt);

  it.each([
    { who: 'a supervised worker', outcome: 'is held off (exit 0)', env: '1', expected: { code: 0, signal: null } },
    { who: 'any other process', outcome: 'ends it', env: '', expected: { code: null, signal: 'SIGTERM' } },
  ])('$who: a SIGTERM after the set is written $outcome', async ({ env, expected }) => {
    const d = tmpDir('hold');
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { writeFileWhole, writeOutputsWhole } from './dist/util/output-dir.js';
         writeOutputsWhole(${JSON.stringify(d)}, () => writeFileWhole(${JSON.stringify(path.join(d, 'results.json'))}, '{}'));
         process.kill(process.pid, 'SIGTERM');
         setTimeout(() => process.exit(0), 500);`,
      ],
      { cwd: root, env: { ...process.env, VMOE_SUPERVISED_WORKER: env }, stdio: 'inherit' },
    );
    const got = await new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal })),
    );
    expect(got).toEqual(expected);
    expect(fs.readdirSync(d)).toEqual(['results.json']); // written whole either way
  });
});

describe('a worker whose supervisor was killed', () => {
  beforeAll(ensureBuilt);

  it('writes nothing and exits 137 with one line', async () => {
    const d = tmpDir('orphan-worker');
    fs.writeFileSync(path.join(d, 'results.json'), 'old');
    const before = snapshot(d);
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { writeFileWhole, writeOutputsWhole } from './dist/util/output-dir.js';
         writeOutputsWhole(${JSON.stringify(d)}, () => writeFileWhole(${JSON.stringify(path.join(d, 'results.json'))}, 'new'));`,
      ],
      // its parent is this test process, not the pid it is told its supervisor had
      { cwd: root, env: { ...process.env, VMOE_SUPERVISED_WORKER: '1', VMOE_SUPERVISOR_PID: String(deadPid()) } },
    );
    let stderr = '';
    child.stderr!.on('data', (b) => (stderr += String(b)));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(code).toBe(137);
    expect(stderr).toMatch(/^error: the supervisor \(pid \d+\) of this command was killed; nothing was written\n$/);
    expect(snapshot(d)).toEqual(before);
  });
});

describe('a reader while another process replaces the file', () => {
  beforeAll(ensureBuilt);

  it('results.json: every read parses and is one of the versions written, never half of one', async () => {
    const dir = tmpDir('reader-json');
    const file = path.join(dir, 'results.json');
    // two large versions (≈ 3 MB each) that differ everywhere, so a torn read cannot parse as either
    const version = (v: number) => JSON.stringify({ v, xs: Array.from({ length: 300_000 }, (_, i) => i * v) });
    fs.writeFileSync(file, version(1));
    const writer = nodeScript(`
      import { writeFileWhole } from './dist/util/output-dir.js';
      const version = ${version.toString()};
      const a = version(1), b = version(2);
      for (let i = 0; i < 400; i++) writeFileWhole(${JSON.stringify(file)}, i % 2 ? a : b);
    `);
    let reads = 0;
    const seen = new Set<number>();
    let finished = false;
    void writer.done.then(() => (finished = true));
    while (!finished) {
      const v = (JSON.parse(fs.readFileSync(file, 'utf8')) as { v: number }).v;
      seen.add(v);
      reads++;
      await new Promise((r) => setImmediate(r));
    }
    expect(await writer.done).toBe(0);
    expect(reads).toBeGreaterThan(20);
    expect([...seen].every((v) => v === 1 || v === 2)).toBe(true);
    expect(seen.size).toBe(2); // the reader did see the file replaced
    expect(fs.readdirSync(dir)).toEqual(['results.json']);
  });

  it('a checkpoint: every load passes its checksum while a writer keeps replacing it', async () => {
    const dir = tmpDir('reader-ck');
    const tensors = (v: number) => ({
      'params/w': { dtype: 'float32' as const, shape: [512, 512], data: new Float32Array(512 * 512).fill(v) },
    });
    const file = saveCheckpoint(dir, { meta: { step: 5 }, tensors: tensors(1) });
    const writer = nodeScript(`
      import { saveCheckpoint } from './dist/checkpoint/format.js';
      for (let i = 0; i < 150; i++)
        saveCheckpoint(${JSON.stringify(dir)}, { meta: { step: 5 }, tensors: { 'params/w': { dtype: 'float32', shape: [512, 512], data: new Float32Array(512 * 512).fill(i % 2 ? 1 : 2) } } });
    `);
    let finished = false;
    void writer.done.then(() => (finished = true));
    const seen = new Set<number>();
    let loads = 0;
    while (!finished) {
      const ck = loadCheckpoint(file); // throws on a torn file: size, header and SHA-256 are checked
      const w = ck.tensors['params/w']!.data;
      expect(w[0]).toBe(w[w.length - 1]);
      seen.add(w[0]!);
      loads++;
      await new Promise((r) => setImmediate(r));
    }
    expect(await writer.done).toBe(0);
    expect(loads).toBeGreaterThan(10);
    expect(seen.size).toBe(2);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
