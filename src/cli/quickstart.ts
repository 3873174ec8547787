/**
 * The main job: train the tiny V-MoE, evaluate it on the test split, export the
 * results (JSON, CSV, LaTeX, Markdown) — one command on a fresh machine.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { datasetAvailable } from '../data/index.js';
import { toCsv, toLatex, toMarkdown, type Row } from '../export/tables.js';
import { eceWords, provenanceColumns, provenanceOf, runWords } from '../export/provenance.js';
import { loadExperiment } from '../config/experiment.js';
import { train } from '../train/trainer.js';
import { addEngineOptions, collect, startEngine } from './common.js';
import { runEval } from './eval.js';

const CONFIG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../configs');

interface QuickstartFlags { out: string; set: string[]; backend?: string; threads?: string; config: string }

export async function runQuickstart(flags: QuickstartFlags): Promise<void> {
  const overrides = [...flags.set];
  let note = '';
  if (!datasetAvailable('fashion-mnist')) {
    overrides.unshift('data.dataset="mnist"');
    note = 'Fashion-MNIST is not installed (sudo apt-get install dataset-fashion-mnist); using MNIST instead.';
    process.stderr.write(`[vmoe] ${note}\n`);
  }
  const config = loadExperiment(flags.config, overrides);
  process.stderr.write(`[vmoe] quickstart: ${config.name} on ${config.data.dataset}, ${config.train.steps} steps of ${config.train.batchSize} → ${flags.out}\n`);
  // The quickstart folder is a demo output: each run starts it afresh.
  fs.rmSync(flags.out, { recursive: true, force: true });
  await startEngine(flags);
  const t0 = performance.now();
  const tr = await train({ config, outDir: flags.out });
  const report = await runEval({
    checkpoint: flags.out, split: 'test', batchSize: String(config.eval.batchSize), bins: '15', format: 'table',
    out: path.join(flags.out, 'eval_test'),
  });
  const results = {
    ...report,
    train: { steps: tr.step, seconds: tr.seconds, images_per_s: tr.imagesPerSecond, final_loss: tr.losses.at(-1), val: tr.lastVal },
    total_seconds: (performance.now() - t0) / 1000,
    note: note || undefined,
  };
  fs.writeFileSync(path.join(flags.out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  const row: Row = {
    model: config.name, dataset: String(report.dataset), split: 'test', accuracy: report.accuracy as number,
    nll: report.nll as number, ece: report.ece as number, brier: report.brier as number,
    flops_per_image: report.flops_per_image as number, train_steps: tr.step,
    train_minutes: Number((tr.seconds / 60).toFixed(1)), backend: String((report.engine as { backend: string }).backend),
  };
  const prov = provenanceOf(report);
  fs.writeFileSync(path.join(flags.out, 'results.csv'), toCsv([{ ...row, ...provenanceColumns(prov) }]));
  fs.writeFileSync(path.join(flags.out, 'results.tex'), toLatex([row],
    `vmoe quickstart, checkpoint ${prov.checkpoints[0]?.slice(0, 12) ?? '?'}; ${eceWords(prov.ece)}; not temperature scaled; ${runWords(prov)}`,
    [`checkpoint sha256: ${prov.checkpoints.join(' + ')}`]));
  fs.writeFileSync(path.join(flags.out, 'results.md'), toMarkdown([row]));
  process.stdout.write(
    `\nquickstart done in ${(results.total_seconds / 60).toFixed(1)} min: test accuracy ${(report.accuracy as number).toFixed(4)}, ` +
    `NLL ${(report.nll as number).toFixed(4)}, ECE ${(report.ece as number).toFixed(4)}\n` +
    `wrote ${flags.out}/{results.json,results.csv,results.tex,results.md,metrics.jsonl,checkpoints/}\n`,
  );
}

export function registerQuickstartCommand(program: Command): void {
  addEngineOptions(
    program
      .command('quickstart')
      .description('train the tiny V-MoE on Fashion-MNIST (MNIST if absent), evaluate on the test split, export results')
      .option('-o, --out <dir>', 'output folder (replaced on every run)', 'runs/quickstart')
      .option('-c, --config <file>', 'config to run', path.join(CONFIG_DIR, 'quickstart.json'))
      .option('--set <key=value>', 'override a config field (repeatable)', collect, []),
  ).action((flags: QuickstartFlags) => runQuickstart(flags));
}
