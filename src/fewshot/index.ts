export {
  STD_EPSILON,
  accuracyOf,
  argmaxRows,
  featuresFromRows,
  fitStandardiser,
  standardise,
  type Features,
  type Standardiser,
} from './features.js';
export {
  LSR_BIAS_FEATURE,
  fitLsr,
  lsrAccuracyByL2,
  lsrDesignMatrix,
  lsrSweep,
  lsrTargets,
  type LsrModel,
  type LsrOptions,
  type LsrRoute,
} from './lsr.js';
export { fitLogreg, logregObjective, type LogregModel, type LogregOptions } from './logreg.js';
export { minimiseLbfgs, type LbfgsOptions, type LbfgsResult, type ObjectiveFn } from './lbfgs.js';
export { meanNllFromLogits, topLabelEce } from './probe-metrics.js';
export {
  DEFAULT_FALLBACK_L2,
  DEFAULT_L2_GRID,
  DEFAULT_SHOTS,
  rankDescending,
  runFewShot,
  sampleFewShot,
  seedStats,
  selectByMeanRank,
  selectRows,
  type FewShotDataset,
  type FewShotOptions,
  type FewShotReport,
  type ProbeKind,
  type SeedStats,
  type SelectedResult,
  type ShotResult,
} from './protocol.js';
export { parseFeaturesCsv, readFeaturesCsv, type LabelledFeatures } from './features-csv.js';
