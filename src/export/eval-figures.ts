/**
 * Figures of the evaluation harness as SVG strings: reliability diagram with its
 * confidence histogram, risk–coverage curves, overlaid OOD score histograms and
 * few-shot accuracy against shots. The builders take plain arrays; the glue at the
 * bottom turns the harness's Outputs (or a few-shot report) into named figures.
 */
import type { Outputs } from '../vmoe/outputs.js';
import type { ShotResult } from '../fewshot/protocol.js';
// The metric modules themselves, not metrics/index.ts: that one also re-exports the CSV readers (node:fs), which
// would keep these figure builders out of the web page's results viewer (web/).
import { confidenceAndCorrect, ece } from '../metrics/calibration.js';
import { oodMetrics, oodScore, type OodScoreName } from '../metrics/ood.js';
import { aurc, riskCoverageCurve } from '../metrics/selective.js';
import { probsFromLogits } from '../metrics/softmax.js';
import { PALETTE, escapeXml, niceTicks, tickText } from './figures.js';
import { DataError, UsageError } from '../util/errors.js';

const FONT = 'font-family="sans-serif"';
const f2 = (v: number) => String(Math.round(v * 100) / 100);
const pct = (v: number) => `${(100 * v).toFixed(2)}%`;

function svgOpen(width: number, height: number): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n` +
    `<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`
  );
}

/** Title (15 px) and an optional grey subtitle line (data set, checkpoint …) centred at the top. */
function heading(width: number, title: string, subtitle?: string): string[] {
  const out = [`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" ${FONT}>${escapeXml(title)}</text>`];
  if (subtitle)
    out.push(
      `<text x="${width / 2}" y="40" text-anchor="middle" font-size="11" fill="#555" ${FONT}>${escapeXml(subtitle)}</text>`,
    );
  return out;
}

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * Frame, grid and tick labels of one panel. `xTicks`/`yTicks` are data values; `sx`/`sy` map them
 * to pixels. Tick labels are skipped on an axis whose label is null (a panel sharing the axis below).
 */
function axes(
  box: Box,
  xTicks: number[],
  yTicks: number[],
  sx: (v: number) => number,
  sy: (v: number) => number,
  xLabel: string | null,
  yLabel: string | null,
  fmtX: (v: number) => string = tickText,
  fmtY: (v: number) => string = tickText,
): string[] {
  const parts = ['<g stroke="#e4e4e4" stroke-width="1">'];
  for (const t of xTicks) parts.push(`<line x1="${f2(sx(t))}" y1="${box.y}" x2="${f2(sx(t))}" y2="${box.y + box.h}"/>`);
  for (const t of yTicks) parts.push(`<line x1="${box.x}" y1="${f2(sy(t))}" x2="${box.x + box.w}" y2="${f2(sy(t))}"/>`);
  parts.push('</g>');
  parts.push(`<g font-size="11" ${FONT}>`);
  if (xLabel !== null)
    for (const t of xTicks)
      parts.push(`<text x="${f2(sx(t))}" y="${box.y + box.h + 15}" text-anchor="middle">${escapeXml(fmtX(t))}</text>`);
  for (const t of yTicks)
    parts.push(`<text x="${box.x - 6}" y="${f2(sy(t) + 4)}" text-anchor="end">${escapeXml(fmtY(t))}</text>`);
  parts.push('</g>');
  if (xLabel)
    parts.push(
      `<text x="${f2(box.x + box.w / 2)}" y="${box.y + box.h + 34}" text-anchor="middle" font-size="12" ${FONT}>${escapeXml(xLabel)}</text>`,
    );
  if (yLabel) {
    const cx = box.x - 46,
      cy = f2(box.y + box.h / 2);
    parts.push(
      `<text x="${cx}" y="${cy}" text-anchor="middle" font-size="12" ${FONT} transform="rotate(-90 ${cx} ${cy})">${escapeXml(yLabel)}</text>`,
    );
  }
  return parts;
}

const frame = (b: Box) => `<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" fill="none" stroke="#333"/>`;

/** Legend rows at (x, y): a swatch (filled box or line) and a label each; white backing for readability. */
interface LegendItem {
  label: string;
  colour: string;
  kind: 'box' | 'line' | 'dash';
  opacity?: number;
  /** box fill other than the colour, e.g. a pattern */
  fill?: string;
}

/** Legend box width for these labels (about 6.4 px per character at 11 px). */
const legendWidth = (items: LegendItem[]) => 34 + 6.4 * Math.max(0, ...items.map((i) => i.label.length));

