/**
 * Names of the fused kernels a backend may register beyond tfjs's own set
 * (the wasm-blas backend registers all of them, natively). Model code asks
 * `hasKernel` and falls back to composed tfjs ops when the active backend has
 * no such kernel, so every other backend computes exactly what it did before.
 *
 * Contracts (float32 only):
 *   VmoeGelu          {x} → y, the tanh-form GELU of src/vmoe/layers.ts.
 *   VmoeGeluGrad      {dy, x} → dx.
 *   VmoeLayerNorm     {x (..., C), scale (C), bias (C)}, attrs {epsilon} → y, over the last axis.
 *   VmoeLayerNormGrad {dy, x, scale}, attrs {epsilon} → [dx, dscale, dbias].
 *   VmoeSoftmax       {x} → y, softmax over the last axis.
 *   VmoeSoftmaxGrad   {dy, y} → dx, from the forward output y.
 *   VmoeAdam          {param, m, v, grad}, attrs {beta1, beta2, stepSize (lr / bias correction 1),
 *                     biasCorrection2, epsilon, weightDecayStep (lr · decay, 0 for none),
 *                     gradScale (1 for none)} → [param, m, v] after one Adam step, as
 *                     src/train/optimizer.ts composes it.
 *   VmoeSumOfSquares  {any names: tensors} → float32 scalar Σ x² over all of them.
 */
import * as tf from '@tensorflow/tfjs-core';

export const VMOE_GELU = 'VmoeGelu';
export const VMOE_GELU_GRAD = 'VmoeGeluGrad';
export const VMOE_LAYER_NORM = 'VmoeLayerNorm';
export const VMOE_LAYER_NORM_GRAD = 'VmoeLayerNormGrad';
export const VMOE_SOFTMAX = 'VmoeSoftmax';
export const VMOE_SOFTMAX_GRAD = 'VmoeSoftmaxGrad';
export const VMOE_ADAM = 'VmoeAdam';
export const VMOE_SUM_OF_SQUARES = 'VmoeSumOfSquares';

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
