/**
 * `vmoe metrics`: uncertainty metrics for any model's predictions, read from the predictions CSV
 * (src/metrics/predictions-csv.ts). No tensors involved.
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { stringify } from 'csv-stringify/sync';
import { DataError } from '../data/idx.js';
import { uncertaintyDetails, type CalibrationDetails, type SelectiveDetails } from '../eval/classification.js';
import {
  ACCURACY_CONVENTION,
  BRIER_CONVENTION,
  DIVERSITY_CONVENTION,
  NLL_CONVENTION,
  OOD_SCORE_DEFINITIONS,
  OOD_SCORE_NAMES,
  ORACLE_FRACTIONS,
  SELECTIVE_CONVENTION,
  accuracy,
  brier,
  calibrationAuc,
  ensembleDiversity,
  gibbsNll,
  logitsFromProbs,
  meanProbs,
  memberNlls,
  nll,
  oodMetrics,
  oodScore,
  oracleCollaborativeAccuracy,
  parsePredictionsCsv,
  type Binning,
  type Logits,
  type OodPositive,
  type OodScoreName,
  type PredictionsTable,
} from '../metrics/index.js';

export type MetricsFormat = 'json' | 'csv' | 'latex' | 'table';

export interface MetricsOptions {
  bins: number;
  binning: Binning;
  oodScore: OodScoreName;
  oodPositive: OodPositive;
}

export const DEFAULT_METRICS_OPTIONS: MetricsOptions = {
  bins: 15,
  binning: 'equal-width',
  oodScore: 'msp',
  oodPositive: 'ood',
};

export interface MetricsReport {
  source: string;
  input: 'logits' | 'probs';
  n: number;
  k: number;
  members: number;
  accuracy: number;
  /** ensemble NLL for ensembles */
  nll: number;
  brier: number;
  ece: number;
  calibration_auc: number;
  aurc: number;
  oracle_accuracy: Record<string, number>;
  /** ECE variants with the chosen bins (equal-mass, classwise, RMSCE, MCE, signed) and reliability-diagram bins */
  calibration: CalibrationDetails;
  /** accuracy at coverage, coverage at risk, downsampled risk–coverage curve */
  selective_prediction: SelectiveDetails;
  gibbs_nll?: number;
  member_nlls?: number[];
  disagreement?: number;
  normalized_disagreement?: number;
  pairwise_kl?: number;
  mutual_information?: number;
  ambiguity?: number;
  ood?: { source: string; score: OodScoreName; auroc: number; auprc: number; fpr95: number; n_in: number; n_ood: number };
  conventions: Record<string, unknown>;
}

function asLogits(t: PredictionsTable): Logits {
  return t.kind === 'logits' ? t.scores : logitsFromProbs(t.scores);
}

/** Every metric for one predictions table (and an optional OOD table); pure. */
export function computeMetricsReport(
  input: PredictionsTable,
  oodInput?: PredictionsTable,
  options: Partial<MetricsOptions> = {},
): MetricsReport {
  const opts = { ...DEFAULT_METRICS_OPTIONS, ...options };
  const logits = asLogits(input);
  const labels = input.labels;
  const m = input.scores.m ?? 1;
  const pbar = meanProbs(logits);
  const u = uncertaintyDetails(pbar, labels, { bins: opts.bins, binning: opts.binning });
  const { ece: calibration, confidence, correct } = u;
  const oracle: Record<string, number> = {};
  for (const f of ORACLE_FRACTIONS) oracle[`${f * 100}%`] = oracleCollaborativeAccuracy(confidence, correct, f);

  const report: MetricsReport = {
    source: input.source,
    input: input.kind,
    n: input.scores.n,
    k: input.scores.k,
    members: m,
    accuracy: accuracy(pbar, labels),
    nll: nll(logits, labels),
    brier: brier(pbar, labels),
    ece: calibration.value,
    calibration_auc: safeCalibrationAuc(confidence, correct),
    aurc: u.aurc,
    oracle_accuracy: oracle,
    calibration: u.calibration,
    selective_prediction: u.selective_prediction,
    conventions: {
      accuracy: ACCURACY_CONVENTION,
      nll: NLL_CONVENTION,
      brier: BRIER_CONVENTION,
      ece: calibration.convention,
      selective: SELECTIVE_CONVENTION,
      calibration_auc: 'AUROC of confidence max p̄ for correct (positive) vs wrong predictions; NaN if all right or all wrong',
      oracle_accuracy: 'round(f·N) least confident examples answered by an always-right oracle',
      temperature_scaled: false,
      members: m > 1 ? 'metrics of the ensemble mean p̄ = mean_m softmax(z_m)' : 'single model',
      ...u.conventions,
    },
  };
  if (m > 1) {
    const d = ensembleDiversity(logits, labels);
    Object.assign(report, {
      gibbs_nll: gibbsNll(logits, labels),
      member_nlls: memberNlls(logits, labels),
      disagreement: d.disagreement,
      normalized_disagreement: d.normalizedDisagreement,
      pairwise_kl: d.pairwiseKl,
      mutual_information: d.mutualInformation,
      ambiguity: d.ambiguity,
    });
    report.conventions.diversity = DIVERSITY_CONVENTION;
  }
  if (oodInput) {
    checkOodCompatible(input, oodInput, opts.oodScore);
    const r = oodMetrics(oodScore(logits, opts.oodScore), oodScore(asLogits(oodInput), opts.oodScore), {
      positive: opts.oodPositive,
    });
    report.ood = {
      source: oodInput.source,
      score: opts.oodScore,
      auroc: r.auroc,
      auprc: r.auprc,
      fpr95: r.fpr95,
      n_in: r.nIn,
      n_ood: r.nOod,
    };
    report.conventions.ood = { ...r.convention, score: OOD_SCORE_DEFINITIONS[opts.oodScore] };
  }
  return report;
}

