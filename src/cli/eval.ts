import fs from 'node:fs';
import type { Command } from 'commander';
import { loadDataset, type Split } from '../data/index.js';
import { classificationMetrics } from '../eval/classification.js';
import { ensembleFlops, ensembleOutputs } from '../ensembles/baselines.js';
import { OOD_DEFINITIONS, loadOodDataset, oodEvaluation, temperatureScaled, type HarnessOptions, type OodEntry } from '../eval/harness.js';
import { formatPredictionsCsv } from '../metrics/index.js';
import path from 'node:path';
import { toCsv, toLatex, toTextTable, type Row } from '../export/tables.js';
import { eceWords, provenanceColumns, provenanceOf, runWords } from '../export/provenance.js';
import { loadModel, type LoadedModel } from '../checkpoint/load.js';
import { runRecord } from '../engine/record.js';
import { flopsPerImage } from '../vmoe/flops.js';
import type { RoutingOverrides } from '../vmoe/model.js';
import { UsageError, addEngineOptions, collect, parsePositiveInt, parsePositiveNumber, startEngine, addDataOptions } from './common.js';
import { Rng } from '../util/rng.js';

interface EvalFlags {
  checkpoint: string | string[]; mcSamples?: string; seed?: string; ood?: string; oodDataDir?: string;
  temperatureScale?: boolean | string; mahalanobisFit?: string; dataset?: string; split: string; dataDir?: string; limit?: string; batchSize: string;
  capacityFactor?: string; capacity?: string; batchPriority?: boolean; k?: string; groupImages?: string;
  bins: string; format: string; out?: string; backend?: string; threads?: string;
}

export interface EvalReport {
  [key: string]: unknown;
}

