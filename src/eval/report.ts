/**
 * The one report schema that `vmoe eval`, `vmoe metrics`, `vmoe sweep`, `vmoe robustness` and
 * `vmoe experiment e3` emit (docs/evaluation-report.md). Keys are snake_case; every number's
 * convention sits under `conventions`, keyed like the number. Evaluators (evaluators.ts) each fill
 * their part; the harness (harness.ts) adds where the predictions came from.
 */
import type { ConformalMethod, ConformalReport } from '../metrics/index.js';
import type { CalibrationDetails, SelectiveDetails } from './classification.js';

/** OOD detection metrics under one positive-class convention. */
export interface OodNumbers {
  auroc: number;
  auprc: number;
  fpr95: number;
}

/** One OOD data set: every score that applies, under both positive-class conventions. */
export interface OodEntry {
  dataset: string;
  n: number;
  /** score name (msp, entropy, max-logit, energy, …) → metrics with OOD as the positive class and with in-distribution */
  scores: Record<string, { ood_positive: OodNumbers; in_positive: OodNumbers }>;
}

/** One MoE layer's routing over the evaluated data (averaged over batches, weighted by batch size). */
export interface RouterReport {
  block: number;
  /** processed (token, choice) assignments / all assignments */
  processed_fraction: number;
  /** 1 − processed_fraction */
  drop_fraction: number;
  /** share of processed assignments per expert, (E,) */
  expert_load: number[];
  /** expert capacity per routing group */
  capacity: number;
  /** tokens per routing group */
  group_size: number;
}

/** Metrics after temperature scaling fitted on a held-out split. */
export interface TemperatureReport {
  fit_split: string;
  mode: 'pooled' | 'per-member';
  temperatures: number[];
  fit_nll_before: number;
  fit_nll_after: number;
  convention: unknown;
  accuracy: number;
  nll: number;
  brier: number;
  ece: number;
}

/** Ensemble diversity (members > 1), flat snake_case keys. */
export type DiversityNumbers = {
  gibbs_nll: number;
  member_nlls: number[];
  member_accuracy: number[];
  disagreement: number;
  normalized_disagreement: number;
  pairwise_kl: number;
  mutual_information: number;
  ambiguity: number;
};

/** Split conformal prediction: per method (lac, aps, raps: those asked for), one report per α in the order given. */
export type ConformalResults = Partial<Record<ConformalMethod, ConformalReport[]>>;

/** What the evaluators yield for one set of predictions (`vmoe metrics` prints exactly this plus its source). */
export interface MetricsReport {
  n: number;
  /** classes */
  k: number;
  /** ensemble members M (1 for a single model) */
  members: number;
  accuracy: number;
  /** ensemble NLL −log p̄(y) when members > 1 */
  nll: number;
  brier: number;
  /** top-label ECE with the chosen bins (conventions.ece) */
  ece: number;
  /** AUROC of confidence as a predictor of correctness; null (NaN) when every prediction is right or every one wrong */
  calibration_auc: number;
  /** area under the risk–coverage curve */
  aurc: number;
  /** accuracy when the least confident fraction is answered by an oracle, key: fraction in percent */
  oracle_accuracy: Record<string, number>;
  calibration: CalibrationDetails;
  selective_prediction: SelectiveDetails;
  /** ensembles only */
  gibbs_nll?: number;
  member_nlls?: number[];
  member_accuracy?: number[];
  disagreement?: number;
  normalized_disagreement?: number;
  pairwise_kl?: number;
  mutual_information?: number;
  ambiguity?: number;
  /** after temperature scaling fitted on held-out data; null when not asked for */
  temperature_scaled?: TemperatureReport | null;
  /** OOD detection per OOD set; null when none was given */
  ood?: OodEntry[] | null;
  /** router statistics per MoE layer (models with MoE layers only) */
  router?: RouterReport[];
  /** split conformal prediction sets calibrated on held-out data; null when asked for without calibration data */
  conformal?: ConformalResults | null;
  conventions: Record<string, unknown>;
}

/** `vmoe metrics`: the metrics of a predictions CSV. */
export interface PredictionsReport extends MetricsReport {
  source: string;
  /** what the CSV held: logits or probabilities */
  input: 'logits' | 'probs';
}

/** A checkpoint (or several: deep ensemble) as recorded in a report. */
export interface CheckpointRecord {
  path: string;
  sha256: string;
  step: number;
  seed: number;
}

/** `vmoe eval`: the metrics of one or more checkpoints on a data set, with what produced them. */
export interface EvalReport extends MetricsReport {
  dataset: string;
  split: string;
  flops_per_image: number;
  /** n ÷ seconds: the model pass over the data set, waits for images still being decoded included. */
  images_per_s: number;
  seconds: number;
  /** Of `seconds`, the time the model waited for images being decoded (image folders; 0 for data in memory). */
  decode_wait_seconds: number;
  ensemble: Record<string, unknown> | null;
  routing: Record<string, unknown> | null;
  checkpoint: CheckpointRecord | CheckpointRecord[];
  eval_seed: number;
  batch_size: number;
  /** config, seed, engine, versions, host, time (engine/record.ts) */
  [provenance: string]: unknown;
}

/** JSON text of a report: NaN → null, ±Infinity → "Infinity" / "-Infinity" (JSON has neither). */
export function reportJson(report: unknown): string {
  return (
    JSON.stringify(
      report,
      (_key, v: unknown) => {
        if (typeof v === 'number' && !Number.isFinite(v))
          return Number.isNaN(v) ? null : v > 0 ? 'Infinity' : '-Infinity';
        return v;
      },
      2,
    ) + '\n'
  );
}
