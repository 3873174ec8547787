/**
 * Differentiable building blocks, written around the wasm backend's weak spots:
 * tfjs's own matMul gradient uses transpose flags (a naive loop on wasm) and
 * GatherNd/ScatterNd have no gradient, so the dense layer and the row
 * gather/scatter carry hand-written gradients built from fast kernels.
 * GELU, LayerNorm and softmax run as one fused kernel each (forward and gradient) on
 * backends that register them (src/engine/fused-kernels.ts), and as composed
 * tfjs ops elsewhere.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  hasKernel,
  isPlainWasm,
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
  VMOE_SOFTMAX,
  VMOE_SOFTMAX_GRAD,
  VMOE_EXPERT_DENSE,
  VMOE_EXPERT_DENSE_GRAD,
} from '../engine/fused-kernels.js';

type CustomGradFn = Parameters<typeof tf.customGrad>[0];

/**
 * Whether a gradient tape is recording (inside tf.grad, tf.variableGrads, …). Where none is — evaluation,
 * inference — the layers below skip their customGrad wrappers and run the same forward kernels directly:
 * same kernels, same inputs, so the same values, without the wrapper's bookkeeping per op.
 */
export function recording(): boolean {
  // tfjs-core's engine counts open gradient scopes here (its own isTapeOn reads it); should a later tfjs drop the
  // field, answer "recording" so that gradients stay right and only the inference shortcuts are lost.
  const depth = (tf.engine() as unknown as { state?: { gradientDepth?: unknown } }).state?.gradientDepth;
  return typeof depth !== 'number' || depth > 0;
}

/** Whether float32 x can take a fused kernel and its gradient kernel on the active backend. */
function fusable(x: tf.Tensor, kernel: string, gradKernel: string): boolean {
  return x.dtype === 'float32' && hasKernel(kernel) && hasKernel(gradKernel);
}

/** dy·wᵀ and xᵀ·dy; explicit transposes where transposed products are slow (plain wasm). */
function denseGrads(dy: tf.Tensor2D, x: tf.Tensor2D, w: tf.Tensor2D): [tf.Tensor2D, tf.Tensor2D] {
  if (isPlainWasm()) return [tf.matMul(dy, tf.transpose(w)), tf.matMul(tf.transpose(x), dy)];
  return [tf.matMul(dy, w, false, true), tf.matMul(x, dy, true, false)];
}

/** x W for 2-D x with a gradient of plain 2-D matMuls. */
function matMul2d(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  if (!recording()) return tf.matMul(x, w);
  const f = tf.customGrad(((xi: tf.Tensor2D, wi: tf.Tensor2D, save: tf.GradSaveFunc) => {
    save([xi, wi]);
    return {
      value: tf.matMul(xi, wi),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        denseGrads(dy as tf.Tensor2D, saved[0] as tf.Tensor2D, saved[1] as tf.Tensor2D),
    };
  }) as unknown as CustomGradFn);
  return f(x, w) as tf.Tensor2D;
}

/**
 * y = x W + b for 2-D x, with a gradient of plain 2-D matMuls (and a column
 * sum for b). The bias rides in the fused product (one kernel, no separate
 * add) except on plain wasm, whose fused kernel mishandles reshaped biases.
 */
export function dense2d(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  if (!b) return matMul2d(x, w);
  if (isPlainWasm()) return tf.add(matMul2d(x, w), b);
  if (!recording()) return tf.fused.matMul({ a: x, b: w, bias: b }) as tf.Tensor2D;
  const f = tf.customGrad(((xi: tf.Tensor2D, wi: tf.Tensor2D, bi: tf.Tensor1D, save: tf.GradSaveFunc) => {
    save([xi, wi]);
    return {
      value: tf.fused.matMul({ a: xi, b: wi, bias: bi }),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [dx, dw] = denseGrads(dy as tf.Tensor2D, saved[0] as tf.Tensor2D, saved[1] as tf.Tensor2D);
        return [dx, dw, tf.sum(dy, 0)];
      },
    };
  }) as unknown as CustomGradFn);
  return f(x, w, b) as tf.Tensor2D;
}

