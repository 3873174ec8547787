/**
 * The comparison of the E³ paper at our scale: dense ViT, V-MoE (K=1, K=2), E³
 * (M=2, K=1) and a deep ensemble of two V-MoEs, several seeds each, trained on
 * Fashion-MNIST, evaluated on its test split and on MNIST as OOD data, merged
 * into one mean ± std table.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadExperiment, type ExperimentConfig } from '../config/experiment.js';
import { train } from '../train/trainer.js';
import { evaluateCheckpoints } from '../eval/harness.js';
import { writeEvalResults } from '../export/eval-files.js';
import { reportOutputs, reportRows } from '../export/report.js';
import { runRecord } from '../engine/record.js';
import { writeFileWhole } from '../util/output-dir.js';

const CONFIG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../configs');

export interface E3ExperimentOptions {
  out: string;
  seeds: number;
  /** Override every model's training steps (null = each config's own). */
  steps: number | null;
  ood: string[];
  evalLimit: number | null;
  dataset: string;
  /** Keep finished runs (resume an interrupted experiment). */
  reuse: boolean;
}

interface ModelSpec {
  label: string;
  config: string;
  set: string[];
}

export const E3_MODELS: ModelSpec[] = [
  { label: 'vit', config: 'fmnist-vit-tiny.json', set: [] },
  { label: 'vmoe-k1', config: 'fmnist-vmoe-tiny.json', set: ['model.moe.k=1'] },
  { label: 'vmoe-k2', config: 'fmnist-vmoe-tiny.json', set: [] },
  { label: 'e3-m2-k1', config: 'fmnist-e3-tiny.json', set: [] },
];

function annotate(file: string, extra: Record<string, unknown>): void {
  const r = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileWhole(file, JSON.stringify({ ...r, ...extra }, null, 2) + '\n');
}

/** One training of the experiment: its run folder and resolved config. */
export interface E3Training {
  dir: string;
  config: ExperimentConfig;
  /** start afresh (`--fresh`): whatever the folder holds goes; otherwise an unfinished run may be resumed */
  fresh: boolean;
}

/** One evaluation of the experiment: checkpoints (run folders; several = a deep ensemble) into `out`. */
export interface E3Evaluation {
  checkpoints: string[];
  out: string;
  ood: string[];
  limit: number | null;
  /** replace what `out` holds (`--fresh`, or its checkpoints were trained again) */
  fresh: boolean;
}

/**
 * Runs the experiment's trainings and evaluations: in this process one after another (the default),
 * or elsewhere (the queue layer submits them as jobs to workers). `train` leaves each run folder with a
 * finished run (train_summary.json); `evaluate` leaves results.json in each `out`.
 */
export interface E3Executor {
  train(runs: E3Training[]): Promise<void>;
  evaluate(evals: E3Evaluation[]): Promise<void>;
}

/** The evaluation settings of every E³ table row: the test split, 256 images a batch, 15 ECE bins. */
export const E3_EVAL = { split: 'test', batchSize: 256, bins: 15 } as const;

/** Trains and evaluates in this process, one after another. */
export const localE3Executor: E3Executor = {
  async train(runs) {
    for (const r of runs) {
      fs.rmSync(r.dir, { recursive: true, force: true });
      process.stderr.write(
        `[experiment] training ${r.config.name} seed ${r.config.seed} (${r.config.train.steps} steps)\n`,
      );
      await train({ config: r.config, outDir: r.dir });
    }
  },
  async evaluate(evals) {
    for (const e of evals) {
      if (e.checkpoints.length > 1)
        process.stderr.write(
          `[experiment] evaluating the deep ensemble ${e.checkpoints.map((c) => path.basename(c)).join(' + ')}\n`,
        );
      const run = evaluateCheckpoints({
        checkpoints: e.checkpoints,
        split: E3_EVAL.split,
        batchSize: E3_EVAL.batchSize,
        bins: E3_EVAL.bins,
        ood: e.ood,
        mahalanobisFit: 0,
        limit: e.limit ?? undefined,
      });
      writeEvalResults(e.out, run, { bins: E3_EVAL.bins });
    }
  },
};

