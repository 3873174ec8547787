/**
 * Uncertainty metrics for any model's predictions (`vmoe metrics`): the predictions CSVs — test, optional OOD and
 * calibration sets (metrics/predictions-csv.ts) — read and evaluated by the harness (harness.ts evaluatePredictions);
 * with calibration predictions and conformal options, split conformal prediction sets (docs/conformal.md).
 */
import type { ConformalEvalOptions } from './evaluators.js';
import { evaluatePredictions } from './harness.js';
import type { PredictionsReport } from './report.js';
import {
  readPredictionsCsv,
  type Binning,
  type OodPositive,
  type OodScoreName,
  type PredictionsTable,
} from '../metrics/index.js';
import { UsageError } from '../util/errors.js';

/** A predictions file streamed from disk (files of any size: memory holds the scores, not the text). */
function readPredictions(file: string, allowUnknownLabel: boolean): Promise<PredictionsTable> {
  return readPredictionsCsv(file, { allowUnknownLabel });
}

/** The predictions files and metric settings of `vmoe metrics`. */
export interface MetricsOptions {
  input: string;
  oodInput?: string;
  bins?: number;
  binning?: Binning;
  oodScore?: OodScoreName;
  oodPositive?: OodPositive;
  /** calibration predictions CSV for conformal prediction (needs `conformal`) */
  calib?: string;
  conformal?: ConformalEvalOptions | null;
}

/** Reads the predictions CSV(s) and runs the harness's evaluators on them. */
export async function runMetrics(opts: MetricsOptions): Promise<PredictionsReport> {
  if (opts.conformal && !opts.calib)
    throw new UsageError(
      '--conformal needs calibration predictions: add --calib <file> (a predictions CSV of held-out data)',
    );
  if (opts.calib && !opts.conformal)
    throw new UsageError('--calib is the calibration data of conformal prediction: add --conformal lac,aps,raps');
  const [input, ood, calib] = await Promise.all([
    readPredictions(opts.input, false),
    opts.oodInput ? readPredictions(opts.oodInput, true) : Promise.resolve(undefined),
    opts.calib ? readPredictions(opts.calib, false) : Promise.resolve(undefined),
  ]);
  const score = opts.oodScore ?? 'msp';
  if (ood && input.kind === 'probs' && (score === 'max-logit' || score === 'energy')) {
    throw new UsageError(`--ood-score ${score} needs logits, but ${input.source} gives probabilities (p0..)`);
  }
  return evaluatePredictions(input, ood, {
    bins: opts.bins,
    binning: opts.binning,
    calib,
    conformal: opts.conformal ?? undefined,
  });
}
