/**
 * `vmoe metrics` output: the predictions report (eval/report.ts) as JSON, as a two-column CSV of dotted
 * keys, as a text table or as a LaTeX tabular. Tables show scalars only (curves stay in JSON and CSV)
 * and, for OOD, the one score and positive-class convention chosen as the headline. Conformal
 * prediction (with --calib) adds one row per method and α: alpha, qhat, coverage, mean_set_size.
 */
import { stringify } from 'csv-stringify/sync';
import { reportJson, type ConformalResults, type PredictionsReport } from '../eval/report.js';
import type { OodPositive, OodScoreName } from '../metrics/index.js';
import { latexEscape } from './tables.js';

export type MetricsFormat = 'json' | 'csv' | 'latex' | 'table';

/** Which OOD score and positive class the tables show (JSON and CSV hold all of them). */
export interface OodHeadline {
  score: OodScoreName;
  positive: OodPositive;
}

export const DEFAULT_OOD_HEADLINE: OodHeadline = { score: 'msp', positive: 'ood' };

/** Flatten to dotted keys with primitive values (arrays by index). */
function flatten(value: unknown, prefix: string, out: [string, string | number | boolean][]): void {
  if (value === null || value === undefined) return;
  if (typeof value === 'object') {
    for (const [key, v] of Object.entries(value as Record<string, unknown>))
      flatten(v, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out.push([prefix, value as string | number | boolean]);
  }
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

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : String(v);
}

/** One conformal row: a method at one α (qhat null when class-conditional: one per class, in JSON). */
export interface ConformalRow {
  method: string;
  alpha: number;
  qhat: number | null;
  coverage: number;
  mean_set_size: number;
}

/** The headline numbers of conformal results, one row per method and α, in report order. */
export function conformalRows(conformal: ConformalResults | null | undefined): ConformalRow[] {
  return Object.entries(conformal ?? {}).flatMap(([method, reports]) =>
    (reports ?? []).map((r) => ({
      method,
      alpha: r.alpha,
      qhat: typeof r.qhat === 'number' ? r.qhat : null,
      coverage: r.coverage,
      mean_set_size: r.mean_set_size,
    })),
  );
}

const qhatText = (q: number | null) => (q === null ? 'per class' : fmt(q));

function conformalTable(rows: ConformalRow[], calibration: string): string[] {
  const cells = [
    ['method', 'alpha', 'qhat', 'coverage', 'mean_set_size'],
    ...rows.map((r) => [r.method, String(r.alpha), qhatText(r.qhat), fmt(r.coverage), fmt(r.mean_set_size)]),
  ];
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  return [
    '',
    `conformal prediction sets, calibrated on ${calibration}`,
    ...cells.map((row) => row.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ')),
  ];
}

function conformalLatex(rows: ConformalRow[], calibration: string): string[] {
  return [
    '',
    `% split conformal prediction, calibrated on ${latexEscape(calibration)}; coverage = share of test labels in their set`,
    '\\begin{tabular}{lrrrr}',
    '\\toprule',
    'Method & $\\alpha$ & $\\hat q$ & Coverage & Mean set size \\\\',
    '\\midrule',
    ...rows.map(
      (r) =>
        `${r.method.toUpperCase()} & ${r.alpha} & ${r.qhat === null ? 'per class' : fmt(r.qhat)} & ${fmt(r.coverage)} & ${fmt(r.mean_set_size)} \\\\`,
    ),
    '\\bottomrule',
    '\\end{tabular}',
  ];
}

export function formatMetricsReport(
  report: PredictionsReport,
  format: MetricsFormat,
  headline: OodHeadline = DEFAULT_OOD_HEADLINE,
): string {
  if (format === 'json') return reportJson(report).trimEnd();
  const flat: [string, string | number | boolean][] = [];
  const { conformal, ...withoutConformal } = report;
  const cRows = conformalRows(conformal);
  const calibration = String(
    (report.conventions.conformal as { calibration?: string } | undefined)?.calibration ?? 'held-out data',
  );
  if (format === 'csv') {
    flatten(withoutConformal, '', flat);
    // one block of keys per method and α: conformal.<method>.alpha_<α>.<key> (every number of the report)
    for (const [method, reports] of Object.entries(conformal ?? {})) {
      for (const r of reports ?? []) flatten(r, `conformal.${method}.alpha_${r.alpha}`, flat);
    }
    return stringify([['metric', 'value'], ...flat.map(([k, v]) => [k, typeof v === 'number' ? String(v) : v])]);
  }
  const { ood, ...rest } = withoutConformal;
  flatten(rest, '', flat);
  const oodHit = ood?.[0]?.scores[headline.score]?.[headline.positive === 'ood' ? 'ood_positive' : 'in_positive'];
  if (oodHit) for (const [k, v] of Object.entries(oodHit)) flat.push([`ood.${k}`, v]);
  const metricRows = flat.filter(
    ([key, v]) =>
      typeof v === 'number' &&
      !key.startsWith('conventions.') &&
      !['n', 'k', 'members'].includes(key) &&
      !isCurveData(key),
  );
  if (format === 'table') {
    const rows: [string, string][] = [
      [
        'input',
        `${report.source} (${report.n} examples, ${report.k} classes, ${report.members} member${report.members > 1 ? 's' : ''}, ${report.input})`,
      ],
      ...metricRows.map(([key, v]): [string, string] => [
        key === 'ece' ? `ece (${(report.conventions.ece as { bins: number }).bins} bins)` : key,
        fmt(v as number),
      ]),
    ];
    if (ood?.[0])
      rows.push([
        'ood',
        `${ood[0].dataset} (${ood[0].n} examples), score ${headline.score}, ${headline.positive === 'ood' ? 'OOD' : 'in-distribution'} positive`,
      ]);
    const width = Math.max(...rows.map(([key]) => key.length));
    return [
      ...rows.map(([key, v]) => `${key.padEnd(width)}  ${v}`),
      ...(cRows.length ? conformalTable(cRows, calibration) : []),
    ].join('\n');
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
      const name =
        LATEX_NAMES[key] ??
        latexEscape(
          key
            .replace(/^ood\./, 'OOD ')
            .replace(/^oracle_accuracy\./, 'Oracle acc. @ ')
            .replace(/^selective_prediction\.accuracy_at_coverage\./, 'Acc. @ coverage ')
            .replace(/^selective_prediction\.coverage_at_risk\./, 'Coverage @ risk ')
            .replace(/^member_nlls\./, 'NLL member '),
        );
      return `${name} & ${fmt(v as number)} \\\\`;
    }),
    '\\bottomrule',
    '\\end{tabular}',
    ...(cRows.length ? conformalLatex(cRows, calibration) : []),
  ];
  return lines.join('\n');
}
