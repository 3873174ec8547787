/** `vmoe export`: a checkpoint in another format; `--format web` is the bundle the web page loads (export-web.ts). */
import type { Command } from 'commander';
import { UsageError } from '../util/errors.js';
import { addEngineOptions } from './common.js';
import { addWebExportOptions, runWebExport, type WebExportFlags } from './export-web.js';

interface ExportFlags extends WebExportFlags {
  checkpoint?: string;
  format: string;
}

export function registerExportCommand(program: Command): void {
  addEngineOptions(
    addWebExportOptions(
      program
        .command('export')
        .description('export a checkpoint for another runtime: --format web writes the bundle the web page loads')
        .argument('[checkpoint]', 'checkpoint file, checkpoints/ folder or run folder')
        .option('--checkpoint <path>', 'the checkpoint (instead of the argument)')
        .option('--format <fmt>', 'web', 'web')
        .option('-o, --out <dir>', 'web: the bundle folder (a previous bundle there is replaced)'),
    ),
  ).action((arg: string | undefined, flags: ExportFlags) => {
    const ckpt = flags.checkpoint ?? arg;
    if (!ckpt) throw new UsageError('export: name the checkpoint (argument or --checkpoint)');
    if (flags.format !== 'web') throw new UsageError(`--format: expected web, got "${flags.format}"`);
    return runWebExport(ckpt, flags);
  });
}