/** Dense over the last axis of any-rank x: (..., I) → (..., O). Reshapes to 2-D (tfjs 3-D@2-D grads are wrong). */
export function dense(x: tf.Tensor, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor {
  const inDim = x.shape[x.rank - 1]!;
  const lead = x.shape.slice(0, -1);
  const y = dense2d(tf.reshape(x, [-1, inDim]), w, b);
  return tf.reshape(y, [...lead, w.shape[1]]);
}

/** LayerNorm over the last axis, epsilon 1e-6 (docs/spec/model.md §4). */
export function layerNorm(x: tf.Tensor, scale: tf.Tensor1D, bias: tf.Tensor1D, eps = 1e-6): tf.Tensor {
  if (fusable(x, VMOE_LAYER_NORM, VMOE_LAYER_NORM_GRAD)) return fusedLayerNorm(x, scale, bias, eps);
  return composedLayerNorm(x, scale, bias, eps);
}

/** LayerNorm from tfjs ops; the reference for the fused kernel. */
export function composedLayerNorm(x: tf.Tensor, scale: tf.Tensor1D, bias: tf.Tensor1D, eps = 1e-6): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  const normed = tf.mul(centered, tf.rsqrt(tf.add(variance, eps)));
  return tf.add(tf.mul(normed, scale), bias);
}

function fusedLayerNorm(x: tf.Tensor, scale: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor {
  if (!recording()) return tf.engine().runKernel(VMOE_LAYER_NORM, { x, scale, bias }, { epsilon: eps }) as tf.Tensor;
  const f = tf.customGrad(((xi: tf.Tensor, si: tf.Tensor1D, bi: tf.Tensor1D, save: tf.GradSaveFunc) => {
    save([xi, si]);
    return {
      value: tf.engine().runKernel(VMOE_LAYER_NORM, { x: xi, scale: si, bias: bi }, { epsilon: eps }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ss] = saved as [tf.Tensor, tf.Tensor1D];
        // [dx (x's shape), dscale (C), dbias (C)]: the column sums run over all leading axes.
        return tf.engine().runKernel(VMOE_LAYER_NORM_GRAD, { dy, x: xs, scale: ss }, { epsilon: eps }) as tf.Tensor[];
      },
    };
  }) as unknown as CustomGradFn);
  return f(x, scale, bias) as tf.Tensor;
}

/** GELU, tanh form: x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³))). */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (fusable(x, VMOE_GELU, VMOE_GELU_GRAD)) return fusedUnary(x, VMOE_GELU, VMOE_GELU_GRAD);
  return composedGelu(x);
}

const GELU_C = Math.sqrt(2 / Math.PI);
/** GELU from tfjs ops; the reference for the fused kernel. x*x*x instead of pow: pow is slow on wasm. */
export function composedGelu(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), GELU_C);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

/** An elementwise fused kernel {x} → y with its gradient kernel {dy, x} → dx. */
function fusedUnary(x: tf.Tensor, kernel: string, gradKernel: string): tf.Tensor {
  if (!recording()) return tf.engine().runKernel(kernel, { x }) as tf.Tensor;
  const f = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xi]);
    return {
      value: tf.engine().runKernel(kernel, { x: xi }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.engine().runKernel(gradKernel, { dy, x: saved[0]! }) as tf.Tensor,
    };
  }) as unknown as CustomGradFn);
  return f(x) as tf.Tensor;
}

/**
 * gelu(x W + b) for 2-D x: the MLP's first product. Outside a gradient tape, where the backend has the
 * fused kernel, one kernel computes it block by block (the product never makes a whole (N, O) tensor);
 * otherwise gelu(dense2d(x, w, b)), whose values the fused kernel reproduces (tests/vmoe/inference.test.ts).
 */
export function denseGelu(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  if (!recording() && x.dtype === 'float32' && hasKernel(VMOE_DENSE_GELU)) {
    return tf.engine().runKernel(VMOE_DENSE_GELU, { x, w, b }) as tf.Tensor2D;
  }
  return gelu(dense2d(x, w, b)) as tf.Tensor2D;
}

