import path from 'node:path';
import type { Command } from 'commander';
import { loadExperiment } from '../config/experiment.js';
import { train, type HeadInit } from '../train/trainer.js';
import { resolveCheckpoint } from '../checkpoint/load.js';
import { addEngineOptions, collect, startEngine } from './common.js';

interface TrainFlags {
  config?: string; set: string[]; out?: string; resume?: boolean; backend?: string; threads?: string; from?: string;
  /** finetune: true = --reinit-head, false = --no-reinit-head, undefined = decide by data set */
  reinitHead?: boolean;
}

async function runTrain(flags: TrainFlags, finetune: boolean): Promise<void> {
  const config = loadExperiment(flags.config ?? null, flags.set);
  const outDir = flags.out ?? path.join('runs', config.name);
  await startEngine(flags);
  const head: HeadInit = flags.reinitHead === undefined ? 'auto' : flags.reinitHead ? 'reinit' : 'keep';
  const r = await train({ config, outDir, resume: flags.resume, initFrom: finetune ? flags.from : undefined, head });
  const val = r.lastVal ? ` val accuracy ${r.lastVal.accuracy.toFixed(4)} nll ${r.lastVal.nll.toFixed(4)}` : '';
  process.stdout.write(`trained ${r.step} steps in ${r.seconds.toFixed(1)} s (${r.imagesPerSecond.toFixed(0)} images/s);${val}\ncheckpoint ${r.checkpoint}\n`);
}

export function registerTrainCommands(program: Command): void {
  addEngineOptions(
    program
      .command('train')
      .description('train a ViT / V-MoE from a JSON config')
      .option('-c, --config <file>', 'experiment config (JSON); defaults apply to every field not given')
      .option('--set <key=value>', 'override a config field, e.g. --set train.steps=200 (repeatable)', collect, [])
      .option('-o, --out <dir>', 'run directory (default runs/<config name>)')
      .option('--resume', 'continue from the latest checkpoint in the run directory'),
  ).action((flags: TrainFlags) => runTrain(flags, false));

  addEngineOptions(
    program
      .command('finetune')
      .description('fine-tune from a checkpoint: matching parameters are copied, the head is re-initialised when the data set or the class count changes, position embeddings are resized when the image size changes')
      .requiredOption('--from <checkpoint>', 'checkpoint file or run directory to start from')
      .option('--reinit-head', 'always start the classification head afresh (default: only when data.dataset differs from the checkpoint\'s or the class count changes)')
      .option('--no-reinit-head', 'keep the checkpoint\'s head even on another data set (when its shape fits)')
      .option('-c, --config <file>', 'experiment config for the new task')
      .option('--set <key=value>', 'override a config field (repeatable)', collect, [])
      .option('-o, --out <dir>', 'run directory (default runs/<config name>)')
      .option('--resume', 'continue an interrupted fine-tuning run'),
  ).action((flags: TrainFlags) => runTrain({ ...flags, from: resolveCheckpoint(flags.from!) }, true));
}
