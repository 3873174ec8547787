/**
 * The main job: train the tiny V-MoE, evaluate it on the test split through the harness, export the
 * results (JSON, CSV, LaTeX, Markdown) — what `vmoe quickstart` runs on a fresh machine.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadExperiment } from '../config/experiment.js';
import { datasetAvailable } from '../data/index.js';
import type { EngineInfo } from '../engine/index.js';
import { evaluateCheckpoints } from '../eval/harness.js';
import { reportJson } from '../eval/report.js';
import { writeEvalResults } from '../export/eval-files.js';
import { eceWords, provenanceColumns, provenanceOf, runWords } from '../export/provenance.js';
import { toCsv, toLatex, toMarkdown, type Row } from '../export/tables.js';
import { train } from '../train/trainer.js';
import { writeFileWhole } from '../util/output-dir.js';

/** The one line a newcomer needs when the fast path or the intended data set is missing. */
export const FAST_PATH_HINT =
  'bash scripts/setup.sh   (installs libopenblas-dev, libdnnl-dev and dataset-fashion-mnist, then rebuilds the native addon)';

/** What the quickstart will run on, and what to do when it falls back (printed first). */
export function quickstartPreamble(
  engine: Pick<EngineInfo, 'backend' | 'gemm' | 'threads'>,
  fashionMnist: boolean,
): string[] {
  const lines = [
    `backend ${engine.backend}${engine.gemm ? ` (products on ${engine.gemm})` : ''}, ${engine.threads} thread${engine.threads === 1 ? '' : 's'}; data set ${fashionMnist ? 'fashion-mnist' : 'mnist (fallback)'}`,
  ];
  const missing: string[] = [];
  if (engine.backend !== 'wasm-blas' && engine.backend !== 'node' && engine.backend !== 'node-gpu')
    missing.push(`the native addon (running on plain ${engine.backend}, about 10× slower)`);
  if (!fashionMnist) missing.push('Fashion-MNIST (training on MNIST instead)');
  if (missing.length) lines.push(`missing: ${missing.join('; ')}. For the fast path run: ${FAST_PATH_HINT}`);
  return lines;
}

export interface QuickstartOptions {
  config: string;
  out: string;
  overrides: string[];
  log: (line: string) => void;
}

export interface QuickstartResult {
  accuracy: number;
  nll: number;
  ece: number;
  totalSeconds: number;
  files: string[];
}

export async function runQuickstartJob(o: QuickstartOptions, engine: EngineInfo): Promise<QuickstartResult> {
  const overrides = [...o.overrides];
  const fashion = datasetAvailable('fashion-mnist');
  if (!fashion) overrides.unshift('data.dataset="mnist"');
  for (const line of quickstartPreamble(engine, fashion)) o.log(line);
  const config = loadExperiment(o.config, overrides);
  o.log(
    `quickstart: ${config.name} on ${config.data.dataset}, ${config.train.steps} steps of ${config.train.batchSize} → ${o.out}`,
  );
  // The quickstart folder is a demo output: each run starts it afresh.
  fs.rmSync(o.out, { recursive: true, force: true });
  const t0 = performance.now();
  const tr = await train({ config, outDir: o.out });
  const run = evaluateCheckpoints({ checkpoints: [o.out], split: 'test', batchSize: config.eval.batchSize, bins: 15 });
  writeEvalResults(path.join(o.out, 'eval_test'), run, { bins: 15 });
  const report = run.report;
  const totalSeconds = (performance.now() - t0) / 1000;
  const results = {
    ...report,
    train: {
      steps: tr.step,
      seconds: tr.seconds,
      images_per_s: tr.imagesPerSecond,
      final_loss: tr.losses.at(-1),
      val: tr.lastVal,
    },
    total_seconds: totalSeconds,
    note: fashion
      ? undefined
      : 'Fashion-MNIST is not installed (sudo apt-get install dataset-fashion-mnist); trained on MNIST instead.',
  };
  const row: Row = {
    model: config.name,
    dataset: report.dataset,
    split: 'test',
    accuracy: report.accuracy,
    nll: report.nll,
    ece: report.ece,
    brier: report.brier,
    flops_per_image: report.flops_per_image,
    train_steps: tr.step,
    train_minutes: Number((tr.seconds / 60).toFixed(1)),
    backend: engine.backend,
  };
  const prov = provenanceOf(report);
  const files: [string, string][] = [
    ['results.json', reportJson(results)],
    ['results.csv', toCsv([{ ...row, ...provenanceColumns(prov) }])],
    [
      'results.tex',
      toLatex(
        [row],
        `vmoe quickstart, checkpoint ${prov.checkpoints[0]?.slice(0, 12) ?? '?'}; ${eceWords(prov.ece)}; not temperature scaled; ${runWords(prov)}`,
        [`checkpoint sha256: ${prov.checkpoints.join(' + ')}`],
      ),
    ],
    ['results.md', toMarkdown([row])],
  ];
  for (const [name, text] of files) writeFileWhole(path.join(o.out, name), text);
  return { accuracy: report.accuracy, nll: report.nll, ece: report.ece, totalSeconds, files: files.map(([n]) => n) };
}