/** The weights of one pre-LN encoder block; `mlp` for a dense block (an MoE block's MLP runs apart). */
export interface EncoderBlockWeights {
  ln1Scale: tf.Tensor1D;
  ln1Bias: tf.Tensor1D;
  /** (H, 3H), columns [q | k | v], each head-major; bias (3H). */
  wqkv: tf.Tensor2D;
  bqkv: tf.Tensor1D;
  wo: tf.Tensor2D;
  bo: tf.Tensor1D;
  ln2Scale: tf.Tensor1D;
  ln2Bias: tf.Tensor1D;
  mlp?: { w1: tf.Tensor2D; b1: tf.Tensor1D; w2: tf.Tensor2D; b2: tf.Tensor1D };
}

/**
 * Whether a whole encoder block on x can run as one inference kernel: no gradient tape, float32, and a backend
 * with VmoeEncoderBlock (the caller also checks that no dropout is active).
 */
export function canFuseEncoderBlock(x: tf.Tensor): boolean {
  return !recording() && x.dtype === 'float32' && hasKernel(VMOE_ENCODER_BLOCK);
}

/**
 * The pre-LN encoder block as one kernel (needs canFuseEncoderBlock): x (B, T, H) → with `w.mlp`, the block's
 * output (B, T, H); without, [x1 = x + attention (B, T, H), LN2(x1) (B·T, H)], the MoE layer's input. The same
 * values as the op-by-op forward of src/vmoe/model.ts to float rounding (tests/vmoe/inference.test.ts).
 */
export function encoderBlock(
  x: tf.Tensor3D,
  w: EncoderBlockWeights,
  heads: number,
  eps = 1e-6,
): tf.Tensor | tf.Tensor[] {
  const { mlp, ...rest } = w;
  return tf.engine().runKernel(VMOE_ENCODER_BLOCK, { x, ...rest, ...(mlp ?? {}) }, { heads, epsilon: eps });
}

/** Environment switch: `VMOE_FUSED_TRAINING_BLOCK=0` records the encoder block op by op under a tape (comparisons). */
export const FUSED_TRAINING_BLOCK_ENV = 'VMOE_FUSED_TRAINING_BLOCK';

/**
 * Whether a recording encoder block on x can take attentionResidual / mlpResidual: float32, a backend with the fused
 * LayerNorm, attention and GELU kernels and their gradients, not plain wasm (the caller also checks that no dropout
 * is active: these have none).
 */
export function canFuseTrainingBlock(x: tf.Tensor): boolean {
  // The switch is read through globalThis: this module also runs in the web page, which has no process.
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return (
    env?.[FUSED_TRAINING_BLOCK_ENV] !== '0' &&
    recording() &&
    !isPlainWasm() &&
    fusable(x, VMOE_LAYER_NORM, VMOE_LAYER_NORM_GRAD) &&
    hasKernel(VMOE_ATTENTION) &&
    hasKernel(VMOE_ATTENTION_GRAD) &&
    hasKernel(VMOE_GELU) &&
    hasKernel(VMOE_GELU_GRAD)
  );
}

/** The attention half's weights for attentionResidual: q, k, v apart (their gradients go to three variables). */
export interface AttentionHalfWeights {
  ln1Scale: tf.Tensor1D;
  ln1Bias: tf.Tensor1D;
  wq: tf.Tensor2D;
  wk: tf.Tensor2D;
  wv: tf.Tensor2D;
  bq: tf.Tensor1D;
  bk: tf.Tensor1D;
  bv: tf.Tensor1D;
  wo: tf.Tensor2D;
  bo: tf.Tensor1D;
}

/**
 * x + out(attention(LN1(x) Wqkv + bqkv)) for x (B, T, H), as one node on the gradient tape (needs
 * canFuseTrainingBlock). The forward runs the kernels the op-by-op block runs, in its order, and the gradient runs
 * the kernels of those ops' gradients (dense: dy·Wᵀ, xᵀ·dy and the column sum; the concat's split; the residual's
 * dy added to the LayerNorm's dx), so values and gradients are the op-by-op path's bit for bit
 * (tests/vmoe/training-block.test.ts) — without its ~16 tape nodes per block, each with its own bookkeeping.
 */
