/** E³ training loss from member logits (the ensemble prediction, ensembleLogits, lives in vmoe/members.ts). */
import * as tf from '@tensorflow/tfjs-core';

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