function safeCalibrationAuc(confidence: Float64Array, correct: Uint8Array): number {
  const hits = correct.reduce((s, x) => s + x, 0);
  return hits === 0 || hits === correct.length ? NaN : calibrationAuc(confidence, correct);
}

function checkOodCompatible(input: PredictionsTable, ood: PredictionsTable, score: OodScoreName): void {
  if (ood.scores.k !== input.scores.k) {
    throw new DataError(`${ood.source} has ${ood.scores.k} classes but ${input.source} has ${input.scores.k}`);
  }
  if (ood.kind !== input.kind) {
    throw new DataError(`${ood.source} gives ${ood.kind} but ${input.source} gives ${input.kind}; use the same kind`);
  }
  if ((ood.scores.m ?? 1) !== (input.scores.m ?? 1)) {
    throw new DataError(`${ood.source} has ${ood.scores.m ?? 1} members but ${input.source} has ${input.scores.m ?? 1}`);
  }
  if (input.kind === 'probs' && (score === 'max-logit' || score === 'energy')) {
    throw new DataError(`--ood-score ${score} needs logits, but ${input.source} gives probabilities (p0..)`);
  }
}

/** Flatten to dotted keys with primitive values (arrays by index). */
function flatten(value: unknown, prefix: string, out: [string, string | number | boolean][]): void {
  if (value === null || value === undefined) return;
  if (typeof value === 'object') {
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) flatten(v, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out.push([prefix, value as string | number | boolean]);
  }
}

function jsonNumber(_key: string, v: unknown): unknown {
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? null : v > 0 ? 'Infinity' : '-Infinity';
  return v;
}

const LATEX_NAMES: Record<string, string> = {
  accuracy: 'Accuracy',
  nll: 'NLL',
  brier: 'Brier',
  ece: 'ECE',
  calibration_auc: 'Calibration AUC',
  aurc: 'AURC',
  gibbs_nll: 'Gibbs NLL',
  disagreement: 'Disagreement',
  normalized_disagreement: 'Disagreement / error',
  pairwise_kl: 'Pairwise KL',
  mutual_information: 'Mutual information',
  ambiguity: 'Ambiguity',
  'calibration.ece_equal_mass': 'ECE (equal-mass)',
  'calibration.classwise_ece': 'Classwise ECE',
  'calibration.rmsce': 'RMSCE',
  'calibration.mce': 'MCE',
  'calibration.signed_ece': 'Signed ECE',
};

/** Curve data (reliability bins, risk–coverage points) stays in JSON and CSV; tables show scalars only. */
function isCurveData(key: string): boolean {
  return key.startsWith('calibration.reliability.') || key.startsWith('selective_prediction.risk_coverage.');
}

