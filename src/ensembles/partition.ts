/**
 * The E³ partition of the experts: member m routes only to experts
 * [m·E/M, (m+1)·E/M). Routed rows are (image, token, member), member fastest,
 * so row r belongs to member r mod M.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Throws unless experts, routing groups and rows split evenly into M members. */
export function checkPartition(E: number, groupSize: number, N: number, M: number): void {
  if (E % M !== 0 || groupSize % M !== 0 || N % M !== 0) {
    throw new Error(`E³ routing needs E (${E}), the group size (${groupSize}) and the token count (${N}) to be multiples of M (${M})`);
  }
}

/** (N, E) additive router-logit mask: 0 on the row's member partition, −1e9 elsewhere (softmax → exactly 0 in float32). */
export function partitionMask(N: number, E: number, M: number): tf.Tensor2D {
  const Em = E / M;
  const mask = new Float32Array(N * E);
  for (let r = 0; r < N; r++) {
    const m = r % M;
    for (let e = 0; e < E; e++) if (Math.floor(e / Em) !== m) mask[r * E + e] = -1e9;
  }
  return tf.tensor2d(mask, [N, E]);
}

/** Member m's rows of a routing group on its own experts: (S, E) → (S/M, E/M). */
export function memberBlock(g: tf.Tensor2D, M: number, m: number): tf.Tensor2D {
  const [S, E] = g.shape;
  const Em = E / M;
  const byMember = tf.reshape(g, [S / M, M, E]); // (S/M, M, E)
  return tf.reshape(tf.slice(byMember, [0, m, m * Em], [S / M, 1, Em]), [S / M, Em]);
}
