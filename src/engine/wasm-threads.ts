/**
 * Multi-threaded wasm in Node.
 *
 * @tensorflow/tfjs-backend-wasm 4.22 ships a threaded+SIMD binary but never
 * uses it under Node. Five things stand in the way; each is patched here at
 * run time (node_modules is left untouched, so `npm ci` on a clean clone works):
 *
 * 1. Flag. `WASM_HAS_MULTITHREAD_SUPPORT` is registered to return false when
 *    IS_NODE. We re-register it with a real feature test (shared wasm memory
 *    + SIMD) and set it, so `tf.setBackend('wasm')` picks the threaded factory.
 * 2. Pthread worker script. tfjs's locateFile hands emscripten a `blob:` URL
 *    for the worker (`wasmWorkerContents`); Node's worker_threads only loads
 *    files. We write the same script (read from the installed bundle) to a
 *    cache file in os.tmpdir() and start the worker from that file instead.
 * 3. Main script. Each worker must evaluate the emscripten factory; tfjs
 *    posts it as a Blob (`mainScriptUrlOrBlob`) that Node cannot import, and
 *    its source (`factory.toString()`) refers to bundle-scope names
 *    (`require$$0`, `__values`, `commonjsGlobal`) that a worker lacks. We
 *    write a self-contained file — those definitions, copied from the bundle,
 *    then the factory's module — and post its path instead of the Blob.
 * 4. Keep-alive. Emscripten `ref()`s a worker when it starts a pthread and
 *    XNNPACK's pool threads never end, so the process would never exit. Pool
 *    threads only run while the main thread is blocked in a synchronous
 *    kernel call, so they never need to hold the event loop open: our workers
 *    are unref'd and ignore `ref()`.
 *    Patches 2–4 are one `Worker` subclass, installed through an accessor on
 *    `globalThis.Worker`: the emscripten glue assigns
 *    `globalThis.Worker = worker_threads.Worker`, then calls `new Worker(url)`;
 *    the accessor keeps what was assigned and hands out the subclass. Workers
 *    that are not tfjs pthreads (URL not tfjs's worker Blob) are unchanged.
 * 5. Thread cap. tfjs's C++ computes `num_cores = emscripten_num_logical_cores() / 2`
 *    once at static-init time (os.cpus().length / 2 in Node: 1 on a 2-core
 *    machine) and caps the pool at min(requested, 8, num_cores), so even an
 *    explicit `setThreadsCount(n)` is cut down. We wrap
 *    `WebAssembly.instantiate` for one call: when it instantiates an
 *    emscripten pthread module, the `emscripten_num_logical_cores` import
 *    reports 2·threads, so num_cores = threads; the wrapper then removes
 *    itself. (Faking os.cpus() instead would mislead every other caller in
 *    the process during the asynchronous `setBackend`.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { resolveObjectURL } from 'node:buffer';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Worker as NodeWorker, WorkerOptions } from 'node:worker_threads';
import { UsageError } from '../util/errors.js';

const require = createRequire(import.meta.url);

/** The slice of the WebAssembly global used here (lib has no DOM/wasm value typings). */
interface WasmApi {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => { buffer: unknown };
  validate(bytes: Uint8Array): boolean;
  instantiate: (source: unknown, imports?: Imports) => unknown;
}
type Imports = Record<string, Record<string, unknown>>;
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/**
 * tfjs's C++ caps the pool at min(requested, 8, num_cores), 8 being the
 * emscripten pthread pool it pre-spawns (PTHREAD_POOL_SIZE); more threads
 * would need workers created while the main thread blocks in pthread_create.
 */
export const MAX_WASM_THREADS = 8;

/** Versions whose bundle layout and worker protocol these patches were checked against. */
const TESTED_VERSIONS = /^4\.22\./;
const FLAG = 'WASM_HAS_MULTITHREAD_SUPPORT';
const FACTORY_START = 'var tfjsBackendWasmThreadedSimd$1 = { exports: {} };';
const FACTORY_END = '}(tfjsBackendWasmThreadedSimd$1));';
const WORKER_DECL = /^var wasmWorkerContents = ("(?:[^"\\]|\\.)*");$/m;

interface ThreadScripts {
  workerFile: string;
  mainFile: string;
  /** Byte size of the Blob tfjs builds for the worker; identifies its blob: URLs. */
  workerBlobSize: number;
}

let scripts: ThreadScripts | null = null;
let disabledReason: string | null = null;

/**
 * Prepare the wasm backend to run `threads` threads; call before
 * `tf.setBackend('wasm')`, then `setThreadsCount(threads)` if it returns true.
 * Returns false (and leaves tfjs single-threaded) when threads cannot be used;
 * `wasmThreadsDisabledReason()` then says why.
 */
