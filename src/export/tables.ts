/** Writers for flat result rows: CSV (csv-stringify), LaTeX booktabs, aligned text. */
import { stringify } from 'csv-stringify/sync';

export type Row = Record<string, string | number | boolean | null>;

export function toCsv(rows: Row[]): string {
  if (!rows.length) return '';
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  // booleans as true/false: csv-stringify's default writes false as an empty cell, which reads as "missing"
  return stringify(rows, {
    header: true,
    columns,
    cast: { number: (v) => formatNumber(v, 6), boolean: (v) => String(v) },
  });
}

export function formatNumber(v: number, digits = 4): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return Number(v.toPrecision(digits)).toString();
}

const LATEX_SPECIAL = /[&%$#_{}~^\\]/g;
export function latexEscape(s: string): string {
  return s.replace(LATEX_SPECIAL, (c) =>
    c === '\\' ? '\\textbackslash{}' : c === '~' ? '\\textasciitilde{}' : c === '^' ? '\\textasciicircum{}' : `\\${c}`,
  );
}

/** A booktabs table; `comments` go above it as `%` lines (provenance too long for a caption, e.g. full hashes). */
export function toLatex(rows: Row[], caption = '', comments: string[] = []): string {
  if (!rows.length) return '';
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: Row[string]) => (typeof v === 'number' ? formatNumber(v) : latexEscape(String(v ?? '')));
  const lines = [
    ...comments.map((c) => `% ${c.replace(/\r?\n/g, ' ')}`),
    '\\begin{table}[t]',
    '\\centering',
    `\\begin{tabular}{${columns.map((c) => (typeof rows[0]![c] === 'number' ? 'r' : 'l')).join('')}}`,
    '\\toprule',
    columns.map(latexEscape).join(' & ') + ' \\\\',
    '\\midrule',
    ...rows.map((r) => columns.map((c) => cell(r[c] ?? null)).join(' & ') + ' \\\\'),
    '\\bottomrule',
    '\\end{tabular}',
  ];
  if (caption) lines.push(`\\caption{${latexEscape(caption)}}`);
  lines.push('\\end{table}');
  return lines.join('\n') + '\n';
}

export function toTextTable(rows: Row[]): string {
  if (!rows.length) return '';
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const text = (v: Row[string]) => (typeof v === 'number' ? formatNumber(v) : String(v ?? ''));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => text(r[c] ?? null).length)));
  const line = (cells: string[]) =>
    cells
      .map((s, i) => s.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return (
    [
      line(columns),
      line(widths.map((w) => '-'.repeat(w))),
      ...rows.map((r) => line(columns.map((c) => text(r[c] ?? null)))),
    ].join('\n') + '\n'
  );
}

/** Markdown table (for README sections written by the toolkit). */
export function toMarkdown(rows: Row[]): string {
  if (!rows.length) return '';
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const text = (v: Row[string]) => (typeof v === 'number' ? formatNumber(v) : String(v ?? ''));
  return (
    [
      `| ${columns.join(' | ')} |`,
      `| ${columns.map((c) => (typeof rows[0]![c] === 'number' ? '---:' : '---')).join(' | ')} |`,
      ...rows.map((r) => `| ${columns.map((c) => text(r[c] ?? null)).join(' | ')} |`),
    ].join('\n') + '\n'
  );
}
