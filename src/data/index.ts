export { readIdx, parseIdx, encodeIdx, writeIdx } from './idx.js';
export type { IdxArray, ReadIdxOptions } from './idx.js';
export {
  SPLITS,
  VAL_SPLIT_SEED,
  DEFAULT_VAL_SIZE,
  FASHION_MNIST_SYSTEM_DIR,
  DATA_DIR_ENV,
  IDX_FOLDER_PREFIX,
  loadDataset,
  listDatasets,
  datasetAvailable,
  datasetNames,
  carveValidation,
  findIdxFile,
  clearDataCache,
} from './registry.js';
export type { Split, ImageDataset, LoadOptions, DatasetListing } from './registry.js';
export { setDecodeAhead, DECODE_AHEAD_ENV } from './registry.js';
export { BatchSampler, sequentialBatches, makeBatch } from './batches.js';
export type { SamplerOptions, SamplerState, PixelScale, AugmentOptions, MakeBatchOptions, Batch } from './batches.js';
export { SYNTHETIC_OOD, isSyntheticOod, syntheticOodDataset, type SyntheticOod } from './synthetic.js';
export { SOURCE_PREFIXES, SOURCE_HELP, parseSourceName, listImageFolder, readSource } from './sources.js';
export type { SourcePrefix, LabelKind, SourcePart, SourceData } from './sources.js';
export { decodeImages, decodeImagesSync, type DecodeTarget, type DecodedImages } from './decode.js';
export {
  keyedRng,
  resizeBilinear,
  convertChannels,
  fitImages,
  centralCropBox,
  centralCropImages,
  inceptionCropBox,
  augmentImage,
  mixupBatch,
  sampleBeta,
} from './preprocess.js';
export type { CropBox, ImageArray, ImageAugment } from './preprocess.js';