function legend(x: number, y: number, items: LegendItem[]): string[] {
  if (!items.length) return [];
  const w = legendWidth(items),
    h = 8 + 17 * items.length;
  const parts = [
    `<g class="legend" font-size="11" ${FONT}>`,
    `<rect x="${f2(x)}" y="${f2(y)}" width="${f2(w)}" height="${h}" fill="white" fill-opacity="0.85" stroke="#ccc"/>`,
  ];
  items.forEach((it, i) => {
    const ly = y + 13 + 17 * i;
    if (it.kind === 'box')
      parts.push(
        `<rect x="${f2(x + 6)}" y="${f2(ly - 6)}" width="18" height="10" fill="${it.fill ?? it.colour}" fill-opacity="${it.opacity ?? 1}" stroke="${it.colour}"/>`,
      );
    else
      parts.push(
        `<line x1="${f2(x + 6)}" y1="${f2(ly - 1)}" x2="${f2(x + 24)}" y2="${f2(ly - 1)}" stroke="${it.colour}" stroke-width="2"${it.kind === 'dash' ? ' stroke-dasharray="5 3"' : ''}/>`,
      );
    parts.push(`<text x="${f2(x + 30)}" y="${f2(ly + 3)}">${escapeXml(it.label)}</text>`);
  });
  parts.push('</g>');
  return parts;
}

/** Legend items in one row, centred on cx (for legends that must not cover data). */
function legendRow(cx: number, y: number, items: LegendItem[]): string[] {
  const widths = items.map((i) => 30 + 6.4 * i.label.length + 14);
  let x = cx - widths.reduce((a, b) => a + b, 0) / 2;
  const parts = [`<g class="legend" font-size="11" ${FONT}>`];
  items.forEach((it, i) => {
    parts.push(
      `<rect x="${f2(x)}" y="${y - 9}" width="18" height="10" fill="${it.colour}" fill-opacity="${it.opacity ?? 1}" stroke="${it.colour}"/>`,
    );
    parts.push(`<text x="${f2(x + 24)}" y="${y}">${escapeXml(it.label)}</text>`);
    x += widths[i]!;
  });
  parts.push('</g>');
  return parts;
}

/** Smallest nice tick ≥ v (so a bar reaching v stays inside the frame), and the ticks up to it. */
function niceTop(v: number, count = 4): { top: number; ticks: number[] } {
  if (!(v > 0)) return { top: 1, ticks: niceTicks(0, 1, count) };
  const ticks = niceTicks(0, v, count);
  const step = ticks.length > 1 ? ticks[1]! - ticks[0]! : v;
  let top = ticks[ticks.length - 1]!;
  if (top < v - 1e-12) {
    top = Number((top + step).toPrecision(12));
    ticks.push(top);
  }
  return { top, ticks };
}

// ---------------------------------------------------------------------------------------------
// Reliability diagram

export interface ReliabilityBinInput {
  count: number;
  /** fraction correct in the bin; ignored (may be NaN) when count = 0 */
  accuracy: number;
  /** mean confidence in the bin; ignored (may be NaN) when count = 0 */
  confidence: number;
}

export interface ReliabilityFigureSpec {
  /** Equal-width bins over [0, 1]: bin b spans [b/B, (b+1)/B). */
  bins: ReliabilityBinInput[];
  ece: number;
  title?: string;
  subtitle?: string;
  width?: number;
}

/** Layout of the reliability figure, exported so tests can recompute bar heights from it. */
export function reliabilityLayout(width = 480): { top: Box; hist: Box; height: number } {
  const left = 72,
    right = 20,
    size = width - left - right;
  const top: Box = { x: left, y: 52, w: size, h: size };
  const hist: Box = { x: left, y: top.y + top.h + 14, w: size, h: 110 };
  return { top, hist, height: hist.y + hist.h + 48 };
}

/**
 * Top panel: per bin, a bar up to the bin's accuracy and a shaded gap between accuracy and mean
 * confidence, against the diagonal of perfect calibration. Bottom panel: share of examples per
 * bin, with the overall accuracy and mean confidence marked. Empty bins have zero-height bars.
 */
