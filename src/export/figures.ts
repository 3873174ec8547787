/**
 * Dependency-free SVG figure writers: line charts, heat maps, box plots and
 * image/patch overlays. Pure functions from plain data to an SVG string, so
 * results can be written next to the tables without a plotting stack.
 */
import { DataError } from '../util/errors.js';

export const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
];

const FONT = 'font-family="sans-serif"';

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Short number text for axis ticks and cell labels. */
export function tickText(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

/** At most 4 characters for a heat-map cell: 0.27, 12.3, 456. */
export function cellText(v: number): string {
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  return a >= 99.5 ? v.toFixed(0) : a >= 9.95 ? v.toFixed(1) : v.toFixed(2);
}

/** About `count` round tick values (1, 2, 5 × 10^n steps) covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step - 1e-9) * step; t <= max + step * 1e-9; t += step)
    ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** Domain of finite values, widened when degenerate so a scale never divides by zero. */
function domainOf(values: number[], given?: [number, number]): [number, number] {
  if (given) return given;
  const finite = values.filter(Number.isFinite);
  if (!finite.length) return [0, 1];
  let lo = Math.min(...finite),
    hi = Math.max(...finite);
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  return [lo, hi];
}

function svgOpen(width: number, height: number): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n` +
    `<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>\n`
  );
}

const f2 = (v: number) => String(Math.round(v * 100) / 100);

/** Series longer than this are drawn as a plain line (markers would hide it). */
export const MAX_MARKERS = 60;

export interface LineSeries {
  name: string;
  /** (x, y) pairs; drawn in x order, non-finite points skipped. */
  points: [number, number][];
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  width?: number;
  height?: number;
  xDomain?: [number, number];
  yDomain?: [number, number];
}

export function lineChartSvg(spec: LineChartSpec): string {
  const width = spec.width ?? 640,
    height = spec.height ?? 400;
  const legendW = 150;
  const m = { left: 64, right: 16 + legendW, top: 36, bottom: 52 };
  const pw = width - m.left - m.right,
    ph = height - m.top - m.bottom;
  const all = spec.series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const [x0, x1] = domainOf(
    all.map((p) => p[0]),
    spec.xDomain,
  );
  const [y0, y1] = domainOf(
    all.map((p) => p[1]),
    spec.yDomain,
  );
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const parts: string[] = [svgOpen(width, height)];
  parts.push(
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" ${FONT}>${escapeXml(spec.title)}</text>`,
  );
  parts.push(`<g stroke="#ddd" stroke-width="1">`);
  const xt = niceTicks(x0, x1),
    yt = niceTicks(y0, y1);
  for (const t of xt) parts.push(`<line x1="${f2(sx(t))}" y1="${m.top}" x2="${f2(sx(t))}" y2="${m.top + ph}"/>`);
  for (const t of yt) parts.push(`<line x1="${m.left}" y1="${f2(sy(t))}" x2="${m.left + pw}" y2="${f2(sy(t))}"/>`);
  parts.push('</g>');
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(`<g font-size="11" ${FONT}>`);
  for (const t of xt)
    parts.push(`<text x="${f2(sx(t))}" y="${m.top + ph + 16}" text-anchor="middle">${tickText(t)}</text>`);
  for (const t of yt)
    parts.push(`<text x="${m.left - 6}" y="${f2(sy(t) + 4)}" text-anchor="end">${tickText(t)}</text>`);
  parts.push('</g>');
  parts.push(
    `<text x="${m.left + pw / 2}" y="${height - 12}" text-anchor="middle" font-size="13" ${FONT}>${escapeXml(spec.xLabel)}</text>`,
  );
  parts.push(
    `<text x="16" y="${m.top + ph / 2}" text-anchor="middle" font-size="13" ${FONT} transform="rotate(-90 16 ${m.top + ph / 2})">${escapeXml(spec.yLabel)}</text>`,
  );
  spec.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    const pts = s.points
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
      .slice()
      .sort((a, b) => a[0] - b[0]);
    parts.push(`<g class="series" data-name="${escapeXml(s.name)}">`);
    if (pts.length > 1) {
      parts.push(
        `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.map(([x, y]) => `${f2(sx(x))},${f2(sy(y))}`).join(' ')}"/>`,
      );
    }
    if (pts.length <= MAX_MARKERS)
      for (const [x, y] of pts) parts.push(`<circle cx="${f2(sx(x))}" cy="${f2(sy(y))}" r="3" fill="${colour}"/>`);
    parts.push('</g>');
    const ly = m.top + 8 + i * 18;
    parts.push(
      `<line x1="${width - legendW}" y1="${ly}" x2="${width - legendW + 20}" y2="${ly}" stroke="${colour}" stroke-width="2"/>`,
    );
    parts.push(`<text x="${width - legendW + 26}" y="${ly + 4}" font-size="12" ${FONT}>${escapeXml(s.name)}</text>`);
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}

