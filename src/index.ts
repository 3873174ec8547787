/**
 * vmoe-ts: the library entry. Import what you need: `import { VisionMoE, topExpertsPerItem, metrics } from 'vmoe-ts'`;
 * the metric functions sit under their namespace (`metrics.ece`, `metrics.nll`, …).
 */
export * from './engine/index.js';
export * from './data/index.js';
export { Rng, type RngState } from './util/rng.js';

// V-MoE core
export * from './vmoe/config.js';
export * from './vmoe/capacity.js';
export * from './vmoe/routing.js';
export * from './vmoe/aux-losses.js';
export { planTopK, planExpertChoice, type DispatchPlan } from './vmoe/dispatch.js';
export { moeLayer, type MoeWeights, type RoutingSettings, type MoeLayerStats, type DispatchImpl } from './vmoe/moe.js';
export { dense, dense2d, gelu, layerNorm, gatherRows, scatterAddRows } from './vmoe/layers.js';
export { VisionMoE, makeVariable, type ForwardOptions, type ForwardResult, type RoutingOverrides, type ParamStore } from './vmoe/model.js';
export { paramSpecs, initParamValues, countParams } from './vmoe/params.js';
export { flopsPerImage, FLOPS_CONVENTION, type FlopsBreakdown } from './vmoe/flops.js';

// E³ and the ensemble baselines (deep ensembles, MC dropout)
export * as ensembles from './ensembles/index.js';

// Training
export * from './config/experiment.js';
export { Adam, learningRate } from './train/optimizer.js';
export * from './checkpoint/format.js';
export { train, TrainingError, classificationLoss, evaluateSplit, initFromCheckpoint, decideHead, type HeadInit, type HeadDecision, type TrainOptions, type TrainResult } from './train/trainer.js';
export { loadModel, resolveCheckpoint, type LoadedModel } from './checkpoint/load.js';

// Evaluation
export { computeOutputs, type Outputs, type OutputOptions, type RouterSummary } from './vmoe/outputs.js';
export { classificationMetrics, type ClassificationMetrics } from './eval/harness.js';
export * as metrics from './metrics/index.js';
export * as fewshot from './fewshot/index.js';
export * as robustness from './robustness/index.js';
export * from './export/tables.js';
