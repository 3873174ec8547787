/**
 * vmoe-ts: sparse Mixture-of-Experts vision models (V-MoE, E³) and uncertainty metrics on TensorFlow.js.
 *
 * ```ts
 * import { initEngine, topExpertsPerItem, VisionMoE, ModelSchema, metrics } from 'vmoe-ts';
 * ```
 *
 * This is the curated public API: every name here is documented and kept stable within a minor version.
 * Helpers the modules use among themselves (kernel registration, numeric shortcuts, file-system hooks,
 * table formatting) are not exported. The metric functions are exported by name and, as before, under
 * the `metrics` namespace (`metrics.ece`, `metrics.nll`, …).
 *
 * @packageDocumentation
 */

// Engine: pick and start the TensorFlow.js backend.
export {
  initEngine,
  engineInfo,
  BACKEND_ORDER,
  type BackendName,
  type EngineInfo,
  type InitOptions,
} from './engine/backend.js';

// Data: data sets, splits, batches; the seeded RNG.
export {
  loadDataset,
  listDatasets,
  datasetNames,
  datasetAvailable,
  SPLITS,
  type Split,
  type ImageDataset,
  type LoadOptions,
  type DatasetListing,
} from './data/registry.js';
export { SOURCE_PREFIXES, type LabelKind } from './data/sources.js';
export {
  makeBatch,
  BatchSampler,
  sequentialBatches,
  type MakeBatchOptions,
  type Batch,
  type SamplerOptions,
  type SamplerState,
  type PixelScale,
  type AugmentOptions,
} from './data/batches.js';
export { syntheticOodDataset, SYNTHETIC_OOD, type SyntheticOod } from './data/synthetic.js';
export { Rng, type RngState } from './util/rng.js';

// Models: the V-MoE / E³ / ViT model, its config, FLOPs and outputs.
export {
  VisionMoE,
  type ForwardOptions,
  type ForwardResult,
  type RoutingOverrides,
  type ParamStore,
} from './vmoe/model.js';
export {
  ModelSchema,
  MoeSchema,
  checkModelConfig,
  modelMembers,
  type ModelConfig,
  type MoeConfig,
} from './vmoe/config.js';
export { flopsPerImage, FLOPS_CONVENTION, type FlopsBreakdown } from './vmoe/flops.js';
export { countParams } from './vmoe/params.js';
export type { MoeLayerStats, DispatchImpl } from './vmoe/moe.js';
export { computeOutputs, type Outputs, type OutputOptions, type RouterSummary } from './vmoe/outputs.js';
export {
  ExperimentSchema,
  parseExperiment,
  loadExperiment,
  applyOverride,
  type ExperimentConfig,
} from './config/experiment.js';

// Routing: the pure reference routers (arrays in, arrays out), expert capacity, router auxiliary losses.
export {
  topExpertsPerItem,
  topItemsPerExpert,
  combineTensor,
  dispatchMask,
  processedFraction,
  type TopExpertsOptions,
  type TopExpertsResult,
  type TopItemsResult,
} from './vmoe/routing.js';
export {
  expertCapacity,
  expertChoiceCapacity,
  CAPACITY_ROUNDINGS,
  type CapacityRounding,
  type ExpertCapacityOptions,
} from './vmoe/capacity.js';
export { importanceLoss, loadLoss, gshardLoss, zLoss, routerStats, type RouterStats } from './vmoe/aux-losses.js';

// E³ and the ensemble baselines (deep ensembles, MC dropout).
export { ensembleLogits, type MemberLayout } from './vmoe/members.js';
export { checkPartition, partitionMask } from './vmoe/partition.js';
export { e3ValuesFromVmoe, type ParamValues } from './ensembles/from-vmoe.js';
export {
  ensembleOutputs,
  stackOutputs,
  ensembleFlops,
  type EnsembleMember,
  type EnsembleRunOptions,
} from './ensembles/baselines.js';

// Metrics: pure functions on plain typed arrays; all of them also under the `metrics` namespace.
/**
 * Every uncertainty metric as a namespace: `metrics.ece`, `metrics.nll`, `metrics.CalibrationAccumulator`, ….
 * Pure functions on plain typed arrays (scores (N, K) or member scores (M, N, K), see {@link ClassScores}),
 * so they work on predictions from any framework. The main ones are also exported at the top level.
 */
