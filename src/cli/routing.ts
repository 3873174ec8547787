import { affinityHeatMap, trainingLogFigures } from '../export/routing-figures.js';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Command } from 'commander';
import { loadDataset, makeBatch, type ImageDataset, type Split } from '../data/index.js';
import {
  BACKGROUND_PATCH_RULE, DEFAULT_COLLAPSE, analyseRouting, parseTrainingLog, processedPatches, processedShareByContent, traceRouting, type ShareByContent,
  trainingLogSeries, type LayerSummary,
} from '../eval/routing-analysis.js';
import { patchOverlaySvg, type OverlayPanel } from '../export/figures.js';
import { writeFigure } from '../export/png.js';
import { toCsv, type Row } from '../export/tables.js';
import { loadModel } from '../checkpoint/load.js';
import { runRecord } from '../engine/record.js';
import { modelMembers } from '../vmoe/config.js';
import type { VisionMoE } from '../vmoe/model.js';
import { checkOutputDir } from '../util/output-dir.js';
import { addEngineOptions, parsePositiveInt, parsePositiveNumber, startEngine, addDataOptions } from './common.js';
import { UsageError } from '../util/errors.js';

export interface RoutingFlags {
  checkpoint?: string; log?: string; dataset?: string; split: string; dataDir?: string; limit?: string; batchSize: string;
  capacityFactor: string; images: string; shareImages: string; out?: string; backend?: string; threads?: string; quiet?: boolean;
}

export const COLLAPSE_RULE = `an expert is flagged when it receives more than ${DEFAULT_COLLAPSE.high * 100}% ("dominant") or less than ` +
  `${DEFAULT_COLLAPSE.low * 100}% ("starved") of the (token, choice) assignments the router asks for (before capacity), in layers with ≥ ${DEFAULT_COLLAPSE.minExperts} experts`;

export interface RoutingReport {
  files: string[];
  layers?: LayerSummary[];
  collapsed?: boolean;
  [key: string]: unknown;
}

const say = (flags: { quiet?: boolean }, s: string) => { if (!flags.quiet) process.stdout.write(s); };

/** Drop fraction and max expert load over training steps from a run's metrics.jsonl. */
export function writeTrainingLogPlots(logFile: string, outDir: string): string[] {
  if (!fs.existsSync(logFile)) throw new UsageError(`--log ${logFile} does not exist`);
  const records = parseTrainingLog(fs.readFileSync(logFile, 'utf8'), logFile);
  if (!records.length) throw new UsageError(`${logFile} has no training lines with MoE statistics ("moe": [...]); was the model a V-MoE?`);
  const series = trainingLogSeries(records);
  const figs = trainingLogFigures(series);
  fs.mkdirSync(outDir, { recursive: true });
  const rows: Row[] = records.flatMap((r) => r.moe.map((m) => ({ step: r.step, block: m.block, drop_fraction: m.drop, max_load: Math.max(...m.load) })));
  fs.writeFileSync(path.join(outDir, 'train-routing.csv'), toCsv(rows));
  return [
    ...writeFigure(outDir, 'train-drop-fraction', figs.drop),
    ...writeFigure(outDir, 'train-max-load', figs.maxLoad),
    ...figs.expertLoad.flatMap((f) => writeFigure(outDir, `train-expert-load-block${f.block}`, f.svg)),
    path.join(outDir, 'train-routing.csv'),
  ];
}

/** Grey pixels (H·W) of image i, channels averaged. */
function greyPixels(ds: ImageDataset, i: number): Float64Array {
  const P = ds.height * ds.width, C = ds.channels;
  const out = new Float64Array(P);
  for (let p = 0; p < P; p++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += ds.images[(i * P + p) * C + c]!;
    out[p] = s / C;
  }
  return out;
}

/**
 * Which patches of the first `count` images each MoE layer processes at a low
 * capacity with BPR. The images are routed together in one batch of whole
 * routing groups, as in evaluation.
 */
