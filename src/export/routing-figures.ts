/**
 * Routing figures (SVG) from plain data: an expert × class affinity heat map per MoE layer and the
 * drop fraction / expert load over training steps. The numbers come from src/eval/routing-analysis.ts.
 */
import { heatMapSvg, lineChartSvg } from './figures.js';

/** One MoE layer's expert × class affinity: affinity[c][e] = share of class c's processed assignments on expert e. */
export interface AffinityLayer {
  block: number;
  numExperts: number;
  affinity: number[][];
}

/** One MoE block's training-log series: (step, value) points. */
export interface TrainingLogSeries {
  block: number;
  drop: [number, number][];
  maxLoad: [number, number][];
  expertLoad: [number, number][][];
}

/** Expert × class affinity of one layer as a heat map (rows: classes, columns: experts). */
export function affinityHeatMap(layer: AffinityLayer, classNames: string[]): string {
  return heatMapSvg({
    title: `Block ${layer.block}: share of each class's processed assignments per expert`,
    values: layer.affinity,
    rowLabels: layer.affinity.map((_, c) => classNames[c] ?? String(c)),
    colLabels: Array.from({ length: layer.numExperts }, (_, e) => `e${e}`),
    xLabel: 'expert',
    yLabel: 'class',
    domain: [0, 1],
  });
}

/** Trailing running mean over `window` points (the first points average what exists so far). */
export function runningMean(points: [number, number][], window: number): [number, number][] {
  let sum = 0;
  return points.map(([x, y], i) => {
    sum += y;
    if (i >= window) sum -= points[i - window]![1];
    return [x, sum / Math.min(i + 1, window)];
  });
}

/**
 * Drop fraction and max expert load over training steps, one line per MoE
 * block. Per-step values are noisy, so long logs are smoothed by a trailing
 * running mean over about 1% of the steps (stated in the title).
 */
export function trainingLogFigures(series: TrainingLogSeries[]): {
  drop: string;
  maxLoad: string;
  expertLoad: { block: number; svg: string }[];
  window: number;
} {
  const n = Math.max(0, ...series.map((s) => s.drop.length));
  const window = Math.max(1, Math.round(n / 100));
  const note = window > 1 ? ` (running mean over ${window} steps)` : '';
  return {
    window,
    drop: lineChartSvg({
      title: `Drop fraction during training${note}`,
      xLabel: 'step',
      yLabel: 'dropped share of (token, choice) assignments',
      series: series.map((s) => ({ name: `block ${s.block}`, points: runningMean(s.drop, window) })),
    }),
    maxLoad: lineChartSvg({
      title: `Largest expert load during training${note}`,
      xLabel: 'step',
      yLabel: 'max share of processed assignments',
      series: series.map((s) => ({ name: `block ${s.block}`, points: runningMean(s.maxLoad, window) })),
    }),
    // Every expert's share per block: shows which expert takes over or starves, not only that one did.
    expertLoad: series.map((s) => ({
      block: s.block,
      svg: lineChartSvg({
        title: `Block ${s.block}: load of each expert during training${note}`,
        xLabel: 'step',
        yLabel: 'share of processed assignments',
        series: s.expertLoad.map((pts, e) => ({ name: `expert ${e}`, points: runningMean(pts, window) })),
      }),
    })),
  };
}
