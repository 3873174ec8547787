/**
 * `vmoe export`: a checkpoint in another format — `vmoe` / `npz` for the reference implementation
 * (checkpoint/export-reference.ts), `web` for the bundle the web page loads (export-web.ts).
 */
import type { Command } from 'commander';
import { exportReference } from '../checkpoint/export-reference.js';
import { UsageError } from '../util/errors.js';
import { addEngineOptions, parsePositiveInt } from './common.js';
import { addWebExportOptions, runWebExport, type WebExportFlags } from './export-web.js';

interface ExportFlags extends WebExportFlags {
  checkpoint?: string;
  format: string;
  dtype: string;
  shards?: string;
}

const FORMATS = ['web', 'vmoe', 'npz'];

export function registerExportCommand(program: Command): void {
  addEngineOptions(
    addWebExportOptions(
      program
        .command('export')
        .description(
          "export a checkpoint: --format web (the web page's bundle), vmoe (the reference's PREFIX.index + shards) or npz",
        )
        .argument('[checkpoint]', 'checkpoint file, checkpoints/ folder or run folder')
        .option('--checkpoint <path>', 'the checkpoint (instead of the argument)')
        .option('--format <fmt>', 'web, vmoe or npz', 'web')
        .option(
          '-o, --out <path>',
          'web: the bundle folder (a previous bundle there is replaced); vmoe: the prefix (OUT.index, OUT.data-…); npz: the file',
        )
        .option('--dtype <type>', 'vmoe/npz: float32 or bfloat16', 'float32')
        .option('--shards <n>', 'vmoe: number of data shards', '1'),
    ),
  ).action(async (arg: string | undefined, flags: ExportFlags) => {
    const ckpt = flags.checkpoint ?? arg;
    if (!ckpt) throw new UsageError('export: name the checkpoint (argument or --checkpoint)');
    if (!FORMATS.includes(flags.format)) {
      throw new UsageError(`--format: expected ${FORMATS.join(', ')}, got "${flags.format}"`);
    }
    if (flags.format === 'web') return runWebExport(ckpt, flags);
    if (!flags.out)
      throw new UsageError(`give --out PATH: the ${flags.format === 'vmoe' ? 'prefix' : 'file'} to write`);
    if (flags.dtype !== 'float32' && flags.dtype !== 'bfloat16') {
      throw new UsageError(`--dtype: expected float32 or bfloat16, got "${flags.dtype}"`);
    }
    const files = exportReference(ckpt, flags.out, {
      format: flags.format as 'vmoe' | 'npz',
      dtype: flags.dtype,
      shards: flags.shards ? parsePositiveInt(flags.shards, '--shards') : undefined,
    });
    process.stdout.write(`wrote ${files.join(', ')}\n`);
  });
}
