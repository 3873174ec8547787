/**
 * What the native kernels need from tfjs's wasm backend: the slice of its
 * BackendWasm they use, a Float32Array over the whole wasm memory (heapF32) and a
 * tensor's float offset into it (floatOffset), the form every addon entry point
 * takes its operands in; and the arguments a kernel function receives.
 */
import type * as tf from '@tensorflow/tfjs-core';

/** The slice of tfjs-backend-wasm's BackendWasm used here. */
export interface WasmBackendLike extends tf.KernelBackend {
  wasm: { HEAPU8: Uint8Array; wasmMemory?: { buffer: ArrayBufferLike } };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  incRef(dataId: object): void;
}

let heapView: Float32Array | null = null;
/** A Float32Array over the whole wasm memory; re-made after the memory grows. */
export function heapF32(backend: WasmBackendLike): Float32Array {
  const buffer = backend.wasm.wasmMemory?.buffer ?? backend.wasm.HEAPU8.buffer;
  if (!heapView || heapView.buffer !== buffer) heapView = new Float32Array(buffer);
  return heapView;
}

/** A tensor's offset into heapF32 (internal invariant: its data lives on the wasm backend). */
export function floatOffset(backend: WasmBackendLike, t: tf.TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (!data) throw new Error('wasm-blas: tensor data not on the wasm backend');
  return data.memoryOffset / 4; // malloc aligns to 8 bytes or more
}

/** What tfjs passes a kernel function. */
export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };
