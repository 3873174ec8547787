/**
 * The fused kernels on the native addon: the Vmoe* kernels whose names and contracts
 * ../fused-kernels.ts defines (GELU, LayerNorm, softmax, attention, the router's gates
 * and auxiliary losses, the expert products, the combine, with their gradients; the
 * Adam step and the gradients' squared norm), each a kernel function that checks its
 * inputs and attributes against the contract, allocates the outputs on the wasm heap
 * and runs one addon entry point on them. fusedKernels() lists them for registration.
 *
 * A failed check throws a plain Error: the callers are the toolkit's own model and
 * optimiser code, so a violated contract is a bug there, never bad user input.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  VMOE_ADAM,
  VMOE_ATTENTION,
  VMOE_ATTENTION_GRAD,
  VMOE_COMBINE_ROWS,
  VMOE_COMBINE_ROWS_GRAD,
  VMOE_DENSE_GELU,
  VMOE_ENCODER_BLOCK,
  VMOE_PATCH_EMBED,
  VMOE_EXPERT_MLP,
  VMOE_GELU,
  VMOE_GELU_GRAD,
  VMOE_LAYER_NORM,
  VMOE_LAYER_NORM_GRAD,
  VMOE_EXPERT_DENSE,
  VMOE_EXPERT_DENSE_GRAD,
  VMOE_ROUTER_AUX,
  VMOE_ROUTER_GATES,
  VMOE_ROUTER_GATES_GRAD,
  VMOE_SOFTMAX,
  VMOE_SOFTMAX_GRAD,
  VMOE_SUM_OF_SQUARES,
} from '../fused-kernels.js';
import type { BlasAddon, PackedWeightHandle } from './addon.js';
import { floatOffset, heapF32, type KernelArgs, type WasmBackendLike } from './heap.js';

function requireFloat32(kernel: string, tensors: Record<string, tf.TensorInfo | undefined>): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) throw new Error(`${kernel}: input ${name} is missing`);
    if (t.dtype !== 'float32') throw new Error(`${kernel}: input ${name} must be float32, got ${t.dtype}`);
  }
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

type UnaryRun = (heap: Float32Array, srcOff: number, dstOff: number, n: number) => void;
type UnaryGradRun = (heap: Float32Array, dyOff: number, xOff: number, dxOff: number, n: number) => void;

/** An elementwise float32 kernel {x} → y of x's shape. */
function unaryKernel(name: string, run: UnaryRun): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    requireFloat32(name, { x });
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) run(heapF32(backend), floatOffset(backend, x), floatOffset(backend, out), n);
    return out;
  }) as tf.KernelFunc;
}

/** The gradient of an elementwise kernel: {dy, x} → dx of x's shape. */
function unaryGradKernel(name: string, run: UnaryGradRun): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, x } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
    requireFloat32(name, { dy, x });
    if (!sameShape(dy.shape, x.shape)) throw new Error(`${name}: dy [${dy.shape}] and x [${x.shape}] differ in shape`);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) run(heapF32(backend), floatOffset(backend, dy), floatOffset(backend, x), floatOffset(backend, out), n);
    return out;
  }) as tf.KernelFunc;
}

/** (rows, cols) of a tensor taken over its last axis; cols ≥ 1. */
function lastAxisDims(kernel: string, x: tf.TensorInfo): { rows: number; cols: number } {
  const cols = x.shape[x.shape.length - 1];
  if (cols === undefined || cols < 1) throw new Error(`${kernel}: [${x.shape}] needs a non-empty last axis`);
  return { rows: tf.util.sizeFromShape(x.shape) / cols, cols };
}

/** (rows, cols) of a LayerNorm input whose last axis is normalised, after checking the per-column vectors. */
function layerNormDims(
  kernel: string,
  x: tf.TensorInfo,
  vectors: Record<string, tf.TensorInfo>,
): { rows: number; cols: number } {
  const dims = lastAxisDims(kernel, x);
  for (const [name, v] of Object.entries(vectors)) {
    if (!sameShape(v.shape, [dims.cols]))
      throw new Error(`${kernel}: ${name} [${v.shape}] must have shape [${dims.cols}]`);
  }
  return dims;
}

function epsilonAttr(kernel: string, attrs: tf.NamedAttrMap | undefined): number {
  const eps = (attrs as { epsilon?: unknown } | undefined)?.epsilon;
  if (typeof eps !== 'number' || !(eps >= 0)) throw new Error(`${kernel}: attribute epsilon must be a number >= 0`);
  return eps;
}

function layerNormKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, scale, bias } = args.inputs as { x: tf.TensorInfo; scale: tf.TensorInfo; bias: tf.TensorInfo };
    requireFloat32(VMOE_LAYER_NORM, { x, scale, bias });
    const { rows, cols } = layerNormDims(VMOE_LAYER_NORM, x, { scale, bias });
    const eps = epsilonAttr(VMOE_LAYER_NORM, args.attrs);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(x.shape, 'float32');
    if (rows > 0) {
      addon.layerNorm(
        heapF32(backend),
        floatOffset(backend, x),
        floatOffset(backend, scale),
        floatOffset(backend, bias),
        floatOffset(backend, out),
        rows,
        cols,
        eps,
      );
    }
    return out;
  }) as tf.KernelFunc;
}

function layerNormGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, x, scale } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; scale: tf.TensorInfo };
    requireFloat32(VMOE_LAYER_NORM_GRAD, { dy, x, scale });
    if (!sameShape(dy.shape, x.shape))
      throw new Error(`${VMOE_LAYER_NORM_GRAD}: dy [${dy.shape}] and x [${x.shape}] differ in shape`);
    const { rows, cols } = layerNormDims(VMOE_LAYER_NORM_GRAD, x, { scale });
    const eps = epsilonAttr(VMOE_LAYER_NORM_GRAD, args.attrs);
    const backend = args.backend as WasmBackendLike;
    const dx = backend.makeOutput(x.shape, 'float32');
    const dscale = backend.makeOutput([cols], 'float32');
    const dbias = backend.makeOutput([cols], 'float32');
    // rows = 0 still writes the (zero) column sums.
    addon.layerNormGrad(
      heapF32(backend),
      floatOffset(backend, dy),
      floatOffset(backend, x),
      floatOffset(backend, scale),
      floatOffset(backend, dx),
      floatOffset(backend, dscale),
      floatOffset(backend, dbias),
      rows,
      cols,
      eps,
    );
    return [dx, dscale, dbias];
  }) as tf.KernelFunc;
}

function softmaxKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    requireFloat32(VMOE_SOFTMAX, { x });
    const { rows, cols } = lastAxisDims(VMOE_SOFTMAX, x);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(x.shape, 'float32');
    if (rows > 0) addon.softmax(heapF32(backend), floatOffset(backend, x), floatOffset(backend, out), rows, cols);
    return out;
  }) as tf.KernelFunc;
}

function softmaxGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, y } = args.inputs as { dy: tf.TensorInfo; y: tf.TensorInfo };
    requireFloat32(VMOE_SOFTMAX_GRAD, { dy, y });
    if (!sameShape(dy.shape, y.shape))
      throw new Error(`${VMOE_SOFTMAX_GRAD}: dy [${dy.shape}] and y [${y.shape}] differ in shape`);
    const { rows, cols } = lastAxisDims(VMOE_SOFTMAX_GRAD, y);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput(y.shape, 'float32');
    if (rows > 0)
      addon.softmaxGrad(
        heapF32(backend),
        floatOffset(backend, dy),
        floatOffset(backend, y),
        floatOffset(backend, out),
        rows,
        cols,
      );
    return out;
  }) as tf.KernelFunc;
}

/** (B, T, heads, hd) of an attention call from qkv (B·T, 3H) and the attributes, checked. */
function attentionDims(kernel: string, qkv: tf.TensorInfo, attrs: tf.NamedAttrMap | undefined) {
  const batch = countAttr(kernel, attrs, 'batch'),
    heads = countAttr(kernel, attrs, 'heads');
  const scale = numberAttr(kernel, attrs, 'scale');
  const [rows, width] = qkv.shape as [number, number];
  if (
    qkv.shape.length !== 2 ||
    heads < 1 ||
    batch < 1 ||
    rows % batch !== 0 ||
    width % (3 * heads) !== 0 ||
    rows === 0 ||
    width === 0
  ) {
    throw new Error(`${kernel}: qkv [${qkv.shape}] must be (batch·T, 3·heads·hd) with batch ${batch}, heads ${heads}`);
  }
  return { batch, T: rows / batch, heads, hd: width / (3 * heads), scale };
}

function attentionKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { qkv } = args.inputs as { qkv: tf.TensorInfo };
    requireFloat32(VMOE_ATTENTION, { qkv });
    const { batch, T, heads, hd, scale } = attentionDims(VMOE_ATTENTION, qkv, args.attrs);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([batch * T, heads * hd], 'float32');
    const probs = backend.makeOutput([batch * heads, T, T], 'float32');
    addon.attention(
      heapF32(backend),
      floatOffset(backend, qkv),
      floatOffset(backend, out),
      floatOffset(backend, probs),
      batch,
      T,
      heads,
      hd,
      scale,
    );
    return [out, probs];
  }) as tf.KernelFunc;
}

function attentionGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, qkv, probs } = args.inputs as Record<'dy' | 'qkv' | 'probs', tf.TensorInfo>;
    requireFloat32(VMOE_ATTENTION_GRAD, { dy, qkv, probs });
    const { batch, T, heads, hd, scale } = attentionDims(VMOE_ATTENTION_GRAD, qkv, args.attrs);
    if (!sameShape(dy.shape, [batch * T, heads * hd]) || !sameShape(probs.shape, [batch * heads, T, T])) {
      throw new Error(
        `${VMOE_ATTENTION_GRAD}: dy [${dy.shape}] or probs [${probs.shape}] do not fit qkv [${qkv.shape}]`,
      );
    }
    const backend = args.backend as WasmBackendLike;
    const dqkv = backend.makeOutput(qkv.shape, 'float32');
    addon.attentionGrad(
      heapF32(backend),
      floatOffset(backend, dy),
      floatOffset(backend, qkv),
      floatOffset(backend, probs),
      floatOffset(backend, dqkv),
      batch,
      T,
      heads,
      hd,
      scale,
    );
    return dqkv;
  }) as tf.KernelFunc;
}

function numberAttr(kernel: string, attrs: tf.NamedAttrMap | undefined, name: string): number {
  const v = (attrs as Record<string, unknown> | undefined)?.[name];
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new Error(`${kernel}: attribute ${name} must be a finite number`);
  return v;
}

function adamKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { param, m, v, grad } = args.inputs as Record<'param' | 'm' | 'v' | 'grad', tf.TensorInfo>;
    requireFloat32(VMOE_ADAM, { param, m, v, grad });
    for (const [name, t] of Object.entries({ m, v, grad })) {
      if (!sameShape(t.shape, param.shape))
        throw new Error(`${VMOE_ADAM}: ${name} [${t.shape}] and param [${param.shape}] differ in shape`);
    }
    const at = (name: string) => numberAttr(VMOE_ADAM, args.attrs, name);
    const beta1 = at('beta1'),
      beta2 = at('beta2');
    // The composed form's scalars, computed in double as it computes them.
    const coefficients = Float64Array.of(
      beta1,
      1 - beta1,
      beta2,
      1 - beta2,
      at('stepSize'),
      at('biasCorrection2'),
      at('epsilon'),
      at('weightDecayStep'),
      at('gradScale'),
    );
    const backend = args.backend as WasmBackendLike;
    const outs = [param, m, v].map((t) => backend.makeOutput(t.shape, 'float32'));
    const n = tf.util.sizeFromShape(param.shape);
    if (n > 0) {
      const [pOut, mOut, vOut] = outs.map((t) => floatOffset(backend, t));
      addon.adam(
        heapF32(backend),
        floatOffset(backend, param),
        floatOffset(backend, m),
        floatOffset(backend, v),
        floatOffset(backend, grad),
        pOut!,
        mOut!,
        vOut!,
        n,
        coefficients,
      );
    }
    return outs;
  }) as tf.KernelFunc;
}

function sumOfSquaresKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const tensors = Object.values(args.inputs) as tf.TensorInfo[];
    requireFloat32(VMOE_SUM_OF_SQUARES, Object.fromEntries(tensors.map((t, i) => [String(i), t])));
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([], 'float32');
    const nonEmpty = tensors.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
    const total = addon.sumOfSquares(
      heapF32(backend),
      Float64Array.from(nonEmpty, (t) => floatOffset(backend, t)),
      Float64Array.from(nonEmpty, (t) => tf.util.sizeFromShape(t.shape)),
    );
    heapF32(backend)[floatOffset(backend, out)] = total;
    return out;
  }) as tf.KernelFunc;
}

/** (M, H) rows and M int32 indices, checked. */
function rowsAndIndices(
  kernel: string,
  x: tf.TensorInfo,
  indices: Record<string, tf.TensorInfo>,
): { m: number; h: number } {
  requireFloat32(kernel, { x });
  if (x.shape.length !== 2) throw new Error(`${kernel}: x [${x.shape}] must be 2-D (rows, width)`);
  const [m, h] = x.shape as [number, number];
  for (const [name, t] of Object.entries(indices)) {
    if (t.dtype !== 'int32' || !sameShape(t.shape, [m]))
      throw new Error(`${kernel}: ${name} must be int32 of shape [${m}], got ${t.dtype} [${t.shape}]`);
  }
  return { m, h };
}

