/**
 * The papers' protocol at our scale: an upstream V-MoE trained on one data set, fine-tuned to another
 * (Fashion-MNIST → MNIST and MNIST → Fashion-MNIST at the native 28 px) as
 *
 *   - a V-MoE (K = 2), every parameter but the head from the upstream;
 *   - an E³ (M = 2, K = 1) from the same upstream: member m starts from upstream experts [m·E/M, (m+1)·E/M) and its
 *     slice of the router (docs/spec/e3.md §8), so the members start from different experts — the setting in which
 *     the E³ paper reports its gains;
 *   - a deep ensemble of two V-MoE fine-tunes (seeds s and s+1 of the same upstream: at our budget the members
 *     differ by their fine-tuning seed and head initialisation, not by their upstream run);
 *
 * each over several fine-tuning seeds, evaluated on the downstream test split with the upstream data set as OOD,
 * and merged into one mean ± std table per direction.
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
import { resolveCheckpoint } from '../checkpoint/load.js';
import { writeFileWhole } from '../util/output-dir.js';

const CONFIG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../configs');

/** Options of `runTransferExperiment`. */
export interface TransferExperimentOptions {
  out: string;
  /** Fine-tuning seeds per model. */
  seeds: number;
  upstreamSteps: number;
  finetuneSteps: number;
  /** Evaluate on the first n test images (null = all). */
  evalLimit: number | null;
  /** (upstream, downstream) pairs. */
  directions: [string, string][];
  /** Keep finished runs (resume an interrupted experiment). */
  reuse: boolean;
}

/** The protocol's default pairs: Fashion-MNIST → MNIST and MNIST → Fashion-MNIST. */
export const TRANSFER_DIRECTIONS: [string, string][] = [
  ['fashion-mnist', 'mnist'],
  ['mnist', 'fashion-mnist'],
];

/** The metrics in the table, as `vmoe report` names them. */
export const TRANSFER_METRICS = [
  'accuracy',
  'nll',
  'ece',
  'brier',
  'ood_UPSTREAM_msp_auroc',
  'flops_per_image',
  'disagreement',
  'mutual_information',
];

function annotate(file: string, extra: Record<string, unknown>): void {
  const r = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileWhole(file, `${JSON.stringify({ ...r, ...extra }, null, 2)}\n`);
}

const readSeconds = (dir: string): number =>
  (JSON.parse(fs.readFileSync(path.join(dir, 'train_summary.json'), 'utf8')) as { seconds: number }).seconds;

