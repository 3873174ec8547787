/** `vmoe corrupt`: parses flags into CorruptOptions, writes the corrupted sets (export/corrupted-sets.ts), prints the manifest. */
import { Option, type Command } from 'commander';
import { SPLITS, type Split } from '../data/registry.js';
import { writeCorruptedSets } from '../export/corrupted-sets.js';
import { corruptionNames, type Suite } from '../robustness/batch.js';
import { parsePositiveInt } from './common.js';
import { UsageError } from '../util/errors.js';
import { claimOutputDir } from '../util/output-claim.js';
import { writeOutputsWhole } from '../util/output-dir.js';

/** "3", "1-5", "1,3,5" → sorted unique severities in 1..5. */
export function parseSeverities(spec: string): number[] {
  const out = new Set<number>();
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new UsageError(`--severity: expected N, A-B or a comma list within 1..5, got "${spec}"`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a < 1 || b > 5 || a > b)
      throw new UsageError(`--severity: "${part}" is outside 1..5 (or reversed); severities run 1..5`);
    for (let s = a; s <= b; s++) out.add(s);
  }
  if (out.size === 0) throw new UsageError('--severity: no severity given');
  return [...out].sort((x, y) => x - y);
}

/** "all" or a comma list → names, checked against the suite. */
export function parseCorruptions(spec: string, suite: Suite): string[] {
  const known = corruptionNames(suite);
  const names = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 1 && names[0] === 'all') return known;
  if (names.length === 0) throw new UsageError('--corruption: no corruption given');
  for (const n of names) {
    if (!known.includes(n)) {
      throw new UsageError(
        `--corruption: unknown ${suite === 'c' ? '' : 'MNIST-C '}corruption '${n}'; use all or one of ${known.join(', ')}`,
      );
    }
  }
  return names;
}

function parseSeed(s: string): number {
  const v = Number(s);
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
    throw new UsageError(`--seed: expected an integer in 0..4294967295, got "${s}"`);
  return v;
}

export function registerCorruptCommand(program: Command): void {
  program
    .command('corrupt')
    .description(
      'write corrupted copies of a data set (ImageNet-C style or MNIST-C) as IDX folders, plus a preview PNG',
    )
    .option('--dataset <name>', 'data set name or idx:<folder>', 'fashion-mnist')
    .addOption(new Option('--split <split>', 'split to corrupt').choices([...SPLITS]).default('test'))
    .option('--corruption <names>', 'corruption name, comma list, or all', 'all')
    .option('--severity <spec>', 'severities: N, A-B or a comma list within 1..5 (suite c only)', '1-5')
    .addOption(new Option('--suite <suite>', 'corruption suite').choices(['c', 'mnist-c']).default('c'))
    .option('--limit <n>', 'corrupt only the first N images')
    .option('--seed <s>', 'seed of the per-image random streams', '0')
    .option('--data-dir <dir>', 'folder holding data sets')
    .option('--preview-images <k>', 'images per preview cell (0: no preview)', '4')
    .requiredOption('--out <dir>', 'output folder')
    .action(
      (flags: {
        dataset: string;
        split: Split;
        corruption: string;
        severity: string;
        suite: Suite;
        limit?: string;
        seed: string;
        dataDir?: string;
        previewImages: string;
        out: string;
      }) => {
        const previewImages = Number(flags.previewImages);
        if (!Number.isInteger(previewImages) || previewImages < 0) {
          throw new UsageError(`--preview-images: expected a non-negative integer, got "${flags.previewImages}"`);
        }
        const claim = claimOutputDir(flags.out, 'vmoe corrupt'); // checked and locked before any work
        try {
          // every set is renamed into place at the end, together: an interrupted run leaves none half-written
          const manifest = writeOutputsWhole(flags.out, () =>
            writeCorruptedSets({
              dataset: flags.dataset,
              split: flags.split,
              corruptions: parseCorruptions(flags.corruption, flags.suite),
              severities: parseSeverities(flags.severity),
              out: flags.out,
              suite: flags.suite,
              seed: parseSeed(flags.seed),
              limit: flags.limit === undefined ? undefined : parsePositiveInt(flags.limit, '--limit'),
              dataDir: flags.dataDir,
              previewImages,
              log: (line) => process.stderr.write(line + '\n'),
            }),
          );
          process.stdout.write(JSON.stringify(manifest, null, 2) + '\n');
        } finally {
          claim.release();
        }
      },
    );
}
