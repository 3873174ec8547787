/**
 * Differentiable building blocks, written around the wasm backend's weak spots:
 * tfjs's own matMul gradient uses transpose flags (a naive loop on wasm) and
 * GatherNd/ScatterNd have no gradient, so the dense layer and the row
 * gather/scatter carry hand-written gradients built from fast kernels.
 */
import * as tf from '@tensorflow/tfjs-core';

type CustomGradFn = Parameters<typeof tf.customGrad>[0];

/** y = x W + b for 2-D x, with a gradient made of plain 2-D matMuls. */
export function dense2d(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const f = tf.customGrad(((xi: tf.Tensor, wi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xi, wi]);
    const value = tf.matMul(xi as tf.Tensor2D, wi as tf.Tensor2D);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
        const dx = tf.matMul(dy as tf.Tensor2D, tf.transpose(ws));
        const dw = tf.matMul(tf.transpose(xs), dy as tf.Tensor2D);
        return [dx, dw];
      },
    };
  }) as unknown as CustomGradFn);
  const y = f(x, w) as tf.Tensor2D;
  return b ? tf.add(y, b) : y;
}

/** Dense over the last axis of any-rank x: (..., I) → (..., O). Reshapes to 2-D (tfjs 3-D@2-D grads are wrong). */
export function dense(x: tf.Tensor, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor {
  const inDim = x.shape[x.rank - 1]!;
  const lead = x.shape.slice(0, -1);
  const y = dense2d(tf.reshape(x, [-1, inDim]), w, b);
  return tf.reshape(y, [...lead, w.shape[1]]);
}

/** LayerNorm over the last axis, epsilon 1e-6 (spec §1). */
export function layerNorm(x: tf.Tensor, scale: tf.Tensor1D, bias: tf.Tensor1D, eps = 1e-6): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  const normed = tf.mul(centered, tf.rsqrt(tf.add(variance, eps)));
  return tf.add(tf.mul(normed, scale), bias);
}

const GELU_C = Math.sqrt(2 / Math.PI);
/** GELU, tanh form. x*x*x instead of pow: pow is slow on wasm. */
export function gelu(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), GELU_C);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
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

/** Inverted dropout with an explicit seed; identity when rate is 0 or not training. */
export function dropout(x: tf.Tensor, rate: number, seed: number | null): tf.Tensor {
  if (rate <= 0 || seed === null) return x;
  return tf.dropout(x, rate, undefined, seed);
}