/** Runs the protocol into `o.out`; returns the Markdown tables, one per direction. */
export async function runTransferExperiment(o: TransferExperimentOptions): Promise<{ table: string }> {
  fs.mkdirSync(o.out, { recursive: true });
  const log = (s: string) => process.stderr.write(`[experiment] ${s}\n`);
  const done = (dir: string) => o.reuse && fs.existsSync(path.join(dir, 'train_summary.json'));
  const trainRun = async (config: string, set: string[], dir: string, initFrom?: string): Promise<number> => {
    if (done(dir)) return readSeconds(dir);
    const cfg = loadExperiment(path.join(CONFIG_DIR, config), set);
    fs.rmSync(dir, { recursive: true, force: true });
    log(
      `training ${path.basename(dir)} (${cfg.train.steps} steps${initFrom ? `, from ${path.basename(initFrom)}` : ''})`,
    );
    return (
      await train({
        config: cfg,
        outDir: dir,
        initFrom: initFrom && resolveCheckpoint(initFrom),
        head: 'auto',
        quiet: true,
      })
    ).seconds;
  };
  const evaluateInto = (checkpoints: string[], out: string, ood: string, extra: Record<string, unknown>) => {
    const resultFile = path.join(out, 'results.json');
    if (o.reuse && fs.existsSync(resultFile)) return;
    const run = evaluateCheckpoints({
      checkpoints,
      split: 'test',
      batchSize: 256,
      bins: 15,
      ood: [ood],
      mahalanobisFit: 0,
      limit: o.evalLimit ?? undefined,
    });
    writeEvalResults(out, run, { bins: 15 });
    annotate(resultFile, extra);
  };
  const steps = (n: number) => [
    `train.steps=${n}`,
    `train.evalEvery=${n}`,
    `train.checkpointEvery=${n}`,
    `optim.warmupSteps=${Math.min(200, Math.floor(n / 10))}`,
  ];
  const tables: string[] = [];
  const summary: Record<string, unknown> = {};
  for (const [up, down] of o.directions) {
    const tag = `${up}-to-${down}`;
    const base = path.join(o.out, tag);
    const upstream = path.join(base, 'upstream-vmoe');
    const upSeconds = await trainRun(
      'fmnist-vmoe-tiny.json',
      ['seed=0', `data.dataset="${up}"`, 'name="upstream-vmoe"', ...steps(o.upstreamSteps)],
      upstream,
    );
    const resultDirs: string[] = [];
    const seconds = new Map<string, number>();
    const ft = (label: string, seed: number) => path.join(base, `${label}-s${seed}`);
    // Deep ensembles pair seed s with s+1 (mod the seeds); with one seed, a second V-MoE fine-tune is its partner.
    const vmoeSeeds = Math.max(o.seeds, 2);
    for (let seed = 0; seed < vmoeSeeds; seed++) {
      const dir = ft('vmoe-k2', seed);
      seconds.set(
        dir,
        await trainRun(
          'fmnist-vmoe-tiny.json',
          [`seed=${seed}`, `data.dataset="${down}"`, 'name="vmoe-k2"', ...steps(o.finetuneSteps)],
          dir,
          upstream,
        ),
      );
      if (seed < o.seeds) {
        evaluateInto([dir], path.join(dir, 'eval_test'), up, {
          model_label: 'vmoe-k2 (fine-tuned)',
          train_seconds: seconds.get(dir),
        });
        resultDirs.push(dir);
      }
    }
    for (let seed = 0; seed < o.seeds; seed++) {
      const dir = ft('e3-m2-k1', seed);
      const s = await trainRun(
        'fmnist-e3-tiny.json',
        [`seed=${seed}`, `data.dataset="${down}"`, 'name="e3-m2-k1"', ...steps(o.finetuneSteps)],
        dir,
        upstream,
      );
      evaluateInto([dir], path.join(dir, 'eval_test'), up, {
        model_label: 'e3-m2-k1 (from the upstream V-MoE)',
        train_seconds: s,
      });
      resultDirs.push(dir);
    }
    for (let seed = 0; seed < (vmoeSeeds === 2 ? 1 : vmoeSeeds); seed++) {
      const a = ft('vmoe-k2', seed),
        b = ft('vmoe-k2', (seed + 1) % vmoeSeeds);
      const dir = path.join(base, `deep-ensemble-s${seed}`);
      evaluateInto([a, b], path.join(dir, 'eval_test'), up, {
        model_label: 'deep ensemble of 2 vmoe-k2 fine-tunes',
        train_seconds: seconds.get(a)! + seconds.get(b)!,
      });
      resultDirs.push(dir);
    }
    const metrics = TRANSFER_METRICS.map((m) => m.replace('UPSTREAM', up));
    const rows = reportRows(resultDirs, 'model', metrics);
    const caption = `${up} → ${down}: upstream V-MoE (${o.upstreamSteps} steps on ${up}, ${upSeconds.toFixed(0)} s) fine-tuned ${o.finetuneSteps} steps on ${down}; ${o.seeds} seed(s); OOD: ${up}`;
    const outputs = reportOutputs(rows, caption);
    writeFileWhole(path.join(base, 'table.csv'), outputs.csv!);
    writeFileWhole(path.join(base, 'table.tex'), outputs.latex!);
    writeFileWhole(path.join(base, 'results.md'), outputs.markdown!);
    tables.push(`### ${up} → ${down}\n\n${caption}.\n\n${outputs.markdown!}`);
    summary[tag] = rows.summaries;
  }
  const provenance = {
    ...runRecord({ seed: 0 }),
    options: o,
    convention: 'mean ± sample std over fine-tuning seeds; ECE 15 equal-width bins; OOD AUROC of MSP with OOD positive',
  };
  writeFileWhole(path.join(o.out, 'table.json'), `${JSON.stringify({ groups: summary, provenance }, null, 2)}\n`);
  const table = `${tables.join('\n\n')}\n`;
  writeFileWhole(path.join(o.out, 'results.md'), table);
  return { table };
}
