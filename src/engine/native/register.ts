/**
 * Registration of the `wasm-blas` backend: tfjs's wasm backend instance under a second
 * name (one heap, one tensor registry, nothing to move between them) whose kernel table
 * holds every wasm kernel, with the native overrides of ./overrides.ts in place of
 * some, plus the fused kernels of ./fused.ts. Also which addon is behind it while it
 * is the active backend (activeBlasAddon, for host routines such as planTopK).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BlasAddon } from './addon.js';
import { fusedKernels } from './fused.js';
import { replacement } from './overrides.js';

export const WASM_BLAS = 'wasm-blas';

let registered = false;
let registeredAddon: BlasAddon | null = null;

/** The addon behind the wasm-blas backend while that backend is active (for host routines such as planTopK), else null. */
export function activeBlasAddon(): BlasAddon | null {
  return tf.getBackend() === WASM_BLAS ? registeredAddon : null;
}

/**
 * Registers `wasm-blas` (the initialised wasm backend's instance under a second name, with every
 * wasm kernel, the native overrides and the fused kernels) and sets the addon's thread count.
 * Call after tf.setBackend('wasm') has succeeded; then tf.setBackend('wasm-blas').
 */
export function registerWasmBlasBackend(addon: BlasAddon, threads: number): void {
  addon.setThreads(Math.max(1, Math.floor(threads)));
  if (registered) return;
  const wasmBackend = tf.findBackend('wasm');
  if (!wasmBackend) throw new Error('wasm-blas: initialise the wasm backend first');
  for (const k of tf.getKernelsForBackend('wasm')) {
    tf.registerKernel({ ...k, backendName: WASM_BLAS, kernelFunc: replacement(addon, k.kernelName, k.kernelFunc) });
  }
  for (const k of fusedKernels(addon, WASM_BLAS)) tf.registerKernel(k);
  // Priority below wasm's so tfjs never picks it on its own.
  tf.registerBackend(WASM_BLAS, () => wasmBackend, 0);
  registered = true;
  registeredAddon = addon;
}
