/**
 * `vmoe corrupt`: writes corrupted copies of a data set split as IDX folders
 * (readable with `idx:<folder>`), a manifest and a preview grid PNG.
 *
 * Layout under --out:
 *   <name>-<severity>/   (suite c)       t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, meta.json
 *   <name>/              (suite mnist-c) the same files
 *   manifest.json        every set written, with constants, seed and source
 *   preview.png          rows = corruptions, columns = severity 0 (clean) … 5 (or clean | corrupted for mnist-c)
 * Whatever split is read, the sets are written as the folder's `test` files.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { writeIdx } from '../data/idx.js';
import { loadDataset, SPLITS, type Split } from '../data/registry.js';
import { corruptBatch, corruptionNames, type Suite } from '../robustness/batch.js';
import { CORRUPTIONS } from '../robustness/corruptions.js';
import { MNIST_C } from '../robustness/mnist-c.js';
import { previewGrid, writePng } from '../robustness/preview.js';
import { checkOutputDir } from '../util/output-dir.js';
import { parsePositiveInt } from './common.js';
import { UsageError } from '../util/errors.js';

export interface CorruptOptions {
  dataset: string;
  split: Split;
  /** Corruption names, or ['all']. */
  corruptions: string[];
  /** Severities 1..5 (suite c; ignored for mnist-c, which has one fixed severity each). */
  severities: number[];
  out: string;
  suite: Suite;
  seed: number;
  limit?: number;
  dataDir?: string;
  /** Images per preview cell (0 = no preview). */
  previewImages: number;
  /** Progress lines go here (default: none). */
  log?: (line: string) => void;
}

export interface CorruptedSet {
  corruption: string;
  severity: number;
  family: string;
  constant: unknown;
  dir: string;
  n: number;
}

export interface CorruptManifest {
  tool: 'vmoe corrupt';
  suite: Suite;
  source: { dataset: string; split: Split; n: number; height: number; width: number; channels: number; limit?: number };
  seed: number;
  rng: string;
  sets: CorruptedSet[];
  preview?: string;
}

/** "3", "1-5", "1,3,5" → sorted unique severities in 1..5. */
export function parseSeverities(spec: string): number[] {
  const out = new Set<number>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new UsageError(`--severity: expected N, A-B or a comma list within 1..5, got "${spec}"`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a < 1 || b > 5 || a > b) throw new UsageError(`--severity: "${part}" is outside 1..5 (or reversed); severities run 1..5`);
    for (let s = a; s <= b; s++) out.add(s);
  }
  if (out.size === 0) throw new UsageError('--severity: no severity given');
  return [...out].sort((x, y) => x - y);
}

/** "all" or a comma list → names, checked against the suite. */
export function parseCorruptions(spec: string, suite: Suite): string[] {
  const known = corruptionNames(suite);
  const names = spec.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 1 && names[0] === 'all') return known;
  if (names.length === 0) throw new UsageError('--corruption: no corruption given');
  for (const n of names) {
    if (!known.includes(n)) {
      throw new UsageError(`--corruption: unknown ${suite === 'c' ? '' : 'MNIST-C '}corruption '${n}'; use all or one of ${known.join(', ')}`);
    }
  }
  return names;
}

function specOf(suite: Suite, name: string): { family: string; constant: (s: number) => unknown } {
  if (suite === 'c') {
    const s = CORRUPTIONS[name]!;
    return { family: s.family, constant: (sev) => s.constants[sev - 1] };
  }
  const s = MNIST_C[name]!;
  return { family: s.family, constant: () => ({ mnistCLevel: s.level, value: s.constant }) };
}

