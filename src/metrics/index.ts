/** Uncertainty metrics: pure functions on plain typed arrays (see types.ts for the layout). */
export * from './types.js';
export * from './softmax.js';
export * from './likelihood.js';
export * from './calibration.js';
export * from './temperature.js';
export * from './diversity.js';
export * from './selective.js';
export * from './ranking.js';
export * from './ood.js';
export * from './mahalanobis.js';
export * from './predictions-csv.js';
export * from './conformal-scores.js';
export * from './conformal.js';
