/**
 * `vmoe probe` output: a probe result (fewshot/probe.ts) as JSON or as a two-column text table (key, value),
 * NLL, ECE and convergence rows for the logreg probe only.
 */
import type { ProbeResult } from '../fewshot/probe.js';

export type ProbeFormat = 'json' | 'table';

/** The probe result as stdout text, without the trailing newline. */
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