export async function runEval(flags: EvalFlags): Promise<EvalReport> {
  if (!['json', 'table', 'csv', 'latex'].includes(flags.format)) throw new UsageError(`--format must be json, table, csv or latex, got "${flags.format}"`);
  const checkpoints = Array.isArray(flags.checkpoint) ? flags.checkpoint : [flags.checkpoint];
  const mcSamples = flags.mcSamples ? parsePositiveInt(flags.mcSamples, '--mc-samples') : 0;
  const tsMode = flags.temperatureScale === undefined || flags.temperatureScale === false ? null
    : flags.temperatureScale === true ? 'pooled' : flags.temperatureScale;
  if (tsMode !== null && tsMode !== 'pooled' && tsMode !== 'per-member') throw new UsageError(`--temperature-scale takes pooled or per-member, got "${tsMode}"`);
  const oodNames = flags.ood ? flags.ood.split(',').map((x) => x.trim()).filter(Boolean) : [];
  const evalSeed = Number(flags.seed ?? 0);
  if (!Number.isInteger(evalSeed) || evalSeed < 0) throw new UsageError(`--seed: expected a non-negative integer, got "${flags.seed}"`);
  await startEngine(flags);
  const loaded = checkpoints.map((c) => loadModel(c));
  const first = loaded[0]!;
  const config = first.config;
  for (const l of loaded) {
    if (l.config.model.numClasses !== config.model.numClasses || l.config.model.imageSize !== config.model.imageSize) {
      throw new UsageError(`${l.path}: ${l.config.model.numClasses} classes at ${l.config.model.imageSize}px cannot be ensembled with ${first.path} (${config.model.numClasses} classes at ${config.model.imageSize}px)`);
    }
  }
  if (mcSamples > 0) {
    const noDropout = loaded.filter((l) => !(l.config.model.dropout > 0)).map((l) => l.path);
    if (noDropout.length) throw new UsageError(`--mc-samples needs dropout, but ${noDropout.join(', ')} ha${noDropout.length > 1 ? 've' : 's'} model.dropout = 0`);
  }
  const routing: RoutingOverrides = {};
  if (flags.capacityFactor !== undefined) routing.capacityFactor = parsePositiveNumber(flags.capacityFactor, '--capacity-factor');
  if (flags.capacity !== undefined) routing.capacity = parsePositiveInt(flags.capacity, '--capacity');
  if (flags.batchPriority !== undefined) routing.batchPriority = flags.batchPriority;
  if (flags.k !== undefined) routing.k = parsePositiveInt(flags.k, '--k');
  if (flags.groupImages !== undefined) routing.groupImages = parsePositiveInt(flags.groupImages, '--group-images');
  for (const l of loaded) {
    const maxK = l.config.model.moe.numExperts / (l.config.model.type === 'e3' ? l.config.model.ensemble.members : 1);
    if (routing.k !== undefined && l.config.model.type !== 'vit' && routing.k > maxK) throw new UsageError(`--k ${routing.k} exceeds the ${maxK} experts each token can reach in ${l.path}`);
  }
  const dataset = flags.dataset ?? config.data.dataset;
  const dataDir = flags.dataDir ?? config.data.dataDir ?? undefined;
  const limit = flags.limit ? parsePositiveInt(flags.limit, '--limit') : undefined;
  const ds = loadDataset(dataset, flags.split as Split, { dataDir, valSize: config.data.valSize, limit });
  const bins = parsePositiveInt(flags.bins, '--bins');
  const h: HarnessOptions = {
    batchSize: parsePositiveInt(flags.batchSize, '--batch-size'), routing, mcSamples, rng: new Rng(evalSeed), bins,
    onProgress: process.stderr.isTTY ? (label, d, t) => process.stderr.write(`\r[vmoe] ${label}: ${d}/${t}   `) : undefined,
  };
  const wantMaha = oodNames.length > 0 && Number(flags.mahalanobisFit ?? '5000') > 0;
  const out = ensembleOutputs(loaded, ds, { ...h, keepPreLogits: wantMaha });
  const m = classificationMetrics(out, bins);
  let temperature: Record<string, unknown> | null = null;
  if (tsMode) {
    const val = loadDataset(dataset, 'val', { dataDir, valSize: config.data.valSize, limit: config.train.evalLimit ?? undefined });
    const t = temperatureScaled(ensembleOutputs(loaded, val, h), out, bins, tsMode);
    temperature = {
      fit_split: `${dataset}/val (n=${val.n})`, mode: t.fit.mode, temperatures: t.fit.temperatures,
      fit_nll_before: t.fit.nllBefore, fit_nll_after: t.fit.nllAfter, convention: t.fit.convention,
      accuracy: t.metrics.accuracy, nll: t.metrics.nll, brier: t.metrics.brier, ece: t.metrics.ece,
    };
  }
  let ood: OodEntry[] | null = null;
  // kept outside the block for the OOD score figures (eval-figures)
  let oodSets: { name: string; outputs: ReturnType<typeof ensembleOutputs> }[] = [];
  if (oodNames.length) {
    oodSets = oodNames.map((name) => ({ name, outputs: ensembleOutputs(loaded, loadOodDataset(name, ds, { dataDir: flags.oodDataDir, limit: ds.n }), { ...h, keepPreLogits: wantMaha }) }));
    const train = wantMaha
      ? ensembleOutputs(loaded, loadDataset(dataset, 'train', { dataDir, valSize: config.data.valSize, limit: Number(flags.mahalanobisFit ?? '5000') }), { ...h, keepPreLogits: true })
      : null;
    ood = oodEvaluation(out, oodSets, { train });
  }
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const settings = first.model.routingFor(routing);
  const flops = flopsPerImage(config.model, routing);
  const flopsTotal = ensembleFlops(loaded, routing, mcSamples);
  const { n: _n, members: _members, conventions, ...metricValues } = m;
  const report: EvalReport = {
    dataset: ds.name, split: ds.split, n: m.n, members: m.members,
    ...metricValues,
    temperature_scaled: temperature,
    ood,
    flops_per_image: flopsTotal,
    images_per_s: out.n / out.seconds, seconds: out.seconds,
    ensemble: loaded.length > 1 || mcSamples > 0
      ? { kind: mcSamples > 0 ? 'mc-dropout' : 'deep-ensemble', checkpoints: loaded.length, mc_samples: mcSamples || null, combination: 'mean of member probabilities' }
      : first.config.model.type === 'e3' ? { kind: 'e3', members: first.config.model.ensemble.members, combination: 'mean of member probabilities' } : null,
    routing: config.model.type !== 'vit'
      ? { router: settings.router, k: settings.k, capacity_factor: settings.capacity === null ? settings.capacityFactor : null, capacity: flops.moe[0]?.capacity ?? null, batch_priority: settings.batchPriority, group_size: settings.groupSize }
      : null,
    router: out.router,
    checkpoint: loaded.length === 1 ? checkpointRecord(first) : loaded.map(checkpointRecord),
    // seeds the MC-dropout masks; the training seed of each model is under checkpoint (and config)
    eval_seed: evalSeed,
    batch_size: h.batchSize,
    conventions: {
      ...conventions, flops: flops.convention,
      // the headline numbers are raw; scaled ones live under temperature_scaled (null when not asked for)
      temperature_scaled: false,
      ...(ood ? { ood: { scores: OOD_DEFINITIONS, positive: 'both conventions reported: ood_positive (default, OOD = positive class) and in_positive', fpr95: 'false-positive rate at 95% true-positive rate', auprc: 'step-wise average precision' } } : {}),
    },
    ...runRecord(config),
  };
  const row: Row = {
    dataset: ds.name, split: ds.split, n: m.n, members: m.members, accuracy: m.accuracy, nll: m.nll, brier: m.brier, ece: m.ece,
    ...(m.gibbs_nll !== undefined ? { gibbs_nll: m.gibbs_nll, disagreement: m.diversity!.disagreement, ambiguity: m.diversity!.ambiguity } : {}),
    ...(temperature ? { temperature_scaled_nll: temperature.nll as number, temperature_scaled_ece: temperature.ece as number } : {}),
    ...Object.fromEntries((ood ?? []).map((o) => [`auroc_${o.dataset}`, o.scores.msp!.ood_positive.auroc])),
    flops_per_image: flopsTotal, images_per_s: Math.round(out.n / out.seconds),
  };
  // CSV is read by programs: every row carries its provenance; the LaTeX table keeps it in caption and comments.
  const prov = provenanceOf(report);
  const csvRow: Row = { ...row, ...provenanceColumns(prov) };
  const caption = [
    `${ds.name} ${ds.split}, checkpoint ${prov.checkpoints.map((c) => c.slice(0, 12)).join('+')}`,
    eceWords(prov.ece),
    ...(ood ? ['AUROC of MSP with OOD as the positive class'] : []),
    `not temperature scaled${temperature ? ` (temperature_scaled_* columns: fitted on ${dataset}/val)` : ''}`,
    runWords(prov),
  ].join('; ');
  const comments = [`vmoe eval results: ${ds.name} ${ds.split}, n=${m.n}`, `checkpoint sha256: ${prov.checkpoints.join(' + ')}`, runWords(prov)];
  const text = flags.format === 'json' ? JSON.stringify(report, null, 2) + '\n'
    : flags.format === 'csv' ? toCsv([csvRow])
    : flags.format === 'latex' ? toLatex([row], caption, comments)
    : toTextTable([row]);
  process.stdout.write(text);
  if (flags.out) {
    fs.mkdirSync(flags.out, { recursive: true });
    fs.writeFileSync(path.join(flags.out, 'results.json'), JSON.stringify(report, null, 2) + '\n');
    fs.writeFileSync(path.join(flags.out, 'results.csv'), toCsv([csvRow]));
    fs.writeFileSync(path.join(flags.out, 'table.tex'), toLatex([row], caption, comments));
    fs.writeFileSync(path.join(flags.out, 'predictions.csv'), formatPredictionsCsv(
      { data: out.logits, n: out.n, k: out.numClasses, ...(out.members > 1 ? { m: out.members } : {}) }, out.labels));
    // figures/: reliability, risk–coverage and per OOD set MSP/energy histograms, as SVG and PNG (export/eval-figures)
    const { evalFigures } = await import('../export/eval-figures.js');
    const { writeFigure } = await import('../export/png.js');
    const label = loaded.length > 1 ? `deep ensemble of ${loaded.length}` : `${config.name} (${config.model.type}${mcSamples > 0 ? `, MC dropout ×${mcSamples}` : ''})`;
    for (const f of evalFigures({
      out, bins, label, dataset: `${ds.name} ${ds.split}`, oodSets,
      subtitle: `${ds.name} ${ds.split}, n=${out.n}, checkpoint ${first.sha256.slice(0, 12)}`,
    })) writeFigure(path.join(flags.out, 'figures'), f.name, f.svg);
  }
  for (const l of loaded) l.model.dispose();
  return report;
}

