/**
 * Corrupted copies of a data set split (`vmoe corrupt`), written as IDX folders
 * (readable with `idx:<folder>`), with a manifest and a preview grid PNG.
 *
 * Layout under --out:
 *   <name>-<severity>/   (suite c)       t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, meta.json
 *   <name>/              (suite mnist-c) the same files
 *   manifest.json        every set written, with constants, seed and source
 *   preview.png          rows = corruptions, columns = severity 0 (clean) … 5 (or clean | corrupted for mnist-c)
 * Whatever split is read, the sets are written as the folder's `test` files.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeIdx } from '../data/idx.js';
import { loadDataset, type Split } from '../data/registry.js';
import { corruptBatch, type Suite } from '../robustness/batch.js';
import { CORRUPTIONS } from '../robustness/corruptions.js';
import { MNIST_C } from '../robustness/mnist-c.js';
import { previewGrid, writePng } from '../robustness/preview.js';
import { UsageError } from '../util/errors.js';
import { writeFileWhole } from '../util/output-dir.js';

/** What to corrupt and where to write it. */
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

/** One corrupted set written: its corruption, severity, family, constant, folder (relative to the output) and size. */
export interface CorruptedSet {
  corruption: string;
  severity: number;
  family: string;
  constant: unknown;
  dir: string;
  n: number;
}

/** manifest.json: every set written, with the source, seed and how the per-image random streams are drawn. */
export interface CorruptManifest {
  tool: 'vmoe corrupt';
  suite: Suite;
  source: { dataset: string; split: Split; n: number; height: number; width: number; channels: number; limit?: number };
  seed: number;
  rng: string;
  sets: CorruptedSet[];
  preview?: string;
}

function specOf(suite: Suite, name: string): { family: string; constant: (s: number) => unknown } {
  if (suite === 'c') {
    const s = CORRUPTIONS[name]!;
    return { family: s.family, constant: (sev) => s.constants[sev - 1] };
  }
  const s = MNIST_C[name]!;
  return { family: s.family, constant: () => ({ mnistCLevel: s.level, value: s.constant }) };
}

/** Corrupts the split with every corruption × severity, writes the folders, preview.png and manifest.json under `opts.out`; returns the manifest. */
export function writeCorruptedSets(opts: CorruptOptions): CorruptManifest {
  const log = opts.log ?? (() => {});
  const ds = loadDataset(opts.dataset, opts.split, { dataDir: opts.dataDir, limit: opts.limit });
  if (ds.numClasses > 256)
    throw new UsageError(`data set ${ds.name} has ${ds.numClasses} classes; IDX labels hold at most 256`);
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
        corruption: {
          suite: opts.suite,
          name,
          severity: opts.suite === 'c' ? severity : null,
          family,
          constant: constant(severity),
        },
        seed: opts.seed,
        source: { dataset: opts.dataset, split: opts.split, limit: opts.limit ?? null },
      };
      writeFileWhole(join(dir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
      sets.push({
        corruption: name,
        severity: opts.suite === 'c' ? severity : 1,
        family,
        constant: constant(severity),
        dir: folder,
        n: ds.n,
      });
      log(`corrupt: ${folder} (${ds.n} images, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
  }

  const manifest: CorruptManifest = {
    tool: 'vmoe corrupt',
    suite: opts.suite,
    source: {
      dataset: opts.dataset,
      split: opts.split,
      n: ds.n,
      height: ds.height,
      width: ds.width,
      channels: ds.channels,
      limit: opts.limit,
    },
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
      cells: Array.from({ length: maxSeverity + 1 }, (_, s) =>
        corruptBatch(first, kShape, name, s, opts.seed, { suite: opts.suite }),
      ),
    }));
    const grid = previewGrid(rows, { h: ds.height, w: ds.width, c: ds.channels, k });
    writePng(join(opts.out, 'preview.png'), grid.rgba, grid.width, grid.height);
    manifest.preview = 'preview.png';
  }
  writeFileWhole(join(opts.out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