/** Linear map of t ∈ [0, 1] from white to a deep blue. */
export function sequentialColour(t: number): string {
  if (!Number.isFinite(t)) return '#bbbbbb';
  const u = Math.min(1, Math.max(0, t));
  const from = [255, 255, 255],
    to = [8, 48, 107];
  const c = from.map((a, i) => Math.round(a + (to[i]! - a) * u));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export interface HeatMapSpec {
  title: string;
  /** (R, C) values; non-finite cells are drawn grey. */
  values: number[][];
  rowLabels: string[];
  colLabels: string[];
  xLabel: string;
  yLabel: string;
  /** Colour scale; default [min, max] of the finite values. */
  domain?: [number, number];
  cellSize?: number;
  /** Print each value in its cell (default true while cells are large enough). */
  annotate?: boolean;
}

export function heatMapSvg(spec: HeatMapSpec): string {
  const R = spec.values.length;
  const C = R ? spec.values[0]!.length : 0;
  if (spec.rowLabels.length !== R) throw new DataError(`heat map: ${spec.rowLabels.length} row labels for ${R} rows`);
  if (spec.colLabels.length !== C)
    throw new DataError(`heat map: ${spec.colLabels.length} column labels for ${C} columns`);
  spec.values.forEach((row, r) => {
    if (row.length !== C) throw new DataError(`heat map: row ${r} has ${row.length} values, row 0 has ${C}`);
  });
  const cell = spec.cellSize ?? 36;
  const annotate = spec.annotate ?? cell >= 30;
  const labelW = Math.max(60, 7 * Math.max(0, ...spec.rowLabels.map((l) => l.length)) + 16);
  const m = { left: labelW + 24, top: 40, right: 90, bottom: 56 };
  const width = m.left + C * cell + m.right,
    height = m.top + R * cell + m.bottom;
  const [lo, hi] = domainOf(spec.values.flat(), spec.domain);
  const parts: string[] = [svgOpen(width, height)];
  parts.push(
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" ${FONT}>${escapeXml(spec.title)}</text>`,
  );
  parts.push(`<g font-size="10" ${FONT}>`);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      const v = spec.values[r]![c]!;
      const t = (v - lo) / (hi - lo);
      const x = m.left + c * cell,
        y = m.top + r * cell;
      parts.push(
        `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${sequentialColour(t)}" stroke="white"><title>${escapeXml(`${spec.rowLabels[r]} / ${spec.colLabels[c]}: ${tickText(v)}`)}</title></rect>`,
      );
      if (annotate)
        parts.push(
          `<text x="${x + cell / 2}" y="${y + cell / 2 + 3}" text-anchor="middle" fill="${t > 0.55 ? 'white' : 'black'}">${cellText(v)}</text>`,
        );
    }
  }
  parts.push('</g>');
  parts.push(`<g font-size="11" ${FONT}>`);
  spec.rowLabels.forEach((l, r) =>
    parts.push(
      `<text x="${m.left - 6}" y="${m.top + r * cell + cell / 2 + 4}" text-anchor="end">${escapeXml(l)}</text>`,
    ),
  );
  spec.colLabels.forEach((l, c) =>
    parts.push(
      `<text x="${m.left + c * cell + cell / 2}" y="${m.top + R * cell + 14}" text-anchor="middle">${escapeXml(l)}</text>`,
    ),
  );
  parts.push('</g>');
  parts.push(
    `<text x="${m.left + (C * cell) / 2}" y="${height - 12}" text-anchor="middle" font-size="13" ${FONT}>${escapeXml(spec.xLabel)}</text>`,
  );
  const yc = m.top + (R * cell) / 2;
  parts.push(
    `<text x="14" y="${yc}" text-anchor="middle" font-size="13" ${FONT} transform="rotate(-90 14 ${yc})">${escapeXml(spec.yLabel)}</text>`,
  );
  // colour bar
  const bx = m.left + C * cell + 24,
    bh = Math.max(60, R * cell),
    steps = 20;
  for (let i = 0; i < steps; i++) {
    parts.push(
      `<rect x="${bx}" y="${f2(m.top + (bh * i) / steps)}" width="14" height="${f2(bh / steps + 0.5)}" fill="${sequentialColour(1 - (i + 0.5) / steps)}"/>`,
    );
  }
  parts.push(`<text x="${bx + 18}" y="${m.top + 8}" font-size="10" ${FONT}>${tickText(hi)}</text>`);
  parts.push(`<text x="${bx + 18}" y="${m.top + bh}" font-size="10" ${FONT}>${tickText(lo)}</text>`);
  parts.push('</svg>\n');
  return parts.join('\n');
}