export function reliabilityDiagramSvg(spec: ReliabilityFigureSpec): string {
  const B = spec.bins.length;
  if (B < 1) throw new DataError('reliability diagram: no bins');
  spec.bins.forEach((b, i) => {
    if (!(b.count >= 0)) throw new DataError(`reliability diagram: bin ${i} has count ${b.count}`);
    if (b.count > 0 && !(b.accuracy >= 0 && b.accuracy <= 1 && b.confidence >= 0 && b.confidence <= 1)) {
      throw new DataError(
        `reliability diagram: bin ${i} (count ${b.count}) has accuracy ${b.accuracy} and confidence ${b.confidence}; both must be in [0, 1]`,
      );
    }
  });
  const width = spec.width ?? 480;
  const { top, hist, height } = reliabilityLayout(width);
  const total = spec.bins.reduce((a, b) => a + b.count, 0);
  const title = spec.title ?? `Reliability diagram (${B} equal-width bins, ECE ${pct(spec.ece)})`;
  const sx = (v: number) => top.x + v * top.w;
  const sy = (v: number) => top.y + top.h - v * top.h;
  const parts = [svgOpen(width, height), ...heading(width, title, spec.subtitle)];
  // hatching reads the same over a bar (under-confident bin) and over white (over-confident bin)
  parts.push(
    '<defs><pattern id="gap-hatch" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)">' +
      '<rect x="0" y="0" width="6" height="6" fill="#d62728" fill-opacity="0.15"/><line x1="0" y1="0" x2="0" y2="6" stroke="#d62728" stroke-width="2.2"/></pattern></defs>',
  );
  const unit = niceTicks(0, 1, 5);
  parts.push(...axes(top, unit, unit, sx, sy, null, 'accuracy'));
  const bw = top.w / B;
  parts.push('<g class="bars">');
  spec.bins.forEach((b, i) => {
    const x = f2(sx(i / B)),
      acc = b.count > 0 ? b.accuracy : 0;
    parts.push(
      `<rect class="acc" data-bin="${i}" data-count="${b.count}" x="${x}" y="${f2(sy(acc))}" width="${f2(bw)}" height="${f2(acc * top.h)}" fill="#1f77b4" stroke="#0d3d66" stroke-width="0.6"/>`,
    );
  });
  spec.bins.forEach((b, i) => {
    if (b.count === 0) return;
    const lo = Math.min(b.accuracy, b.confidence),
      hi = Math.max(b.accuracy, b.confidence);
    parts.push(
      `<rect class="gap" data-bin="${i}" x="${f2(sx(i / B))}" y="${f2(sy(hi))}" width="${f2(bw)}" height="${f2((hi - lo) * top.h)}" fill="url(#gap-hatch)" stroke="#d62728" stroke-width="1"/>`,
    );
  });
  parts.push('</g>');
  parts.push(
    `<line class="diagonal" x1="${sx(0)}" y1="${sy(0)}" x2="${sx(1)}" y2="${sy(1)}" stroke="#444" stroke-width="1.5" stroke-dasharray="6 4"/>`,
  );
  parts.push(frame(top));
  parts.push(
    ...legend(top.x + 8, top.y + 8, [
      { label: 'accuracy in bin', colour: '#1f77b4', kind: 'box' },
      { label: 'gap to mean confidence', colour: '#d62728', kind: 'box', fill: 'url(#gap-hatch)' },
      { label: 'perfect calibration', colour: '#444', kind: 'dash' },
    ]),
  );

  // confidence histogram: share of all examples per bin
  const shares = spec.bins.map((b) => (total > 0 ? b.count / total : 0));
  const { top: yTop, ticks } = niceTop(Math.max(...shares), 3);
  const hy = (v: number) => hist.y + hist.h - (v / yTop) * hist.h;
  parts.push(
    ...axes(
      hist,
      unit,
      ticks,
      sx,
      hy,
      'confidence (top-label probability)',
      null,
      tickText,
      (v) => `${Math.round(100 * v)}%`,
    ),
  );
  const cx = hist.x - 46,
    cy = f2(hist.y + hist.h / 2);
  parts.push(
    `<text x="${cx}" y="${cy}" text-anchor="middle" font-size="12" ${FONT} transform="rotate(-90 ${cx} ${cy})">examples</text>`,
  );
  parts.push('<g class="histogram">');
  shares.forEach((s, i) => {
    parts.push(
      `<rect class="count" data-bin="${i}" data-count="${spec.bins[i]!.count}" x="${f2(sx(i / B))}" y="${f2(hy(s))}" width="${f2(bw)}" height="${f2((s / yTop) * hist.h)}" fill="#7f7f7f" stroke="#333" stroke-width="0.6"/>`,
    );
  });
  parts.push('</g>');
  if (total > 0) {
    const meanConf = spec.bins.reduce((a, b) => a + (b.count ? b.count * b.confidence : 0), 0) / total;
    const meanAcc = spec.bins.reduce((a, b) => a + (b.count ? b.count * b.accuracy : 0), 0) / total;
    const marks: [string, number, string][] = [
      ['accuracy', meanAcc, '#1f77b4'],
      ['mean confidence', meanConf, '#d62728'],
    ];
    // both labels on the emptier side of the two lines, one per row, so they neither overprint nor leave the frame
    const right = Math.max(meanAcc, meanConf) > 0.5;
    const lx = right ? sx(Math.min(meanAcc, meanConf)) - 5 : sx(Math.max(meanAcc, meanConf)) + 5;
    marks.forEach(([label, v, colour], i) => {
      parts.push(
        `<line class="mark" data-name="${label}" x1="${f2(sx(v))}" y1="${hist.y}" x2="${f2(sx(v))}" y2="${hist.y + hist.h}" stroke="${colour}" stroke-width="1.5" stroke-dasharray="4 3"/>`,
      );
      parts.push(
        `<text x="${f2(lx)}" y="${hist.y + 14 + 13 * i}" text-anchor="${right ? 'end' : 'start'}" font-size="10.5" fill="${colour}" ${FONT}>${escapeXml(`${label} ${pct(v)}`)}</text>`,
      );
    });
  }
  parts.push(frame(hist));
  parts.push('</svg>\n');
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Risk–coverage curve

export interface RiskCoverageSeries {
  name: string;
  /** i/N for i = 1..N, ascending */
  coverage: ArrayLike<number>;
  /** selective risk at each coverage */
  risk: ArrayLike<number>;
  aurc: number;
}

export interface RiskCoverageFigureSpec {
  series: RiskCoverageSeries[];
  title?: string;
  subtitle?: string;
  /** Also draw the oracle curve max(0, 1 − (1 − e)/c) of the first series (e = its risk at full coverage). Default true. */
  oracle?: boolean;
  /** Polyline vertices per series at most (evenly spaced in rank); default 400. */
  maxPoints?: number;
  width?: number;
  height?: number;
}

/** Indices 0..n−1 thinned to at most `max`, evenly spaced, always keeping the first and the last. */
export function thinIndices(n: number, max: number): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  for (let j = 0; j < max; j++) out.push(Math.round((j * (n - 1)) / (max - 1)));
  return out;
}

