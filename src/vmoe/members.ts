/**
 * Where E³ members live in the batch. From the first MoE block on, every image
 * is repeated M times; the layout fixes which row holds member m of image i:
 * repeat puts it at row i·M + m, tile at row m·B + i. Routing, however, wants
 * one order whatever the layout — (image, token, member), member fastest — so
 * that a routing group holds whole images with all their members. Also the
 * ensemble prediction from member logits (mean of the members' probabilities).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config.js';

/**
 * How E³ lays out the M members of a batch of B images: `repeat` (member m of image i at row i·M + m) or `tile`
 * (row m·B + i).
 */
export type MemberLayout = ModelConfig['ensemble']['layout'];

/**
 * (B, T, H) → (B·M, T, H), member m of image i at row i·M + m (repeat) or m·B + i (tile).
 * A broadcasting add onto zeros, not tf.tile: the wasm Tile kernel took ~20 ms for a batch of 64
 * (E³ tiny), and the add's gradient is one sum over the member axis.
 */
export function repeatMembers(x: tf.Tensor3D, M: number, layout: MemberLayout): tf.Tensor3D {
  const [B, T, H] = x.shape;
  const copies =
    layout === 'tile'
      ? tf.add(tf.zeros([M, B * T * H]), tf.reshape(x, [1, B * T * H])) // (M, B·T·H)
      : tf.add(tf.zeros([B, M, T * H]), tf.reshape(x, [B, 1, T * H])); // (B, M, T·H)
  return tf.reshape(copies, [B * M, T, H]);
}

/** Per-row outputs (B·M, D) in the layout → (M, B, D). */
export function membersFirst(t: tf.Tensor2D, B: number, M: number, layout: MemberLayout): tf.Tensor3D {
  const D = t.shape[1];
  if (layout === 'tile') return tf.reshape(t, [M, B, D]);
  return tf.transpose(tf.reshape(t, [B, M, D]), [1, 0, 2]);
}

/** (M, B, D) → (B, M·D): each image's member representations side by side (the E³ few-shot representation). */
export function concatMembers(t: tf.Tensor3D): tf.Tensor2D {
  const [M, B, D] = t.shape;
  return tf.reshape(tf.transpose(t, [1, 0, 2]), [B, M * D]);
}

/** Layout rows (B·M·T, H) → (image, token, member) rows (B·T·M, H), as routing groups expect. */
export function toRoutingOrder(h: tf.Tensor2D, B: number, T: number, M: number, layout: MemberLayout): tf.Tensor2D {
  if (M === 1) return h;
  const H = h.shape[1];
  const x4 =
    layout === 'tile'
      ? tf.transpose(tf.reshape(h, [M, B, T, H]), [1, 2, 0, 3]) // (B, T, M, H)
      : tf.transpose(tf.reshape(h, [B, M, T, H]), [0, 2, 1, 3]);
  return tf.reshape(x4, [B * T * M, H]);
}

/** Inverse of toRoutingOrder: (image, token, member) rows (B·T·M, H) → layout rows (B·M·T, H). */
export function fromRoutingOrder(y: tf.Tensor2D, B: number, T: number, M: number, layout: MemberLayout): tf.Tensor2D {
  if (M === 1) return y;
  const H = y.shape[1];
  const y4 = tf.reshape(y, [B, T, M, H]);
  const back = layout === 'tile' ? tf.transpose(y4, [2, 0, 1, 3]) : tf.transpose(y4, [0, 2, 1, 3]); // (M, B, T, H) | (B, M, T, H)
  return tf.reshape(back, [B * M * T, H]);
}

/** Member logits (M, B, K) → log p̄ (B, K), p̄ the mean of the members' softmaxes: logsumexp_m log_softmax − log M. */
export function ensembleLogits(memberLogits: tf.Tensor3D): tf.Tensor2D {
  const M = memberLogits.shape[0];
  return tf.sub(tf.logSumExp(tf.logSoftmax(memberLogits), 0), Math.log(M)) as tf.Tensor2D;
}
