/**
 * The comparison of the E³ paper at our scale: dense ViT, V-MoE (K=1, K=2), E³
 * (M=2, K=1) and a deep ensemble of two V-MoEs, several seeds each, trained on
 * Fashion-MNIST, evaluated on its test split and on MNIST as OOD data, merged
 * into one mean ± std table.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadExperiment } from '../config/experiment.js';
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

export async function runE3Experiment(o: E3ExperimentOptions): Promise<{ table: string }> {
  fs.mkdirSync(o.out, { recursive: true });
  const log = (s: string) => process.stderr.write(`[experiment] ${s}\n`);
  const evaluateInto = (checkpoints: string[], out: string) => {
    const run = evaluateCheckpoints({
      checkpoints,
      split: 'test',
      batchSize: 256,
      bins: 15,
      ood: o.ood,
      mahalanobisFit: 0,
      limit: o.evalLimit ?? undefined,
    });
    writeEvalResults(out, run, { bins: 15 });
  };
  const trainModel = async (m: ModelSpec, seed: number, dir: string) => {
    const set = [
      ...m.set,
      `seed=${seed}`,
      `name="${m.label}"`,
      `data.dataset="${o.dataset}"`,
      ...(o.steps ? [`train.steps=${o.steps}`, `train.evalEvery=${o.steps}`] : []),
    ];
    const cfg = loadExperiment(path.join(CONFIG_DIR, m.config), set);
    fs.rmSync(dir, { recursive: true, force: true });
    log(`training ${m.label} seed ${seed} (${cfg.train.steps} steps)`);
    return (await train({ config: cfg, outDir: dir })).seconds;
  };
  // A finished training (train_summary.json is written last) is kept when reusing: a run whose evaluation
  // was interrupted, or the extra ensemble member of a one-seed run that a later run with more seeds needs.
  const trainedSeconds = async (m: ModelSpec, seed: number, dir: string): Promise<number> => {
    const summary = path.join(dir, 'train_summary.json');
    if (o.reuse && fs.existsSync(summary))
      return (JSON.parse(fs.readFileSync(summary, 'utf8')) as { seconds: number }).seconds;
    return trainModel(m, seed, dir);
  };
  const resultDirs: string[] = [];
  const trainSeconds = new Map<string, number>();
  for (let seed = 0; seed < o.seeds; seed++) {
    for (const m of E3_MODELS) {
      const dir = path.join(o.out, `${m.label}-s${seed}`);
      const resultFile = path.join(dir, 'eval_test', 'results.json');
      if (!(o.reuse && fs.existsSync(resultFile))) {
        const seconds = await trainedSeconds(m, seed, dir);
        evaluateInto([dir], path.join(dir, 'eval_test'));
        annotate(resultFile, { model_label: m.label, train_seconds: seconds });
      }
      const r = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as { train_seconds: number };
      trainSeconds.set(dir, r.train_seconds);
      resultDirs.push(dir);
    }
  }
  // A deep ensemble needs two V-MoEs (K=2): with one seed (--quick) a second one is trained for the ensemble
  // alone; it stays out of the vmoe-k2 row, so every row of the table holds the same number of seeds.
  const members = Math.max(o.seeds, 2);
  const vmoeK2 = E3_MODELS.find((m) => m.label === 'vmoe-k2')!;
  for (let seed = o.seeds; seed < members; seed++) {
    const dir = path.join(o.out, `${vmoeK2.label}-s${seed}`);
    trainSeconds.set(dir, await trainedSeconds(vmoeK2, seed, dir));
  }
  // Deep ensembles of two V-MoEs (K=2): seeds (s, s+1 mod n) — one pair when there are only two.
  for (let seed = 0; seed < (members === 2 ? 1 : members); seed++) {
    const a = path.join(o.out, `vmoe-k2-s${seed}`),
      b = path.join(o.out, `vmoe-k2-s${(seed + 1) % members}`);
    const dir = path.join(o.out, `deep-ensemble-vmoe-k2-s${seed}`);
    const resultFile = path.join(dir, 'eval_test', 'results.json');
    if (!(o.reuse && fs.existsSync(resultFile))) {
      log(`evaluating the deep ensemble ${path.basename(a)} + ${path.basename(b)}`);
      evaluateInto([a, b], path.join(dir, 'eval_test'));
      annotate(resultFile, {
        model_label: 'deep-ensemble-2x-vmoe-k2',
        train_seconds: trainSeconds.get(a)! + trainSeconds.get(b)!,
      });
    }
    resultDirs.push(dir);
  }
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
