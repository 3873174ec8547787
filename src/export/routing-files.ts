/**
 * What a routing analysis (eval/routing-report.ts, `vmoe routing`) becomes on disk and on stdout: per-layer and
 * per-expert CSVs, an expert × class affinity CSV and heat map per MoE layer, the processed-patch overlay
 * (SVG + PNG, patches.json), routing.json and the text summary; and, from a run's metrics.jsonl, the drop
 * fraction and expert load over training (CSV and figures). Also where those files go by default.
 */
import fs from 'node:fs';
import path from 'node:path';
import { COLLAPSE_RULE, type PatchOverlay, type RoutingAnalysis, type RoutingReport } from '../eval/routing-report.js';
import { parseTrainingLog, trainingLogSeries } from '../eval/routing-analysis.js';
import { UsageError } from '../util/errors.js';
import { patchOverlaySvg, type OverlayPanel } from './figures.js';
import { writeFigure } from './png.js';
import { affinityHeatMap, trainingLogFigures } from './routing-figures.js';
import { toCsv, type Row } from './tables.js';
import { writeFileWhole } from '../util/output-dir.js';

/**
 * Without --out, results go next to what was analysed: <run>/routing for a run folder, a
 * checkpoints/ folder or a checkpoint file inside one, or the folder holding --log's metrics.jsonl.
 */
export function defaultRoutingOut(flags: { checkpoint?: string; log?: string }): string {
  if (flags.checkpoint) {
    const p = path.resolve(flags.checkpoint);
    const dir = fs.existsSync(p) && fs.statSync(p).isDirectory() ? p : path.dirname(p);
    return path.join(path.basename(dir) === 'checkpoints' ? path.dirname(dir) : dir, 'routing');
  }
  return path.join(path.dirname(path.resolve(flags.log!)), 'routing');
}

/** Drop fraction and max expert load over training steps from a run's metrics.jsonl: train-routing.csv and figures; returns the files written. */
export function writeTrainingLogPlots(logFile: string, outDir: string): string[] {
  const records = parseTrainingLog(fs.readFileSync(logFile, 'utf8'), logFile);
  if (!records.length)
    throw new UsageError(`${logFile} has no training lines with MoE statistics ("moe": [...]); was the model a V-MoE?`);
  const series = trainingLogSeries(records);
  const figs = trainingLogFigures(series);
  fs.mkdirSync(outDir, { recursive: true });
  const rows: Row[] = records.flatMap((r) =>
    r.moe.map((m) => ({ step: r.step, block: m.block, drop_fraction: m.drop, max_load: Math.max(...m.load) })),
  );
  writeFileWhole(path.join(outDir, 'train-routing.csv'), toCsv(rows));
  return [
    ...writeFigure(outDir, 'train-drop-fraction', figs.drop),
    ...writeFigure(outDir, 'train-max-load', figs.maxLoad),
    ...figs.expertLoad.flatMap((f) => writeFigure(outDir, `train-expert-load-block${f.block}`, f.svg)),
    path.join(outDir, 'train-routing.csv'),
  ];
}

/** The processed-patch overlay as SVG: one row per image, one column per MoE layer, processed patches outlined. */
export function patchOverlayFigure(overlay: PatchOverlay, classNames: string[]): string {
  const { json } = overlay;
  const panels: OverlayPanel[] = json.images.flatMap((im, i) =>
    im.layers.map((l) => ({
      label: `#${i} (${classNames[im.label!] ?? im.label}) block ${l.block}`,
      pixels: overlay.pixels[i]!,
      height: overlay.height,
      width: overlay.width,
      patchSize: overlay.patchSize,
      highlight: l.processed_share_per_patch,
    })),
  );
  return patchOverlaySvg({
    title: `Patches processed with BPR at capacity factor ${json.capacity_factor}`,
    panels,
    columns: Math.max(1, json.capacity.length),
    caption: `outlined: processed (thick: every choice); dimmed: all dropped; capacity/group ${json.capacity.map((c) => c.capacity).join('/')}`,
  });
}

