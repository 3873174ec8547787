/** `vmoe export`: a checkpoint in another format (checkpoint/export-reference.ts). */
import type { Command } from 'commander';
import { exportReference } from '../checkpoint/export-reference.js';
import { UsageError } from '../util/errors.js';
import { parsePositiveInt } from './common.js';

interface ExportFlags {
  checkpoint?: string;
  format: string;
  out: string;
  dtype: string;
  shards?: string;
}

export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description("write a checkpoint in the reference implementation's formats: vmoe (PREFIX.index + shards) or npz")
    .argument('[checkpoint]', 'checkpoint file, checkpoints/ folder or run folder')
    .option('--checkpoint <path>', 'the checkpoint (instead of the argument)')
    .requiredOption('--format <fmt>', 'vmoe or npz')
    .requiredOption('--out <path>', 'vmoe: the prefix to write (OUT.index, OUT.data-…); npz: the file')
    .option('--dtype <type>', 'float32 or bfloat16', 'float32')
    .option('--shards <n>', 'vmoe: number of data shards', '1')
    .action((arg: string | undefined, flags: ExportFlags) => {
      const ckpt = flags.checkpoint ?? arg;
      if (!ckpt) throw new UsageError('export: name the checkpoint (argument or --checkpoint)');
      if (flags.format !== 'vmoe' && flags.format !== 'npz')
        throw new UsageError(`--format: expected vmoe or npz, got "${flags.format}"`);
      if (flags.dtype !== 'float32' && flags.dtype !== 'bfloat16')
        throw new UsageError(`--dtype: expected float32 or bfloat16, got "${flags.dtype}"`);
      const files = exportReference(ckpt, flags.out, {
        format: flags.format,
        dtype: flags.dtype,
        shards: flags.shards ? parsePositiveInt(flags.shards, '--shards') : undefined,
      });
      process.stdout.write(`wrote ${files.join(', ')}\n`);
    });
}
