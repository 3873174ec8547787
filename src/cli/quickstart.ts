/** `vmoe quickstart`: the main job (experiments/quickstart.ts) with its engine flags. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { runQuickstartJob } from '../experiments/quickstart.js';
import { checkOutputDir } from '../util/output-dir.js';
import { addEngineOptions, collect, startEngine } from './common.js';

const CONFIG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../configs');

interface QuickstartFlags {
  out: string;
  set: string[];
  backend?: string;
  threads?: string;
  config: string;
}

export async function runQuickstart(flags: QuickstartFlags): Promise<void> {
  checkOutputDir(flags.out);
  const engine = await startEngine(flags);
  const r = await runQuickstartJob(
    {
      config: flags.config,
      out: flags.out,
      overrides: flags.set,
      log: (line) => process.stderr.write(`[vmoe] ${line}\n`),
    },
    engine,
  );
  process.stdout.write(
    `\nquickstart done in ${(r.totalSeconds / 60).toFixed(1)} min: test accuracy ${r.accuracy.toFixed(4)}, ` +
      `NLL ${r.nll.toFixed(4)}, ECE ${r.ece.toFixed(4)}\n` +
      `wrote ${flags.out}/{${r.files.join(',')},eval_test/,metrics.jsonl,checkpoints/}\n`,
  );
}

export function registerQuickstartCommand(program: Command): void {
  addEngineOptions(
    program
      .command('quickstart')
      .description(
        'train the tiny V-MoE on Fashion-MNIST (MNIST if absent), evaluate on the test split, export results',
      )
      .option('-o, --out <dir>', 'output folder (replaced on every run)', 'runs/quickstart')
      .option('-c, --config <file>', 'config to run', path.join(CONFIG_DIR, 'quickstart.json'))
      .option('--set <key=value>', 'override a config field (repeatable)', collect, []),
  ).action((flags: QuickstartFlags) => runQuickstart(flags));
}