export function attentionResidual(x: tf.Tensor3D, w: AttentionHalfWeights, heads: number, eps = 1e-6): tf.Tensor3D {
  const [B, T, H] = x.shape;
  const attrs = { batch: B, heads, scale: 1 / Math.sqrt(H / heads) };
  const f = tf.customGrad(((...args: unknown[]) => {
    const [xi, ls, lb, wq, wk, wv, bq, bk, bv, wo, bo] = args as [
      tf.Tensor3D,
      tf.Tensor1D,
      tf.Tensor1D,
      tf.Tensor2D,
      tf.Tensor2D,
      tf.Tensor2D,
      tf.Tensor1D,
      tf.Tensor1D,
      tf.Tensor1D,
      tf.Tensor2D,
      tf.Tensor1D,
    ];
    const save = args[11] as tf.GradSaveFunc;
    const x2 = tf.reshape(xi, [B * T, H]) as tf.Tensor2D;
    const ln = tf.engine().runKernel(VMOE_LAYER_NORM, { x: x2, scale: ls, bias: lb }, { epsilon: eps }) as tf.Tensor2D;
    const wqkv = tf.concat([wq, wk, wv], 1) as tf.Tensor2D;
    const qkv = tf.fused.matMul({ a: ln, b: wqkv, bias: tf.concat([bq, bk, bv], 0) }) as tf.Tensor2D; // (B·T, 3H)
    const [a, probs] = tf.engine().runKernel(VMOE_ATTENTION, { qkv }, attrs) as [tf.Tensor2D, tf.Tensor3D];
    const o = tf.fused.matMul({ a, b: wo, bias: bo }) as tf.Tensor2D;
    save([x2, ln, wqkv, qkv, probs, a, wo, ls]);
    return {
      value: tf.reshape(tf.add(x2, o), [B, T, H]),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, lns, wqkvs, qkvs, ps, as, wos, lss] = saved as [
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor3D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor1D,
        ];
        const dy2 = tf.reshape(dy, [B * T, H]) as tf.Tensor2D;
        const [da, dwo] = denseGrads(dy2, as, wos);
        const dqkv = tf.engine().runKernel(VMOE_ATTENTION_GRAD, { dy: da, qkv: qkvs, probs: ps }, attrs) as tf.Tensor2D;
        const [dln, dwqkv] = denseGrads(dqkv, lns, wqkvs);
        const [dxl, dls, dlb] = tf
          .engine()
          .runKernel(VMOE_LAYER_NORM_GRAD, { dy: dln, x: xs, scale: lss }, { epsilon: eps }) as tf.Tensor[];
        const [dwq, dwk, dwv] = tf.split(dwqkv, 3, 1);
        const [dbq, dbk, dbv] = tf.split(tf.sum(dqkv, 0), 3, 0);
        return [
          tf.reshape(tf.add(dy2, dxl!), [B, T, H]),
          dls!,
          dlb!,
          dwq!,
          dwk!,
          dwv!,
          dbq!,
          dbk!,
          dbv!,
          dwo,
          tf.sum(dy2, 0),
        ];
      },
    };
  }) as unknown as CustomGradFn);
  const { ln1Scale, ln1Bias, wq, wk, wv, bq, bk, bv, wo, bo } = w;
  return f(x, ln1Scale, ln1Bias, wq, wk, wv, bq, bk, bv, wo, bo) as tf.Tensor3D;
}

/**
 * x + fc2(gelu(fc1(LN2(x)))) for x (B, T, H), as one node on the gradient tape (needs canFuseTrainingBlock); the
 * op-by-op block's kernels and gradients, bit for bit, as attentionResidual.
 */
