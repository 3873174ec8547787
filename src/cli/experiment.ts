import path from 'node:path';
import fs from 'node:fs';
import type { Command } from 'commander';
import { runE3Experiment } from '../experiments/e3.js';
import { queueE3Executor, relativeToRunRoot } from '../queue/experiment.js';
import { QUEUE_OPTION, RUN_ROOT_OPTION, gridStatusPrinter } from './queue.js';
import { runTransferExperiment, TRANSFER_DIRECTIONS } from '../experiments/transfer.js';
import { checkOutputDir } from '../util/output-dir.js';
import { addEngineOptions, parsePositiveInt, startEngine } from './common.js';
import { UsageError } from '../util/errors.js';

interface ExperimentFlags {
  quick?: boolean;
  seeds?: string;
  steps?: string;
  out?: string;
  ood: string;
  evalLimit?: string;
  dataset: string;
  fresh?: boolean;
  upstreamSteps?: string;
  finetuneSteps?: string;
  backend?: string;
  threads?: string;
  queue?: string;
  runRoot: string;
}

export function registerExperimentCommand(program: Command): void {
  addEngineOptions(
    program
      .command('experiment')
      .description(
        'run a named experiment; e3: ViT vs V-MoE (K=1, K=2) vs E³ vs a deep ensemble of V-MoEs, seeds × models; transfer: an upstream V-MoE fine-tuned to another data set as V-MoE, as E³ and as a deep ensemble',
      )
      .argument('<name>', 'experiment name: e3 or transfer')
      .option(
        '--quick',
        'one seed (and a second V-MoE K=2 for the deep ensemble), 300 steps per model, 2000 test images: a smoke run in minutes',
      )
      .option('--seeds <n>', 'seeds per model (default 3; quick: 1)')
      .option('--steps <n>', 'training steps per model (default 2000 ≈ 2.3 epochs; quick: 300)')
      .option('--dataset <name>', 'training data set (e3)', 'fashion-mnist')
      .option('--upstream-steps <n>', 'transfer: steps of the upstream V-MoE (default 3000; quick: 300)')
      .option('--finetune-steps <n>', 'transfer: steps of each fine-tune (default 1000; quick: 150)')
      .option('--ood <names>', 'OOD data sets', 'mnist')
      .option('--eval-limit <n>', 'evaluate on the first n test images')
      .option('--out <dir>', 'output folder (default runs/experiment-<name>[-quick])')
      .option(
        '--fresh',
        'retrain runs that already finished (default: reuse them, so an interrupted experiment resumes)',
      )
      .option(...QUEUE_OPTION)
      .option(...RUN_ROOT_OPTION),
  ).action(async (name: string, flags: ExperimentFlags) => {
    if (name !== 'e3' && name !== 'transfer')
      throw new UsageError(`unknown experiment "${name}"; available: e3, transfer`);
    const quick = flags.quick === true;
    const out = flags.out ?? path.join('runs', `experiment-${name}${quick ? '-quick' : ''}`);
    checkOutputDir(out);
    if (flags.queue) relativeToRunRoot(flags.runRoot, out);
    await startEngine(flags); // the table's provenance names the engine, also when workers trained
    if (name === 'transfer') {
      if (flags.queue) throw new UsageError('--queue: experiment transfer runs in-process only (yet)');
      const { table } = await runTransferExperiment({
        out,
        seeds: flags.seeds ? parsePositiveInt(flags.seeds, '--seeds') : quick ? 1 : 3,
        upstreamSteps: flags.upstreamSteps
          ? parsePositiveInt(flags.upstreamSteps, '--upstream-steps')
          : quick
            ? 300
            : 3000,
        finetuneSteps: flags.finetuneSteps
          ? parsePositiveInt(flags.finetuneSteps, '--finetune-steps')
          : quick
            ? 150
            : 1000,
        evalLimit: flags.evalLimit ? parsePositiveInt(flags.evalLimit, '--eval-limit') : quick ? 2000 : null,
        directions: TRANSFER_DIRECTIONS,
        reuse: !flags.fresh,
      });
      process.stdout.write(table);
      process.stdout.write(`\nwrote ${out}/results.md, ${out}/table.json and a table per direction\n`);
      return;
    }
    const executor = flags.queue
      ? queueE3Executor({ url: flags.queue, runRoot: flags.runRoot, onStatus: gridStatusPrinter() })
      : undefined;
    const { table } = await runE3Experiment(
      {
        out,
        seeds: flags.seeds ? parsePositiveInt(flags.seeds, '--seeds') : quick ? 1 : 3,
        steps: flags.steps ? parsePositiveInt(flags.steps, '--steps') : quick ? 300 : 2000,
        ood: flags.ood
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
        evalLimit: flags.evalLimit ? parsePositiveInt(flags.evalLimit, '--eval-limit') : quick ? 2000 : null,
        dataset: flags.dataset,
        reuse: !flags.fresh,
      },
      executor,
    );
    process.stdout.write(table);
    process.stdout.write(`\nwrote ${out}/{table.csv,table.json,table.tex,results.md}${fs.existsSync(out) ? '' : ''}\n`);
  });
}
