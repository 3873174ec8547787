/**
 * The small model shapes the inference and training-block tests share: 16×16 grey images in 4×4 patches (16 tokens
 * and a class token), hidden 32, 3 blocks of 4 heads, MLP 96, 7 classes; V-MoE / E³ with 4 experts in block 1.
 */
export const SMALL_MODEL = {
  imageSize: 16,
  channels: 1,
  patchSize: 4,
  hidden: 32,
  depth: 3,
  heads: 4,
  mlpDim: 96,
  numClasses: 7,
  dropout: 0,
  readout: 'token' as const,
};

export const SMALL_MOE = {
  layers: { placement: 'list' as const, list: [1] },
  numExperts: 4,
  capacityFactor: 1.05,
  groupImages: 4,
};
