export * from './types.js';
export {
  CORRUPTIONS,
  BENCHMARK_CORRUPTIONS,
  HELD_OUT_CORRUPTIONS,
  getCorruption,
  withSeverities,
} from './corruptions.js';
export { MNIST_C, getMnistC, type MnistCSpec } from './mnist-c.js';
export {
  corruptBatch,
  corruptionFn,
  corruptionNames,
  imageRng,
  SUITES,
  type Suite,
  type ImageShape,
  type CorruptBatchOptions,
} from './batch.js';
export { previewGrid, encodePng, writePng, type PreviewRow, type PreviewLayout } from './preview.js';
export { iceTexture } from './weather.js';
export { cannyEdges } from './canny.js';
export {
  CorruptionPrefetcher,
  corruptionWorkerAvailable,
  type CorruptionJob,
  type CorruptionWorkerData,
} from './prefetch.js';
