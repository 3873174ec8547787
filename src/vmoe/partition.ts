/**
 * The E³ partition of the experts: member m routes only to experts
 * [m·E/M, (m+1)·E/M). Routed rows are (image, token, member), member fastest,
 * so row r belongs to member r mod M.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../util/errors.js';

/** Throws unless experts, routing groups and rows split evenly into M members. */
export function checkPartition(E: number, groupSize: number, N: number, M: number): void {
  if (E % M !== 0 || groupSize % M !== 0 || N % M !== 0) {
    throw new ConfigError(
      `E³ routing needs E (${E}), the group size (${groupSize}) and the token count (${N}) to be multiples of M (${M})`,
    );
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

/**
 * Member m's rows of G consecutive routing groups of size S, on its own
 * experts: (G·S, E) → (G, S/M, E/M). One slice whatever G is, so the op count
 * does not grow with the number of groups.
 */
export function memberBlock(rows: tf.Tensor2D, G: number, S: number, M: number, m: number): tf.Tensor3D {
  const E = rows.shape[1];
  const Em = E / M;
  const byMember = tf.reshape(rows, [G, S / M, M, E]); // (G, S/M, M, E)
  return tf.reshape(tf.slice(byMember, [0, 0, m, m * Em], [G, S / M, 1, Em]), [G, S / M, Em]);
}