function checkpointRecord(l: LoadedModel): Record<string, unknown> {
  return { path: l.path, sha256: l.sha256, step: l.step, seed: l.config.seed };
}

export function registerEvalCommand(program: Command): void {
  addEngineOptions(addDataOptions(
    program
      .command('eval')
      .description('evaluate a checkpoint: accuracy, NLL, Brier, ECE, router statistics, FLOPs per image')
      .requiredOption('--checkpoint <path>', 'checkpoint file, checkpoints/ folder or run folder; repeat it to evaluate a deep ensemble (mean of the members\' probabilities)', collect, [])
      .option('--mc-samples <n>', 'MC dropout: average n stochastic passes (needs model.dropout > 0)')
      .option('--seed <n>', 'seed for MC-dropout masks', '0')
      .option('--capacity-factor <c>', 'override the expert capacity factor')
      .option('--capacity <n>', 'override with an absolute capacity per group')
      .option('--batch-priority', 'use Batch Prioritized Routing')
      .option('--no-batch-priority', 'use vanilla (position-order) routing')
      .option('--k <n>', 'override the number of experts per token')
      .option('--group-images <n>', 'images per routing group')
      .option('--bins <n>', 'ECE bins', '15')
      .option('--ood <names>', 'comma-separated OOD sets: data sets (test split) or uniform-noise, gaussian-noise')
      .option('--ood-data-dir <dir>', 'folder holding the OOD data sets')
      .option('--mahalanobis-fit <n>', 'training examples whose pre-logits fit the Mahalanobis scores (0 = skip)', '5000')
      .option('--temperature-scale [mode]', 'also report metrics after temperature scaling fitted on the val split (ensembles: pooled or per-member)')
      .option('--format <fmt>', 'stdout format: json, table, csv or latex', 'json')
      .option('--out <dir>', 'also write results.json, results.csv, table.tex, predictions.csv and figures/ (reliability, risk–coverage, OOD histograms; SVG + PNG) into this folder'),)
  ).action(async (flags: EvalFlags) => {
    await runEval(flags);
  });
}