export function riskCoverageSvg(spec: RiskCoverageFigureSpec): string {
  if (!spec.series.length) throw new DataError('risk–coverage figure: no series');
  spec.series.forEach((s) => {
    if (s.coverage.length !== s.risk.length)
      throw new DataError(
        `risk–coverage series "${s.name}": ${s.coverage.length} coverages but ${s.risk.length} risks`,
      );
    if (!s.coverage.length) throw new DataError(`risk–coverage series "${s.name}" is empty`);
  });
  const width = spec.width ?? 560,
    height = spec.height ?? 420;
  const box: Box = { x: 72, y: spec.subtitle ? 52 : 40, w: width - 72 - 20, h: 0 };
  box.h = height - box.y - 48;
  let maxRisk = 0;
  for (const s of spec.series)
    for (let i = 0; i < s.risk.length; i++) if (Number.isFinite(s.risk[i]!)) maxRisk = Math.max(maxRisk, s.risk[i]!);
  const { top, ticks } = niceTop(maxRisk, 5);
  const sx = (v: number) => box.x + v * box.w;
  const sy = (v: number) => box.y + box.h - (v / top) * box.h;
  const parts = [
    svgOpen(width, height),
    ...heading(width, spec.title ?? 'Risk–coverage (most confident first)', spec.subtitle),
  ];
  parts.push(
    ...axes(
      box,
      niceTicks(0, 1, 5),
      ticks,
      sx,
      sy,
      'coverage (fraction of examples kept, most confident first)',
      'selective risk (error rate)',
    ),
  );
  const oracleItems: LegendItem[] = [];
  const first = spec.series[0]!;
  if (spec.oracle ?? true) {
    const e = first.risk[first.risk.length - 1]!;
    const pts: string[] = [];
    for (let j = 0; j <= 200; j++) {
      const c = Math.max(first.coverage[0]!, j / 200);
      pts.push(`${f2(sx(c))},${f2(sy(Math.max(0, 1 - (1 - e) / c)))}`);
    }
    parts.push(
      `<polyline class="oracle" fill="none" stroke="#888" stroke-width="1.5" stroke-dasharray="5 3" points="${pts.join(' ')}"/>`,
    );
    const oracleAurc = oracleAurcOf(first.coverage.length, e);
    oracleItems.push({
      label: `oracle, errors last${spec.series.length > 1 ? ' (first curve)' : ''}: AURC ${oracleAurc.toFixed(4)}`,
      colour: '#888',
      kind: 'dash',
    });
  }
  // drawn last to first, so the first (main) curve lies on top
  for (let k = spec.series.length - 1; k >= 0; k--) {
    const s = spec.series[k]!;
    const idx = thinIndices(s.coverage.length, spec.maxPoints ?? 400).filter((i) => Number.isFinite(s.risk[i]!));
    parts.push(
      `<polyline class="series" data-name="${escapeXml(s.name)}" fill="none" stroke="${PALETTE[k % PALETTE.length]!}" stroke-width="${k === 0 ? 2.2 : 1.4}" points="${idx.map((i) => `${f2(sx(s.coverage[i]!))},${f2(sy(s.risk[i]!))}`).join(' ')}"/>`,
    );
  }
  const seriesItems: LegendItem[] = spec.series.map((s, k) => ({
    label: `${s.name}: AURC ${s.aurc.toFixed(4)}`,
    colour: PALETTE[k % PALETTE.length]!,
    kind: 'line',
  }));
  parts.push(frame(box));
  parts.push(...legend(box.x + 8, box.y + 8, [...seriesItems, ...oracleItems]));
  parts.push('</svg>\n');
  return parts.join('\n');
}