export function mlpResidual(
  x: tf.Tensor3D,
  w: {
    ln2Scale: tf.Tensor1D;
    ln2Bias: tf.Tensor1D;
    w1: tf.Tensor2D;
    b1: tf.Tensor1D;
    w2: tf.Tensor2D;
    b2: tf.Tensor1D;
  },
  eps = 1e-6,
): tf.Tensor3D {
  const [B, T, H] = x.shape;
  const f = tf.customGrad(((...args: unknown[]) => {
    const [xi, ls, lb, w1, b1, w2, b2] = args as [
      tf.Tensor3D,
      tf.Tensor1D,
      tf.Tensor1D,
      tf.Tensor2D,
      tf.Tensor1D,
      tf.Tensor2D,
      tf.Tensor1D,
    ];
    const save = args[7] as tf.GradSaveFunc;
    const x2 = tf.reshape(xi, [B * T, H]) as tf.Tensor2D;
    const ln = tf.engine().runKernel(VMOE_LAYER_NORM, { x: x2, scale: ls, bias: lb }, { epsilon: eps }) as tf.Tensor2D;
    const u = tf.fused.matMul({ a: ln, b: w1, bias: b1 }) as tf.Tensor2D; // (B·T, F)
    const g = tf.engine().runKernel(VMOE_GELU, { x: u }) as tf.Tensor2D;
    const m = tf.fused.matMul({ a: g, b: w2, bias: b2 }) as tf.Tensor2D;
    save([x2, ln, u, g, w1, w2, ls]);
    return {
      value: tf.reshape(tf.add(x2, m), [B, T, H]),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, lns, us, gs, w1s, w2s, lss] = saved as [
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor1D,
        ];
        const dy2 = tf.reshape(dy, [B * T, H]) as tf.Tensor2D;
        const [dg, dw2] = denseGrads(dy2, gs, w2s);
        const du = tf.engine().runKernel(VMOE_GELU_GRAD, { dy: dg, x: us }) as tf.Tensor2D;
        const [dln, dw1] = denseGrads(du, lns, w1s);
        const [dxl, dls, dlb] = tf
          .engine()
          .runKernel(VMOE_LAYER_NORM_GRAD, { dy: dln, x: xs, scale: lss }, { epsilon: eps }) as tf.Tensor[];
        return [tf.reshape(tf.add(dy2, dxl!), [B, T, H]), dls!, dlb!, dw1, tf.sum(du, 0), dw2, tf.sum(dy2, 0)];
      },
    };
  }) as unknown as CustomGradFn);
  const { ln2Scale, ln2Bias, w1, b1, w2, b2 } = w;
  return f(x, ln2Scale, ln2Bias, w1, b1, w2, b2) as tf.Tensor3D;
}

/**
 * Patch embedding for inference as one kernel, where the backend has it and no gradient tape records: images
 * (B, S, S, C) → (B, T, H) = patches · kernel + bias, the class token first when given, plus pos; null otherwise
 * (the caller composes it from tfjs ops, whose values this reproduces to GEMM rounding).
 */
export function patchEmbed(
  images: tf.Tensor4D,
  kernel: tf.Tensor2D,
  bias: tf.Tensor1D,
  cls: tf.Tensor | null,
  pos: tf.Tensor,
  patch: number,
): tf.Tensor3D | null {
  if (recording() || images.dtype !== 'float32' || !hasKernel(VMOE_PATCH_EMBED)) return null;
  const H = bias.shape[0];
  const inputs: tf.NamedTensorMap = { images, kernel, bias, pos: tf.reshape(pos, [-1, H]) };
  if (cls) inputs.cls = tf.reshape(cls, [H]);
  return tf.engine().runKernel(VMOE_PATCH_EMBED, inputs, { patch }) as tf.Tensor3D;
}

/**
 * The MoE layer's experts and combine for inference as one kernel, where the backend has it and no gradient tape
 * records: combineRows(expert MLPs on x's rows gathered by tokens, gates, tokens, gateIndex) → (N, H); null
 * otherwise (the caller runs expertDenseOfTokens, GELU, expertDense and combineRows, whose values this reproduces to
 * GEMM rounding). tokens and gateIndex (E·R) are 1-based (0: empty slot), rows (E) the filled rows per expert.
 */
