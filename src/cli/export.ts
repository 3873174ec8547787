/** `vmoe export`: a checkpoint as a bundle for another runtime (today: `--format web`, the page in web/). */
import type { Command } from 'commander';
import { exportWebBundle } from '../export/web-bundle.js';
import { UsageError } from '../util/errors.js';
import { addEngineOptions, parsePositiveInt, startEngine } from './common.js';

interface ExportFlags {
  checkpoint?: string;
  format: string;
  out?: string;
  images: string;
  dataDir?: string;
  name?: string;
  backend?: string;
  threads?: string;
}

export async function runExport(flags: ExportFlags): Promise<void> {
  if (flags.format !== 'web') throw new UsageError(`--format: unknown format "${flags.format}"; expected web`);
  if (!flags.checkpoint)
    throw new UsageError('give --checkpoint CKPT (a .vmoe file, checkpoints/ folder or run folder)');
  if (!flags.out) throw new UsageError('give --out DIR, the folder for the bundle');
  const images = flags.images === '0' ? 0 : parsePositiveInt(flags.images, '--images');
  await startEngine(flags);
  const r = exportWebBundle({
    checkpoint: flags.checkpoint,
    out: flags.out,
    images,
    dataDir: flags.dataDir,
    name: flags.name,
  });
  const m = r.manifest;
  process.stdout.write(
    `wrote ${r.out}: ${m.name} (${m.model.type}, ${m.tensors.length} tensors in ${m.shards.length} shard(s), ` +
      `${m.samples?.n ?? 0} sample images, ${(r.bytes / 1e6).toFixed(2)} MB), checkpoint sha256 ${m.checkpoint.sha256.slice(0, 12)}\n`,
  );
}

export function registerExportCommand(program: Command): void {
  addEngineOptions(
    program
      .command('export')
      .description('export a checkpoint for another runtime: --format web writes the bundle the web page loads')
      .option('--checkpoint <path>', 'checkpoint file, checkpoints/ folder or run folder')
      .option('--format <format>', 'bundle format: web', 'web')
      .option('-o, --out <dir>', 'bundle folder (a previous bundle there is replaced)')
      .option('--images <n>', 'test images of the data set to ship with the bundle (0 for none)', '8')
      .option('--data-dir <dir>', "folder of the checkpoint's data set (for class names and sample images)")
      .option('--name <name>', 'display name (default: the run folder name)'),
  ).action((flags: ExportFlags) => runExport(flags));
}
