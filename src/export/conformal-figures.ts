/**
 * Figures of split conformal prediction (`vmoe eval --conformal … --out`), from plain data:
 * the set-size histogram (share of test examples per set size, one bar per method and α) and
 * empirical coverage against α with the target 1 − α.
 */
import { PALETTE, escapeXml, lineChartSvg, niceTicks, tickText } from './figures.js';

const FONT = 'font-family="sans-serif"';
const f2 = (v: number) => String(Math.round(v * 100) / 100);

/** What the figures draw of one method at one α (a ConformalReport has these keys). */
export interface ConformalFigureEntry {
  method: string;
  alpha: number;
  coverage: number;
  /** counts of set sizes 0..K */
  set_size_histogram: number[];
}

export interface SetSizeHistogramSpec {
  title: string;
  subtitle?: string;
  entries: ConformalFigureEntry[];
  width?: number;
  height?: number;
}

/** Grouped bars: per set size s = 0..K, one bar per entry with the share of test examples whose set has s classes. */
export function setSizeHistogramSvg(spec: SetSizeHistogramSpec): string {
  if (!spec.entries.length) throw new Error('set-size histogram: no entries');
  const width = spec.width ?? 640,
    height = spec.height ?? 400;
  const legendW = 150;
  const m = { left: 64, right: 16 + legendW, top: spec.subtitle ? 52 : 36, bottom: 52 };
  const pw = width - m.left - m.right,
    ph = height - m.top - m.bottom;
  const sizes = Math.max(...spec.entries.map((e) => e.set_size_histogram.length));
  const shares = spec.entries.map((e) => {
    const n = e.set_size_histogram.reduce((a, b) => a + b, 0);
    return Array.from({ length: sizes }, (_, s) => (n > 0 ? (e.set_size_histogram[s] ?? 0) / n : 0));
  });
  const peak = Math.max(1e-9, ...shares.flat());
  const yt = niceTicks(0, peak, 5);
  const step = yt.length > 1 ? yt[1]! - yt[0]! : peak;
  // the axis ends on a tick at or above the tallest bar
  while (yt[yt.length - 1]! < peak - 1e-12) yt.push(Number((yt[yt.length - 1]! + step).toPrecision(12)));
  const top = yt[yt.length - 1]!;
  const slot = pw / sizes,
    bar = (slot * 0.8) / spec.entries.length;
  const sy = (v: number) => m.top + ph - (v / top) * ph;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" ${FONT}>${escapeXml(spec.title)}</text>`,
  ];
  if (spec.subtitle)
    parts.push(
      `<text x="${width / 2}" y="40" text-anchor="middle" font-size="12" fill="#555" ${FONT}>${escapeXml(spec.subtitle)}</text>`,
    );
  parts.push('<g stroke="#ddd" stroke-width="1">');
  for (const t of yt) parts.push(`<line x1="${m.left}" y1="${f2(sy(t))}" x2="${m.left + pw}" y2="${f2(sy(t))}"/>`);
  parts.push('</g>');
  shares.forEach((sh, i) => {
    const e = spec.entries[i]!;
    const colour = PALETTE[i % PALETTE.length]!;
    parts.push(`<g class="bars" data-name="${escapeXml(`${e.method} α=${e.alpha}`)}" fill="${colour}">`);
    sh.forEach((v, s) => {
      if (v > 0)
        parts.push(
          `<rect data-size="${s}" x="${f2(m.left + s * slot + slot * 0.1 + i * bar)}" y="${f2(sy(v))}" width="${f2(bar)}" height="${f2((v / top) * ph)}"/>`,
        );
    });
    parts.push('</g>');
    const ly = m.top + 8 + i * 18;
    parts.push(`<rect x="${width - legendW}" y="${ly - 6}" width="20" height="12" fill="${colour}"/>`);
    parts.push(
      `<text x="${width - legendW + 26}" y="${ly + 4}" font-size="12" ${FONT}>${escapeXml(`${e.method.toUpperCase()}, α = ${e.alpha}`)}</text>`,
    );
  });
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(`<g font-size="11" ${FONT}>`);
  const every = Math.max(1, Math.ceil(sizes / 20));
  for (let s = 0; s < sizes; s += every)
    parts.push(`<text x="${f2(m.left + (s + 0.5) * slot)}" y="${m.top + ph + 16}" text-anchor="middle">${s}</text>`);
  for (const t of yt)
    parts.push(`<text x="${m.left - 6}" y="${f2(sy(t) + 4)}" text-anchor="end">${Math.round(100 * t)}%</text>`);
  parts.push('</g>');
  parts.push(
    `<text x="${m.left + pw / 2}" y="${height - 12}" text-anchor="middle" font-size="13" ${FONT}>prediction set size (classes)</text>`,
  );
  parts.push(
    `<text x="16" y="${m.top + ph / 2}" text-anchor="middle" font-size="13" ${FONT} transform="rotate(-90 16 ${m.top + ph / 2})">share of test examples</text>`,
  );
  parts.push('</svg>\n');
  return parts.join('\n');
}

/** Empirical coverage against α, one line per method, and the target 1 − α. */
export function coverageVsAlphaSvg(entries: ConformalFigureEntry[], title = 'Conformal coverage against α'): string {
  const methods = [...new Set(entries.map((e) => e.method))];
  const alphas = [...new Set(entries.map((e) => e.alpha))].sort((a, b) => a - b);
  const series = [
    ...methods.map((method) => ({
      name: method.toUpperCase(),
      points: entries.filter((e) => e.method === method).map((e): [number, number] => [e.alpha, e.coverage]),
    })),
    { name: 'target 1 − α', points: alphas.map((a): [number, number] => [a, 1 - a]) },
  ];
  const lo = Math.min(...entries.map((e) => e.coverage), ...alphas.map((a) => 1 - a));
  const xDomain: [number, number] =
    alphas.length > 1
      ? [alphas[0]!, alphas[alphas.length - 1]!]
      : [Math.max(0, alphas[0]! - 0.05), Math.min(1, alphas[0]! + 0.05)];
  return lineChartSvg({
    title,
    xLabel: 'α (target miscoverage)',
    yLabel: 'empirical coverage',
    series,
    xDomain,
    yDomain: [Math.max(0, Math.floor(lo * 20) / 20 - 0.05), 1],
  });
}

/** Both conformal figures; names conformal-set-size and conformal-coverage. */
export function conformalFigures(entries: ConformalFigureEntry[], subtitle: string): { name: string; svg: string }[] {
  if (!entries.length) return [];
  return [
    {
      name: 'conformal-set-size',
      svg: setSizeHistogramSvg({ title: 'Conformal prediction set sizes', subtitle, entries }),
    },
    {
      name: 'conformal-coverage',
      svg: coverageVsAlphaSvg(
        entries,
        `Conformal coverage against α (${tickText(entries[0]!.set_size_histogram.reduce((a, b) => a + b, 0))} test examples)`,
      ),
    },
  ];
}