export function expertMlpCombine(
  x: tf.Tensor2D,
  tokens: tf.Tensor1D,
  rows: Int32Array,
  w: { w1: tf.Tensor3D; b1: tf.Tensor2D; w2: tf.Tensor3D; b2: tf.Tensor2D },
  gates: tf.Tensor2D,
  gateIndex: tf.Tensor1D,
): tf.Tensor2D | null {
  if (recording() || x.dtype !== 'float32' || !hasKernel(VMOE_EXPERT_MLP)) return null;
  const { w1, b1, w2, b2 } = w;
  const filled = tf.tensor1d(rows, 'int32');
  const y = tf.engine().runKernel(VMOE_EXPERT_MLP, { x, tokens, rows: filled, w1, b1, w2, b2, gates, gateIndex });
  filled.dispose();
  return y as tf.Tensor2D;
}

/** Softmax over the last axis. */
export function softmax(x: tf.Tensor): tf.Tensor {
  if (x.rank > 0 && fusable(x, VMOE_SOFTMAX, VMOE_SOFTMAX_GRAD)) return fusedSoftmax(x);
  return tf.softmax(x);
}

function fusedSoftmax(x: tf.Tensor): tf.Tensor {
  if (!recording()) return tf.engine().runKernel(VMOE_SOFTMAX, { x }) as tf.Tensor;
  const f = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = tf.engine().runKernel(VMOE_SOFTMAX, { x: xi }) as tf.Tensor;
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.engine().runKernel(VMOE_SOFTMAX_GRAD, { dy, y: saved[0]! }) as tf.Tensor,
    };
  }) as unknown as CustomGradFn);
  return f(x) as tf.Tensor;
}

/**
 * Multi-head self-attention on the fused projection qkv (B·T, 3H), columns
 * [q | k | v], each head-major → (B·T, H), heads merged head-major. One native
 * kernel each way where the backend has it (products read q, k, v in place:
 * no transposes, splits or scaling pass), else composed tfjs ops.
 */
export function selfAttention(qkv: tf.Tensor2D, B: number, T: number, heads: number): tf.Tensor2D {
  const hd = qkv.shape[1] / (3 * heads);
  const scale = 1 / Math.sqrt(hd);
  if (!fusable(qkv, VMOE_ATTENTION, VMOE_ATTENTION_GRAD)) return composedSelfAttention(qkv, B, T, heads);
  const attrs = { batch: B, heads, scale };
  if (!recording()) {
    const [out, probs] = tf.engine().runKernel(VMOE_ATTENTION, { qkv }, attrs) as [tf.Tensor2D, tf.Tensor3D];
    probs.dispose(); // kept for the gradient only
    return out;
  }
  const f = tf.customGrad(((qi: tf.Tensor2D, save: tf.GradSaveFunc) => {
    const [out, probs] = tf.engine().runKernel(VMOE_ATTENTION, { qkv: qi }, attrs) as [tf.Tensor2D, tf.Tensor3D];
    save([qi, probs]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.engine().runKernel(VMOE_ATTENTION_GRAD, { dy, qkv: saved[0]!, probs: saved[1]! }, attrs) as tf.Tensor,
    };
  }) as unknown as CustomGradFn);
  return f(qkv) as tf.Tensor2D;
}

/** selfAttention from tfjs ops; the reference for the fused kernel. */
export function composedSelfAttention(qkv: tf.Tensor2D, B: number, T: number, heads: number): tf.Tensor2D {
  const H = qkv.shape[1] / 3,
    hd = H / heads;
  // One transpose and one split for all three (their gradients: one concat, one transpose).
  const allHeads = tf.transpose(tf.reshape(qkv, [B, T, 3 * heads, hd]), [0, 2, 1, 3]); // (B, 3·heads, T, hd)
  const [qh, k, v] = tf.split(allHeads, 3, 1).map((t) => tf.reshape(t, [B * heads, T, hd])) as [
    tf.Tensor3D,
    tf.Tensor3D,
    tf.Tensor3D,
  ];
  const q = tf.mul(qh, 1 / Math.sqrt(hd));
  const attn = softmax(tf.matMul(q, k, false, true)); // (B·heads, T, T)
  const o = tf.matMul(attn, v); // (B·heads, T, hd)
  return tf.reshape(tf.transpose(tf.reshape(o, [B, heads, T, hd]), [0, 2, 1, 3]), [B * T, H]) as tf.Tensor2D;
}

