/**
 * A linear probe on user-supplied features (`vmoe probe`): fit LSR or logistic regression on labelled train
 * features and score test features — accuracy and predictions, plus NLL, ECE and convergence for logreg.
 * Files: CSV with header `label,f0,…,f{D-1}` (features-csv.ts). Pure apart from reading the two files.
 */
import { DataError, UsageError } from '../util/errors.js';
import { readFeaturesCsv, type LabelledFeatures } from './features-csv.js';
import { accuracyOf, argmaxRows } from './features.js';
import { fitLogreg } from './logreg.js';
import { fitLsr } from './lsr.js';
import { meanNllFromLogits, topLabelEce } from './probe-metrics.js';
import type { ProbeKind } from './protocol.js';

/** What the probe scored: the inputs' sizes, accuracy and per-row predictions; NLL, ECE and convergence for logreg. */
export interface ProbeResult {
  probe: ProbeKind;
  l2: number;
  train: string;
  test: string;
  numTrain: number;
  numTest: number;
  dim: number;
  numClasses: number;
  accuracy: number;
  /** Predicted class index of each test row, in input order. */
  predictions: number[];
  /** logreg only: mean NLL of the test labels */
  nll?: number;
  /** logreg only: top-label ECE, equal-width bins */
  ece?: number;
  eceBins?: number;
  /** logreg only: whether L-BFGS met its gradient tolerance */
  converged?: boolean;
  iterations?: number;
}

const ECE_BINS = 15;

/** Train and test files that cannot be probed together: a DataError, so the CLI prints the message and exits 2. */
function checkCompatible(train: LabelledFeatures, test: LabelledFeatures): void {
  if (train.x.cols !== test.x.cols) {
    throw new DataError(
      `feature dimensions differ: ${train.source} has ${train.x.cols} feature columns (f0..f${train.x.cols - 1}), ` +
        `${test.source} has ${test.x.cols} (f0..f${test.x.cols - 1})`,
    );
  }
  if (train.distinctClasses < 2) {
    throw new DataError(`${train.source}: every train row has label ${train.y[0]}; a probe needs at least 2 classes`);
  }
  const present = new Uint8Array(train.numClasses);
  for (const c of train.y) present[c] = 1;
  const missing = present.indexOf(0);
  if (missing >= 0) {
    throw new DataError(
      `${train.source}: class ${missing} has no train rows; labels must be 0..K−1 with every class present ` +
        `(found labels up to ${train.numClasses - 1})`,
    );
  }
  for (let i = 0; i < test.y.length; i++) {
    if (test.y[i]! >= train.numClasses) {
      throw new DataError(
        `${test.source} line ${test.lines[i]}, column 1 (label): class ${test.y[i]} does not occur in ` +
          `${train.source}, whose classes are 0..${train.numClasses - 1}`,
      );
    }
  }
}

/** Fits the probe on `train` and scores `test`; pure apart from its inputs. */
export function probeFeatures(
  train: LabelledFeatures,
  test: LabelledFeatures,
  l2: number,
  probe: ProbeKind,
): ProbeResult {
  checkCompatible(train, test);
  if (!(l2 > 0) || !Number.isFinite(l2)) throw new UsageError(`--l2 must be a finite number > 0, got ${l2}`);
  const k = train.numClasses;
  const m = test.x.rows;
  const base = {
    probe,
    l2,
    train: train.source,
    test: test.source,
    numTrain: train.x.rows,
    numTest: m,
    dim: train.x.cols,
    numClasses: k,
  };
  if (probe === 'lsr') {
    const predictions = fitLsr(train.x, train.y, k).predict(test.x, l2);
    return { ...base, accuracy: accuracyOf(predictions, test.y), predictions: Array.from(predictions) };
  }
  const model = fitLogreg(train.x, train.y, k, l2);
  const logits = model.logits(test.x); // (M, K)
  const predictions = argmaxRows(logits, m, k);
  return {
    ...base,
    accuracy: accuracyOf(predictions, test.y),
    predictions: Array.from(predictions),
    nll: meanNllFromLogits(logits, test.y, k),
    ece: topLabelEce(model.probabilities(test.x), test.y, k, ECE_BINS),
    eceBins: ECE_BINS,
    converged: model.converged,
    iterations: model.iterations,
  };
}

/** Reads the train and test feature CSVs and probes them (probeFeatures). */
export async function runProbe(opts: {
  train: string;
  test: string;
  l2: number;
  probe: ProbeKind;
}): Promise<ProbeResult> {
  const [train, test] = await Promise.all([readFeaturesCsv(opts.train), readFeaturesCsv(opts.test)]);
  return probeFeatures(train, test, opts.l2, opts.probe);
}
