/** `vmoe info`: describes a checkpoint or config (eval/model-info.ts) and prints it as JSON. */
import type { Command } from 'commander';
import { describeModel } from '../eval/model-info.js';

export function registerInfoCommand(program: Command): void {
  program
    .command('info')
    .description('architecture, parameter counts (total / active per token), FLOPs per image and training summary')
    .argument('[checkpoint]', 'checkpoint file or run folder')
    .option('-c, --config <file>', 'describe a config instead of a checkpoint')
    .action((checkpoint: string | undefined, flags: { config?: string }) => {
      const info = describeModel({ checkpoint, config: flags.config });
      process.stdout.write(JSON.stringify(info, null, 2) + '\n');
    });
}