function latexEscape(s: string): string {
  return s.replace(/\\/g, '\\textbackslash{}').replace(/([&%$#_{}])/g, '\\$1').replace(/~/g, '\\textasciitilde{}').replace(/\^/g, '\\textasciicircum{}');
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : String(v);
}

export function formatMetricsReport(report: MetricsReport, format: MetricsFormat): string {
  if (format === 'json') return JSON.stringify(report, jsonNumber, 2);
  const flat: [string, string | number | boolean][] = [];
  flatten(report, '', flat);
  if (format === 'csv') return stringify([['metric', 'value'], ...flat.map(([k, v]) => [k, typeof v === 'number' ? String(v) : v])]);
  const metricRows = flat.filter(([key, v]) => typeof v === 'number' && !key.startsWith('conventions.') && !['n', 'k', 'members'].includes(key) && !key.startsWith('ood.n_') && !isCurveData(key));
  if (format === 'table') {
    const rows: [string, string][] = [
      ['input', `${report.source} (${report.n} examples, ${report.k} classes, ${report.members} member${report.members > 1 ? 's' : ''}, ${report.input})`],
      ...metricRows.map(([key, v]): [string, string] => [key === 'ece' ? `ece (${(report.conventions.ece as { bins: number }).bins} bins)` : key, fmt(v as number)]),
    ];
    if (report.ood) rows.push(['ood', `${report.ood.source} (${report.ood.n_ood} examples), score ${report.ood.score}`]);
    const width = Math.max(...rows.map(([key]) => key.length));
    return rows.map(([key, v]) => `${key.padEnd(width)}  ${v}`).join('\n');
  }
  const ece = report.conventions.ece as { bins: number; binning: string; labels: string };
  const lines = [
    `% ${latexEscape(report.source)}: N = ${report.n}, K = ${report.k}, M = ${report.members}`,
    `% ECE: ${ece.labels}, ${ece.bins} ${ece.binning} bins, L1; Brier summed over classes; NLL in nats; not temperature-scaled`,
    '\\begin{tabular}{lr}',
    '\\toprule',
    'Metric & Value \\\\',
    '\\midrule',
    ...metricRows.map(([key, v]) => {
      const name = LATEX_NAMES[key] ?? latexEscape(key.replace(/^ood\./, 'OOD ').replace(/^oracle_accuracy\./, 'Oracle acc. @ ').replace(/^selective_prediction\.accuracy_at_coverage\./, 'Acc. @ coverage ').replace(/^selective_prediction\.coverage_at_risk\./, 'Coverage @ risk ').replace(/^member_nlls\./, 'NLL member '));
      return `${name} & ${fmt(v as number)} \\\\`;
    }),
    '\\bottomrule',
    '\\end{tabular}',
  ];
  return lines.join('\n');
}

async function readPredictions(file: string, allowUnknownLabel: boolean): Promise<PredictionsTable> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read predictions file ${file}: ${(e as Error).message}`);
  }
  return parsePredictionsCsv(text, file, { allowUnknownLabel });
}

export async function runMetrics(opts: { input: string; oodInput?: string } & Partial<MetricsOptions>): Promise<MetricsReport> {
  const [input, ood] = await Promise.all([
    readPredictions(opts.input, false),
    opts.oodInput ? readPredictions(opts.oodInput, true) : Promise.resolve(undefined),
  ]);
  return computeMetricsReport(input, ood, opts);
}

function parseBins(value: string): number {
  const v = Number(value);
  if (!/^\d+$/.test(value.trim()) || v < 1) throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return v;
}

export function registerMetricsCommand(program: Command): void {
  program
    .command('metrics')
    .description(
      'uncertainty metrics for predictions in a CSV (header label and logit0..logit{K-1} or p0..p{K-1}; ' +
        'ensembles add id and member columns, one row per example and member)',
    )
    .requiredOption('--input <file>', 'predictions CSV')
    .option('--ood-input <file>', 'predictions CSV of out-of-distribution data (label may be -1)')
    .option('--bins <n>', 'ECE bins', parseBins, 15)
    .addOption(new Option('--binning <kind>', 'ECE binning').choices(['equal-width', 'equal-mass']).default('equal-width'))
    .addOption(new Option('--ood-score <name>', 'OOD score (higher = more OOD)').choices([...OOD_SCORE_NAMES]).default('msp'))
    .addOption(new Option('--ood-positive <label>', 'positive class for OOD metrics').choices(['ood', 'in-distribution']).default('ood'))
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'csv', 'latex', 'table']).default('json'))
    .action(
      async (o: {
        input: string;
        oodInput?: string;
        bins: number;
        binning: Binning;
        oodScore: OodScoreName;
        oodPositive: OodPositive;
        format: MetricsFormat;
      }) => {
        const report = await runMetrics(o);
        process.stdout.write(formatMetricsReport(report, o.format) + '\n');
      },
    );
}
