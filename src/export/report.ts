/**
 * Merging results of several runs / seeds into one table: mean ± sample std
 * per group of every numeric metric the runs share.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface ResultRecord {
  source: string;
  group: string;
  values: Record<string, number>;
}

/** Flattens the numbers of an eval results.json that a paper table wants (OOD: AUROC per set and score). */
export function flattenEvalResult(r: Record<string, any>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ['accuracy', 'nll', 'brier', 'ece', 'aurc', 'gibbs_nll', 'flops_per_image', 'images_per_s', 'train_seconds']) {
    if (typeof r[k] === 'number') out[k] = r[k];
  }
  // The ECE variants sit nested (next to the reliability bins) in results.json; a table wants them as columns.
  for (const k of ['ece_equal_mass', 'classwise_ece', 'rmsce', 'mce', 'signed_ece']) {
    if (typeof r.calibration?.[k] === 'number') out[k] = r.calibration[k];
  }
  // Ensembles (deep, E³, MC dropout): the members' own quality, averaged over members.
  for (const k of ['member_accuracy', 'member_nll']) {
    const v = r[k];
    if (Array.isArray(v) && v.length && v.every((x) => typeof x === 'number')) out[`${k}_mean`] = v.reduce((a: number, b: number) => a + b, 0) / v.length;
  }
  if (r.diversity) for (const [k, v] of Object.entries(r.diversity)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  if (r.temperature_scaled) {
    out.ts_nll = r.temperature_scaled.nll;
    out.ts_ece = r.temperature_scaled.ece;
  }
  for (const o of r.ood ?? []) {
    for (const [score, m] of Object.entries(o.scores as Record<string, any>)) {
      out[`ood_${o.dataset}_${score}_auroc`] = m.ood_positive.auroc;
    }
  }
  return out;
}

/** A run folder (its eval_test/results.json or results.json) or a results JSON file. */
export function readResult(p: string, groupBy: 'model' | 'path'): ResultRecord {
  const candidates = fs.existsSync(p) && fs.statSync(p).isDirectory()
    ? [path.join(p, 'eval_test', 'results.json'), path.join(p, 'results.json')]
    : [p];
  const file = candidates.find((f) => fs.existsSync(f));
  if (!file) throw new Error(`no results found at ${p} (looked for ${candidates.join(', ')})`);
  let r: Record<string, any>;
  try {
    r = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  const model = r.model_label ?? r.config?.name ?? path.basename(path.dirname(file));
  const values = flattenEvalResult(r);
  // A run folder's evaluation sits next to its training summary: the table then shows what the result cost to train.
  const summary = path.join(path.dirname(path.dirname(file)), 'train_summary.json');
  if (path.basename(path.dirname(file)) === 'eval_test' && fs.existsSync(summary)) {
    try {
      const t = JSON.parse(fs.readFileSync(summary, 'utf8')) as Record<string, unknown>;
      if (values.train_seconds === undefined && typeof t.seconds === 'number') values.train_seconds = t.seconds;
      if (typeof t.step === 'number') values.train_steps = t.step;
    } catch (e) {
      throw new Error(`${summary}: not valid JSON: ${(e as Error).message}`);
    }
  }
  return { source: file, group: groupBy === 'model' ? String(model) : file, values };
}

export interface GroupSummary {
  group: string;
  runs: number;
  mean: Record<string, number>;
  std: Record<string, number>;
}

/** Mean and sample standard deviation (ddof 1; 0 for a single run) of each metric present in every run of a group. */
export function summarise(records: ResultRecord[]): GroupSummary[] {
  const groups = new Map<string, ResultRecord[]>();
  for (const r of records) groups.set(r.group, [...(groups.get(r.group) ?? []), r]);
  return [...groups.entries()].map(([group, rs]) => {
    const keys = Object.keys(rs[0]!.values).filter((k) => rs.every((r) => typeof r.values[k] === 'number'));
    const mean: Record<string, number> = {}, std: Record<string, number> = {};
    for (const k of keys) {
      const v = rs.map((r) => r.values[k]!);
      const m = v.reduce((a, b) => a + b, 0) / v.length;
      mean[k] = m;
      std[k] = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0;
    }
    return { group, runs: rs.length, mean, std };
  });
}

const DIGITS: Record<string, number> = { accuracy: 4, flops_per_image: 0, images_per_s: 0, train_seconds: 0, train_steps: 0 };

export function formatMeanStd(m: number, s: number, key: string): string {
  const d = DIGITS[key] ?? 4;
  if (key === 'flops_per_image') return `${(m / 1e6).toFixed(2)}M`;
  return s > 0 ? `${m.toFixed(d)} ± ${s.toFixed(d)}` : m.toFixed(d);
}