/**
 * Writes routing-layers.csv, routing-experts.csv, affinity-block<b>.{csv,svg,png}, patches.{svg,png,json} and,
 * last, routing.json into `dir`. `report.files` becomes `earlier` (e.g. the training-log plots) followed by every
 * file written; routing.json lists the files before it. Returns the report.
 */
export function writeRoutingFiles(dir: string, a: RoutingAnalysis, earlier: string[] = []): RoutingReport {
  const { report, overlay, classNames } = a;
  const layers = report.layers;
  const files = [...earlier];
  report.files = files;
  fs.mkdirSync(dir, { recursive: true });
  const out = (f: string, body: string) => {
    writeFileWhole(path.join(dir, f), body);
    files.push(path.join(dir, f));
  };
  const layerRows: Row[] = layers.map((l) => ({
    block: l.block,
    experts: l.numExperts,
    k: l.k,
    capacity: l.capacity,
    group_size: l.groupSize,
    processed_fraction: l.processedFraction,
    drop_fraction: l.dropFraction,
    max_load: l.maxLoad,
    router_entropy: l.routerEntropy,
    max_entropy: l.maxEntropy,
    importance_loss: l.importanceLoss,
    load_loss: l.loadLoss,
    collapse: l.collapse.map((c) => `e${c.expert}:${c.kind}`).join(' '),
  }));
  const expertRows: Row[] = layers.flatMap((l) =>
    l.expertLoad.map((load, e) => ({
      block: l.block,
      expert: e,
      load,
      demand: l.expertDemand[e]!,
      flag: l.collapse.find((c) => c.expert === e)?.kind ?? '',
    })),
  );
  out('routing-layers.csv', toCsv(layerRows));
  out('routing-experts.csv', toCsv(expertRows));
  for (const l of layers) {
    out(
      `affinity-block${l.block}.csv`,
      toCsv(
        l.affinity.map((row, c) => ({
          class: classNames[c] ?? String(c),
          ...Object.fromEntries(row.map((v, e) => [`e${e}`, v])),
        })),
      ),
    );
    files.push(...writeFigure(dir, `affinity-block${l.block}`, affinityHeatMap(l, classNames)));
  }
  files.push(...writeFigure(dir, 'patches', patchOverlayFigure(overlay, classNames)));
  out('patches.json', JSON.stringify(overlay.json, null, 2) + '\n');
  out('routing.json', JSON.stringify(report, null, 2) + '\n');
  return report;
}

/** The stdout summary: per layer drops, entropy, importance loss, load and collapse flags; the low-capacity background/object shares; the file count. */
export function routingSummaryText(report: RoutingReport): string {
  const lines = [`routing on ${report.dataset} ${report.split} (n=${report.n})`];
  for (const l of report.layers) {
    lines.push(
      `block ${l.block}: drop ${(100 * l.dropFraction).toFixed(1)}%, entropy ${l.routerEntropy.toFixed(3)}/${l.maxEntropy.toFixed(3)} nats, ` +
        `importance loss ${l.importanceLoss.toFixed(4)}, load ${l.expertLoad.map((v) => v.toFixed(2)).join(' ')}` +
        (l.collapse.length
          ? `  COLLAPSE: ${l.collapse.map((c) => `expert ${c.expert} ${c.kind} (${(100 * c.share).toFixed(1)}%)`).join(', ')}`
          : ''),
    );
  }
  lines.push(report.collapsed ? `collapse flagged (${COLLAPSE_RULE})` : `no collapse (${COLLAPSE_RULE})`);
  const low = report.low_capacity;
  const pct = (v: number | null) => (v === null ? '–' : `${(100 * v).toFixed(1)}%`);
  for (const c of low.processed_share_by_content) {
    lines.push(
      `block ${c.block}, BPR at capacity factor ${low.capacity_factor} (${low.images} images): processed ${pct(c.background)} of background patches, ${pct(c.object)} of object patches`,
    );
  }
  lines.push(`files: ${report.files.length} written`);
  return lines.join('\n') + '\n';
}
