/**
 * `vmoe export --format web`: the flags of the web bundle (src/export/web-bundle.ts) and the call. Kept apart from
 * the `export` command's registration (export.ts) so other formats share that one command.
 */
import type { Command } from 'commander';
import { exportWebBundle } from '../export/web-bundle.js';
import { UsageError } from '../util/errors.js';
import { parsePositiveInt, startEngine } from './common.js';

/** The flags `--format web` reads. */
export interface WebExportFlags {
  out?: string;
  images?: string;
  dataDir?: string;
  name?: string;
  backend?: string;
  threads?: string;
}

/** Adds the options only `--format web` uses. */
export function addWebExportOptions(cmd: Command): Command {
  return cmd
    .option('--images <n>', 'web: test images of the data set to ship with the bundle (0 for none)', '8')
    .option('--data-dir <dir>', "web: folder of the checkpoint's data set (class names and sample images)")
    .option('--name <name>', 'web: display name (default: the run folder name)');
}

/** Writes the web bundle of `checkpoint` into `--out` and prints one summary line. */
export async function runWebExport(checkpoint: string, flags: WebExportFlags): Promise<void> {
  if (!flags.out) throw new UsageError('give --out DIR, the folder for the bundle');
  const images = (flags.images ?? '8') === '0' ? 0 : parsePositiveInt(flags.images ?? '8', '--images');
  await startEngine(flags);
  const r = exportWebBundle({ checkpoint, out: flags.out, images, dataDir: flags.dataDir, name: flags.name });
  const m = r.manifest;
  process.stdout.write(
    `wrote ${r.out}: ${m.name} (${m.model.type}, ${m.tensors.length} tensors in ${m.shards.length} shard(s), ` +
      `${m.samples?.n ?? 0} sample images, ${(r.bytes / 1e6).toFixed(2)} MB), checkpoint sha256 ${m.checkpoint.sha256.slice(0, 12)}\n`,
  );
}
