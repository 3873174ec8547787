import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';
import { initEngine } from '../../src/engine/index.js';
import { buildThreadScripts, enableWasmThreads, wasmThreadsDisabledReason } from '../../src/engine/wasm-threads.js';
import { Rng } from '../../src/util/rng.js';

const require = createRequire(import.meta.url);
const ROOT = path.resolve(__dirname, '../..');

// ---------- plain float64 references ----------

type Mat = number[][];
const matmul = (a: Mat, b: Mat): Mat =>
  a.map((row) => b[0]!.map((_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const transpose = (a: Mat): Mat => a[0]!.map((_, j) => a.map((r) => r[j]!));
const randMat = (rng: Rng, r: number, c: number): Mat =>
  Array.from({ length: r }, () => Array.from({ length: c }, () => rng.normal()));

/** y = tanh(x·W1 + b1)·W2 + b2, L = Σ(y − t)² / (2N), and dL/d{W1,b1,W2,b2} by hand. */
function mlpReference(x: Mat, t: Mat, w1: Mat, b1: number[], w2: Mat, b2: number[]) {
  const n = x.length;
  const h = matmul(x, w1).map((r) => r.map((v, j) => Math.tanh(v + b1[j]!))); // (N, H)
  const y = matmul(h, w2).map((r) => r.map((v, j) => v + b2[j]!)); // (N, O)
  const dy = y.map((r, i) => r.map((v, j) => (v - t[i]![j]!) / n)); // (N, O)
  const loss = y.reduce((s, r, i) => s + r.reduce((q, v, j) => q + (v - t[i]![j]!) ** 2, 0), 0) / (2 * n);
  const dW2 = matmul(transpose(h), dy); // (H, O)
  const db2 = dy[0]!.map((_, j) => dy.reduce((s, r) => s + r[j]!, 0));
  const dz = matmul(dy, transpose(w2)).map((r, i) => r.map((v, j) => v * (1 - h[i]![j]! ** 2))); // (N, H)
  const dW1 = matmul(transpose(x), dz); // (D, H)
  const db1 = dz[0]!.map((_, j) => dz.reduce((s, r) => s + r[j]!, 0));
  return { y, loss, dW1, db1, dW2, db2 };
}

function expectClose(actual: ArrayLike<number>, expected: number[], tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!)));
  }
  expect(worst).toBeLessThan(tol);
}

// ---------- pure script building ----------

describe('buildThreadScripts', () => {
  const bundle = fs.readFileSync(require.resolve('@tensorflow/tfjs-backend-wasm'), 'utf8');

  it('extracts a worker script that parses as JavaScript (newlines re-escaped)', () => {
    const { worker } = buildThreadScripts(bundle);
    expect(worker).not.toContain('\n');
    expect(() => new vm.Script(worker)).not.toThrow();
    expect(worker).toContain('importScripts(e.data.urlOrBlob)');
  });

  it('makes a main script defining every bundle-scope name the factory uses (4.22: fs, path, perf_hooks, os, 3 tslib helpers)', () => {
    const { main } = buildThreadScripts(bundle);
    for (const line of [
      "var require$$0 = require('fs');",
      "var require$$1 = require('path');",
      "var require$$3 = require('perf_hooks');",
      "var require$$4 = require('os');",
      'function __values(o) {',
      'function __read(o, n) {',
      'function __spreadArray(to, from, pack) {',
      'var commonjsGlobal = globalThis;',
    ]) {
      expect(main).toContain(line);
    }
    const context = vm.createContext({ require });
    vm.runInContext(main, context);
    expect(typeof context.WasmBackendModuleThreadedSimd).toBe('function');
  });

  it('names the missing piece when the bundle layout is not the expected one', () => {
    expect(() => buildThreadScripts('var x = 1;')).toThrow(/wasmWorkerContents not found/);
    expect(() => buildThreadScripts('var wasmWorkerContents = "x";\n')).toThrow(/factory not found/);
  });
});

// ---------- in-process threaded engine ----------

describe('enableWasmThreads arguments', () => {
  it('rejects a non-positive or fractional count and declines one thread', () => {
    expect(() => enableWasmThreads(0)).toThrow(/positive integer/);
    expect(() => enableWasmThreads(1.5)).toThrow(/positive integer/);
    expect(enableWasmThreads(1)).toBe(false);
    expect(wasmThreadsDisabledReason()).toMatch(/one thread/);
  });
});