function countAttr(kernel: string, attrs: tf.NamedAttrMap | undefined, name: string): number {
  const v = numberAttr(kernel, attrs, name);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${kernel}: attribute ${name} must be an integer >= 0`);
  return v;
}

function combineRowsKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, gates, tokens, gateIndex } = args.inputs as Record<
      'x' | 'gates' | 'tokens' | 'gateIndex',
      tf.TensorInfo
    >;
    const { m, h } = rowsAndIndices(VMOE_COMBINE_ROWS, x, { tokens, gateIndex });
    requireFloat32(VMOE_COMBINE_ROWS, { gates });
    const numTokens = countAttr(VMOE_COMBINE_ROWS, args.attrs, 'numTokens');
    const backend = args.backend as WasmBackendLike;
    const y = backend.makeOutput([numTokens, h], 'float32');
    if (numTokens * h > 0) {
      addon.combineRows(
        heapF32(backend),
        floatOffset(backend, x),
        floatOffset(backend, gates),
        floatOffset(backend, tokens),
        floatOffset(backend, gateIndex),
        floatOffset(backend, y),
        numTokens,
        tf.util.sizeFromShape(gates.shape),
        m,
        h,
      );
    }
    return y;
  }) as tf.KernelFunc;
}

function combineRowsGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, x, gates, tokens, gateIndex } = args.inputs as Record<
      'dy' | 'x' | 'gates' | 'tokens' | 'gateIndex',
      tf.TensorInfo
    >;
    const { m, h } = rowsAndIndices(VMOE_COMBINE_ROWS_GRAD, x, { tokens, gateIndex });
    requireFloat32(VMOE_COMBINE_ROWS_GRAD, { dy, gates });
    if (dy.shape.length !== 2 || dy.shape[1] !== h)
      throw new Error(`${VMOE_COMBINE_ROWS_GRAD}: dy [${dy.shape}] must be (tokens, ${h})`);
    const backend = args.backend as WasmBackendLike;
    const dx = backend.makeOutput([m, h], 'float32');
    const dgates = backend.makeOutput(gates.shape, 'float32');
    addon.combineRowsGrad(
      heapF32(backend),
      floatOffset(backend, dy),
      floatOffset(backend, x),
      floatOffset(backend, gates),
      floatOffset(backend, tokens),
      floatOffset(backend, gateIndex),
      floatOffset(backend, dx),
      floatOffset(backend, dgates),
      dy.shape[0]!,
      tf.util.sizeFromShape(gates.shape),
      m,
      h,
    );
    return [dx, dgates];
  }) as tf.KernelFunc;
}

/**
 * (E, R, I, O, N) of an expert product from w (E, I, O), rows (E) int32 and x, checked: x is
 * (E, R, I), or with tokens ((E·R) int32) the (N, I) token matrix and R = tokens / E.
 */
function expertDims(
  kernel: string,
  x: tf.TensorInfo,
  w: tf.TensorInfo,
  rows: tf.TensorInfo,
  tokens: tf.TensorInfo | undefined,
) {
  requireFloat32(kernel, { x, w });
  const [E, I, O] = w.shape as [number, number, number];
  const R = tokens ? (E > 0 ? tokens.shape[0]! / E : 0) : x.shape[1]!;
  const N = tokens ? x.shape[0]! : 0;
  const xOk = tokens
    ? x.shape.length === 2 &&
      x.shape[1] === I &&
      tokens.dtype === 'int32' &&
      tokens.shape.length === 1 &&
      Number.isInteger(R)
    : sameShape(x.shape, [E, R, I]);
  if (w.shape.length !== 3 || !xOk || rows.dtype !== 'int32' || !sameShape(rows.shape, [E])) {
    throw new Error(
      `${kernel}: x [${x.shape}], w [${w.shape}] and rows (${rows.dtype} [${rows.shape}]) must be (E, R, I) (or (N, I) with int32 tokens of E·R), (E, I, O) and int32 (E)`,
    );
  }
  return { E, R, I, O, N };
}

function expertDenseKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, w, b, rows, tokens } = args.inputs as Record<
      'x' | 'w' | 'b' | 'rows' | 'tokens',
      tf.TensorInfo | undefined
    >;
    const { E, R, I, O, N } = expertDims(VMOE_EXPERT_DENSE, x!, w!, rows!, tokens);
    if (b) {
      requireFloat32(VMOE_EXPERT_DENSE, { b });
      if (!sameShape(b.shape, [E, O])) throw new Error(`${VMOE_EXPERT_DENSE}: b [${b.shape}] must be (${E}, ${O})`);
    }
    const backend = args.backend as WasmBackendLike;
    const y = backend.makeOutput([E, R, O], 'float32');
    addon.expertDense(
      heapF32(backend),
      floatOffset(backend, x!),
      floatOffset(backend, w!),
      b ? floatOffset(backend, b) : -1,
      floatOffset(backend, rows!),
      tokens ? floatOffset(backend, tokens) : -1,
      floatOffset(backend, y),
      E,
      R,
      I,
      O,
      N,
    );
    return y;
  }) as tf.KernelFunc;
}

function expertDenseGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, x, w, rows, tokens } = args.inputs as Record<
      'dy' | 'x' | 'w' | 'rows' | 'tokens',
      tf.TensorInfo | undefined
    >;
    const { E, R, I, O, N } = expertDims(VMOE_EXPERT_DENSE_GRAD, x!, w!, rows!, tokens);
    requireFloat32(VMOE_EXPERT_DENSE_GRAD, { dy: dy! });
    if (!sameShape(dy!.shape, [E, R, O]))
      throw new Error(`${VMOE_EXPERT_DENSE_GRAD}: dy [${dy!.shape}] must be (${E}, ${R}, ${O})`);
    const bias = (args.attrs as { bias?: unknown }).bias === true;
    const backend = args.backend as WasmBackendLike;
    const dx = backend.makeOutput(x!.shape, 'float32');
    const dw = backend.makeOutput([E, I, O], 'float32');
    const db = bias ? backend.makeOutput([E, O], 'float32') : null;
    addon.expertDenseGrad(
      heapF32(backend),
      floatOffset(backend, dy!),
      floatOffset(backend, x!),
      floatOffset(backend, w!),
      floatOffset(backend, rows!),
      tokens ? floatOffset(backend, tokens) : -1,
      floatOffset(backend, dx),
      floatOffset(backend, dw),
      db ? floatOffset(backend, db) : -1,
      E,
      R,
      I,
      O,
      N,
    );
    return db ? [dx, dw, db] : [dx, dw];
  }) as tf.KernelFunc;
}

function routerAuxKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { logits, noise, kth } = args.inputs as Record<'logits' | 'noise' | 'kth', tf.TensorInfo | undefined>;
    requireFloat32(VMOE_ROUTER_AUX, { logits, ...(noise ? { noise } : {}) });
    const [N, E] = logits!.shape as [number, number];
    if (logits!.shape.length !== 2 || (noise && !sameShape(noise.shape, [N, E]))) {
      throw new Error(
        `${VMOE_ROUTER_AUX}: logits and noise must both be (N, E); got [${logits!.shape}], [${noise?.shape}]`,
      );
    }
    if (!noise !== !kth || (kth && (kth.dtype !== 'int32' || !sameShape(kth.shape, [N])))) {
      throw new Error(`${VMOE_ROUTER_AUX}: noise and kth come together, kth int32 of shape [${N}]`);
    }
    const sizes = (args.attrs as { groupSizes?: unknown }).groupSizes;
    if (!Array.isArray(sizes) || !sizes.every((v) => Number.isInteger(v) && v > 0)) {
      throw new Error(`${VMOE_ROUTER_AUX}: attribute groupSizes must be an array of positive integers`);
    }
    const backend = args.backend as WasmBackendLike;
    const dLogits = backend.makeOutput([N, E], 'float32');
    const losses = backend.makeOutput([3], 'float32');
    const off = (t: tf.TensorInfo | undefined) => (t ? floatOffset(backend, t) : -1);
    addon.routerAux(
      heapF32(backend),
      off(logits),
      off(noise),
      off(kth),
      off(dLogits),
      off(losses),
      N,
      E,
      countAttr(VMOE_ROUTER_AUX, args.attrs, 'members'),
      numberAttr(VMOE_ROUTER_AUX, args.attrs, 'sigma'),
      numberAttr(VMOE_ROUTER_AUX, args.attrs, 'importanceWeight'),
      numberAttr(VMOE_ROUTER_AUX, args.attrs, 'loadWeight'),
      Float64Array.from(sizes as number[]),
    );
    return [dLogits, losses];
  }) as tf.KernelFunc;
}

/** (N, H, E) of a router call from x (N, H) and w (H, E), checked; `also` must all be (N, E). */
function routerDims(
  kernel: string,
  x: tf.TensorInfo,
  w: tf.TensorInfo,
  also: Record<string, tf.TensorInfo | undefined>,
) {
  const present = Object.fromEntries(Object.entries(also).filter(([, t]) => t !== undefined)) as Record<
    string,
    tf.TensorInfo
  >;
  requireFloat32(kernel, { x, w, ...present });
  const [N, H] = x.shape as [number, number];
  const E = w.shape[1]!;
  if (x.shape.length !== 2 || !sameShape(w.shape, [H, E]) || E < 1 || H < 1) {
    throw new Error(`${kernel}: x [${x.shape}] and w [${w.shape}] must be (N, H) and (H, E)`);
  }
  for (const [name, t] of Object.entries(present)) {
    if (!sameShape(t.shape, [N, E])) throw new Error(`${kernel}: ${name} [${t.shape}] must be (${N}, ${E})`);
  }
  return { N, H, E };
}

function routerGatesKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, w, noise } = args.inputs as Record<'x' | 'w' | 'noise', tf.TensorInfo | undefined>;
    const { N, H, E } = routerDims(VMOE_ROUTER_GATES, x!, w!, { noise });
    const members = countAttr(VMOE_ROUTER_GATES, args.attrs, 'members');
    if (!(members >= 1) || E % members !== 0)
      throw new Error(`${VMOE_ROUTER_GATES}: ${E} experts do not split into ${members} members`);
    const backend = args.backend as WasmBackendLike;
    const logits = backend.makeOutput([N, E], 'float32');
    const gates = backend.makeOutput([N, E], 'float32');
    addon.routerGates(
      heapF32(backend),
      floatOffset(backend, x!),
      floatOffset(backend, w!),
      noise ? floatOffset(backend, noise) : -1,
      floatOffset(backend, logits),
      floatOffset(backend, gates),
      N,
      H,
      E,
      members,
    );
    return [logits, gates];
  }) as tf.KernelFunc;
}

function routerGatesGradKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, w, gates, dGates, dLogits } = args.inputs as Record<
      'x' | 'w' | 'gates' | 'dGates' | 'dLogits',
      tf.TensorInfo | undefined
    >;
    if (!gates || !dGates) throw new Error(`${VMOE_ROUTER_GATES_GRAD}: needs gates and dGates`);
    const { N, H, E } = routerDims(VMOE_ROUTER_GATES_GRAD, x!, w!, { gates, dGates, dLogits });
    const backend = args.backend as WasmBackendLike;
    const dx = backend.makeOutput([N, H], 'float32');
    const dw = backend.makeOutput([H, E], 'float32');
    addon.routerGatesGrad(
      heapF32(backend),
      floatOffset(backend, x!),
      floatOffset(backend, w!),
      floatOffset(backend, gates),
      floatOffset(backend, dGates),
      dLogits ? floatOffset(backend, dLogits) : -1,
      floatOffset(backend, dx),
      floatOffset(backend, dw),
      N,
      H,
      E,
    );
    return [dx, dw];
  }) as tf.KernelFunc;
}

/**
 * Rows per block of VmoeDenseGelu: about 64 K floats (256 KB) of product, which stays in the L2 cache
 * (1 MB a core on the reference machine) between the GEMM that writes it and the GELU that reads it — but at least
 * 400 rows: the GEMM reads (packs) all of w once per block, and at S/32's fc1 (512 × 2048) blocks of 32 rows ran
 * at 105 GFLOP/s on 2 threads, 200 rows at 154, 400 at 164, 800 at 172 (docs/performance.md §5).
 */
function denseGeluBlockRows(outCols: number): number {
  return Math.max(400, Math.floor(65536 / Math.max(1, outCols)));
}

/**
 * gelu(x w + b) for the inference path: per block of rows, one GEMM with the bias (the same gemm() as
 * _FusedMatMul) into a scratch block, then GELU from it into the output rows. Two addon calls per block
 * and no (N, O) pre-activation tensor; the values are those of _FusedMatMul followed by VmoeGelu as long
 * as the GEMM library computes a row block's products as it computes them in the whole matrix.
 */
function denseGeluKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, w, b } = args.inputs as Record<'x' | 'w' | 'b', tf.TensorInfo | undefined>;
    requireFloat32(VMOE_DENSE_GELU, { x, w, b });
    const [N, I] = x!.shape as [number, number];
    const O = w!.shape[1]!;
    if (x!.shape.length !== 2 || !sameShape(w!.shape, [I, O]) || !sameShape(b!.shape, [O])) {
      throw new Error(
        `${VMOE_DENSE_GELU}: x [${x!.shape}], w [${w!.shape}], b [${b!.shape}] must be (N, I), (I, O), (O)`,
      );
    }
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([N, O], 'float32');
    if (N * O === 0) return out;
    const block = Math.min(N, denseGeluBlockRows(O));
    const scratch = backend.makeOutput([block, O], 'float32');
    // Views and offsets only after makeOutput: allocating can grow (and so replace) the wasm memory.
    const heap = heapF32(backend);
    const xOff = floatOffset(backend, x!),
      wOff = floatOffset(backend, w!),
      bOff = floatOffset(backend, b!),
      yOff = floatOffset(backend, out),
      sOff = floatOffset(backend, scratch);
    for (let r = 0; r < N; r += block) {
      const m = Math.min(block, N - r);
      addon.sgemm(heap, false, false, m, O, I, 1, xOff + r * I, 0, wOff, 0, sOff, 0, bOff, 0, false);
      addon.gelu(heap, sOff, yOff + r * O, m * O);
    }
    backend.disposeData(scratch.dataId, true);
    return out;
  }) as tf.KernelFunc;
}

/**
 * Images per tile of VmoeEncoderBlock: a tile's activations (6H + 2F floats a row: LN output, q|k|v, merged heads,
 * x1, the MLP's pre-activation and GELU) about 128 K floats (512 KB), inside the L2 cache (1 MB a core on the
 * reference machine) from the block's first op to its last, but at least 200 rows, below which the products lose
 * speed to reading their weights again per tile (ViT-S/32: 1 image a tile ran at 53 images/s, 4 images at 62);
 * at least one image.
 */
function encoderBlockTileImages(T: number, H: number, F: number): number {
  const budget = Math.max(200, Math.floor(131072 / (6 * H + 2 * F)));
  return Math.max(1, Math.floor(budget / T));
}

const BLOCK_VECTORS = ['ln1Scale', 'ln1Bias', 'wqkv', 'bqkv', 'wo', 'bo', 'ln2Scale', 'ln2Bias'] as const;
const BLOCK_MLP = ['w1', 'b1', 'w2', 'b2'] as const;

/**
 * Environment switch: `VMOE_PACKED_WEIGHTS=0` runs the encoder block's and the experts' products on row-major weights
 * (comparisons).
 */
export const PACKED_WEIGHTS_ENV = 'VMOE_PACKED_WEIGHTS';

/**
 * Each weight tensor's copy packed for oneDNN's matmul (native/src/packed.cc), made on its first inference use.
 * Keyed by the tensor's data: tensors never change their data, and an assignment to a weight variable gives it new
 * data (a new key), so a packed copy can never be stale; it goes with its key (the addon frees it with the external).
 * `false` records a weight oneDNN would not pack.
 */
const packedWeights = new WeakMap<object, PackedWeightHandle | false>();

function packedWeight(
  addon: BlasAddon,
  backend: WasmBackendLike,
  w: tf.TensorInfo,
  K: number,
  N: number,
  rows: number,
): PackedWeightHandle | null {
  if (process.env[PACKED_WEIGHTS_ENV] === '0') return null;
  const key = w.dataId as object;
  let p = packedWeights.get(key);
  if (p === undefined) {
    p = addon.packWeights(heapF32(backend), floatOffset(backend, w), K, N, rows) ?? false;
    packedWeights.set(key, p);
  }
  return p === false ? null : p;
}

/**
 * packedWeight for each of the E experts' (K, N) slices of w (E, K, N), kept under w's data as one list; null where
 * oneDNN packs none of them.
 */
const packedExpertLists = new WeakMap<object, (PackedWeightHandle | null)[] | false>();

function packedExperts(
  addon: BlasAddon,
  backend: WasmBackendLike,
  w: tf.TensorInfo,
  E: number,
  K: number,
  N: number,
  rows: number,
): (PackedWeightHandle | null)[] | null {
  if (process.env[PACKED_WEIGHTS_ENV] === '0') return null;
  const key = w.dataId as object;
  let list = packedExpertLists.get(key);
  if (list === undefined) {
    const base = floatOffset(backend, w);
    const made = Array.from({ length: E }, (_, e) => addon.packWeights(heapF32(backend), base + e * K * N, K, N, rows));
    list = made.some((p) => p !== null) ? made : false;
    packedExpertLists.set(key, list);
  }
  return list === false ? null : list;
}

/**
 * The inference encoder block (contract in ../fused-kernels.ts): one addon call for the whole block, tiled over
 * the batch (native/src/block.cc). Attribute tileImages (optional) fixes the tile; else encoderBlockTileImages.
 */
function encoderBlockKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const inputs = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const x = inputs.x;
    const needed: Record<string, tf.TensorInfo | undefined> = { x };
    for (const n of BLOCK_VECTORS) needed[n] = inputs[n];
    const mlp = inputs.w1 !== undefined;
    if (mlp) for (const n of BLOCK_MLP) needed[n] = inputs[n];
    requireFloat32(VMOE_ENCODER_BLOCK, needed);
    if (x!.shape.length !== 3) throw new Error(`${VMOE_ENCODER_BLOCK}: x [${x!.shape}] must be (B, T, H)`);
    const [B, T, H] = x!.shape as [number, number, number];
    const attrs = (args.attrs ?? {}) as { heads?: unknown; tileImages?: unknown };
    const heads = attrs.heads;
    if (typeof heads !== 'number' || !Number.isInteger(heads) || heads < 1 || H % heads !== 0) {
      throw new Error(`${VMOE_ENCODER_BLOCK}: attribute heads must be a positive integer dividing ${H}`);
    }
    const eps = epsilonAttr(VMOE_ENCODER_BLOCK, args.attrs);
    const F = mlp ? inputs.w1!.shape[1]! : 0;
    const shapes: Record<string, number[]> = {
      ln1Scale: [H],
      ln1Bias: [H],
      wqkv: [H, 3 * H],
      bqkv: [3 * H],
      wo: [H, H],
      bo: [H],
      ln2Scale: [H],
      ln2Bias: [H],
      ...(mlp ? { w1: [H, F], b1: [F], w2: [F, H], b2: [H] } : {}),
    };
    for (const [n, shape] of Object.entries(shapes)) {
      if (!sameShape(inputs[n]!.shape, shape))
        throw new Error(`${VMOE_ENCODER_BLOCK}: ${n} [${inputs[n]!.shape}] must have shape [${shape}]`);
    }
    if (mlp && F < 1) throw new Error(`${VMOE_ENCODER_BLOCK}: w1 [${inputs.w1!.shape}] has no columns`);
    const tile =
      typeof attrs.tileImages === 'number' && attrs.tileImages >= 1
        ? Math.floor(attrs.tileImages)
        : encoderBlockTileImages(T, H, F);
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([B, T, H], 'float32');
    const out2 = mlp ? null : backend.makeOutput([B * T, H], 'float32');
    if (B * T * H > 0) {
      // Views and offsets only after makeOutput: allocating can grow (and so replace) the wasm memory.
      const off = (n: string) => (inputs[n] ? floatOffset(backend, inputs[n]!) : 0);
      const packed = (n: string, K: number, N: number) =>
        inputs[n] ? packedWeight(addon, backend, inputs[n]!, K, N, tile * T) : null;
      const pqkv = packed('wqkv', H, 3 * H),
        po = packed('wo', H, H),
        p1 = mlp ? packed('w1', H, F) : null,
        p2 = mlp ? packed('w2', F, H) : null;
      addon.encoderBlock(
        heapF32(backend),
        floatOffset(backend, x!),
        floatOffset(backend, out),
        out2 ? floatOffset(backend, out2) : 0,
        ...(BLOCK_VECTORS.map(off) as [number, number, number, number, number, number, number, number]),
        ...(BLOCK_MLP.map(off) as [number, number, number, number]),
        B,
        T,
        H,
        heads,
        F,
        tile,
        eps,
        pqkv,
        po,
        p1,
        p2,
      );
    }
    return out2 ? [out, out2] : out;
  }) as tf.KernelFunc;
}

/** The inference patch embedding (contract in ../fused-kernels.ts), in tiles of images as the encoder block's. */
function patchEmbedKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { images, kernel, bias, cls, pos } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    requireFloat32(VMOE_PATCH_EMBED, { images, kernel, bias, pos, ...(cls ? { cls } : {}) });
    const p = (args.attrs as { patch?: unknown } | undefined)?.patch;
    const [B, S, S2, C] = images!.shape as [number, number, number, number];
    if (images!.shape.length !== 4 || S !== S2 || typeof p !== 'number' || !Number.isInteger(p) || p < 1 || S % p) {
      throw new Error(
        `${VMOE_PATCH_EMBED}: images [${images!.shape}] must be (B, S, S, C) with S a multiple of patch ${p}`,
      );
    }
    const H = bias!.shape[0]!;
    const T = (S / p) ** 2 + (cls ? 1 : 0);
    const shapes: Record<string, [tf.TensorInfo | undefined, number[]]> = {
      kernel: [kernel, [p * p * C, H]],
      bias: [bias, [H]],
      pos: [pos, [T, H]],
      ...(cls ? { cls: [cls, [H]] as [tf.TensorInfo, number[]] } : {}),
    };
    for (const [n, [t, shape]] of Object.entries(shapes)) {
      if (!sameShape(t!.shape, shape))
        throw new Error(`${VMOE_PATCH_EMBED}: ${n} [${t!.shape}] must have shape [${shape}]`);
    }
    const backend = args.backend as WasmBackendLike;
    const out = backend.makeOutput([B, T, H], 'float32');
    if (B > 0) {
      addon.patchEmbed(
        heapF32(backend),
        floatOffset(backend, images!),
        floatOffset(backend, kernel!),
        floatOffset(backend, bias!),
        cls ? floatOffset(backend, cls) : -1,
        floatOffset(backend, pos!),
        floatOffset(backend, out),
        B,
        S,
        C,
        p,
        H,
        encoderBlockTileImages(T, H, 0),
      );
    }
    return out;
  }) as tf.KernelFunc;
}

/** Rows per work item of VmoeExpertMlp (one expert's gather, products and GELU with the rows in cache). */
const EXPERT_WORK_ROWS = 256;
/** The smallest hidden size whose experts VmoeExpertMlp runs on packed weights. */
const EXPERT_PACK_MIN_HIDDEN = 256;

/** The MoE layer's experts and combine for inference (contract in ../fused-kernels.ts). */
function expertMlpKernel(addon: BlasAddon): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x, tokens, rows, w1, b1, w2, b2, gates, gateIndex } = args.inputs as Record<string, tf.TensorInfo>;
    requireFloat32(VMOE_EXPERT_MLP, { x, w1, b1, w2, b2, gates });
    const [E, H, F] = w1!.shape as [number, number, number];
    const N = x!.shape[0]!;
    const R = E > 0 ? tokens!.shape[0]! / E : 0;
    const shapes: Record<string, [tf.TensorInfo, number[]]> = {
      x: [x!, [N, H]],
      b1: [b1!, [E, F]],
      w2: [w2!, [E, F, H]],
      b2: [b2!, [E, H]],
      rows: [rows!, [E]],
      tokens: [tokens!, [E * R]],
      gateIndex: [gateIndex!, [E * R]],
    };
    for (const [n, [t, shape]] of Object.entries(shapes)) {
      if (!sameShape(t.shape, shape) || !Number.isInteger(R))
        throw new Error(`${VMOE_EXPERT_MLP}: ${n} [${t.shape}] must have shape [${shape}] (w1 [${w1!.shape}])`);
    }
    for (const [n, t] of Object.entries({ tokens, rows, gateIndex })) {
      if (t!.dtype !== 'int32') throw new Error(`${VMOE_EXPERT_MLP}: ${n} must be int32, got ${t!.dtype}`);
    }
    const backend = args.backend as WasmBackendLike;
    const y = backend.makeOutput([N, H], 'float32');
    if (N * H > 0) {
      // Views and offsets only after makeOutput (it can grow the wasm memory); packing allocates none. Packed from
      // hidden 256 (docs/performance.md §5): there the experts ran 5-14 % faster packed, at the tiny model's
      // hidden 64 up to 10 % slower (rows padded to 16 and a primitive call cost more than the saved packing).
      const pack = H >= EXPERT_PACK_MIN_HIDDEN;
      const packed1 = pack ? packedExperts(addon, backend, w1!, E, H, F, EXPERT_WORK_ROWS) : null;
      const packed2 = pack ? packedExperts(addon, backend, w2!, E, F, H, EXPERT_WORK_ROWS) : null;
      addon.expertMlp(
        heapF32(backend),
        floatOffset(backend, x!),
        floatOffset(backend, tokens!),
        floatOffset(backend, rows!),
        floatOffset(backend, w1!),
        floatOffset(backend, b1!),
        floatOffset(backend, w2!),
        floatOffset(backend, b2!),
        floatOffset(backend, gates!),
        floatOffset(backend, gateIndex!),
        floatOffset(backend, y),
        E,
        R,
        H,
        F,
        N,
        tf.util.sizeFromShape(gates!.shape),
        EXPERT_WORK_ROWS,
        packed1,
        packed2,
      );
    }
    return y;
  }) as tf.KernelFunc;
}

/** The fused kernels (names and contracts in ../fused-kernels.ts) as kernel configs for `backendName`. */
export function fusedKernels(addon: BlasAddon, backendName: string): tf.KernelConfig[] {
  const kernels: [string, tf.KernelFunc][] = [
    [VMOE_GELU, unaryKernel(VMOE_GELU, addon.gelu)],
    [VMOE_GELU_GRAD, unaryGradKernel(VMOE_GELU_GRAD, addon.geluGrad)],
    [VMOE_LAYER_NORM, layerNormKernel(addon)],
    [VMOE_LAYER_NORM_GRAD, layerNormGradKernel(addon)],
    [VMOE_SOFTMAX, softmaxKernel(addon)],
    [VMOE_SOFTMAX_GRAD, softmaxGradKernel(addon)],
    [VMOE_ATTENTION, attentionKernel(addon)],
    [VMOE_ATTENTION_GRAD, attentionGradKernel(addon)],
    [VMOE_ADAM, adamKernel(addon)],
    [VMOE_SUM_OF_SQUARES, sumOfSquaresKernel(addon)],
    [VMOE_COMBINE_ROWS, combineRowsKernel(addon)],
    [VMOE_COMBINE_ROWS_GRAD, combineRowsGradKernel(addon)],
    [VMOE_ROUTER_AUX, routerAuxKernel(addon)],
    [VMOE_ROUTER_GATES, routerGatesKernel(addon)],
    [VMOE_ROUTER_GATES_GRAD, routerGatesGradKernel(addon)],
    [VMOE_EXPERT_DENSE, expertDenseKernel(addon)],
    [VMOE_EXPERT_DENSE_GRAD, expertDenseGradKernel(addon)],
    [VMOE_DENSE_GELU, denseGeluKernel(addon)],
    [VMOE_ENCODER_BLOCK, encoderBlockKernel(addon)],
    [VMOE_PATCH_EMBED, patchEmbedKernel(addon)],
    [VMOE_EXPERT_MLP, expertMlpKernel(addon)],
  ];
  return kernels.map(([kernelName, kernelFunc]) => ({ kernelName, backendName, kernelFunc }));
}