/** AURC of the oracle ordering (all errors last) for N examples with error rate e: mean_i max(0, 1 − (1 − e)N/i). */
export function oracleAurcOf(n: number, errorRate: number): number {
  const correct = Math.round((1 - errorRate) * n);
  let s = 0;
  for (let i = correct + 1; i <= n; i++) s += (i - correct) / i;
  return s / n;
}

// ---------------------------------------------------------------------------------------------
// Overlaid score histograms (OOD)

export interface HistogramPanel {
  title: string;
  xLabel: string;
  series: { name: string; values: ArrayLike<number> }[];
}

export interface ScoreHistogramSpec {
  title: string;
  subtitle?: string;
  panels: HistogramPanel[];
  /** equal-width bins over the panel's range of finite values; default 40 */
  bins?: number;
  panelWidth?: number;
  height?: number;
}

/** Equal-width edges over [lo, hi] of the finite values (widened when all equal), and per-series counts. */
export function histogramCounts(series: ArrayLike<number>[], bins: number): { edges: number[]; counts: number[][] } {
  if (!Number.isInteger(bins) || bins < 1)
    throw new UsageError(`histogram: bins must be a positive integer, got ${bins}`);
  let lo = Infinity,
    hi = -Infinity;
  for (const v of series)
    for (let i = 0; i < v.length; i++)
      if (Number.isFinite(v[i]!)) {
        lo = Math.min(lo, v[i]!);
        hi = Math.max(hi, v[i]!);
      }
  if (lo === Infinity) {
    lo = 0;
    hi = 1;
  }
  if (lo === hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  const edges = Array.from({ length: bins + 1 }, (_, b) => lo + ((hi - lo) * b) / bins);
  const counts = series.map((v) => {
    const c = new Array<number>(bins).fill(0);
    for (let i = 0; i < v.length; i++) {
      const x = v[i]!;
      if (!Number.isFinite(x)) continue;
      c[Math.min(bins - 1, Math.floor(((x - lo) / (hi - lo)) * bins))]!++;
    }
    return c;
  });
  return { edges, counts };
}

/**
 * One panel per score, side by side; in each, every series' histogram as a share of that
 * series' finite values (so sets of different size compare), drawn translucent with a step outline.
 * Every panel shows the same sets (one legend serves all); n in the legend is panel 0's.
 */
export function scoreHistogramSvg(spec: ScoreHistogramSpec): string {
  if (!spec.panels.length) throw new DataError('score histogram: no panels');
  const bins = spec.bins ?? 40;
  const pw = spec.panelWidth ?? 400,
    height = spec.height ?? 340;
  const width = pw * spec.panels.length;
  const names = spec.panels[0]!.series.map((s) => s.name);
  spec.panels.forEach((panel, p) => {
    if (panel.series.map((s) => s.name).join('\u0000') !== names.join('\u0000')) {
      throw new DataError(
        `score histogram: panel ${p} has series [${panel.series.map((s) => s.name).join(', ')}], panel 0 has [${names.join(', ')}]; every panel must show the same sets`,
      );
    }
  });
  const parts = [svgOpen(width, height), ...heading(width, spec.title, spec.subtitle)];
  // one legend for all panels, under the heading, so it covers no data
  const top0 = spec.subtitle ? 60 : 44;
  const items: LegendItem[] = spec.panels[0]!.series.map((s, k) => ({
    label: `${s.name} (n=${s.values.length})`,
    colour: PALETTE[k % PALETTE.length]!,
    kind: 'box',
    opacity: 0.35,
  }));
  parts.push(...legendRow(width / 2, top0, items));
  spec.panels.forEach((panel, p) => {
    const box: Box = { x: p * pw + 70, y: top0 + 40, w: pw - 70 - 16, h: 0 };
    box.h = height - box.y - 50;
    const { edges, counts } = histogramCounts(
      panel.series.map((s) => s.values),
      bins,
    );
    const shares = counts.map((c) => {
      const n = c.reduce((a, b) => a + b, 0);
      return c.map((x) => (n > 0 ? x / n : 0));
    });
    const { top, ticks } = niceTop(Math.max(0, ...shares.flat()), 4);
    const lo = edges[0]!,
      hi = edges[bins]!;
    const sx = (v: number) => box.x + ((v - lo) / (hi - lo)) * box.w;
    const sy = (v: number) => box.y + box.h - (v / top) * box.h;
    parts.push(
      `<text x="${f2(box.x + box.w / 2)}" y="${box.y - 10}" text-anchor="middle" font-size="13" ${FONT}>${escapeXml(panel.title)}</text>`,
    );
    parts.push(
      ...axes(
        box,
        niceTicks(lo, hi, 5),
        ticks,
        sx,
        sy,
        panel.xLabel,
        p === 0 ? 'share of the set' : '',
        tickText,
        (v) => `${Math.round(100 * v)}%`,
      ),
    );
    shares.forEach((sh, k) => {
      const colour = PALETTE[k % PALETTE.length]!;
      parts.push(
        `<g class="hist" data-name="${escapeXml(panel.series[k]!.name)}" fill="${colour}" fill-opacity="0.35">`,
      );
      sh.forEach((v, b) => {
        if (v > 0)
          parts.push(
            `<rect data-bin="${b}" x="${f2(sx(edges[b]!))}" y="${f2(sy(v))}" width="${f2(sx(edges[b + 1]!) - sx(edges[b]!))}" height="${f2((v / top) * box.h)}"/>`,
          );
      });
      parts.push('</g>');
      const step: string[] = [`${f2(sx(lo))},${f2(sy(0))}`];
      sh.forEach((v, b) => step.push(`${f2(sx(edges[b]!))},${f2(sy(v))}`, `${f2(sx(edges[b + 1]!))},${f2(sy(v))}`));
      step.push(`${f2(sx(hi))},${f2(sy(0))}`);
      parts.push(
        `<polyline class="outline" fill="none" stroke="${colour}" stroke-width="1.5" points="${step.join(' ')}"/>`,
      );
    });
    parts.push(frame(box));
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Few-shot accuracy against shots

export interface FewShotPoint {
  dataset: string;
  shot: number;
  /** accuracy in [0, 1], mean over seeds */
  mean: number;
  /** sample std over seeds (0 or NaN for one seed: no error bar) */
  std: number;
}

export interface FewShotFigureSpec {
  points: FewShotPoint[];
  title?: string;
  subtitle?: string;
  /** Chance level per data set (1/K), drawn dotted in the data set's colour. */
  chance?: Record<string, number>;
  width?: number;
  height?: number;
}

/** Log-x (the shots 1, 5, 10, 25 are spread by ratio), one line per data set, error bars = ± std. */
export function fewShotSvg(spec: FewShotFigureSpec): string {
  if (!spec.points.length) throw new DataError('few-shot figure: no points');
  for (const p of spec.points) {
    if (!(p.shot >= 1)) throw new DataError(`few-shot figure: ${p.dataset} has shot ${p.shot}; shots must be ≥ 1`);
  }
  const width = spec.width ?? 560,
    height = spec.height ?? 400;
  const datasets = [...new Set(spec.points.map((p) => p.dataset))];
  const legendW = 24 + 7 * Math.max(...datasets.map((d) => d.length)) + 20;
  const box: Box = { x: 72, y: spec.subtitle ? 52 : 40, w: width - 72 - 24 - legendW, h: 0 };
  box.h = height - box.y - 48;
  const shots = [...new Set(spec.points.map((p) => p.shot))].sort((a, b) => a - b);
  let l0 = Math.log(shots[0]!),
    l1 = Math.log(shots[shots.length - 1]!);
  // a margin of 8% of the span (or a factor 2 for one shot count) keeps end markers off the frame
  const pad = l1 > l0 ? 0.08 * (l1 - l0) : Math.log(2);
  l0 -= pad;
  l1 += pad;
  const sx = (shot: number) => box.x + ((Math.log(shot) - l0) / (l1 - l0)) * box.w;
  const sy = (acc: number) => box.y + box.h - acc * box.h;
  const parts = [
    svgOpen(width, height),
    ...heading(width, spec.title ?? 'Few-shot linear probe accuracy', spec.subtitle),
  ];
  parts.push(
    ...axes(
      box,
      shots,
      niceTicks(0, 1, 5),
      sx,
      sy,
      'examples per class (log scale)',
      'test accuracy',
      (v) => String(v),
      (v) => `${Math.round(100 * v)}%`,
    ),
  );
  datasets.forEach((d, k) => {
    const colour = PALETTE[k % PALETTE.length]!;
    const pts = spec.points.filter((p) => p.dataset === d).sort((a, b) => a.shot - b.shot);
    const chance = spec.chance?.[d];
    if (chance !== undefined)
      parts.push(
        `<line class="chance" data-name="${escapeXml(d)}" x1="${box.x}" y1="${f2(sy(chance))}" x2="${box.x + box.w}" y2="${f2(sy(chance))}" stroke="${colour}" stroke-width="1" stroke-dasharray="2 3"/>`,
      );
    parts.push(`<g class="series" data-name="${escapeXml(d)}">`);
    if (pts.length > 1)
      parts.push(
        `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.map((p) => `${f2(sx(p.shot))},${f2(sy(p.mean))}`).join(' ')}"/>`,
      );
    for (const p of pts) {
      const x = sx(p.shot);
      if (p.std > 0) {
        const y0 = sy(Math.max(0, p.mean - p.std)),
          y1 = sy(Math.min(1, p.mean + p.std));
        parts.push(
          `<path class="errorbar" d="M${f2(x)} ${f2(y0)}V${f2(y1)}M${f2(x - 4)} ${f2(y0)}H${f2(x + 4)}M${f2(x - 4)} ${f2(y1)}H${f2(x + 4)}" stroke="${colour}" stroke-width="1.3" fill="none"/>`,
        );
      }
      parts.push(
        `<circle cx="${f2(x)}" cy="${f2(sy(p.mean))}" r="3.5" fill="${colour}"><title>${escapeXml(`${d}, ${p.shot}-shot: ${pct(p.mean)} ± ${pct(p.std || 0)}`)}</title></circle>`,
      );
    }
    parts.push('</g>');
  });
  parts.push(frame(box));
  const items: LegendItem[] = datasets.map((d, k) => ({
    label: d,
    colour: PALETTE[k % PALETTE.length]!,
    kind: 'line',
  }));
  parts.push(...legend(box.x + box.w + 12, box.y, items));
  if (spec.chance)
    parts.push(
      `<text x="${box.x + box.w + 12}" y="${box.y + 26 + 17 * items.length}" font-size="10" fill="#555" ${FONT}>dotted: chance (1/K)</text>`,
    );
  parts.push(
    `<text x="${box.x + box.w + 12}" y="${box.y + 40 + 17 * items.length}" font-size="10" fill="#555" ${FONT}>bars: ± std over seeds</text>`,
  );
  parts.push('</svg>\n');
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Glue: harness Outputs and few-shot reports → named figures

export interface NamedFigure {
  /** file stem, e.g. 'reliability' or 'ood-mnist' */
  name: string;
  svg: string;
}

const logitsOf = (o: Outputs) => ({ data: o.logits, n: o.n, k: o.numClasses, m: o.members });

function memberLogits(o: Outputs, j: number) {
  const size = o.n * o.numClasses;
  return { data: o.logits.subarray(j * size, (j + 1) * size), n: o.n, k: o.numClasses };
}

/** File-name-safe stem of an OOD set's name. */
export const figureStem = (s: string) => s.replace(/[^\w.-]+/g, '_');

/** Axis names of the scores drawn; the full definitions are in results.json's conventions. */
const SHORT_SCORE: Partial<Record<OodScoreName, string>> = { msp: '1 − max_k p_k', energy: '−logsumexp_k z_k' };

/** Member curves are drawn for ensembles up to this size (more would hide the ensemble's curve). */
const MAX_MEMBER_CURVES = 5;

/**
 * The evaluation figures of one `vmoe eval` run: reliability diagram, risk–coverage curve and,
 * per OOD set, MSP and energy score histograms of in-distribution vs that set.
 */
export function evalFigures(input: {
  out: Outputs;
  bins: number;
  /** name of the evaluated model, e.g. 'vmoe' or 'deep ensemble' */
  label: string;
  /** in-distribution data set, e.g. 'fashion-mnist test' */
  dataset: string;
  /** e.g. 'fashion-mnist test, n=2000, checkpoint 1a2b3c4d5e6f' */
  subtitle: string;
  oodSets?: { name: string; outputs: Outputs }[];
}): NamedFigure[] {
  const { out, bins, label, dataset, subtitle } = input;
  const probs = probsFromLogits(logitsOf(out));
  const e = ece(probs, out.labels, { bins });
  const figures: NamedFigure[] = [
    {
      name: 'reliability',
      svg: reliabilityDiagramSvg({ bins: e.reliability, ece: e.value, subtitle: `${label}: ${subtitle}` }),
    },
  ];
  const curve = (name: string, p: ReturnType<typeof probsFromLogits>): RiskCoverageSeries => {
    const { confidence, correct } = confidenceAndCorrect(p, out.labels);
    const rc = riskCoverageCurve(confidence, correct);
    return { name, coverage: rc.coverage, risk: rc.risk, aurc: aurc(confidence, correct) };
  };
  const series = [
    curve(out.members > 1 && !/ensemble/.test(label) ? `${label}, mean of ${out.members} members` : label, probs),
  ];
  if (out.members > 1 && out.members <= MAX_MEMBER_CURVES) {
    for (let j = 0; j < out.members; j++) series.push(curve(`member ${j}`, probsFromLogits(memberLogits(out, j))));
  }
  figures.push({
    name: 'risk-coverage',
    svg: riskCoverageSvg({ series, subtitle, title: 'Risk–coverage: error rate among the most confident' }),
  });
  const scores: OodScoreName[] = ['msp', 'energy'];
  const inScores = scores.map((s) => oodScore(logitsOf(out), s));
  for (const set of input.oodSets ?? []) {
    const panels: HistogramPanel[] = scores.map((s, i) => {
      const o = oodScore(logitsOf(set.outputs), s);
      const auroc = oodMetrics(inScores[i]!, o).auroc;
      return {
        title: `${s === 'msp' ? 'MSP' : 'energy'}: AUROC ${auroc.toFixed(4)}`,
        xLabel: `${SHORT_SCORE[s]}${out.members > 1 ? (s === 'msp' ? ' of the mean p̄' : ', member mean') : ''} (higher = more OOD)`,
        series: [
          { name: `in: ${dataset}`, values: inScores[i]! },
          { name: `OOD: ${set.name}`, values: o },
        ],
      };
    });
    figures.push({
      name: `ood-${figureStem(set.name)}`,
      svg: scoreHistogramSvg({
        title: `OOD scores, ${label}: in-distribution vs ${set.name} (AUROC with OOD positive)`,
        subtitle,
        panels,
      }),
    });
  }
  return figures;
}

/** Few-shot accuracy against shots from the report's results (λ chosen by mean rank unless stated). */
export function fewShotFigure(
  results: ShotResult[],
  opts: { subtitle?: string; selection?: 'meanRank' | 'leaveSelfOut'; chance?: Record<string, number> } = {},
): string {
  const sel = opts.selection ?? 'meanRank';
  return fewShotSvg({
    points: results.map((r) => ({
      dataset: r.dataset,
      shot: r.shot,
      mean: r[sel].accuracy.mean,
      std: r[sel].accuracy.std,
    })),
    title: `Few-shot linear probe accuracy (λ by ${sel === 'meanRank' ? 'mean rank' : 'leave-self-out'})`,
    subtitle: opts.subtitle,
    chance: opts.chance,
  });
}