export function enableWasmThreads(threads: number): boolean {
  disabledReason = null;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new UsageError(`threads must be a positive integer, got ${threads}`);
  }
  if (threads === 1) return fail('one thread requested');
  if (wasmBackendStarted()) return fail('the wasm backend is already initialised; call this before tf.setBackend');
  const version = (require('@tensorflow/tfjs-backend-wasm') as { version_wasm: string }).version_wasm;
  if (!TESTED_VERSIONS.test(version)) {
    return fail(`@tensorflow/tfjs-backend-wasm ${version} is untested with these patches (${TESTED_VERSIONS} is)`);
  }
  if (!nodeHasWasmThreads()) return fail('this Node has no shared WebAssembly memory or wasm SIMD');
  try {
    scripts ??= writeThreadScripts();
  } catch (e) {
    return fail(`could not prepare the pthread scripts: ${(e as Error).message}`);
  }
  installWorkerAccessor();
  reportLogicalCoresOnce(2 * Math.min(threads, MAX_WASM_THREADS));
  // Both: registerFlag survives env().reset(); set overrides a cached false.
  tf.env().registerFlag(FLAG, () => nodeHasWasmThreads());
  tf.env().set(FLAG, true);
  return true;
}

/** Why the last enableWasmThreads call returned false (null if it returned true). */
export function wasmThreadsDisabledReason(): string | null {
  return disabledReason;
}

/** Looks at the engine's registry of initialised backends without initialising one. */
function wasmBackendStarted(): boolean {
  const registry = (tf.engine() as unknown as { registry?: Record<string, unknown> }).registry;
  return registry != null && 'wasm' in registry;
}

function fail(reason: string): false {
  disabledReason = reason;
  return false;
}

/** Feature test: shared wasm memory (threads) and wasm SIMD (the threaded binary needs both). */
function nodeHasWasmThreads(): boolean {
  try {
    const mem = new wasmApi.Memory({ initial: 1, maximum: 1, shared: true });
    if (!(mem.buffer instanceof SharedArrayBuffer)) return false;
    // (module (func i32.const 0 i8x16.splat drop))
    const simd = new Uint8Array([
      0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, 9, 1, 7, 0, 65, 0, 253, 15, 26, 11,
    ]);
    return wasmApi.validate(simd);
  } catch {
    return false;
  }
}

/** Pure: the worker and main scripts derived from the text of tf-backend-wasm.node.js. */
export function buildThreadScripts(bundle: string): { worker: string; main: string } {
  const decl = WORKER_DECL.exec(bundle);
  if (!decl) throw new Error('buildThreadScripts: wasmWorkerContents not found in the tfjs-backend-wasm bundle');
  // The literal holds `"\n"` escapes meant for the script's own string
  // literals; tfjs re-escapes them before making its Blob, and so do we.
  const worker = (JSON.parse(decl[1]!) as string).replace(/\n/g, '\\n');

  const start = bundle.indexOf(FACTORY_START);
  const end = bundle.indexOf(FACTORY_END, start);
  if (start < 0 || end < 0)
    throw new Error('buildThreadScripts: threaded-SIMD factory not found in the tfjs-backend-wasm bundle');
  const factory = bundle.slice(start, end + FACTORY_END.length);

  // Bundle-scope names the factory uses: `var require$$N = require('x');` lines
  // and tslib helpers (`function __name(`), both top-level in the bundle.
  // Wrapped in a strict function (like the bundle) so only the factory leaks
  // into the worker's global scope, where its pthread script looks for it.
  const lines: string[] = [
    'globalThis.WasmBackendModuleThreadedSimd = (function () {',
    '"use strict";',
    'var commonjsGlobal = globalThis;',
  ];
  const used = new Set(factory.match(/\b(?:require\$\$\d+|__[A-Za-z]+)\b/g) ?? []);
  for (const name of used) {
    const req = new RegExp(`^var ${name.replace(/\$/g, '\\$')} = require\\('[^']+'\\);$`, 'm').exec(bundle);
    if (req) {
      lines.push(req[0]);
      continue;
    }
    const fnStart = bundle.indexOf(`\nfunction ${name}(`);
    if (fnStart >= 0 && fnStart < start) {
      const fnEnd = bundle.indexOf('\n}\n', fnStart);
      lines.push(bundle.slice(fnStart + 1, fnEnd + 2));
      continue;
    }
    if (name.startsWith('require$$')) throw new Error(`buildThreadScripts: bundle helper ${name} not found`);
    // Other __names are emscripten exports defined inside the factory, or __filename/__dirname.
  }
  lines.push(factory, 'return tfjsBackendWasmThreadedSimd$1.exports;', '})();', '');
  return { worker, main: lines.join('\n') };
}