/**
 * rows[i] = x[idx[i]] for x (R, H), idx (M) → (M, H). GatherNd is the fast row
 * gather on wasm; its gradient is the scatter-add of dy back to the rows.
 */
export function gatherRows(x: tf.Tensor2D, idx: tf.Tensor1D): tf.Tensor2D {
  const numRows = x.shape[0];
  const width = x.shape[1];
  // The index tensor goes through save(): forward tensors not saved are freed before backprop.
  const f = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    const ind = tf.reshape(idx, [-1, 1]);
    save([ind]);
    const value = tf.gatherND(xi, ind) as tf.Tensor2D;
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.scatterND(saved[0]!, dy, [numRows, width]),
    };
  }) as unknown as CustomGradFn);
  return f(x) as tf.Tensor2D;
}

/** out[r] = Σ_{i: idx[i]=r} v[i] for v (M, H) → (numRows, H); gradient = gather of dy. */
export function scatterAddRows(v: tf.Tensor2D, idx: tf.Tensor1D, numRows: number): tf.Tensor2D {
  const width = v.shape[1];
  const f = tf.customGrad(((vi: tf.Tensor, save: tf.GradSaveFunc) => {
    const ind = tf.reshape(idx, [-1, 1]);
    save([ind]);
    const value = tf.scatterND(ind, vi, [numRows, width]) as tf.Tensor2D;
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.gatherND(dy, saved[0]!),
    };
  }) as unknown as CustomGradFn);
  return f(v) as tf.Tensor2D;
}

/**
 * MoE dispatch: row i = x[tokens[i] − 1], a zero row where tokens[i] = 0 (an
 * empty expert slot); x (N, H), tokens (M) int32 → (M, H): a gather from x with
 * a zero row prepended. (Where the backend has the fused expert product, the
 * layer gathers inside it instead: expertDenseOfTokens.)
 */
export function dispatchRows(x: tf.Tensor2D, tokens: tf.Tensor1D): tf.Tensor2D {
  return gatherRows(tf.concat([tf.zeros([1, x.shape[1]]), x], 0) as tf.Tensor2D, tokens);
}

/**
 * MoE combine: y[t] = Σ_{i: tokens[i] = t+1} gates_flat[gateIndex[i] − 1] · rows[i]
 * for rows (M, H) and gates (N, E) → (N, H); a 0 index drops the row. Gradients
 * for the rows and the gates.
 */
export function combineRows(
  rows: tf.Tensor2D,
  gates: tf.Tensor2D,
  tokens: tf.Tensor1D,
  gateIndex: tf.Tensor1D,
  numTokens: number,
): tf.Tensor2D {
  if (!fusable(rows, VMOE_COMBINE_ROWS, VMOE_COMBINE_ROWS_GRAD)) {
    const [N, E] = gates.shape;
    const gatesPadded = tf.concat([tf.zeros([1, 1]), tf.reshape(gates, [N * E, 1])], 0) as tf.Tensor2D; // (N·E+1, 1)
    const weight = gatherRows(gatesPadded, gateIndex); // (M, 1)
    const yPadded = scatterAddRows(tf.mul(rows, weight) as tf.Tensor2D, tokens, numTokens + 1); // (N+1, H)
    return tf.slice(yPadded, [1, 0], [numTokens, rows.shape[1]]);
  }
  if (!recording()) {
    return tf
      .engine()
      .runKernel(VMOE_COMBINE_ROWS, { x: rows, gates, tokens, gateIndex }, { numTokens }) as tf.Tensor2D;
  }
  const f = tf.customGrad(((ri: tf.Tensor, gi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([ri, gi, tokens, gateIndex]);
    return {
      value: tf
        .engine()
        .runKernel(VMOE_COMBINE_ROWS, { x: ri, gates: gi, tokens, gateIndex }, { numTokens }) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [rs, gs, tk, gx] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        return tf
          .engine()
          .runKernel(VMOE_COMBINE_ROWS_GRAD, { dy, x: rs, gates: gs, tokens: tk, gateIndex: gx }) as tf.Tensor[];
      },
    };
  }) as unknown as CustomGradFn);
  return f(rows, gates) as tf.Tensor2D;
}