export async function runE3Experiment(
  o: E3ExperimentOptions,
  executor: E3Executor = localE3Executor,
): Promise<{ table: string }> {
  fs.mkdirSync(o.out, { recursive: true });
  const configOf = (m: ModelSpec, seed: number) =>
    loadExperiment(path.join(CONFIG_DIR, m.config), [
      ...m.set,
      `seed=${seed}`,
      `name="${m.label}"`,
      `data.dataset="${o.dataset}"`,
      ...(o.steps ? [`train.steps=${o.steps}`, `train.evalEvery=${o.steps}`] : []),
    ]);
  const resultOf = (dir: string) => path.join(dir, 'eval_test', 'results.json');
  const summaryOf = (dir: string) => path.join(dir, 'train_summary.json');
  // With reuse, a finished training (train_summary.json is written last) is kept, and so is an evaluation:
  // a run whose evaluation was interrupted, or the extra ensemble member of a one-seed run that a later
  // run with more seeds needs.
  const kept = (file: string) => o.reuse && fs.existsSync(file);
  // A deep ensemble needs two V-MoEs (K=2): with one seed (--quick) a second one is trained for the ensemble
  // alone; it stays out of the vmoe-k2 row, so every row of the table holds the same number of seeds.
  const members = Math.max(o.seeds, 2);
  const vmoeK2 = E3_MODELS.find((m) => m.label === 'vmoe-k2')!;
  const runs: { m: ModelSpec; seed: number; dir: string; row: boolean }[] = [];
  for (let seed = 0; seed < o.seeds; seed++)
    for (const m of E3_MODELS) runs.push({ m, seed, dir: path.join(o.out, `${m.label}-s${seed}`), row: true });
  for (let seed = o.seeds; seed < members; seed++)
    runs.push({ m: vmoeK2, seed, dir: path.join(o.out, `${vmoeK2.label}-s${seed}`), row: false });
  // Deep ensembles of two V-MoEs (K=2): seeds (s, s+1 mod n) — one pair when there are only two.
  const ensembles: { members: [string, string]; dir: string }[] = [];
  for (let seed = 0; seed < (members === 2 ? 1 : members); seed++)
    ensembles.push({
      members: [path.join(o.out, `vmoe-k2-s${seed}`), path.join(o.out, `vmoe-k2-s${(seed + 1) % members}`)],
      dir: path.join(o.out, `deep-ensemble-vmoe-k2-s${seed}`),
    });

  const ensembleMembers = new Set(ensembles.filter((e) => !kept(resultOf(e.dir))).flatMap((e) => e.members));
  const toTrain = runs.filter(
    (r) => !kept(summaryOf(r.dir)) && ((r.row && !kept(resultOf(r.dir))) || ensembleMembers.has(r.dir)),
  );
  await executor.train(toTrain.map((r) => ({ dir: r.dir, config: configOf(r.m, r.seed), fresh: !o.reuse })));
  const trainSeconds = (dir: string) =>
    (JSON.parse(fs.readFileSync(summaryOf(dir), 'utf8')) as { seconds: number }).seconds;
  const evals: (E3Evaluation & { annotate: Record<string, unknown> })[] = [];
  for (const r of runs.filter((x) => x.row && !kept(resultOf(x.dir))))
    evals.push({
      checkpoints: [r.dir],
      out: path.join(r.dir, 'eval_test'),
      ood: o.ood,
      limit: o.evalLimit,
      fresh: true, // not kept, so evaluated now
      annotate: { model_label: r.m.label, train_seconds: trainSeconds(r.dir) },
    });
  for (const e of ensembles.filter((x) => !kept(resultOf(x.dir))))
    evals.push({
      checkpoints: e.members,
      out: path.join(e.dir, 'eval_test'),
      ood: o.ood,
      limit: o.evalLimit,
      fresh: true,
      annotate: {
        model_label: 'deep-ensemble-2x-vmoe-k2',
        train_seconds: trainSeconds(e.members[0]) + trainSeconds(e.members[1]),
      },
    });
  await executor.evaluate(evals.map(({ annotate: _, ...e }) => e));
  for (const e of evals) annotate(path.join(e.out, 'results.json'), e.annotate);
  const resultDirs = [...runs.filter((r) => r.row).map((r) => r.dir), ...ensembles.map((e) => e.dir)];
  const metrics = [
    'accuracy',
    'nll',
    'ece',
    'brier',
    'flops_per_image',
    'train_seconds',
    'images_per_s',
    ...o.ood.map((d) => `ood_${d}_msp_auroc`),
    'gibbs_nll',
    'member_accuracy_mean',
    'member_nlls_mean',
    'disagreement',
    'mutual_information',
    'ambiguity',
  ];
  const rows = reportRows(resultDirs, 'model', metrics);
  const outputs = reportOutputs(
    rows,
    `ViT, V-MoE, E³ and a deep ensemble, ${o.seeds} seed(s) each; OOD: ${o.ood.join(', ') || 'none'}`,
  );
  const provenance = {
    ...runRecord({ seed: 0 }),
    options: o,
    convention: 'mean ± sample std over seeds; ECE 15 equal-width bins; OOD AUROC of MSP with OOD positive',
  };
  writeFileWhole(path.join(o.out, 'table.csv'), outputs.csv!);
  writeFileWhole(
    path.join(o.out, 'table.json'),
    JSON.stringify({ groups: rows.summaries, provenance }, null, 2) + '\n',
  );
  writeFileWhole(path.join(o.out, 'table.tex'), outputs.latex!);
  writeFileWhole(path.join(o.out, 'results.md'), outputs.markdown!);
  return { table: outputs.markdown! };
}
