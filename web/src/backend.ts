/**
 * The page's tensor backend: tfjs's wasm backend by default (its numbers equal the Node toolkit's to float
 * rounding), WebGL where the browser has it, or the plain JavaScript cpu backend. The wasm binaries are imported
 * with `?url`, so Vite copies them into the build and the page finds them next to itself.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';

setWasmPaths({
  'tfjs-backend-wasm.wasm': wasmPlain,
  'tfjs-backend-wasm-simd.wasm': wasmSimd,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
});

/** Backends the page offers, in the order it tries them. */
export const BACKENDS = ['wasm', 'webgl', 'cpu'] as const;
export type PageBackend = (typeof BACKENDS)[number];

/** Switches to `name`; returns the backend now active (tfjs falls back when one cannot start) and why not. */
export async function useBackend(name: PageBackend): Promise<{ active: string; note: string }> {
  let ok = false;
  try {
    ok = await tf.setBackend(name);
  } catch {
    ok = false;
  }
  await tf.ready();
  const active = tf.getBackend();
  if (ok && active === name) {
    const flags = name === 'wasm' ? ` (SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'on' : 'off'})` : '';
    return { active, note: `backend ${active}${flags}` };
  }
  return { active, note: `backend ${active}: ${name} is not available in this browser` };
}
