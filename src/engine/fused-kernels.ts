/**
 * The fused kernels' names and contracts: kernels a backend may register beyond
 * tfjs's own set. Backend-neutral, so model code imports it without the native side:
 * the wasm-blas backend implements all of them on its addon (./native/fused.ts),
 * no other backend implements any. Model code asks `hasKernel` and falls back to
 * composed tfjs ops when the active backend has no such kernel, so every other
 * backend computes exactly what it did before.
 *
 * Contracts (float32 only):
 *   VmoeGelu          {x} → y, the tanh-form GELU of src/vmoe/layers.ts.
 *   VmoeGeluGrad      {dy, x} → dx.
 *   VmoeLayerNorm     {x (..., C), scale (C), bias (C)}, attrs {epsilon} → y, over the last axis.
 *   VmoeLayerNormGrad {dy, x, scale}, attrs {epsilon} → [dx, dscale, dbias].
 *   VmoeSoftmax       {x} → y, softmax over the last axis.
 *   VmoeSoftmaxGrad   {dy, y} → dx, from the forward output y.
 *   VmoeAttention     {qkv (B·T, 3H): columns [q | k | v], each head-major}, attrs {batch B, heads, scale}
 *                     → [out (B·T, H), probs (B·heads, T, T)]: per image and head, probs = softmax(scale · q kᵀ)
 *                     and out's head columns = probs · v (multi-head self-attention without transposes).
 *   VmoeAttentionGrad {dy (B·T, H), qkv, probs}, attrs {batch, heads, scale} → dqkv (B·T, 3H).
 *   VmoeAdam          {param, m, v, grad}, attrs {beta1, beta2, stepSize (lr / bias correction 1),
 *                     biasCorrection2, epsilon, weightDecayStep (lr · decay, 0 for none),
 *                     gradScale (1 for none)} → [param, m, v] after one Adam step, as
 *                     src/train/optimizer.ts composes it.
 *   VmoeSumOfSquares  {any names: tensors} → float32 scalar Σ x² over all of them.
 *   VmoeCombineRows   {x (M, H), gates (any shape, G values), tokens (M) int32 in [0, numTokens], gateIndex (M) int32
 *                     in [0, G]}, attrs {numTokens} → (numTokens, H): Σ gates_flat[gateIndex[i] − 1] · x[i] into row
 *                     tokens[i] − 1 (a 0 index drops the row).
 *   VmoeCombineRowsGrad {dy (numTokens, H), x, gates, tokens, gateIndex} → [dx (M, H), dgates (gates' shape)].
 *   VmoeExpertDense   {x (E, R, I), w (E, I, O), optional b (E, O), rows (E) int32 in [0, R]} → y (E, R, O):
 *                     per expert, y_e = x_e w_e (+ b_e) on its first rows[e] rows and 0 below (packed expert buffers).
 *                     With an optional tokens (E·R) int32 input, x is the (N, I) token matrix and row i of expert e
 *                     is x[tokens[e·R + i] − 1] (the dispatch gather, done inside the product; filled rows need a
 *                     token in [1, N]).
 *   VmoeExpertDenseGrad {dy (E, R, O), x, w, rows, optional tokens}, attrs {bias: boolean} → [dx (x's shape), dw (E, I, O),
 *                     db (E, O) if bias], over the first rows[e] rows of each expert (dx 0 below; with tokens, each
 *                     row's dx is added into its token's row).
 *   VmoeRouterAux     {logits (N, E), optional noise (N, E) and kth (N) int32: the noise the router added and the expert of
 *                     each token's K-th choice}, attrs {groupSizes (number[], Σ = N), members, sigma, importanceWeight,
 *                     loadWeight} → [dLogits (N, E), losses (3): importance, load (NaN without noise), weighted sum]:
 *                     routerAuxLosses of src/vmoe/aux-losses.ts with gates = softmax(logits), noisy = logits + noise.
 *   VmoeRouterGates   {x (N, H), w (H, E), optional noise (N, E)}, attrs {members M (E³; 1 for none)} → [logits, gates],
 *                     both (N, E): logits = x w (+ −1e9 where expert e is outside member (t mod M)'s block
 *                     [m·E/M, (m+1)·E/M)), gates = softmax(logits (+ noise)).
 *   VmoeRouterGatesGrad {x, w, gates, dGates, optional dLogits} → [dx (N, H), dw (H, E)]: the gradient of VmoeRouterGates.
 *   VmoeDenseGelu     {x (N, I), w (I, O), b (O)} → y (N, O) = gelu(x w + b), forward only (inference; no gradient
 *                     kernel): the product runs in row blocks and GELU reads each block while it is still in cache.
 *   VmoeEncoderBlock  {x (B, T, H), ln1Scale, ln1Bias (H), wqkv (H, 3H), bqkv (3H) (columns [q | k | v], each head-major),
 *                     wo (H, H), bo (H), ln2Scale, ln2Bias (H), optional w1 (H, F), b1 (F), w2 (F, H), b2 (H)},
 *                     attrs {heads, epsilon, optional tileImages} → forward only (inference), the pre-LN block of
 *                     src/vmoe/model.ts, run in tiles of images (tileImages, else sized for the L2 cache):
 *                     x1 = x + (selfAttention(LN1(x) wqkv + bqkv) wo + bo); with the MLP weights y (B, T, H) =
 *                     x1 + (gelu(LN2(x1) w1 + b1) w2 + b2), without them [x1 (B, T, H), LN2(x1) (B·T, H)] (the
 *                     attention half of an MoE block and its MoE layer's input).
 *   VmoeExpertMlp     {x (N, H), tokens (E·R) int32, rows (E) int32, w1 (E, H, F), b1 (E, F), w2 (E, F, H), b2 (E, H),
 *                     gates (any shape, G values), gateIndex (E·R) int32} → y (N, H), forward only: the MoE layer's
 *                     experts and combine, combineRows(expertDense(gelu(expertDense(x gathered by tokens, w1, b1)),
 *                     w2, b2), gates, tokens, gateIndex) in one kernel.
 *   VmoePatchEmbed    {images (B, S, S, C), kernel (p²C, H), bias (H), optional cls (H), pos (T, H)}, attrs {patch p}
 *                     → (B, T, H), forward only: each p×p patch flattened (row, column, channel) times the kernel plus
 *                     the bias, the class token first when given (T = (S/p)² + 1, else (S/p)²), plus pos.
 */
