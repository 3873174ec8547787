/** From E³ member logits to the ensemble's prediction and training loss. */
import * as tf from '@tensorflow/tfjs-core';

/** Member logits (M, B, K) → log p̄ (B, K), p̄ the mean of the members' softmaxes: logsumexp_m log_softmax − log M. */
export function ensembleLogits(memberLogits: tf.Tensor3D): tf.Tensor2D {
  const M = memberLogits.shape[0];
  return tf.sub(tf.logSumExp(tf.logSoftmax(memberLogits), 0), Math.log(M)) as tf.Tensor2D;
}

/**
 * E³ training loss: each member's own loss on the labels, averaged over members,
 * so every member trains as a model of its own (the E³ paper's objective); the
 * ensemble prediction p̄ is not what is optimised. `loss` is a mean over its rows.
 */
export function meanMemberLoss(
  memberLogits: tf.Tensor3D,
  labels: tf.Tensor1D,
  loss: (logits: tf.Tensor2D, labels: tf.Tensor1D) => tf.Scalar,
): tf.Scalar {
  const [M, B, K] = memberLogits.shape;
  return loss(tf.reshape(memberLogits, [M * B, K]), tf.tile(labels, [M])); // rows (M·B, K), member-major like the labels
}
