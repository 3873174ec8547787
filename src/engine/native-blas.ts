/**
 * The `wasm-blas` backend: tfjs's wasm backend with native kernels from the optional
 * N-API addon (native/src), called on zero-copy views of the wasm heap. This module is
 * its entry point (what backend.ts and tests import; the model code imports
 * ./native/register.ts alone, which needs no Node built-in, so it also runs in the web
 * page); the code lives in ./native/:
 *   addon.ts      finding and loading the addon, the entry points it must have (a build
 *                 from older sources is turned away), its sgemm self-check, the OpenBLAS
 *                 core type and the GEMM library (oneDNN by default, or OpenBLAS).
 *   heap.ts       the wasm backend's heap as a Float32Array and tensors' offsets into it.
 *   overrides.ts  tfjs kernels replaced by native ones: BatchMatMul and _FusedMatMul
 *                 (sgemm), Slice, SplitV, Unpack (strided copies), float32 Sum/Mean over
 *                 a contiguous block of axes, Tanh; Identity and same-dtype Cast share
 *                 their input's buffer. Cases they do not handle go to the wasm kernel.
 *   fused.ts      the fused kernels of ./fused-kernels.ts (GELU, LayerNorm, softmax,
 *                 attention, router gates and auxiliary losses, expert products, combine,
 *                 with their gradients; the Adam step, the gradients' squared norm).
 *   register.ts   registration of the backend under its second name.
 *
 * Why: the wasm backend's batched and transposed matMuls run a naive loop
 * (≈1–2 GFLOP/s) and its 2-D matMul reaches ≈20 GFLOP/s; the native GEMM reaches
 * well over 100 on the same cores. Its Slice (and so SplitV and Unpack, once per
 * piece) first copies the whole input to JavaScript, and its Sum/Mean transpose
 * first unless the reduced axes are the innermost ones — which made the gradients of
 * concat, unstack and every bias add dominate a training step. Every other kernel
 * stays the wasm one.
 *
 * The addon is optional: `npm run build:native` (native/build.mjs) builds it into
 * node_modules/.cache/vmoe-blas; when it is missing, stale or fails its self-check,
 * loadBlasAddon() returns it as null and says why, and the toolkit runs on plain wasm.
 */
export {
  checkAddon,
  chooseCoreType,
  chooseGemm,
  defaultAddonPath,
  loadBlasAddon,
  selfCheck,
  type BlasAddon,
  type BlasStatus,
  type GemmLibrary,
} from './native/addon.js';
export { activeBlasAddon, registerWasmBlasBackend, WASM_BLAS } from './native/register.js';
