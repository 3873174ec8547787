/**
 * `vmoe probe`: fit a linear probe (LSR or logistic) on user-supplied train features and score
 * user-supplied test features. Files: CSV with header `label,f0,…,f{D-1}` (src/fewshot/features-csv.ts).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DataError, UsageError } from '../util/errors.js';
import { readFeaturesCsv, type LabelledFeatures } from '../fewshot/features-csv.js';
import { accuracyOf, argmaxRows } from '../fewshot/features.js';
import { fitLogreg } from '../fewshot/logreg.js';
import { fitLsr } from '../fewshot/lsr.js';
import { meanNllFromLogits, topLabelEce } from '../fewshot/probe-metrics.js';
import type { ProbeKind } from '../fewshot/protocol.js';

export type ProbeFormat = 'json' | 'table';

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
export function probeFeatures(train: LabelledFeatures, test: LabelledFeatures, l2: number, probe: ProbeKind): ProbeResult {
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

export async function runProbe(opts: { train: string; test: string; l2: number; probe: ProbeKind }): Promise<ProbeResult> {
  const [train, test] = await Promise.all([readFeaturesCsv(opts.train), readFeaturesCsv(opts.test)]);
  return probeFeatures(train, test, opts.l2, opts.probe);
}

export function formatProbeResult(r: ProbeResult, format: ProbeFormat): string {
  if (format === 'json') return JSON.stringify(r, null, 2);
  const rows: [string, string][] = [
    ['probe', r.probe],
    ['l2', String(r.l2)],
    ['train', `${r.train} (${r.numTrain} rows)`],
    ['test', `${r.test} (${r.numTest} rows)`],
    ['dim', String(r.dim)],
    ['classes', String(r.numClasses)],
    ['accuracy', r.accuracy.toFixed(4)],
  ];
  if (r.nll !== undefined) rows.push(['nll', r.nll.toFixed(4)]);
  if (r.ece !== undefined) rows.push([`ece (${r.eceBins} bins)`, r.ece.toFixed(4)]);
  if (r.converged !== undefined) rows.push(['converged', `${r.converged} (${r.iterations} iterations)`]);
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, v]) => `${key.padEnd(width)}  ${v}`).join('\n');
}

function parseL2(value: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v) || v <= 0) {
    throw new InvalidArgumentError(`expected a finite number > 0 (e.g. 1024), got '${value}'`);
  }
  return v;
}

export function registerProbeCommand(program: Command): void {
  program
    .command('probe')
    .description('fit a linear probe on labelled feature CSVs (header label,f0,…,f{D-1}) and score a test set')
    .requiredOption('--train <file>', 'train features CSV')
    .requiredOption('--test <file>', 'test features CSV')
    .requiredOption('--l2 <lambda>', 'L2 regularisation λ (> 0); for logreg C = 1/λ', parseL2)
    .addOption(new Option('--probe <kind>', 'probe').choices(['lsr', 'logreg']).default('lsr'))
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'table']).default('json'))
    .action(async (opts: { train: string; test: string; l2: number; probe: ProbeKind; format: ProbeFormat }) => {
      const result = await runProbe(opts);
      process.stdout.write(formatProbeResult(result, opts.format) + '\n');
    });
}