export function runCorrupt(opts: CorruptOptions): CorruptManifest {
  checkOutputDir(opts.out);
  const log = opts.log ?? (() => {});
  const ds = loadDataset(opts.dataset, opts.split, { dataDir: opts.dataDir, limit: opts.limit });
  if (ds.numClasses > 256) throw new UsageError(`data set ${ds.name} has ${ds.numClasses} classes; IDX labels hold at most 256`);
  const shape = { n: ds.n, h: ds.height, w: ds.width, c: ds.channels };
  const imageDims = ds.channels === 1 ? [ds.n, ds.height, ds.width] : [ds.n, ds.height, ds.width, ds.channels];
  const labels = Uint8Array.from(ds.labels);
  const severities = opts.suite === 'c' ? opts.severities : [1];
  mkdirSync(opts.out, { recursive: true });

  const sets: CorruptedSet[] = [];
  for (const name of opts.corruptions) {
    const { family, constant } = specOf(opts.suite, name);
    for (const severity of severities) {
      const t0 = Date.now();
      const folder = opts.suite === 'c' ? `${name}-${severity}` : name;
      const dir = join(opts.out, folder);
      const images = corruptBatch(ds.images, shape, name, severity, opts.seed, { suite: opts.suite });
      writeIdx(join(dir, 't10k-images-idx3-ubyte.gz'), imageDims, images);
      writeIdx(join(dir, 't10k-labels-idx1-ubyte.gz'), [ds.n], labels);
      const meta = {
        name: `${ds.name}-${opts.suite === 'c' ? 'c' : 'mnist-c'}/${folder}`,
        classNames: ds.classNames,
        corruption: { suite: opts.suite, name, severity: opts.suite === 'c' ? severity : null, family, constant: constant(severity) },
        seed: opts.seed,
        source: { dataset: opts.dataset, split: opts.split, limit: opts.limit ?? null },
      };
      writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
      sets.push({ corruption: name, severity: opts.suite === 'c' ? severity : 1, family, constant: constant(severity), dir: folder, n: ds.n });
      log(`corrupt: ${folder} (${ds.n} images, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
  }

  const manifest: CorruptManifest = {
    tool: 'vmoe corrupt',
    suite: opts.suite,
    source: { dataset: opts.dataset, split: opts.split, n: ds.n, height: ds.height, width: ds.width, channels: ds.channels, limit: opts.limit },
    seed: opts.seed,
    rng: 'per image: imageRng(seed, index) — independent of batching, shared across severities',
    sets,
  };

  const k = Math.min(opts.previewImages, ds.n);
  if (k > 0) {
    const px = ds.height * ds.width * ds.channels;
    const first = ds.images.subarray(0, k * px);
    const kShape = { n: k, h: ds.height, w: ds.width, c: ds.channels };
    const maxSeverity = opts.suite === 'c' ? 5 : 1;
    const rows = opts.corruptions.map((name) => ({
      cells: Array.from({ length: maxSeverity + 1 }, (_, s) => corruptBatch(first, kShape, name, s, opts.seed, { suite: opts.suite })),
    }));
    const grid = previewGrid(rows, { h: ds.height, w: ds.width, c: ds.channels, k });
    writePng(join(opts.out, 'preview.png'), grid.rgba, grid.width, grid.height);
    manifest.preview = 'preview.png';
  }
  writeFileSync(join(opts.out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

function parseSeed(s: string): number {
  const v = Number(s);
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new UsageError(`--seed: expected an integer in 0..4294967295, got "${s}"`);
  return v;
}

export function registerCorruptCommand(program: Command): void {
  program
    .command('corrupt')
    .description('write corrupted copies of a data set (ImageNet-C style or MNIST-C) as IDX folders, plus a preview PNG')
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
    .action((flags: {
      dataset: string; split: Split; corruption: string; severity: string; suite: Suite; limit?: string; seed: string;
      dataDir?: string; previewImages: string; out: string;
    }) => {
      const previewImages = Number(flags.previewImages);
      if (!Number.isInteger(previewImages) || previewImages < 0) {
        throw new UsageError(`--preview-images: expected a non-negative integer, got "${flags.previewImages}"`);
      }
      const manifest = runCorrupt({
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
      });
      process.stdout.write(JSON.stringify(manifest, null, 2) + '\n');
    });
}
