/**
 * Backend selection: the fastest TensorFlow.js backend present wins
 * (node-gpu → node → wasm → cpu). The two native packages are optional
 * dependencies that cannot install on machines without access to the
 * libtensorflow download, so each is probed with a dynamic import.
 */
import * as tf from '@tensorflow/tfjs-core';
// Gradient functions live only in the union package's Node bundle (tfjs-core's
// own CommonJS build ships none); loading it registers them with tfjs-core.
import '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../util/errors.js';
import { setDecodeAhead } from '../data/index.js';

/**
 * A TensorFlow.js backend, fastest first: `node-gpu` (tfjs-node-gpu), `node` (tfjs-node), `wasm-blas` (wasm with
 * the optional native OpenBLAS addon), `wasm`, `cpu`.
 */
export type BackendName = 'node-gpu' | 'node' | 'wasm-blas' | 'wasm' | 'cpu';
/**
 * Backends in the order `initEngine({ backend: 'auto' })` tries them. wasm-blas: the wasm backend with OpenBLAS
 * matMuls (src/engine/native-blas.ts), when its optional addon is built.
 */
export const BACKEND_ORDER: readonly BackendName[] = ['node-gpu', 'node', 'wasm-blas', 'wasm', 'cpu'];

/** What `initEngine` chose: backend, thread count and versions (also recorded in run records). */
export interface EngineInfo {
  /** Our name for the backend (node-gpu, node, wasm-blas, wasm, cpu). */
  backend: BackendName;
  /** The name tf.getBackend() reports. */
  tfBackend: string;
  /** Compute threads: the wasm pool's on wasm; OpenBLAS's on wasm-blas (whose wasm kernels run on one thread). */
  threads: number;
  simd: boolean | null;
  /** Where wasm-blas runs its matrix products (e.g. "onednn 2.6.3", "openblas Haswell"); null elsewhere. */
  gemm: string | null;
  tfjsVersion: string;
  nodeVersion: string;
}

const require = createRequire(import.meta.url);
let current: EngineInfo | null = null;

/** Options of `initEngine`. */
export interface InitOptions {
  /** Force one backend; error if it is not available. */
  backend?: BackendName | 'auto';
  /** Threads for wasm; default 1 (see initEngine). */
  threads?: number;
  /** Print the chosen backend to stderr. */
  quiet?: boolean;
}

async function tryNative(pkg: string): Promise<boolean> {
  try {
    await import(pkg);
    return true;
  } catch {
    return false;
  }
}

async function initWasm(threads: number): Promise<{ threads: number; simd: boolean }> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  wasm.setWasmPaths(path.join(dir, 'dist') + path.sep);
  const { enableWasmThreads } = await import('./wasm-threads.js');
  const threaded = threads > 1 && enableWasmThreads(threads);
  if (threaded) wasm.setThreadsCount(threads);
  const ok = await tf.setBackend('wasm');
  if (!ok) throw new Error('the wasm backend failed to initialise');
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean;
  return { threads: wasm.getThreadsCount(), simd };
}

async function initOne(name: BackendName, threads: number): Promise<EngineInfo | null> {
  const base = { tfjsVersion: tf.version_core, nodeVersion: process.version, gemm: null };
  switch (name) {
    case 'node-gpu':
    case 'node': {
      const pkg = name === 'node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      if (!(await tryNative(pkg))) return null;
      if (!(await tf.setBackend('tensorflow'))) return null;
      return { ...base, backend: name, tfBackend: 'tensorflow', threads: os.cpus().length, simd: null };
    }
    case 'wasm-blas': {
      const { loadBlasAddon, registerWasmBlasBackend, WASM_BLAS } = await import('./native-blas.js');
      const blas = loadBlasAddon();
      if (!blas.addon) return null;
      try {
        // The threads go to OpenBLAS; the wasm kernels left (light elementwise ones) stay on one
        // thread: a 2-thread wasm pool made wasm-blas slower than 1 thread (vmoe-tiny inference
        // 721 vs 1520 img/s), its workers spin-waiting next to OpenBLAS's on the same cores.
        const r = await initWasm(1);
        registerWasmBlasBackend(blas.addon, threads);
        if (!(await tf.setBackend(WASM_BLAS))) return null;
        return {
          ...base,
          backend: 'wasm-blas',
          tfBackend: WASM_BLAS,
          threads: Math.max(1, threads),
          simd: r.simd,
          gemm: blas.gemm,
        };
      } catch {
        return null;
      }
    }
    case 'wasm': {
      try {
        const r = await initWasm(threads);
        return { ...base, backend: 'wasm', tfBackend: 'wasm', threads: r.threads, simd: r.simd };
      } catch {
        return null;
      }
    }
    case 'cpu': {
      await import('@tensorflow/tfjs-backend-cpu');
      if (!(await tf.setBackend('cpu'))) return null;
      return { ...base, backend: 'cpu', tfBackend: 'cpu', threads: 1, simd: null };
    }
  }
}

/** Initialise the tensor engine once per process; later calls return the same info. */
export async function initEngine(opts: InitOptions = {}): Promise<EngineInfo> {
  const want = opts.backend ?? (process.env.VMOE_BACKEND as BackendName | undefined) ?? 'auto';
  if (current && (want === 'auto' || want === current.backend)) return current;
  // Default 1 wasm thread: on the 2-core reference machine, with other work on the cores, 2 XNNPACK
  // threads ran a V-MoE training step 1.75× slower than 1 (the pool spin-waits); ask for more with
  // --threads / VMOE_THREADS when the cores are free.
  const threads = opts.threads ?? (Number(process.env.VMOE_THREADS) || 1);
  const order = want === 'auto' ? BACKEND_ORDER : [want];
  if (want !== 'auto' && !BACKEND_ORDER.includes(want)) {
    throw new UsageError(
      `unknown backend "${want}" (from --backend or VMOE_BACKEND); choose one of ${BACKEND_ORDER.join(', ')} or auto`,
      {
        hint: 'use --backend auto to pick the fastest backend that is installed',
      },
    );
  }
  for (const name of order) {
    const info = await initOne(name, threads);
    if (info) {
      current = info;
      // Image folders decode beside the model only on cores its threads leave free (data/registry.ts).
      setDecodeAhead(os.availableParallelism() > info.threads);
      if (!opts.quiet) {
        process.stderr.write(
          `[vmoe] backend ${info.backend} (${info.threads} thread${info.threads === 1 ? '' : 's'}${info.simd ? ', SIMD' : ''}${info.gemm ? `, products on ${info.gemm}` : ''})\n`,
        );
        if (info.backend === 'wasm' && want === 'auto') {
          const { loadBlasAddon } = await import('./native-blas.js');
          process.stderr.write(`[vmoe] native BLAS matMuls off: ${loadBlasAddon().reason}\n`);
        }
      }
      return info;
    }
  }
  if (want !== 'auto') {
    let hint =
      want === 'node' || want === 'node-gpu'
        ? ` (install it with: npm install @tensorflow/tfjs-${want === 'node' ? 'node' : 'node-gpu'})`
        : '';
    if (want === 'wasm-blas')
      hint = ` (${(await import('./native-blas.js')).loadBlasAddon().reason ?? 'the wasm backend failed to initialise'})`;
    throw new UsageError(`backend "${want}" is not available${hint}`, {
      hint: 'use --backend auto to fall back to the fastest backend that is installed',
    });
  }
  throw new Error('no TensorFlow.js backend could be initialised');
}

/** The running engine's info; throws if `initEngine` has not been called. */
export function engineInfo(): EngineInfo {
  if (!current) throw new Error('engine not initialised: call initEngine() first');
  return current;
}