export function patchOverlay(model: VisionMoE, ds: ImageDataset, opts: { count: number; shareImages?: number; capacityFactor: number; scale: 'minus1to1' | 'zero1' }) {
  const groupImages = model.cfg.moe.groupImages;
  const count = Math.min(opts.count, ds.n);
  // the background/object statistic wants more images than a figure can show
  const statN = Math.min(ds.n, Math.max(count, opts.shareImages ?? count));
  const batchN = Math.min(ds.n, Math.ceil(statN / groupImages) * groupImages);
  const batch = makeBatch(ds, Int32Array.from({ length: batchN }, (_, i) => i), { scale: opts.scale });
  const x = tf.tensor4d(batch.x, batch.shape);
  const trace = traceRouting(model, x, { capacityFactor: opts.capacityFactor, batchPriority: true });
  x.dispose();
  const all = processedPatches(trace, model.cfg.readout === 'token').slice(0, statN); // (images, layers, patches)
  const patches = all.slice(0, count);
  const pixelsOf = all.map((_, i) => greyPixels(ds, i));
  const byContent = trace.layers.map((l, li) => ({
    block: l.block, images: statN,
    ...processedShareByContent(all.map((layers, i) => ({ pixels: pixelsOf[i]!, shares: layers[li]! })), ds.width, model.cfg.patchSize),
  }));
  const panels: OverlayPanel[] = [];
  patches.forEach((layers, i) => {
    const pixels = pixelsOf[i]!;
    layers.forEach((h, l) => panels.push({
      label: `#${i} (${ds.classNames[ds.labels[i]!] ?? ds.labels[i]}) block ${trace.layers[l]!.block}`,
      pixels, height: ds.height, width: ds.width, patchSize: model.cfg.patchSize, highlight: h,
    }));
  });
  const svg = patchOverlaySvg({
    title: `Patches processed with BPR at capacity factor ${opts.capacityFactor}`,
    panels, columns: Math.max(1, trace.layers.length),
    caption: `outlined: processed (thick: every choice); dimmed: all dropped; capacity/group ${trace.layers.map((l) => l.capacities[0]).join('/')}`,
  });
  return {
    svg,
    json: {
      capacity_factor: opts.capacityFactor, batch_priority: true, images_routed_together: batchN,
      capacity: trace.layers.map((l) => ({ block: l.block, capacity: l.capacities[0], group_size: l.groupSizes[0], processed_fraction: l.stats.processedFraction })),
      processed_share_by_content: byContent,
      background_rule: BACKGROUND_PATCH_RULE,
      images: patches.map((layers, i) => ({
        index: i, label: ds.labels[i],
        layers: layers.map((h, l) => ({ block: trace.layers[l]!.block, processed_share_per_patch: h })),
      })),
    },
  };
}

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

export async function runRoutingCommand(given: RoutingFlags): Promise<RoutingReport> {
  if (!given.checkpoint && !given.log) throw new UsageError('give --checkpoint (routing statistics) and/or --log runs/<x>/metrics.jsonl (training plots)');
  const files: string[] = [];
  const flags = { ...given, out: given.out ?? defaultRoutingOut(given) };
  checkOutputDir(flags.out);
  fs.mkdirSync(flags.out, { recursive: true });
  if (flags.log) {
    files.push(...writeTrainingLogPlots(flags.log, flags.out));
    say(flags, `training routing plots from ${flags.log} → ${flags.out}\n`);
  }
  if (!flags.checkpoint) return { files };

  const batchSize = parsePositiveInt(flags.batchSize, '--batch-size');
  const lowCapacity = parsePositiveNumber(flags.capacityFactor, '--capacity-factor');
  const nImages = parsePositiveInt(flags.images, '--images');
  await startEngine(flags);
  const { model, config, path: ckPath, sha256, step } = loadModel(flags.checkpoint);
  try {
    if (config.model.type === 'vit') throw new UsageError(`${ckPath} is a dense ViT: it has no router to analyse`);
    if (config.model.moe.router !== 'top-k') throw new UsageError(`${ckPath} uses expert-choice routing; vmoe routing analyses top-k routers`);
    const ds = loadDataset(flags.dataset ?? config.data.dataset, flags.split as Split, {
      dataDir: flags.dataDir ?? config.data.dataDir ?? undefined, valSize: config.data.valSize,
      limit: flags.limit ? parsePositiveInt(flags.limit, '--limit') : undefined,
    });
    const layers = analyseRouting(model, ds, { batchSize, scale: config.data.scale });
    const settings = model.routingFor({});
    const shareImages = parsePositiveInt(flags.shareImages, '--share-images');
    const overlay = patchOverlay(model, ds, { count: nImages, shareImages, capacityFactor: lowCapacity, scale: config.data.scale });
    const out = (f: string, body: string) => {
      fs.writeFileSync(path.join(flags.out, f), body);
      files.push(path.join(flags.out, f));
    };
    const layerRows: Row[] = layers.map((l) => ({
      block: l.block, experts: l.numExperts, k: l.k, capacity: l.capacity, group_size: l.groupSize,
      processed_fraction: l.processedFraction, drop_fraction: l.dropFraction, max_load: l.maxLoad,
      router_entropy: l.routerEntropy, max_entropy: l.maxEntropy, importance_loss: l.importanceLoss, load_loss: l.loadLoss,
      collapse: l.collapse.map((c) => `e${c.expert}:${c.kind}`).join(' '),
    }));
    const expertRows: Row[] = layers.flatMap((l) => l.expertLoad.map((load, e) => ({
      block: l.block, expert: e, load, demand: l.expertDemand[e]!, flag: l.collapse.find((c) => c.expert === e)?.kind ?? '',
    })));
    out('routing-layers.csv', toCsv(layerRows));
    out('routing-experts.csv', toCsv(expertRows));
    for (const l of layers) {
      out(`affinity-block${l.block}.csv`, toCsv(l.affinity.map((row, c) => ({
        class: ds.classNames[c] ?? String(c), ...Object.fromEntries(row.map((v, e) => [`e${e}`, v])),
      }))));
      files.push(...writeFigure(flags.out, `affinity-block${l.block}`, affinityHeatMap(l, ds.classNames)));
    }
    files.push(...writeFigure(flags.out, 'patches', overlay.svg));
    out('patches.json', JSON.stringify(overlay.json, null, 2) + '\n');
    const collapsed = layers.some((l) => l.collapse.length > 0);
    const report: RoutingReport = {
      dataset: ds.name, split: ds.split, n: ds.n,
      checkpoint: { path: ckPath, sha256, step },
      routing: { k: settings.k, capacity_factor: settings.capacity === null ? settings.capacityFactor : null, capacity: layers[0]?.capacity ?? null, batch_priority: settings.batchPriority, group_size: settings.groupSize, members: modelMembers(config.model) },
      collapsed,
      collapse_rule: COLLAPSE_RULE,
      low_capacity: {
        capacity_factor: lowCapacity, batch_priority: true, images: Math.min(ds.n, Math.max(nImages, shareImages)),
        processed_share_by_content: overlay.json.processed_share_by_content, background_rule: BACKGROUND_PATCH_RULE,
      },
      layers,
      conventions: {
        expert_load: 'share of processed (token, choice) assignments per expert',
        expert_demand: 'share of requested (token, choice) assignments per expert, before capacity drops',
        router_entropy: 'mean over tokens of the entropy (nats) of the noise-free gate softmax; max_entropy = log(experts a token can reach)',
        importance_loss: 'CV² of per-expert summed clean gates, per routing group (and E³ member), averaged',
        load_loss: 'docs/spec/aux-losses.md §7 load loss without sampling noise: threshold = K-th largest clean logit, σ = noise_std/(E/M), averaged over groups',
        affinity: "(classes, experts): share of a class's processed assignments going to each expert; rows sum to 1 (null: class absent)",
      },
      files,
      ...runRecord(config),
    };
    out('routing.json', JSON.stringify(report, null, 2) + '\n');
    say(flags, summaryText(report, layers));
    return report;
  } finally {
    model.dispose();
  }
}