function writeThreadScripts(): ThreadScripts {
  const bundlePath = require.resolve('@tensorflow/tfjs-backend-wasm');
  const { worker, main } = buildThreadScripts(fs.readFileSync(bundlePath, 'utf8'));
  const hash = createHash('sha256').update(worker).update(main).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'vmoe-tfjs-wasm-threads', hash);
  fs.mkdirSync(dir, { recursive: true });
  const workerFile = writeIfChanged(path.join(dir, 'worker.cjs'), worker);
  const mainFile = writeIfChanged(path.join(dir, 'main.js'), main);
  const workerBlobSize = Buffer.byteLength(worker);
  return { workerFile, mainFile, workerBlobSize };
}

/** Atomic write (temp + rename) so parallel test processes never see a partial file. */
function writeIfChanged(file: string, text: string): string {
  try {
    if (fs.readFileSync(file, 'utf8') === text) return file;
  } catch {
    // missing: write it
  }
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
  return file;
}

let restoreInstantiate: (() => void) | null = null;

/** One-shot wrapper of WebAssembly.instantiate; see patch 5 in the header. */
function reportLogicalCoresOnce(cores: number): void {
  restoreInstantiate?.();
  const original = wasmApi.instantiate;
  const wrapper = (source: unknown, imports?: Imports) => {
    const env = imports?.env;
    if (env && typeof env.emscripten_num_logical_cores === 'function') {
      restoreInstantiate?.();
      const patched = { ...env, emscripten_num_logical_cores: () => cores };
      // Emscripten passes the same object as env and wasi_snapshot_preview1.
      imports = Object.fromEntries(Object.entries(imports!).map(([k, v]) => [k, v === env ? patched : v])) as Imports;
    }
    return original.call(wasmApi, source, imports);
  };
  wasmApi.instantiate = wrapper;
  restoreInstantiate = () => {
    if (wasmApi.instantiate === wrapper) wasmApi.instantiate = original;
    restoreInstantiate = null;
  };
}

const WRAPPED = Symbol('vmoe.wasmThreadWorker');
type WorkerClass = typeof NodeWorker;

/** The Worker subclass tfjs gets: redirects its blob: URLs to files and never keeps the process alive. */
function threadWorkerClass(Base: WorkerClass): WorkerClass {
  class WasmThreadWorker extends Base {
    private readonly isTfjsThread: boolean;
    constructor(filename: string | URL, options?: WorkerOptions) {
      const file = tfjsWorkerFile(filename);
      super(file ?? filename, options);
      this.isTfjsThread = file != null;
      if (this.isTfjsThread) super.unref();
    }
    override ref(): void {
      if (!this.isTfjsThread) super.ref();
    }
    override postMessage(value: unknown, transferList?: readonly unknown[]): void {
      const msg = value as { cmd?: unknown; urlOrBlob?: unknown } | null;
      if (this.isTfjsThread && msg?.cmd === 'load' && typeof msg.urlOrBlob !== 'string') {
        value = { ...msg, urlOrBlob: scripts!.mainFile };
      }
      super.postMessage(value, transferList as never);
    }
  }
  Object.defineProperty(WasmThreadWorker, WRAPPED, { value: true });
  return WasmThreadWorker;
}

/** Our worker file when `filename` is tfjs's pthread-worker blob URL, else null. */
function tfjsWorkerFile(filename: string | URL): string | null {
  const url = String(filename);
  if (!scripts || !url.startsWith('blob:')) return null;
  const blob = resolveObjectURL(url);
  if (!blob || blob.type !== 'application/javascript' || blob.size !== scripts.workerBlobSize) return null;
  URL.revokeObjectURL(url); // tfjs never revokes its per-worker URLs
  return scripts.workerFile;
}

let accessorInstalled = false;

function installWorkerAccessor(): void {
  if (accessorInstalled) return;
  const g = globalThis as { Worker?: unknown };
  let base = g.Worker as WorkerClass | undefined;
  const wrapped = new WeakMap<WorkerClass, WorkerClass>();
  Object.defineProperty(globalThis, 'Worker', {
    configurable: true,
    enumerable: false,
    get() {
      if (typeof base !== 'function' || (base as unknown as Record<symbol, unknown>)[WRAPPED]) return base;
      let w = wrapped.get(base);
      if (!w) wrapped.set(base, (w = threadWorkerClass(base)));
      return w;
    },
    set(v: WorkerClass) {
      base = v;
    },
  });
  accessorInstalled = true;
}
