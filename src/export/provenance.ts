/**
 * Provenance of an evaluation result (a `vmoe eval` results.json): where the numbers came from
 * (data set, split, checkpoints, seeds, backend, versions) and the conventions they were computed
 * under. One reader, so results.csv, table.tex and `vmoe report` state the same things.
 */
import type { Row } from './tables.js';

export interface Provenance {
  dataset: string | null;
  split: string | null;
  /** sha256 of each checkpoint (one per deep-ensemble member). */
  checkpoints: string[];
  /** Training seed of each checkpoint (older results: the one top-level seed). */
  seeds: number[];
  /** Seed of the evaluation itself (MC-dropout masks); null where not recorded. */
  evalSeed: number | null;
  backend: string | null;
  threads: number | null;
  versions: { vmoeTs: string | null; tfjs: string | null; node: string | null };
  ece: { bins: number | null; binning: string | null; labels: string | null };
  /** The OOD positive class of the exported OOD AUROCs (null: the result has no OOD sets). */
  oodPositive: 'ood' | null;
  /** The headline numbers (accuracy, nll, brier, ece, …) are never temperature scaled. */
  temperatureScaled: false;
  /** Whether the result also holds temperature-scaled numbers (under `temperature_scaled`). */
  hasTemperatureScaled: boolean;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Reads the provenance of a results.json object; fields a result does not record are null or empty. */
export function provenanceOf(r: Record<string, any>): Provenance {
  // A single model records one checkpoint object, a deep ensemble an array of them.
  const cks: Record<string, unknown>[] = Array.isArray(r.checkpoint)
    ? r.checkpoint
    : r.checkpoint
      ? [r.checkpoint]
      : [];
  const ckSeeds = cks.map((c) => num(c.seed));
  const seeds =
    ckSeeds.length && ckSeeds.every((s) => s !== null)
      ? (ckSeeds as number[])
      : num(r.seed) !== null
        ? [r.seed as number]
        : [];
  const ece = r.conventions?.ece ?? {};
  return {
    dataset: str(r.dataset),
    split: str(r.split),
    checkpoints: cks.map((c) => str(c.sha256)).filter((s): s is string => s !== null),
    seeds,
    evalSeed: num(r.eval_seed),
    backend: str(r.engine?.backend),
    threads: num(r.engine?.threads),
    versions: { vmoeTs: str(r.versions?.['vmoe-ts']), tfjs: str(r.versions?.tfjs), node: str(r.versions?.node) },
    ece: { bins: num(ece.bins), binning: str(ece.binning), labels: str(ece.labels) },
    oodPositive: Array.isArray(r.ood) && r.ood.length > 0 ? 'ood' : null,
    temperatureScaled: false,
    hasTemperatureScaled: r.temperature_scaled !== null && typeof r.temperature_scaled === 'object',
  };
}

/** Provenance as flat CSV columns (several checkpoints or seeds joined with '+', as in `vmoe robustness`). */
export function provenanceColumns(p: Provenance): Row {
  return {
    temperature_scaled: p.temperatureScaled,
    ece_bins: p.ece.bins,
    ece_binning: p.ece.binning,
    ...(p.oodPositive ? { ood_positive: p.oodPositive } : {}),
    checkpoint_sha256: p.checkpoints.join('+'),
    seed: p.seeds.join('+'),
    eval_seed: p.evalSeed,
    backend: p.backend,
    threads: p.threads,
    vmoe_ts_version: p.versions.vmoeTs,
    tfjs_version: p.versions.tfjs,
    node_version: p.versions.node,
  };
}

/** The ECE convention in words, e.g. "top-label ECE, 15 equal-width bins". */
export function eceWords(e: Provenance['ece']): string {
  if (e.bins === null) return 'ECE convention not recorded';
  return `${e.labels ?? 'top-label'} ECE, ${e.bins} ${e.binning ?? 'equal-width'} bins`;
}

/** One sentence for a caption or a note: seeds, backend and versions. */
export function runWords(p: Pick<Provenance, 'seeds' | 'evalSeed' | 'backend' | 'threads' | 'versions'>): string {
  const threads = p.threads === null ? '' : ` (${p.threads} thread${p.threads === 1 ? '' : 's'})`;
  return [
    `seed ${p.seeds.length ? p.seeds.join('+') : '?'}${p.evalSeed !== null ? `, eval seed ${p.evalSeed}` : ''}`,
    `backend ${p.backend ?? '?'}${threads}`,
    `vmoe-ts ${p.versions.vmoeTs ?? '?'}, tfjs ${p.versions.tfjs ?? '?'}, node ${p.versions.node ?? '?'}`,
  ].join('; ');
}
