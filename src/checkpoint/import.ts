/**
 * `vmoe import`: a checkpoint of the reference implementation becomes one of ours — `OUT/checkpoints/
 * checkpoint-0.vmoe` with the inferred config in its metadata, and `OUT/import.json` saying what was inferred and
 * from which files (with their SHA-256). Sources: google-research/vmoe's `PREFIX.index` + shards, and `.npz` ViT
 * checkpoints of vision_transformer / big_vision. Everything is read and checked before the first byte is written;
 * each file is written whole.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CheckpointError, UsageError } from '../util/errors.js';
import { checkOutputDir, writeFileWhole } from '../util/output-dir.js';
import { applyOverride } from '../config/experiment.js';
import { PACKAGE_VERSION } from '../engine/record.js';
import { findNonFinite, saveCheckpoint, type NamedArray } from './format.js';
import { canonicalNames, readNpzCheckpoint } from './npz-checkpoint.js';
import {
  isReferenceCheckpoint,
  readReferenceCheckpoint,
  referencePrefix,
  shardFileName,
  type RefArray,
} from './reference-format.js';
import { importReferenceParams, type InferredArchitecture, type ReferenceRouting } from './reference-map.js';

/** Options of `importCheckpoint`: the routing settings the tree cannot hold and `--set` overrides. */
export interface ImportOptions extends ReferenceRouting {
  /** `model.x=value` assignments applied to the inferred config (as `--set` does). */
  overrides?: string[];
}

/** What `importCheckpoint` did: the files written and what it inferred. */
export interface ImportSummary {
  format: 'vmoe' | 'npz';
  source: string;
  checkpoint: string;
  summaryFile: string;
  architecture: InferredArchitecture;
  dtypes: string[];
  shards: number;
  indexVersion: string | null;
  /** SHA-256 of every file read, so the import can be traced to the exact files. */
  sha256: Record<string, string>;
  config: Record<string, unknown>;
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

interface Source {
  format: 'vmoe' | 'npz';
  where: string;
  files: string[];
  shards: number;
  indexVersion: string | null;
  arrays: Map<string, RefArray>;
}

function readSource(ckpt: string): Source {
  if (ckpt.endsWith('.npz')) {
    return {
      format: 'npz',
      where: ckpt,
      files: [ckpt],
      shards: 1,
      indexVersion: null,
      arrays: canonicalNames(readNpzCheckpoint(ckpt)),
    };
  }
  if (!isReferenceCheckpoint(ckpt)) {
    const prefix = referencePrefix(ckpt);
    throw new CheckpointError(
      `${ckpt}: not a checkpoint this build can import: ${prefix}.index does not exist (a google-research/vmoe checkpoint is PREFIX.index plus PREFIX.data-NNNNN-of-NNNNN; a ViT checkpoint is a .npz file)`,
    );
  }
  const ref = readReferenceCheckpoint(ckpt);
  const files = [ref.index.file];
  for (let s = 0; s < ref.index.shardCount; s++) {
    const f = shardFileName(ref.prefix, s, ref.index.shardCount);
    if (fs.existsSync(f)) files.push(f);
  }
  return {
    format: 'vmoe',
    where: ref.prefix,
    files,
    shards: ref.index.shardCount,
    indexVersion: ref.index.version,
    arrays: ref.arrays,
  };
}

/** Imports the checkpoint `ckpt` (a vmoe prefix or `.index` file, or a `.npz`) into the folder `outDir`. */
export function importCheckpoint(ckpt: string, outDir: string, opts: ImportOptions = {}): ImportSummary {
  const out = checkOutputDir(outDir);
  const ckptDir = path.join(out, 'checkpoints');
  if (fs.existsSync(ckptDir) && fs.readdirSync(ckptDir).some((f) => f.endsWith('.vmoe'))) {
    throw new UsageError(`--out ${outDir} already holds checkpoints; import into a new folder`);
  }
  const src = readSource(ckpt);
  const imported = importReferenceParams(src.arrays, src.where, opts, (raw) => {
    for (const o of opts.overrides ?? []) {
      if (!/^(model|data|eval)\.|^name=/.test(o)) {
        throw new UsageError(`--set ${o}: import takes model.*, data.*, eval.* and name overrides`);
      }
      applyOverride(raw, o);
    }
  });
  const tensors: Record<string, NamedArray> = {};
  for (const [name, v] of imported.params)
    tensors[`params/${name}`] = { dtype: 'float32', shape: v.shape, data: v.data };
  const nf = findNonFinite(tensors);
  if (nf)
    throw new CheckpointError(
      `${src.where}: ${nf.name} holds non-finite values (${nf.count} of ${nf.size}); not imported`,
    );
  const sha256: Record<string, string> = {};
  for (const f of src.files) sha256[path.basename(f)] = sha256File(f);
  const provenance = {
    format: src.format,
    source: path.resolve(src.where),
    shards: src.shards,
    index_version: src.indexVersion,
    dtypes: imported.dtypes,
    sha256,
    inferred: imported.arch,
    routing: {
      num_selected_experts: opts.numSelectedExperts ?? null,
      group_size: opts.groupSize ?? null,
      capacity_factor: opts.capacityFactor ?? null,
      batch_priority: opts.batchPriority ?? null,
    },
  };
  fs.mkdirSync(ckptDir, { recursive: true });
  const file = saveCheckpoint(
    ckptDir,
    {
      meta: {
        // no engine ran: the record says what wrote the file and when
        config: imported.config,
        seed: imported.config.seed,
        versions: { 'vmoe-ts': PACKAGE_VERSION, node: process.version },
        time: new Date().toISOString(),
        step: 0,
        imported: provenance,
      },
      tensors,
    },
    { keep: Infinity },
  );
  const summaryFile = path.join(out, 'import.json');
  writeFileWhole(
    summaryFile,
    `${JSON.stringify({ checkpoint: file, ...provenance, config: imported.config }, null, 2)}\n`,
  );
  return {
    format: src.format,
    source: provenance.source,
    checkpoint: file,
    summaryFile,
    architecture: imported.arch,
    dtypes: imported.dtypes,
    shards: src.shards,
    indexVersion: src.indexVersion,
    sha256,
    config: imported.config as unknown as Record<string, unknown>,
  };
}
