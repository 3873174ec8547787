import type { Command } from 'commander';
import { loadExperiment } from '../config/experiment.js';
import { collect } from './common.js';

export function registerConfigCommand(program: Command): void {
  program
    .command('config')
    .description('print the fully resolved config (every default filled in); with no file, the defaults')
    .option('-c, --config <file>', 'config file')
    .option('--set <key=value>', 'override a field (repeatable)', collect, [])
    .action((flags: { config?: string; set: string[] }) => {
      process.stdout.write(JSON.stringify(loadExperiment(flags.config ?? null, flags.set), null, 2) + '\n');
    });
}
