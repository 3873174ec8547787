/**
 * `.npz` ViT checkpoints of google-research/vision_transformer and big_vision: a zip of `.npy` arrays whose names
 * are the flax paths joined with '/' (bfloat16 stored as the 2-byte void type). Their names differ from the V-MoE
 * reference's; `canonicalNames` renames them to it (docs/spec/reference-checkpoints.md §4):
 *
 *   Transformer/…                                   → Encoder/…
 *   encoderblock_i/MultiHeadDotProductAttention_j   → encoderblock_i/SelfAttention
 *   encoderblock_i/MlpBlock_j                       → encoderblock_i/Mlp
 *   encoderblock_i/LayerNorm_a, LayerNorm_b (a < b) → LayerNorm_0, LayerNorm_1 (vision_transformer numbers 0 and 2)
 *   pos_embedding (big_vision, top level)           → Encoder/posembed_input/pos_embedding
 */
import { CheckpointError, DataError } from '../util/errors.js';
import { readNpz, type NpyArray } from '../util/npy.js';
import type { RefArray } from './reference-format.js';

/** Reads every array of an `.npz` checkpoint, keyed by its name without `.npy` (errors are CheckpointErrors). */
export function readNpzCheckpoint(file: string): Map<string, RefArray> {
  let arrays: Map<string, NpyArray>;
  try {
    arrays = readNpz(file);
  } catch (e) {
    if (e instanceof DataError) throw new CheckpointError(e.message);
    throw e;
  }
  if (arrays.size === 0) throw new CheckpointError(`${file}: holds no .npy arrays`);
  return new Map([...arrays].map(([k, a]) => [k, { dtype: a.dtype, shape: a.shape, bytes: a.bytes }]));
}

const BLOCK_LN = /^(.*encoderblock_\d+)\/LayerNorm_(\d+)\/(.*)$/;

/** Renames vision_transformer / big_vision parameter paths to the V-MoE reference's names (see the header). */
export function canonicalNames(arrays: Map<string, RefArray>): Map<string, RefArray> {
  const renamed = new Map<string, RefArray>();
  const step1 = new Map<string, RefArray>();
  for (const [p, a] of arrays) {
    const q = p
      .replace(/(^|\/)Transformer\//, '$1Encoder/')
      .replace(/(encoderblock_\d+)\/MultiHeadDotProductAttention_\d+\//, '$1/SelfAttention/')
      .replace(/(encoderblock_\d+)\/MlpBlock_\d+\//, '$1/Mlp/')
      .replace(/(^|\/)pos_embedding$/, (m, pre: string) =>
        p.includes('posembed_input') ? m : `${pre}Encoder/posembed_input/pos_embedding`,
      );
    step1.set(q, a);
  }
  // Per block, the LayerNorms in index order become LayerNorm_0 and LayerNorm_1.
  const lnIndices = new Map<string, number[]>();
  for (const p of step1.keys()) {
    const m = BLOCK_LN.exec(p);
    if (m) {
      const list = lnIndices.get(m[1]!) ?? [];
      if (!list.includes(Number(m[2]))) list.push(Number(m[2]));
      lnIndices.set(m[1]!, list);
    }
  }
  for (const [p, a] of step1) {
    const m = BLOCK_LN.exec(p);
    if (m) {
      const order = lnIndices.get(m[1]!)!.sort((x, y) => x - y);
      renamed.set(`${m[1]}/LayerNorm_${order.indexOf(Number(m[2]))}/${m[3]}`, a);
    } else renamed.set(p, a);
  }
  return renamed;
}