import * as tf from '@tensorflow/tfjs-core';

export const VMOE_GELU = 'VmoeGelu';
export const VMOE_GELU_GRAD = 'VmoeGeluGrad';
export const VMOE_LAYER_NORM = 'VmoeLayerNorm';
export const VMOE_LAYER_NORM_GRAD = 'VmoeLayerNormGrad';
export const VMOE_SOFTMAX = 'VmoeSoftmax';
export const VMOE_SOFTMAX_GRAD = 'VmoeSoftmaxGrad';
export const VMOE_ATTENTION = 'VmoeAttention';
export const VMOE_ATTENTION_GRAD = 'VmoeAttentionGrad';
export const VMOE_ADAM = 'VmoeAdam';
export const VMOE_SUM_OF_SQUARES = 'VmoeSumOfSquares';
export const VMOE_COMBINE_ROWS = 'VmoeCombineRows';
export const VMOE_COMBINE_ROWS_GRAD = 'VmoeCombineRowsGrad';
export const VMOE_ROUTER_AUX = 'VmoeRouterAux';
export const VMOE_ROUTER_GATES = 'VmoeRouterGates';
export const VMOE_ROUTER_GATES_GRAD = 'VmoeRouterGatesGrad';
export const VMOE_EXPERT_DENSE = 'VmoeExpertDense';
export const VMOE_EXPERT_DENSE_GRAD = 'VmoeExpertDenseGrad';
export const VMOE_DENSE_GELU = 'VmoeDenseGelu';
export const VMOE_ENCODER_BLOCK = 'VmoeEncoderBlock';
export const VMOE_PATCH_EMBED = 'VmoePatchEmbed';
export const VMOE_EXPERT_MLP = 'VmoeExpertMlp';

/** Whether the active backend registers kernel `name`. */
export function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/**
 * Whether the active backend is tfjs's plain wasm one, whose weak spots model
 * code works around: batched (rank > 2) and transposed matMuls run a naive
 * loop there (≈1–2 GFLOP/s against ≈20 for its 2-D product), so code prefers
 * explicit transposes and 2-D products; and its _FusedMatMul reads the bias
 * shape from the buffer the bias was first allocated with, so a reshaped or
 * unstacked bias fails, and biases are added separately.
 */
export function isPlainWasm(): boolean {
  return tf.getBackend() === 'wasm';
}