export function summaryText(report: RoutingReport, layers: LayerSummary[]): string {
  const lines = [`routing on ${report.dataset} ${report.split} (n=${report.n})`];
  for (const l of layers) {
    lines.push(`block ${l.block}: drop ${(100 * l.dropFraction).toFixed(1)}%, entropy ${l.routerEntropy.toFixed(3)}/${l.maxEntropy.toFixed(3)} nats, ` +
      `importance loss ${l.importanceLoss.toFixed(4)}, load ${l.expertLoad.map((v) => v.toFixed(2)).join(' ')}` +
      (l.collapse.length ? `  COLLAPSE: ${l.collapse.map((c) => `expert ${c.expert} ${c.kind} (${(100 * c.share).toFixed(1)}%)`).join(', ')}` : ''));
  }
  lines.push(report.collapsed ? `collapse flagged (${COLLAPSE_RULE})` : `no collapse (${COLLAPSE_RULE})`);
  const low = report.low_capacity as { capacity_factor: number; images: number; processed_share_by_content: ({ block: number } & ShareByContent)[] } | undefined;
  const pct = (v: number | null) => (v === null ? '–' : `${(100 * v).toFixed(1)}%`);
  for (const c of low?.processed_share_by_content ?? []) {
    lines.push(`block ${c.block}, BPR at capacity factor ${low!.capacity_factor} (${low!.images} images): processed ${pct(c.background)} of background patches, ${pct(c.object)} of object patches`);
  }
  lines.push(`files: ${report.files.length} written`);
  return lines.join('\n') + '\n';
}

export function registerRoutingCommand(program: Command): void {
  addEngineOptions(addDataOptions(
    program
      .command('routing')
      .description('routing analysis: per-layer expert load, drops, router entropy, aux losses, expert × class affinity, processed patches, collapse flags; --log plots a training run')
      .option('--checkpoint <path>', 'checkpoint file, checkpoints/ folder or run folder')
      .option('--log <file>', 'a run\'s metrics.jsonl: plot per-layer drop fraction and max expert load over training')
      .option('--capacity-factor <c>', 'low capacity factor for the processed-patch overlay (BPR)', '0.2')
      .option('--images <n>', 'images in the processed-patch overlay', '4')
      .option('--share-images <n>', 'images for the processed share of background vs object patches at the low capacity', '256')
      .option('--out <dir>', 'folder for the JSON/CSV statistics and figures (default: routing/ in the run folder)')
      .option('--quiet', 'no summary on stdout'),)
  ).action(async (flags: RoutingFlags) => {
    await runRoutingCommand(flags);
  });
}