export * as metrics from './metrics/index.js';
export type { ClassScores, Logits, Probs, Labels } from './metrics/types.js';
export { probsFromLogits } from './metrics/softmax.js';
export {
  accuracy,
  nll,
  brier,
  NllAccumulator,
  type NllResult,
} from './metrics/likelihood.js';
export {
  ece,
  reliabilityDiagram,
  CalibrationAccumulator,
  type EceOptions,
  type EceResult,
  type EceConvention,
  type ReliabilityBin,
  type Binning,
  type CalibrationNorm,
} from './metrics/calibration.js';
export {
  fitTemperature,
  applyTemperature,
  type TemperatureFit,
  type TemperatureOptions,
  type TemperatureMode,
} from './metrics/temperature.js';
export {
  ensembleDiversity,
  DiversityAccumulator,
  type EnsembleDiversity,
} from './metrics/diversity.js';
export {
  riskCoverageCurve,
  aurc,
  selectiveSummary,
  type RiskCoverageCurve,
  type SelectiveSummary,
} from './metrics/selective.js';
export { auroc } from './metrics/ranking.js';
export {
  oodMetrics,
  oodScore,
  OOD_SCORE_NAMES,
  type OodScoreName,
  type OodMetrics,
  type OodPositive,
} from './metrics/ood.js';
export {
  fitMahalanobis,
  mahalanobisScore,
  relativeMahalanobisScore,
  type MahalanobisModel,
  type MahalanobisOptions,
} from './metrics/mahalanobis.js';
export {
  calibrateConformal,
  conformalPredict,
  conformalReport,
  type ConformalOptions,
  type ConformalCalibration,
  type ConformalReport,
} from './metrics/conformal.js';
export { CONFORMAL_METHODS, type ConformalMethod } from './metrics/conformal-scores.js';
export {
  parsePredictionsCsv,
  readPredictionsCsv,
  formatPredictionsCsv,
  type PredictionsTable,
  type ParseOptions,
} from './metrics/predictions-csv.js';

// Few-shot linear probes on frozen features.
export {
  runFewShot,
  DEFAULT_SHOTS,
  DEFAULT_L2_GRID,
  type FewShotDataset,
  type FewShotOptions,
  type FewShotReport,
  type ShotResult,
  type SelectedResult,
  type SeedStats,
  type ProbeKind,
} from './fewshot/protocol.js';
export { fitLsr, type LsrModel, type LsrOptions, type LsrRoute } from './fewshot/lsr.js';
export { fitLogreg, type LogregModel, type LogregOptions } from './fewshot/logreg.js';
export { readFeaturesCsv, parseFeaturesCsv, type LabelledFeatures } from './fewshot/features-csv.js';
export type { Features, Standardiser } from './fewshot/features.js';

// Robustness: image corruptions (Fashion-MNIST-C / MNIST-C suites, severities 1–5).
export {
  CORRUPTIONS,
  BENCHMARK_CORRUPTIONS,
  HELD_OUT_CORRUPTIONS,
  getCorruption,
} from './robustness/corruptions.js';
export type { CorruptionSpec, CorruptionFamily, CorruptionFn } from './robustness/types.js';
export { MNIST_C, getMnistC, type MnistCSpec } from './robustness/mnist-c.js';
export {
  corruptBatch,
  corruptionFn,
  corruptionNames,
  SUITES,
  type Suite,
  type ImageShape,
  type CorruptBatchOptions,
} from './robustness/batch.js';

// Checkpoint I/O.
export {
  saveCheckpoint,
  loadCheckpoint,
  latestCheckpoint,
  checkpointHash,
  CHECKPOINT_FORMAT_VERSION,
  CHECKPOINT_EXTENSION,
  type CheckpointContent,
  type LoadedCheckpoint,
  type NamedArray,
  type CheckpointDtype,
  type SaveCheckpointOptions,
} from './checkpoint/format.js';
export { loadModel, resolveCheckpoint, type LoadedModel } from './checkpoint/load.js';

// Training.
export {
  train,
  classificationLoss,
  evaluateSplit,
  type TrainOptions,
  type TrainResult,
  type EvalSummary,
  type HeadInit,
  TrainingInterrupted,
} from './train/trainer.js';
export { stopOnSignals, type StopRequest } from './train/interrupt.js';
export { checkOutputDir } from './util/output-dir.js';

// Evaluation: evaluators over predictions, the checkpoint harness, report types.
export {
  evaluate,
  evaluatorNames,
  EVALUATORS,
  EVALUATOR_NAMES,
  PREDICTION_EVALUATORS,
  DEFAULT_EVALUATOR_OPTIONS,
  type Evaluator,
  type EvaluatorName,
  type EvaluatorOptions,
  type EvalInputs,
  type Prepared,
  type ConformalEvalOptions,
} from './eval/evaluators.js';
export {
  evaluateCheckpoints,
  evaluatePredictions,
  classificationMetrics,
  DEFAULT_EVAL_OPTIONS,
  type EvalOptions,
  type EvalRun,
  type ClassificationMetrics,
  type PredictionSetColumn,
  type PredictionsEvalOptions,
} from './eval/harness.js';
export type { OodSet } from './eval/ood-temperature.js';
export type { CalibrationDetails, SelectiveDetails } from './eval/classification.js';
export type {
  MetricsReport,
  PredictionsReport,
  EvalReport,
  CheckpointRecord,
  OodNumbers,
  OodEntry,
  TemperatureReport,
  DiversityNumbers,
  RouterReport,
} from './eval/report.js';

// Web export: a checkpoint as the bundle the web page (web/, docs/web.md) loads.
export { exportWebBundle, type WebExportOptions, type WebExportResult } from './export/web-bundle.js';
export {
  parseWebManifest,
  unpackWebTensors,
  type WebManifest,
  type WebTensorEntry,
  type WebSamples,
} from './export/web-bundle-format.js';

// Errors: every error the toolkit raises on purpose is a VmoeError.
export {
  VmoeError,
  UsageError,
  ConfigError,
  DataError,
  CheckpointError,
  CorruptionError,
  TrainingError,
  isVmoeError,
  OutputError,
  type VmoeErrorOptions,
} from './util/errors.js';