describe('wasm backend with 2 threads', () => {
  beforeAll(async () => {
    await initEngine({ backend: 'wasm', threads: 2, quiet: true });
  });

  it('reports 2 threads', async () => {
    const info = await initEngine({ backend: 'wasm', quiet: true });
    expect(info.tfBackend).toBe('wasm');
    expect(info.threads).toBe(2);
    expect(tf.getBackend()).toBe('wasm');
  });

  it('refuses to change threads once the backend is running', () => {
    expect(enableWasmThreads(2)).toBe(false);
    expect(wasmThreadsDisabledReason()).toMatch(/already initialised/);
  });

  it('computes a (96, 48) @ (48, 40) matMul equal to the float64 product', async () => {
    const rng = new Rng(11);
    const a = randMat(rng, 96, 48);
    const b = randMat(rng, 48, 40);
    const y = tf.matMul(tf.tensor2d(a), tf.tensor2d(b));
    expectClose(await y.data(), matmul(a, b).flat());
    y.dispose();
  });

  it('computes an MLP forward pass and its variable gradients equal to the hand derivation', async () => {
    const rng = new Rng(7);
    const [n, d, hid, o] = [64, 16, 24, 3];
    const x = randMat(rng, n, d);
    const t = randMat(rng, n, o);
    const w1 = randMat(rng, d, hid).map((r) => r.map((v) => v / 4));
    const b1 = Array.from({ length: hid }, () => rng.normal() / 4);
    const w2 = randMat(rng, hid, o).map((r) => r.map((v) => v / 4));
    const b2 = Array.from({ length: o }, () => rng.normal() / 4);
    const ref = mlpReference(x, t, w1, b1, w2, b2);

    const vars = {
      w1: tf.variable(tf.tensor2d(w1)),
      b1: tf.variable(tf.tensor1d(b1)),
      w2: tf.variable(tf.tensor2d(w2)),
      b2: tf.variable(tf.tensor1d(b2)),
    };
    const xt = tf.tensor2d(x);
    const tt = tf.tensor2d(t);
    const forward = () => tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(xt, vars.w1), vars.b1)), vars.w2), vars.b2);
    const lossFn = () => tf.div(tf.sum(tf.square(tf.sub(forward(), tt))), 2 * n) as tf.Scalar;

    expectClose(await forward().data(), ref.y.flat());
    const { value, grads } = tf.variableGrads(lossFn, Object.values(vars));
    expectClose(await value.data(), [ref.loss]);
    expectClose(await grads[vars.w1.name]!.data(), ref.dW1.flat());
    expectClose(await grads[vars.b1.name]!.data(), ref.db1);
    expectClose(await grads[vars.w2.name]!.data(), ref.dW2.flat());
    expectClose(await grads[vars.b2.name]!.data(), ref.db2);
  });
});

// ---------- child processes: 1 vs 2 threads, and exit without process.exit ----------

const CHILD_SCRIPT = `
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from './engine/index.js';
const threads = Number(process.argv[2]);
const info = await initEngine({ backend: 'wasm', threads, quiet: true });
const fill = (n, f) => Float32Array.from({ length: n }, (_, i) => Math.sin(f * (i + 1)));
const a = tf.tensor2d(fill(200 * 64, 0.37), [200, 64]);
const b = tf.tensor2d(fill(64 * 96, 0.11), [64, 96]);
const w = tf.variable(tf.tensor2d(fill(96 * 8, 0.23), [96, 8]));
const prod = tf.matMul(a, b);
const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.tanh(tf.matMul(prod, w)))), [w]);
process.stdout.write(JSON.stringify({
  threads: info.threads,
  prod: Array.from(await prod.data()),
  loss: (await value.data())[0],
  grad: Array.from(await grads[w.name].data()),
}) + '\\n');
`;

const EXIT_TIMEOUT_MS = 20_000;

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  out: { threads: number; prod: number[]; loss: number; grad: number[] } | null;
  stderr: string;
}

function runChild(dir: string, threads: number): Promise<ChildResult> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [path.join(dir, 'child.mjs'), String(threads)], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: EXIT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => {
      const line = stdout.trim().split('\n').pop();
      resolve({ code, signal, ms: Date.now() - t0, out: line ? JSON.parse(line) : null, stderr });
    });
  });
}

describe('threaded engine in a child process', () => {
  // The child must be plain JS: compile src/engine into a private folder under
  // node_modules/.cache so the child's bare imports resolve to this checkout.
  const dir = path.join(ROOT, 'node_modules', '.cache', `vmoe-wasm-threads-test-${process.pid}`);

  beforeAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    execFileSync(
      process.execPath,
      [
        path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
        '--ignoreConfig',
        path.join(ROOT, 'src/engine/index.ts'),
        '--outDir',
        dir,
        '--rootDir',
        path.join(ROOT, 'src'),
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--types',
        'node',
        '--skipLibCheck',
        '--esModuleInterop',
      ],
      { cwd: ROOT, stdio: 'pipe' },
    );
    fs.writeFileSync(path.join(dir, 'child.mjs'), CHILD_SCRIPT);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gives the same results with 2 threads as with 1, and both processes exit by themselves', async () => {
    const one = await runChild(dir, 1);
    const two = await runChild(dir, 2);
    for (const r of [one, two]) {
      expect(r.signal, `killed after ${EXIT_TIMEOUT_MS} ms: workers kept the process alive\n${r.stderr}`).toBeNull();
      expect(r.code, r.stderr).toBe(0);
      expect(r.ms).toBeLessThan(EXIT_TIMEOUT_MS);
    }
    expect(one.out!.threads).toBe(1);
    expect(two.out!.threads).toBe(2);
    expectClose(two.out!.prod, one.out!.prod, 1e-6);
    expectClose([two.out!.loss], [one.out!.loss], 1e-6);
    expectClose(two.out!.grad, one.out!.grad, 1e-6);
  });
});
