import type { Command } from 'commander';
import { listDatasets } from '../data/index.js';

export function registerDatasetsCommand(program: Command): void {
  program
    .command('datasets')
    .description('list the data sets the toolkit knows and where it finds them')
    .option('--data-dir <dir>', 'folder holding data sets')
    .action((flags: { dataDir?: string }) => {
      process.stdout.write(JSON.stringify(listDatasets({ dataDir: flags.dataDir }), null, 2) + '\n');
    });
}