export interface BoxStats {
  min: number;
  q1: number;
  median: number;
  q3: number;
  max: number;
  n: number;
}

/** Quantile by linear interpolation between order statistics (type 7, numpy's default). */
export function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos),
    hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function boxStats(values: number[]): BoxStats {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  return {
    min: s[0] ?? NaN,
    q1: quantile(s, 0.25),
    median: quantile(s, 0.5),
    q3: quantile(s, 0.75),
    max: s[s.length - 1] ?? NaN,
    n: s.length,
  };
}

export interface BoxPlotSpec {
  title: string;
  yLabel: string;
  /**
   * One box per group. `series` (e.g. the model) picks the colour and the legend entry;
   * `cluster` (e.g. the severity) sets the boxes side by side under one x label. Without
   * them each box has its own colour and its name as label.
   */
  groups: { name: string; values: number[]; series?: string; cluster?: string }[];
  xLabel?: string;
  width?: number;
  height?: number;
  yDomain?: [number, number];
}

/** Box (quartiles, median) with whiskers to min and max; one box per group. */
export function boxPlotSvg(spec: BoxPlotSpec): string {
  const n = spec.groups.length;
  const seriesNames = [...new Set(spec.groups.flatMap((g) => (g.series === undefined ? [] : [g.series])))];
  const clusterNames = [...new Set(spec.groups.map((g) => g.cluster ?? g.name))];
  const clustered = clusterNames.length < n;
  // x position of each box in slot units: clusters are separated by a gap of one slot
  const xs: number[] = [];
  let x = 0,
    prev: string | undefined;
  for (const g of spec.groups) {
    const c = g.cluster ?? g.name;
    if (clustered && prev !== undefined && c !== prev) x += 1;
    xs.push(x++);
    prev = c;
  }
  const slots = Math.max(1, x);
  const legendW = seriesNames.length ? Math.max(110, 34 + 7.5 * Math.max(...seriesNames.map((s) => s.length))) : 0;
  // wide enough for the title (~8 px per character at 15 px) as well as the boxes
  const width = spec.width ?? Math.max(320, 80 + legendW + 44 * slots, 8 * spec.title.length + 40),
    height = spec.height ?? 360;
  const m = { left: 64, right: 16 + legendW, top: 36, bottom: spec.xLabel ? 60 : 44 };
  const pw = width - m.left - m.right,
    ph = height - m.top - m.bottom;
  const stats = spec.groups.map((g) => boxStats(g.values));
  const [lo, hi] = domainOf(
    stats.flatMap((s) => (s.n > 0 ? [s.min, s.max] : [])),
    spec.yDomain,
  );
  // 5% headroom so whiskers do not sit on the frame
  const [y0, y1] = spec.yDomain ? [lo, hi] : [lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)];
  const sy = (y: number) => m.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const slot = pw / slots,
    bw = Math.min(40, slot * 0.7);
  const cx = (i: number) => m.left + slot * (xs[i]! + 0.5);
  const colourOf = (i: number) => {
    const sName = spec.groups[i]!.series;
    return PALETTE[(sName === undefined ? i : seriesNames.indexOf(sName)) % PALETTE.length]!;
  };
  const parts: string[] = [svgOpen(width, height)];
  parts.push(
    `<text x="${(m.left + width - m.right) / 2}" y="22" text-anchor="middle" font-size="15" ${FONT}>${escapeXml(spec.title)}</text>`,
  );
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(`<g font-size="11" ${FONT}>`);
  for (const t of niceTicks(y0, y1))
    parts.push(`<text x="${m.left - 6}" y="${f2(sy(t) + 4)}" text-anchor="end">${tickText(t)}</text>`);
  parts.push('</g>');
  stats.forEach((st, i) => {
    parts.push(`<g class="box" data-name="${escapeXml(spec.groups[i]!.name)}">`);
    if (st.n > 0) {
      const c = cx(i);
      parts.push(`<line x1="${f2(c)}" y1="${f2(sy(st.min))}" x2="${f2(c)}" y2="${f2(sy(st.max))}" stroke="#333"/>`);
      parts.push(
        `<rect x="${f2(c - bw / 2)}" y="${f2(sy(st.q3))}" width="${f2(bw)}" height="${f2(Math.max(0.5, sy(st.q1) - sy(st.q3)))}" fill="${colourOf(i)}" fill-opacity="0.5" stroke="#333"/>`,
      );
      parts.push(
        `<line x1="${f2(c - bw / 2)}" y1="${f2(sy(st.median))}" x2="${f2(c + bw / 2)}" y2="${f2(sy(st.median))}" stroke="#000" stroke-width="2"/>`,
      );
    }
    parts.push('</g>');
  });
  // one x label per cluster, centred under its boxes
  for (const c of clusterNames) {
    const idx = spec.groups.map((g, i) => ((g.cluster ?? g.name) === c ? i : -1)).filter((i) => i >= 0);
    const mid = (cx(idx[0]!) + cx(idx[idx.length - 1]!)) / 2;
    parts.push(
      `<text x="${f2(mid)}" y="${m.top + ph + 16}" text-anchor="middle" font-size="11" ${FONT}>${escapeXml(c)}</text>`,
    );
  }
  if (spec.xLabel)
    parts.push(
      `<text x="${m.left + pw / 2}" y="${height - 14}" text-anchor="middle" font-size="13" ${FONT}>${escapeXml(spec.xLabel)}</text>`,
    );
  seriesNames.forEach((name, k) => {
    const ly = m.top + 12 + 20 * k,
      lx = width - legendW;
    parts.push(
      `<rect class="legend" x="${lx}" y="${ly - 6}" width="14" height="12" fill="${PALETTE[k % PALETTE.length]}" fill-opacity="0.5" stroke="#333"/>`,
    );
    parts.push(`<text x="${lx + 20}" y="${ly + 4}" font-size="12" ${FONT}>${escapeXml(name)}</text>`);
  });
  const yc = m.top + ph / 2;
  parts.push(
    `<text x="16" y="${yc}" text-anchor="middle" font-size="13" ${FONT} transform="rotate(-90 16 ${yc})">${escapeXml(spec.yLabel)}</text>`,
  );
  parts.push('</svg>\n');
  return parts.join('\n');
}

