/**
 * `vmoe export --format web`: a checkpoint as a bundle the web page (web/) loads with fetch — manifest.json
 * (web-bundle-format.ts) plus float32 weight shards and, optionally, a few test images of the checkpoint's data set.
 * The folder appears whole or not at all: every file is written into a temporary sibling folder that is then
 * renamed into place (a previous bundle there is replaced; a folder holding anything else is refused).
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../checkpoint/load.js';
import { loadDatasetFor } from '../eval/checkpoint-data.js';
import { paramSpecs } from '../vmoe/params.js';
import { OutputError, UsageError, describeWriteError } from '../util/errors.js';
import { checkOutputDir, writeFileWhole } from '../util/output-dir.js';
import {
  WEB_BUNDLE_FORMAT,
  WEB_BUNDLE_VERSION,
  WEB_SHARD_BYTES,
  packWebTensors,
  type WebManifest,
} from './web-bundle-format.js';

/** Options of `exportWebBundle`. */
export interface WebExportOptions {
  /** Checkpoint file, checkpoints/ folder or run folder. */
  checkpoint: string;
  /** Bundle folder (created; a previous bundle in it is replaced). */
  out: string;
  /** Test images of the checkpoint's data set to ship with the bundle (default 8; 0 for none). */
  images?: number;
  /** Folder of the data set, when not where the checkpoint's config says. */
  dataDir?: string;
  /** Display name (default: the run folder's name, else the checkpoint file's). */
  name?: string;
  /** Largest shard in bytes (default 4 MiB). */
  shardBytes?: number;
}

/** What `exportWebBundle` wrote. */
export interface WebExportResult {
  out: string;
  manifest: WebManifest;
  files: string[];
  bytes: number;
}

function defaultName(file: string): string {
  const dir = path.dirname(file);
  return path.basename(dir) === 'checkpoints' ? path.basename(path.dirname(dir)) : path.basename(file, '.vmoe');
}

/** Writes the web bundle of a checkpoint into `opts.out` (see the file header). */
export function exportWebBundle(opts: WebExportOptions): WebExportResult {
  const images = opts.images ?? 8;
  if (!Number.isInteger(images) || images < 0) throw new UsageError(`--images: expected an integer ≥ 0, got ${images}`);
  const out = checkOutputDir(opts.out);
  if (fs.existsSync(out)) {
    const entries = fs.readdirSync(out);
    if (entries.length > 0 && !entries.includes('manifest.json'))
      throw new OutputError(`--out ${opts.out}: holds files but no bundle (manifest.json); refusing to replace it`, {
        file: out,
        hint: 'choose an empty or new folder',
      });
  }
  const loaded = loadModel(opts.checkpoint);
  const { model, config } = loaded;
  try {
    const ds = loadDatasetFor(config, { split: 'test', dataDir: opts.dataDir, limit: Math.max(1, images) });
    if (ds.numClasses !== model.cfg.numClasses)
      throw new UsageError(
        `data set ${ds.name} has ${ds.numClasses} classes but the checkpoint's head has ${model.cfg.numClasses}`,
      );
    const values = model.values();
    const tensors = [...paramSpecs(model.cfg).keys()].map((name) => ({ name, ...values.get(name)! }));
    const { entries, shards } = packWebTensors(tensors, opts.shardBytes ?? WEB_SHARD_BYTES);
    const width = String(Math.max(0, shards.length - 1)).length;
    const shardFiles = shards.map((_, i) => `weights-${String(i).padStart(width, '0')}.bin`);
    const n = Math.min(images, ds.n);
    const manifest: WebManifest = {
      format: WEB_BUNDLE_FORMAT,
      version: WEB_BUNDLE_VERSION,
      name: opts.name ?? defaultName(loaded.path),
      model: model.cfg,
      classNames: ds.classNames.slice(),
      pixelScale: config.data.scale,
      dataset: ds.name,
      checkpoint: { file: path.basename(loaded.path), sha256: loaded.sha256, step: loaded.step },
      shards: shards.map((s, i) => ({ file: shardFiles[i]!, bytes: s.byteLength })),
      tensors: entries,
      ...(n > 0
        ? {
            samples: {
              file: 'samples.bin',
              n,
              labels: Array.from(ds.labels.subarray(0, n)),
              indices: Array.from({ length: n }, (_, i) => i),
              split: 'test',
            },
          }
        : {}),
    };
    const files: [string, string | Uint8Array][] = shards.map((s, i) => [shardFiles[i]!, s]);
    if (n > 0) files.push(['samples.bin', ds.images.subarray(0, n * ds.height * ds.width * ds.channels)]);
    files.push(['manifest.json', `${JSON.stringify(manifest, null, 1)}\n`]);
    writeFolderWhole(out, files);
    return {
      out,
      manifest,
      files: files.map(([f]) => f),
      bytes: files.reduce((s, [, d]) => s + (typeof d === 'string' ? Buffer.byteLength(d) : d.byteLength), 0),
    };
  } finally {
    model.dispose();
  }
}

/**
 * Writes `files` into a temporary sibling of `dir`, then renames it to `dir` (moving a previous `dir` aside first
 * and removing it after), so readers see the old folder or the new one, never a mix.
 */
function writeFolderWhole(dir: string, files: [string, string | Uint8Array][]): void {
  const parent = path.dirname(dir);
  const tmp = path.join(parent, `.${path.basename(dir)}.${process.pid}.tmp`);
  const old = path.join(parent, `.${path.basename(dir)}.${process.pid}.old`);
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    fs.mkdirSync(tmp, { recursive: true });
    for (const [name, data] of files) writeFileWhole(path.join(tmp, name), data);
    const had = fs.existsSync(dir);
    if (had) fs.renameSync(dir, old);
    try {
      fs.renameSync(tmp, dir);
    } catch (err) {
      if (had) fs.renameSync(old, dir);
      throw err;
    }
    if (had) fs.rmSync(old, { recursive: true, force: true });
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (err instanceof OutputError) throw err;
    throw new OutputError(
      `cannot write ${dir}: ${describeWriteError(err)}; the previous version (if any) is unchanged`,
      {
        file: dir,
        cause: err,
      },
    );
  }
}