/**
 * Per-expert dense layer on packed expert buffers: y_e = x_e w_e + b_e for x (E, R, I), w (E, I, O),
 * b (E, O). Each expert's first rows[e] rows hold its tokens; where the backend has the fused kernel
 * only those rows are computed (empty capacity slots cost nothing) and the rows below are 0. Elsewhere
 * one batched product computes every row — the filled rows are the same either way, and the empty
 * ones (zero input, never combined) carry no gradient.
 */
export function expertDense(x: tf.Tensor3D, w: tf.Tensor3D, b: tf.Tensor2D, rows: tf.Tensor1D): tf.Tensor3D {
  const [E, , O] = w.shape;
  if (!fusable(x, VMOE_EXPERT_DENSE, VMOE_EXPERT_DENSE_GRAD)) {
    return tf.fused.matMul({ a: x, b: w, bias: tf.reshape(b, [E, 1, O]) }) as tf.Tensor3D;
  }
  return fusedExpertDense(x, w, b, rows, null);
}

/** Whether expertDenseOfTokens runs as one fused kernel (else callers gather with dispatchRows first). */
export function canGatherInExpertDense(x: tf.Tensor): boolean {
  return fusable(x, VMOE_EXPERT_DENSE, VMOE_EXPERT_DENSE_GRAD);
}

/**
 * expertDense(dispatchRows(x, tokens) viewed as (E, R, I), …) for x (N, I) and packed 1-based tokens
 * (E·R), in one kernel: each expert gathers its rows into a buffer that stays in cache for its
 * product, and the gradient scatters dx straight back to (N, I). Needs canGatherInExpertDense(x).
 */
export function expertDenseOfTokens(
  x: tf.Tensor2D,
  tokens: tf.Tensor1D,
  w: tf.Tensor3D,
  b: tf.Tensor2D,
  rows: tf.Tensor1D,
): tf.Tensor3D {
  return fusedExpertDense(x, w, b, rows, tokens);
}

function fusedExpertDense(
  x: tf.Tensor,
  w: tf.Tensor3D,
  b: tf.Tensor2D,
  rows: tf.Tensor1D,
  tokens: tf.Tensor1D | null,
): tf.Tensor3D {
  const extra: tf.NamedTensorMap = tokens ? { tokens } : {};
  if (!recording()) return tf.engine().runKernel(VMOE_EXPERT_DENSE, { x, w, b, rows, ...extra }) as tf.Tensor3D;
  const f = tf.customGrad(((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor, save: tf.GradSaveFunc) => {
    save(tokens ? [xi, wi, rows, tokens] : [xi, wi, rows]);
    return {
      value: tf.engine().runKernel(VMOE_EXPERT_DENSE, { x: xi, w: wi, b: bi, rows, ...extra }) as tf.Tensor3D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws, rs, ts] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
        return tf
          .engine()
          .runKernel(
            VMOE_EXPERT_DENSE_GRAD,
            { dy, x: xs, w: ws, rows: rs, ...(ts ? { tokens: ts } : {}) },
            { bias: true },
          ) as tf.Tensor[];
      },
    };
  }) as unknown as CustomGradFn);
  return f(x, w, b) as tf.Tensor3D;
}

/** Inverted dropout with an explicit seed; identity when rate is 0 or not training. */
export function dropout(x: tf.Tensor, rate: number, seed: number | null): tf.Tensor {
  if (rate <= 0 || seed === null) return x;
  return tf.dropout(x, rate, undefined, seed);
}
