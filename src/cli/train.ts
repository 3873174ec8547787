import path from 'node:path';
import type { Command } from 'commander';
import { loadExperiment } from '../config/experiment.js';
import { train, type HeadInit, type TrainResult } from '../train/trainer.js';
import { stopOnSignals } from '../train/interrupt.js';
import { checkOutputDir } from '../util/output-dir.js';
import { resolveCheckpoint } from '../checkpoint/load.js';
import { addEngineOptions, collect, startEngine } from './common.js';

interface TrainFlags {
  config?: string;
  set: string[];
  out?: string;
  resume?: boolean;
  overwrite?: boolean;
  backend?: string;
  threads?: string;
  from?: string;
  /** finetune: true = --reinit-head, false = --no-reinit-head, undefined = decide by data set */
  reinitHead?: boolean;
}

async function runTrain(flags: TrainFlags, finetune: boolean): Promise<void> {
  const config = loadExperiment(flags.config ?? null, flags.set);
  const outDir = flags.out ?? path.join('runs', config.name);
  checkOutputDir(outDir, flags.out ? '--out' : 'run folder');
  await startEngine(flags);
  const head: HeadInit = flags.reinitHead === undefined ? 'auto' : flags.reinitHead ? 'reinit' : 'keep';
  const stop = stopOnSignals();
  let r: TrainResult;
  try {
    r = await train({
      config,
      outDir,
      resume: flags.resume,
      overwrite: flags.overwrite,
      initFrom: finetune ? flags.from : undefined,
      head,
      stop,
      resumeCommand: resumeCommand(),
      command: `vmoe ${finetune ? 'finetune' : 'train'}`,
    });
  } finally {
    stop.dispose();
  }
  if (r.alreadyFinished) {
    process.stdout.write(
      `${outDir} is already finished (step ${r.step} of ${config.train.steps}); nothing was changed\ncheckpoint ${r.checkpoint}\n`,
    );
    return;
  }
  const val = r.lastVal ? ` val accuracy ${r.lastVal.accuracy.toFixed(4)} nll ${r.lastVal.nll.toFixed(4)}` : '';
  process.stdout.write(
    `trained ${r.step} steps in ${r.seconds.toFixed(1)} s (${r.imagesPerSecond.toFixed(0)} images/s);${val}\ncheckpoint ${r.checkpoint}\n`,
  );
}

/** This command line with --resume (and without --overwrite), quoted for a POSIX shell. */
function resumeCommand(): string {
  const args = process.argv.slice(2).filter((a) => a !== '--overwrite' && a !== '--resume');
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return ['vmoe', ...args, '--resume'].map(quote).join(' ');
}

export function registerTrainCommands(program: Command): void {
  addEngineOptions(
    program
      .command('train')
      .description('train a ViT / V-MoE from a JSON config')
      .option('-c, --config <file>', 'experiment config (JSON); defaults apply to every field not given')
      .option('--set <key=value>', 'override a config field, e.g. --set train.steps=200 (repeatable)', collect, [])
      .option('-o, --out <dir>', 'run directory (default runs/<config name>)')
      .option('--resume', 'continue from the latest checkpoint in the run directory')
      .option('--overwrite', 'move a run already in the run directory aside to <dir>.old-<timestamp> and start afresh'),
  ).action((flags: TrainFlags) => runTrain(flags, false));

  addEngineOptions(
    program
      .command('finetune')
      .description(
        'fine-tune from a checkpoint: matching parameters are copied, the head is re-initialised when the data set or the class count changes, position embeddings are resized when the image size changes',
      )
      .requiredOption('--from <checkpoint>', 'checkpoint file or run directory to start from')
      .option(
        '--reinit-head',
        "always start the classification head afresh (default: only when data.dataset differs from the checkpoint's or the class count changes)",
      )
      .option('--no-reinit-head', "keep the checkpoint's head even on another data set (when its shape fits)")
      .option('-c, --config <file>', 'experiment config for the new task')
      .option('--set <key=value>', 'override a config field (repeatable)', collect, [])
      .option('-o, --out <dir>', 'run directory (default runs/<config name>)')
      .option('--resume', 'continue an interrupted fine-tuning run')
      .option('--overwrite', 'move a run already in the run directory aside to <dir>.old-<timestamp> and start afresh'),
  ).action((flags: TrainFlags) => runTrain({ ...flags, from: resolveCheckpoint(flags.from!) }, true));
}