export interface OverlayPanel {
  label: string;
  /** (height, width) grey pixels, 0..255. */
  pixels: ArrayLike<number>;
  height: number;
  width: number;
  patchSize: number;
  /** One value in [0, 1] per patch, raster order: how strongly to highlight it (0 = not at all). */
  highlight: number[];
}

/**
 * Image panels in a grid, each a grey image with its highlighted patches
 * outlined and tinted (tint ∝ highlight; a thick outline at 1) and the other
 * patches dimmed — e.g. which patches a MoE layer processed.
 */
export function patchOverlaySvg(spec: {
  title: string;
  panels: OverlayPanel[];
  columns: number;
  pixelSize?: number;
  caption?: string;
}): string {
  const px = spec.pixelSize ?? 5;
  const cols = Math.max(1, spec.columns);
  const rows = Math.ceil(spec.panels.length / cols);
  const labelW = Math.max(0, ...spec.panels.map((p) => 6.5 * p.label.length));
  const pw = Math.max(labelW, ...spec.panels.map((p) => p.width * px)),
    ph = Math.max(0, ...spec.panels.map((p) => p.height * px));
  const gap = 14,
    labelH = 16,
    top = 36,
    bottom = spec.caption ? 28 : 8;
  const textW = Math.max(7.5 * spec.title.length, 5.5 * (spec.caption?.length ?? 0)) + 2 * gap;
  const width = Math.ceil(Math.max(240, textW, cols * (pw + gap) + gap)),
    height = top + rows * (ph + labelH + gap) + bottom;
  const parts: string[] = [svgOpen(width, height)];
  parts.push(
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14" ${FONT}>${escapeXml(spec.title)}</text>`,
  );
  spec.panels.forEach((p, i) => {
    const g = p.width / p.patchSize;
    if (!Number.isInteger(g) || p.height % p.patchSize !== 0)
      throw new DataError(`overlay panel ${i}: patch size ${p.patchSize} does not divide ${p.height}×${p.width}`);
    const nPatches = (p.height / p.patchSize) * g;
    if (p.highlight.length !== nPatches)
      throw new DataError(`overlay panel ${i}: ${p.highlight.length} highlight values for ${nPatches} patches`);
    if (p.pixels.length !== p.height * p.width)
      throw new DataError(`overlay panel ${i}: ${p.pixels.length} pixels for a ${p.height}×${p.width} image`);
    const ox = gap + (i % cols) * (pw + gap),
      oy = top + Math.floor(i / cols) * (ph + labelH + gap);
    parts.push(`<g class="panel" transform="translate(${ox} ${oy})">`);
    parts.push(
      `<text x="${(p.width * px) / 2}" y="11" text-anchor="middle" font-size="11" ${FONT}>${escapeXml(p.label)}</text>`,
    );
    parts.push(`<g transform="translate(0 ${labelH})" shape-rendering="crispEdges">`);
    for (let y = 0; y < p.height; y++) {
      for (let x = 0; x < p.width; x++) {
        const v = Math.round(Math.min(255, Math.max(0, p.pixels[y * p.width + x]!)));
        parts.push(`<rect x="${x * px}" y="${y * px}" width="${px}" height="${px}" fill="rgb(${v},${v},${v})"/>`);
      }
    }
    p.highlight.forEach((h, j) => {
      const x = (j % g) * p.patchSize * px,
        y = Math.floor(j / g) * p.patchSize * px,
        s = p.patchSize * px;
      if (!(h > 0)) {
        parts.push(`<rect x="${x}" y="${y}" width="${s}" height="${s}" fill="black" fill-opacity="0.55"/>`);
        return;
      }
      parts.push(
        `<rect class="processed" x="${x + 1}" y="${y + 1}" width="${s - 2}" height="${s - 2}" fill="#ff7f0e" fill-opacity="${f2(0.35 * Math.min(1, h))}" stroke="#ffbf00" stroke-width="${h >= 1 ? 2.5 : 1.2}"/>`,
      );
    });
    parts.push('</g>', '</g>');
  });
  if (spec.caption)
    parts.push(`<text x="${gap}" y="${height - 10}" font-size="11" ${FONT}>${escapeXml(spec.caption)}</text>`);
  parts.push('</svg>\n');
  return parts.join('\n');
}
