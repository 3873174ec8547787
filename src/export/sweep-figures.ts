/** Adaptive-compute figures (SVG) from plain sweep rows: accuracy and NLL against the processed fraction. */
import { lineChartSvg } from './figures.js';

/** What a sweep figure needs of each row (src/eval/sweep.ts SweepRow has these fields). */
export interface SweepFigureRow {
  routing: string;
  k: number;
  processed_fraction: number;
  accuracy: number;
  nll: number;
}

/** Line label for one (routing mode, K). */
export const seriesName = (routing: string, k: number) => `${routing === 'bpr' ? 'BPR' : 'vanilla'} K=${k}`;

/** Accuracy and NLL against processed fraction, one line per (routing mode, K). */
export function sweepFigures(rows: SweepFigureRow[], title = ''): { accuracy: string; nll: string } {
  const groups = new Map<string, SweepFigureRow[]>();
  for (const r of rows) {
    const key = seriesName(r.routing, r.k);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const series = (metric: 'accuracy' | 'nll') =>
    [...groups].map(([name, rs]) => ({
      name,
      points: rs.map((r) => [r.processed_fraction, r[metric]] as [number, number]),
    }));
  const suffix = title ? ` — ${title}` : '';
  return {
    accuracy: lineChartSvg({
      title: `Accuracy vs processed assignments${suffix}`,
      xLabel: 'processed fraction of (token, choice) assignments',
      yLabel: 'accuracy',
      series: series('accuracy'),
    }),
    nll: lineChartSvg({
      title: `NLL vs processed assignments${suffix}`,
      xLabel: 'processed fraction of (token, choice) assignments',
      yLabel: 'NLL (nats)',
      series: series('nll'),
    }),
  };
}
